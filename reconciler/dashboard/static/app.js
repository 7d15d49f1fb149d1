// reconcile dashboard: one page, hash routes, data from /api/, live through /api/events (SSE).
// DOM is built with h()/s() (text nodes only, never innerHTML), charts are inline SVG.
// A view loads only what it shows: the summary (counts, filter values) and its own document;
// the experiments come a page at a time from the server (/api/experiments?offset=&limit=), which
// filters, searches and sorts them. /api/snapshot (every row at once) is never loaded.
"use strict";

const PAGE = 100; // rows per page of the experiments table
const NO_FILTERS = { status: "", group: "", stage: "", target: "", phase: "", q: "" };

const state = {
  summary: null, // /api/summary (with facets: the values the filters offer)
  docs: {}, // "tables" | "escalations" | "targets" | "plots" -> its /api/ document, for this commit
  page: null, // the experiments table's page: {total, offset, limit, sort, items}
  commit: null,
  filters: Object.assign({}, NO_FILTERS),
  sort: "id",
  offset: 0,
  detail: null, // /api/experiments/<id> for the open experiment page
  history: null,
  logs: {}, // "<exp>/<attempt>" -> log doc
  messages: {}, // exp id -> {ok, text} after a decision
  health: null, // /api/health: the last pass's metrics (read again while the targets view is open)
};

// ---- DOM helpers ------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const $ = (id) => document.getElementById(id);

// ---- formatting -------------------------------------------------------------------------

function fmt(x) {
  if (x === null || x === undefined) return "";
  const a = Math.abs(x);
  if (a !== 0 && (a < 0.001 || a >= 1e5)) return x.toExponential(2);
  return a < 10 ? x.toFixed(3) : x.toFixed(1);
}

function ago(iso) {
  if (!iso) return "";
  const secs = (Date.now() - Date.parse(iso)) / 1000;
  if (!isFinite(secs)) return iso;
  if (secs < 60) return `${Math.max(0, Math.round(secs))} s ago`;
  if (secs < 3600) return `${Math.round(secs / 60)} min ago`;
  if (secs < 86400) return `${(secs / 3600).toFixed(1)} h ago`;
  return `${Math.round(secs / 86400)} d ago`;
}

function when(iso) {
  return iso ? h("span", { title: iso }, iso.replace("T", " ").replace(/\+00:00$|Z$/, " UTC")) : "";
}

function pill(status) {
  return h("span", { class: `pill st-${status}`, "data-status": status }, status.replace("_", " "));
}

function link(href, text) {
  return h("a", { href, target: href.startsWith("#") ? null : "_blank", rel: "noopener" }, text);
}

// ---- data -------------------------------------------------------------------------------

async function api(path, options) {
  const res = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
  const body = await res.json().catch(() => ({ error: res.statusText }));
  if (!res.ok && !("ok" in body)) throw new Error(body.error || res.statusText);
  return body;
}

const VIEW_DOCS = { tables: "tables", escalations: "escalations", gpus: "targets", results: "plots" };
let pageAsked = 0; // the newest page request; an older answer arriving later is dropped

// What the view shown needs, fetched side by side with the summary (on load and on each commit).
async function refresh() {
  const route = parseRoute();
  const [summary] = await Promise.all([api("/api/summary"), loadView(route, true)]);
  state.summary = summary;
  state.commit = summary.commit;
  render();
  markOnce("reconcile:first-render");
}

async function loadView(route, fresh) {
  if (fresh) state.docs = {};
  const doc = VIEW_DOCS[route.view];
  const work = [];
  if (doc && !(doc in state.docs)) work.push(api(`/api/${doc}`).then((d) => { state.docs[doc] = d; }));
  if (route.view === "experiments" && (fresh || !state.page)) work.push(loadPage());
  if (route.view === "exp") work.push(loadDetail(route.arg));
  if (route.view === "gpus") work.push(loadHealth());
  await Promise.all(work);
}

function pageQuery() {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state.filters)) if (v) p.append(k, v);
  p.set("sort", state.sort);
  p.set("offset", String(state.offset));
  p.set("limit", String(PAGE));
  return p.toString();
}

async function loadPage() {
  const asked = ++pageAsked;
  const page = await api(`/api/experiments?${pageQuery()}`);
  if (asked !== pageAsked) return false;
  if (page.offset > 0 && page.offset >= page.total) { // the rows shrank under this page: the last one
    state.offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE);
    return loadPage();
  }
  state.page = page;
  return true;
}

function markOnce(name) {
  if (!performance.getEntriesByName(name).length) performance.mark(name);
}

async function loadHealth() {
  try {
    state.health = await api("/api/health");
  } catch (e) {
    state.health = { last: null, stale: true, error: String(e.message || e) };
  }
}

async function loadDetail(id) {
  try {
    state.detail = await api(`/api/experiments/${encodeURIComponent(id)}`);
    state.history = await api(`/api/experiments/${encodeURIComponent(id)}/history`);
  } catch (e) {
    state.detail = { error: String(e.message || e) };
    state.history = [];
  }
}

function connect() {
  const live = $("live");
  const source = new EventSource("/api/events");
  source.onopen = () => {
    live.className = "live on";
    live.textContent = "live";
  };
  source.onerror = () => {
    live.className = "live off";
    live.textContent = "reconnecting";
  };
  source.onmessage = (msg) => {
    const event = JSON.parse(msg.data);
    if ((event.type === "commit" || event.type === "hello") && event.commit !== state.commit) {
      refresh().catch(showError);
    }
  };
}

function showError(e) {
  $("main").replaceChildren(h("p", { class: "error" }, String(e.message || e)));
}

// ---- routing ----------------------------------------------------------------------------

function parseRoute() {
  const parts = (location.hash.replace(/^#\/?/, "").split("?")[0] || "tables").split("/");
  return { view: parts[0], arg: decodeURIComponent(parts.slice(1).join("/")) };
}

window.addEventListener("hashchange", async () => {
  const route = parseRoute();
  if (route.view === "exp") state.detail = null;
  if (route.view === "experiments") applyQueryFromHash();
  render();
  await loadView(route, false).catch(showError);
  render();
  window.scrollTo(0, 0);
});

function render() {
  const sum = state.summary;
  if (!sum) return;
  $("project").textContent = sum.project;
  document.title = `${sum.project} · reconcile`;
  $("commit").replaceChildren(
    sum.commit ? h("span", { title: `${sum.commit}\ncommitted ${sum.committed_at}` }, sum.commit.slice(0, 10)) : "no commit",
    sum.committed_at ? h("span", { class: "muted" }, ` · ${ago(sum.committed_at)}`) : ""
  );
  $("esc-count").textContent = sum.open_escalations ? String(sum.open_escalations) : "";
  $("counts").replaceChildren(
    ...Object.entries(sum.counts).map(([k, n]) => h("span", { class: `count-box st-${k}` }, h("b", {}, n), ` ${k.replace("_", " ")}`)),
    h("span", { class: "muted" }, `${sum.total} runs`),
    sum.archived && sum.archived.experiments
      ? h("span", { class: "muted", id: "archived", title: Object.entries(sum.archived.counts).map(([k, n]) => `${n} ${k}`).join(", ") },
          ` · ${sum.archived.experiments} archived in ${sum.archived.phases} phase${sum.archived.phases > 1 ? "s" : ""}`)
      : ""
  );
  const problems = $("problems");
  problems.hidden = !sum.problems.length;
  problems.replaceChildren(h("b", {}, "The desired state at this commit does not load:"), h("ul", {}, sum.problems.map((p) => h("li", { class: "mono" }, p))));
  const route = parseRoute();
  for (const a of document.querySelectorAll("#nav a")) {
    a.classList.toggle("active", a.dataset.view === route.view || (route.view === "exp" && a.dataset.view === "experiments"));
  }
  const views = { tables: viewTables, experiments: viewExperiments, exp: viewExperiment, escalations: viewEscalations, gpus: viewTargets, results: viewResults };
  const view = views[route.view] || viewTables;
  $("main").replaceChildren(view(route.arg));
  document.body.dataset.commit = state.commit || "";
  document.body.dataset.view = route.view;
}

// ---- design tables ----------------------------------------------------------------------

function loading() {
  return h("p", { class: "muted" }, "Loading…");
}

function viewTables() {
  const tables = state.docs.tables;
  if (!tables) return loading();
  if (!tables.length) return h("p", { class: "muted" }, "No design tables (experiments/*_design.json) at this commit.");
  return h("div", {}, tables.map((t, i) => designTable(t, i + 1)));
}

function designTable(t, number) {
  const cells = new Map(t.cells.map((c) => [`${c.row}\u0000${c.col}`, c]));
  const groups = [];
  for (const row of t.rows) {
    const last = groups[groups.length - 1];
    if (last && last.group === row.group) last.rows.push(row);
    else groups.push({ group: row.group, rows: [row] });
  }
  const head = h("tr", {}, h("th", { class: "method" }, "Method"),
    t.cols.map((c) => h("th", {}, c.label, h("div", { class: "metric" }, `${c.metric} ${c.direction === "lower" ? "↓" : "↑"}`))));
  const body = groups.map((g) =>
    h("tbody", { class: "group", "data-group": g.group },
      g.rows.map((r) => h("tr", {},
        h("th", { class: "method" }, r.label, r.note ? h("span", { class: "note" }, ` (${r.note})`) : "", h("div", { class: "group-label" }, g.group)),
        t.cols.map((c) => designCell(cells.get(`${r.id}\u0000${c.id}`)))
      ))
    )
  );
  return h("figure", { class: "paper", "data-table": t.name },
    h("figcaption", {}, h("b", {}, `Table ${number}: `), t.title, t.caption ? h("div", { class: "caption" }, t.caption) : ""),
    h("table", { class: "booktabs" }, h("thead", {}, head), body)
  );
}

function designCell(c) {
  if (!c) return h("td", { class: "cell empty" }, "");
  const value = c.mean === null ? h("span", { class: "value none" }, c.status === "done" ? "no value" : "—")
    : h("span", { class: c.best ? "value best" : "value" }, fmt(c.mean), c.std !== null ? h("span", { class: "std" }, ` ± ${fmt(c.std)}`) : "");
  const target = c.exp_ids.length === 1 ? `#/exp/${encodeURIComponent(c.exp_ids[0])}` : `#/experiments?q=${encodeURIComponent(c.design_id)}`;
  return h("td", { class: `cell st-${c.status}`, "data-cell": c.design_id, "data-status": c.status, title: c.purpose || c.design_id },
    h("a", { href: target, class: "cell-link", onclick: () => setQuery(c) },
      value,
      h("div", { class: "cell-status" }, h("span", { class: `dot st-${c.status}` }), c.status.replace("_", " "), h("span", { class: "seeds" }, ` ${c.seeds_done}/${c.seeds_total}`))
    )
  );
}

function setQuery(c) {
  if (c.exp_ids.length !== 1) {
    state.filters = Object.assign({}, NO_FILTERS, { q: c.design_id });
    state.offset = 0;
    state.page = null;
  }
}

// ---- experiments ------------------------------------------------------------------------

const COLUMNS = [["experiment", "id"], ["status", "status"], ["method", "method"], ["dataset", "dataset"], ["group", "group"],
  ["stage", "stage"], ["target", "target"], ["attempt", "attempt"], ["started", "started"], ["finished", "finished"], ["why", null]];
let typing = null; // the search box's pending request (sent once typing pauses)

// The server filters, searches, sorts and pages; this view draws the page it answers.
function viewExperiments() {
  const f = state.filters;
  const facets = (state.summary.facets || {});
  const changed = () => { state.offset = 0; reloadRows(); };
  const select = (key, label) =>
    h("label", {}, label, h("select", { "data-filter": key, onchange: (e) => { f[key] = e.target.value; changed(); } },
      h("option", { value: "" }, "all"), (facets[key] || []).map(([v, n]) => h("option", { value: v, selected: String(v) === f[key] }, `${v} (${n})`))));
  const search = h("input", { type: "search", placeholder: "search id, method, dataset, notes", value: f.q, "data-filter": "q",
    oninput: (e) => { f.q = e.target.value; clearTimeout(typing); typing = setTimeout(changed, 200); } });
  const sortBy = (key) => { state.sort = state.sort === key ? `-${key}` : key; changed(); };
  const head = COLUMNS.map(([label, key]) => {
    if (!key) return h("th", {}, label);
    const mark = state.sort === key ? " ▲" : state.sort === `-${key}` ? " ▼" : "";
    return h("th", { class: "sortable", "data-sort": key, title: `sort by ${label}`, onclick: () => sortBy(key) }, label, mark);
  });
  const pager = h("div", { class: "pager", id: "exp-pager" });
  const wrap = h("div", {}, h("div", { class: "filters" }, select("status", "status"), select("group", "group"), select("stage", "stage"),
    select("phase", "phase"), select("target", "target"), search, h("span", { id: "exp-shown", class: "muted" })),
  h("table", { class: "grid" }, h("thead", {}, h("tr", {}, head)), h("tbody", { id: "exp-rows" })), pager);
  fillRows(wrap);
  return wrap;
}

async function reloadRows() {
  if (await loadPage().catch(showError)) fillRows(document);
}

function fillRows(root) {
  const tbody = root.querySelector("#exp-rows"), shown = root.querySelector("#exp-shown"), pager = root.querySelector("#exp-pager");
  const page = state.page;
  if (!tbody || !page) {
    if (shown) shown.textContent = "loading…";
    return;
  }
  tbody.replaceChildren(...page.items.map(expRow));
  const last = page.offset + page.items.length, total = state.summary.total;
  shown.textContent = page.total ? `${page.offset + 1}–${last} of ${page.total}${page.total !== total ? ` (${total} in all)` : ""}` : `0 of ${total}`;
  const go = (offset) => { state.offset = offset; reloadRows(); };
  pager.replaceChildren(
    h("button", { class: "small", "data-page": "prev", disabled: page.offset === 0, onclick: () => go(Math.max(0, page.offset - PAGE)) }, "◀ previous"),
    h("span", { class: "muted" }, ` page ${Math.floor(page.offset / PAGE) + 1} of ${Math.max(1, Math.ceil(page.total / PAGE))} `),
    h("button", { class: "small", "data-page": "next", disabled: last >= page.total, onclick: () => go(page.offset + PAGE) }, "next ▶"));
  document.body.dataset.rows = `${page.commit || ""}/${page.offset}/${page.items.length}`;
  markOnce("reconcile:rows");
}

function expRow(r) {
  return h("tr", { "data-exp": r.id, "data-status": r.status },
    h("td", {}, link(`#/exp/${encodeURIComponent(r.id)}`, r.id), r.escalated ? h("span", { class: "flag", title: "open escalation" }, " ⚑") : "",
      r.gpu_memory && r.gpu_memory.over ? h("span", { class: "flag over", title: `GPU memory over its reservation: ${r.gpu_memory.text}` }, " ▲mem") : ""),
    h("td", {}, pill(r.status), r.progress !== null && r.progress !== undefined && r.status === "running" ? h("span", { class: "muted" }, ` ${Math.round(r.progress * 100)}%`) : ""),
    h("td", {}, r.method), h("td", {}, r.dataset), h("td", {}, r.group), h("td", { class: "num" }, r.stage),
    h("td", {}, r.target || ""), h("td", { class: "num", title: "attempt (automatic retries used of max_retries)" }, r.attempt ? `${r.attempt} (${r.retry_count}/${r.max_retries || 0}${r.manual_retries ? ` +${r.manual_retries} manual` : ""})` : ""),
    h("td", {}, r.started ? h("span", { title: r.started }, ago(r.started)) : ""),
    h("td", {}, r.finished ? h("span", { title: r.finished }, ago(r.finished)) : ""),
    h("td", { class: "why" }, r.failure_class ? h("span", { class: "fclass" }, r.failure_class) : "", " ", r.waiting_reason || r.notes || ""));
}

function gpuMemory(m) {
  if (!m) return "";
  const est = m.estimate_gb !== null && m.estimate_gb !== undefined ? `reserves ${m.estimate_gb} GB (${m.estimate_source})` : (m.estimate_source || "");
  const used = m.text ? h("span", { class: m.over ? "error" : "" }, `used ${m.text}`) : "";
  return h("span", { "data-gpu-memory": m.over ? "over" : "ok" }, est, est && used ? "; " : "", used);
}

function factList(facts) {
  const shown = facts.filter(([, v]) => v !== null && v !== undefined && v !== "");
  return h("dl", { class: "facts" }, shown.map(([k, v]) => h("div", { class: "fact" }, h("dt", {}, k), h("dd", {}, v))));
}

// ---- one experiment ---------------------------------------------------------------------

function viewExperiment(id) {
  const d = state.detail;
  if (!d) return h("p", { class: "muted" }, "Loading…");
  if (d.error) return h("p", { class: "error" }, d.error);
  const r = d.row;
  const facts = [["experiment", r.experiment], ["method", r.method], ["dataset", r.dataset], ["group", r.group], ["stage", r.stage],
    ["seed", r.seed], ["target", r.target], ["host", r.host], ["gpu", r.gpu], ["retries", `${r.retry_count} of ${r.max_retries} automatic` + (r.manual_retries ? `, ${r.manual_retries} manual` : "")],
    ["GPU memory", gpuMemory(r.gpu_memory)], ["started", when(r.started)], ["finished", when(r.finished)], ["code", d.git_commit ? h("span", { class: "mono" }, d.git_commit.slice(0, 10)) : ""]];
  const links = [r.wandb_url ? link(r.wandb_url, "wandb run ↗") : null, r.hf_url ? link(r.hf_url, "Hub checkpoint ↗") : null].filter(Boolean);
  const result = d.result ? h("div", { class: "result" }, Object.entries(d.result).map(([m, v]) => h("span", { class: "kv" }, h("b", {}, m), ` ${fmt(v)}`))) : "";
  return h("div", { class: "exp", "data-exp": id },
    h("h1", {}, id, " ", pill(r.status)),
    d.spec && d.spec.description ? h("p", { class: "muted" }, d.spec.description) : "",
    factList(facts),
    links.length ? h("p", { class: "links" }, links) : "",
    result, d.result_problem ? h("p", { class: "error" }, d.result_problem) : "",
    r.waiting_reason ? h("p", { class: "muted" }, `Waiting: ${r.waiting_reason}`) : "",
    d.escalation && d.escalation.status === "open" ? escalationCard(Object.assign({ exp_id: id, entry_status: r.status, actions: d.actions, pending_decision: d.pending_decision }, d.escalation), false) : "",
    d.curves && Object.keys(d.curves).length ? h("section", {}, h("h2", {}, "Learning curves"), curveCharts([{ id, curves: d.curves }])) : "",
    h("h2", {}, "Attempts"),
    (d.attempts || []).length ? d.attempts.map((a) => attemptCard(id, a)) : h("p", { class: "muted" }, "Not launched yet."),
    h("h2", {}, "History (git)"), historyTable(state.history || []),
    d.sidecar && Object.keys(d.sidecar).length ? [h("h2", {}, "Sidecar (status.json)"), h("pre", { class: "code" }, JSON.stringify(sidecarShown(d.sidecar), null, 2))] : ""
  );
}

function sidecarShown(sidecar) {
  const shown = Object.assign({}, sidecar);
  for (const key of ["history", "step_logs"]) {
    if (Array.isArray(shown[key])) shown[key] = `(${shown[key].length} points: the learning curves above)`;
  }
  return shown;
}

function attemptCard(id, a) {
  const key = `${id}/${a.n}`;
  const log = state.logs[key];
  const outcome = a.failure_class ? h("span", { class: "fclass" }, a.failure_class)
    : a.finished ? `exit ${a.exit_code}` : "running";
  return h("div", { class: "card attempt", "data-attempt": a.n },
    h("div", { class: "card-head" }, h("b", {}, `Attempt ${a.n}`), ` on ${a.target}`, a.host ? ` (${a.host})` : "",
      a.gpus.length ? ` · GPU ${a.gpus.join(",")}` : "", a.job_id ? ` · job ${a.job_id}` : "", " · ", outcome,
      h("span", { class: "muted" }, " · ", when(a.started), a.finished ? [" → ", when(a.finished)] : "")),
    h("pre", { class: "code command" }, a.command),
    a.evidence.length ? [h("div", { class: "label" }, "Evidence"), h("pre", { class: "code evidence" }, a.evidence.join("\n"))] : "",
    h("div", { class: "row" },
      h("button", { class: "small", "data-log": a.n, onclick: () => fetchLog(id, a.n) }, log ? "Reload log tail" : "Show log tail"),
      h("span", { class: "muted mono" }, ` ${a.run_dir}`)),
    log ? (log.ok ? h("pre", { class: "code log", "data-log-of": a.n }, log.lines.join("\n") || "(empty)") : h("p", { class: "error" }, log.error)) : ""
  );
}

async function fetchLog(id, n) {
  state.logs[`${id}/${n}`] = { ok: true, lines: ["loading…"] };
  render();
  try {
    state.logs[`${id}/${n}`] = await api(`/api/experiments/${encodeURIComponent(id)}/log?attempt=${n}&lines=200`);
  } catch (e) {
    state.logs[`${id}/${n}`] = { ok: false, error: String(e.message || e) };
  }
  render();
}

function historyTable(items) {
  if (!items.length) return h("p", { class: "muted" }, "No commit records it yet.");
  return h("table", { class: "grid history" },
    h("thead", {}, h("tr", {}, ["commit", "when", "transition", "attempt", "where", "class", "message"].map((c) => h("th", {}, c)))),
    h("tbody", {}, items.map((t) => h("tr", {},
      h("td", { class: "mono" }, t.commit_sha.slice(0, 10)), h("td", {}, when(t.commit_time)),
      t.kind === "transition" ? [
        h("td", {}, t.from_status ? pill(t.from_status) : "new", " → ", t.to_status ? pill(t.to_status) : "removed"),
        h("td", { class: "num" }, t.attempt), h("td", {}, [t.target, t.host, t.gpu !== null ? `gpu ${t.gpu}` : null].filter(Boolean).join(" · ")),
        h("td", {}, t.failure_class || ""),
      ] : h("td", { colspan: 4, class: "error" }, t.reason),
      h("td", { class: "muted" }, t.message_line)))));
}

// ---- escalations ------------------------------------------------------------------------

function viewEscalations() {
  const list = state.docs.escalations;
  if (!list) return loading();
  if (!list.length) return h("p", { class: "muted empty-note" }, "No open escalation. Nothing needs a decision.");
  return h("div", {}, list.map((e) => escalationCard(e, true)));
}

function escalationCard(e, withLink) {
  const msg = state.messages[e.exp_id];
  const note = h("input", { type: "text", class: "note-input", placeholder: "note (why; kept with the decision)", "data-note": e.exp_id });
  return h("div", { class: "card escalation", "data-escalation": e.exp_id },
    h("div", { class: "card-head" }, withLink ? link(`#/exp/${encodeURIComponent(e.exp_id)}`, e.exp_id) : h("b", {}, "Escalation"),
      e.kind !== e.entry_status ? [" ", h("span", { class: "kind" }, e.kind.replace("_", " "))] : "", e.entry_status ? [" ", pill(e.entry_status)] : "",
      h("span", { class: "muted" }, " · opened ", when(e.created))),
    h("p", { class: "reason" }, e.reason),
    e.evidence && e.evidence.length ? h("pre", { class: "code evidence" }, e.evidence.join("\n")) : "",
    h("p", {}, h("b", {}, "Decision needed: "), e.needed),
    e.pending_decision ? h("p", { class: "pending-decision", "data-pending": e.pending_decision.action },
      h("b", {}, `Decision “${e.pending_decision.action}” recorded`), e.pending_decision.by ? ` by ${e.pending_decision.by}` : "",
      e.pending_decision.reason ? ` (${e.pending_decision.reason})` : "", "; the next pass of reconcile applies it.")
      : h("div", { class: "row decide" }, note,
        (e.actions || []).map((a) => h("button", { class: `act act-${a.action}`, "data-action": a.action, "data-exp": e.exp_id,
          onclick: (ev) => decide(ev.target, a, note.value) }, a.label))),
    msg ? h("pre", { class: msg.ok ? "code ok-msg" : "code error", "data-result": e.exp_id }, msg.text) : ""
  );
}

async function decide(button, action, note) {
  for (const b of button.parentElement.querySelectorAll("button")) b.disabled = true;
  button.textContent = "committing…";
  const key = action.exp_id || `stage${action.stage}`;
  try {
    const res = await api("/api/decisions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ action: action.action, exp_id: action.exp_id, stage: action.stage, note }),
    });
    state.messages[action.exp_id || key] = { ok: res.ok, text: res.output || res.error || "" };
  } catch (e) {
    state.messages[action.exp_id || key] = { ok: false, text: String(e.message || e) };
  }
  await refresh();
}

// ---- targets and GPUs -------------------------------------------------------------------

function viewTargets() {
  const targets = state.docs.targets;
  if (!targets) return loading();
  if (!targets.length) return h("p", { class: "muted" }, "No targets configured.");
  return h("div", { class: "targets" }, healthPanel(state.health), targets.map(targetCard));
}

// The loop's own metrics (.reconciler/metrics.json): stage durations, each target's probe, counts.
function healthPanel(hl) {
  if (!hl) return "";
  const head = (word, ok) => h("div", { class: "card-head" }, h("b", {}, "Health"), " ", h("span", { class: `pill ${ok ? "st-done" : "st-failed"}` }, word),
    hl.last ? h("span", { class: "muted" }, " · last pass ", when(hl.last.at), ` (${ago(hl.last.at)})`, hl.last.commit ? ` · commit ${hl.last.commit.slice(0, 10)}` : " · no commit") : "");
  if (!hl.last) return h("div", { class: "card health", "data-health": "missing" }, head("no metrics", false), h("p", { class: "muted" }, hl.error || "No pass recorded yet."));
  const last = hl.last;
  const counts = (m) => Object.entries(m || {}).map(([k, n]) => `${k} ${n}`).join(", ") || "none";
  const probes = (last.probes || []).map((p) => h("tr", { "data-probe": p.target },
    h("td", {}, p.target), h("td", {}, p.reachable ? "reachable" : h("span", { class: "error", title: p.error || "" }, "unreachable")),
    h("td", { class: "num" }, `${fmt(p.seconds)} s`), h("td", { class: "num" }, byteSize(p.received_bytes)), h("td", { class: "num" }, byteSize(p.sent_bytes))));
  return h("div", { class: "card health", "data-health": hl.stale ? "stale" : "ok" },
    head(hl.stale ? "stale" : "ok", !hl.stale),
    h("p", { class: "mono", "data-stages": "" }, stageOrder(last.stages || {}).map((k) => `${k} ${fmt(last.stages[k])} s`).join(" · ")),
    probes.length ? h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ["target", "probe", "latency", "received", "sent"].map((c) => h("th", {}, c)))), h("tbody", {}, probes)) : "",
    h("p", { class: "muted" }, `experiments: ${counts(last.experiments)} · planned: ${counts(last.planned)} · done: ${counts(last.done)}`));
}

function stageOrder(stages) { // the pass's order (the API sorts keys), "pass" (the whole) last
  const known = ["load", "observe", "plan", "apply", "commit", "pass"];
  return [...known.filter((k) => k in stages), ...Object.keys(stages).filter((k) => !known.includes(k)).sort()];
}

function byteSize(n) {
  if (n === null || n === undefined) return "?";
  return n < 1024 ? `${n} B` : `${(n / 1024).toFixed(1)} KiB`;
}

function targetCard(t) {
  const env = t.env;
  const envPill = env ? h("span", { class: `pill ${env.status === "ENV_READY" ? "st-done" : "st-failed"}` }, env.status) : h("span", { class: "pill st-pending" }, "not checked");
  const facts = [["kind", t.kind], ["host", t.host], ["python", env && env.python], ["free disk", env && env.free_disk_gb !== null ? `${env.free_disk_gb} GB` : null],
    ["max runs", t.max_runs], ["checked", env ? when(env.checked_at) : null], ["code", env && env.checked_commit ? h("span", { class: "mono" }, env.checked_commit.slice(0, 10)) : null],
    ["blacklist", [...t.blacklist.map((i) => `GPU ${i}`), ...t.blacklist_models].join(", ")]];
  return h("div", { class: "card target", "data-target": t.name },
    h("div", { class: "card-head" }, h("b", {}, t.name), " ", envPill,
      t.probe ? h("span", { class: "muted" }, " · probed ", when(t.probe.observed_at), t.probe.reachable === false ? " (unreachable)" : "") : ""),
    factList(facts),
    env && env.evidence && env.evidence.length ? h("pre", { class: "code evidence" }, env.evidence.join("\n")) : "",
    t.gpus ? gpuChart(t) : h("p", { class: "muted" }, env && env.available_gpus.length ? `GPUs available at the last check: ${env.available_gpus.join(", ")} (no probe record with utilisation)` : "No GPU seen on this target (CPU runs)."),
    h("div", { class: "label" }, `Runs here (${t.runs.length})`),
    t.runs.length ? h("ul", { class: "runs" }, t.runs.map((r) => h("li", {}, link(`#/exp/${encodeURIComponent(r.id)}`, r.id), " ", pill(r.status), r.gpus.length ? ` · GPU ${r.gpus.join(",")}` : ""))) : h("p", { class: "muted" }, "none")
  );
}

function gpuChart(t) {
  const rowH = 34, w = 780, labelW = 240, barW = 180, gap = 48;
  const svg = s("svg", { class: "chart gpus", viewBox: `0 0 ${w} ${t.gpus.length * rowH + 20}`, width: "100%", role: "img" });
  svg.append(s("text", { x: labelW, y: 12, class: "axis" }, "utilisation"), s("text", { x: labelW + barW + gap, y: 12, class: "axis" }, "memory"));
  t.gpus.forEach((g, i) => {
    const y = 20 + i * rowH;
    const util = g.utilization_pct || 0;
    const mem = g.memory_total_mb ? (g.memory_used_mb || 0) / g.memory_total_mb : 0;
    const level = (x) => (x >= 0.9 ? "hot" : x >= 0.6 ? "warm" : "cool");
    svg.append(
      s("text", { x: 0, y: y + 14, class: g.blacklisted ? "gpu-label blacklisted" : "gpu-label" }, `${g.index}: ${g.name}${g.blacklisted ? " (blacklisted)" : ""}`),
      s("rect", { x: labelW, y: y + 2, width: barW, height: 16, class: "track" }),
      s("rect", { x: labelW, y: y + 2, width: barW * util / 100, height: 16, class: `bar ${level(util / 100)}` }),
      s("text", { x: labelW + barW + 4, y: y + 14, class: "small" }, `${Math.round(util)}%`),
      s("rect", { x: labelW + barW + gap, y: y + 2, width: barW, height: 16, class: "track" }),
      s("rect", { x: labelW + barW + gap, y: y + 2, width: barW * mem, height: 16, class: `bar ${level(mem)}` }),
      s("text", { x: labelW + 2 * barW + gap + 4, y: y + 14, class: "small" }, `${((g.memory_used_mb || 0) / 1024).toFixed(1)}/${((g.memory_total_mb || 0) / 1024).toFixed(0)} GB`),
      g.runs.length ? s("text", { x: 0, y: y + 28, class: "small muted" }, `runs: ${g.runs.join(", ")}`) : null
    );
  });
  return svg;
}

// ---- results plots ----------------------------------------------------------------------

function viewResults() {
  const plots = state.docs.plots;
  if (!plots) return loading();
  const charts = [];
  for (const t of plots.tables) {
    for (const c of t.cols) {
      const bars = t.rows.map((r) => ({ row: r, cell: t.cells.find((x) => x.row === r.id && x.col === c.id) })).filter((b) => b.cell);
      charts.push(h("figure", { class: "card plot", "data-plot": `${t.name}/${c.id}` },
        h("figcaption", {}, h("b", {}, c.label), ` — ${c.metric} ${c.direction === "lower" ? "(lower is better)" : "(higher is better)"}`, h("span", { class: "muted" }, ` · ${t.title}`)),
        barChart(bars)));
    }
  }
  return h("div", {},
    h("h2", {}, "Per-method results (mean ± std over seeds)"),
    charts.length ? h("div", { class: "plots" }, charts) : h("p", { class: "muted" }, "No design table to plot."),
    h("h2", {}, "Learning curves"),
    plots.curves.length ? curveCharts(plots.curves) : h("p", { class: "muted" }, "No sidecar carries a history (status.json \"history\": [{\"step\": …, \"<metric>\": …}])."));
}

function barChart(bars) {
  const w = 420, hgt = 220, left = 48, bottom = 40, top = 12;
  const values = bars.filter((b) => b.cell.mean !== null);
  const svg = s("svg", { class: "chart bars", viewBox: `0 0 ${w} ${hgt}`, width: "100%", role: "img" });
  if (!values.length) {
    svg.append(s("text", { x: w / 2, y: hgt / 2, class: "muted", "text-anchor": "middle" }, "no finished runs yet"));
    return svg;
  }
  const hi = Math.max(...values.map((b) => b.cell.mean + (b.cell.std || 0)));
  const lo0 = Math.min(...values.map((b) => b.cell.mean - (b.cell.std || 0)));
  const lo = lo0 >= 0 && lo0 < hi * 0.5 ? 0 : lo0 - (hi - lo0) * 0.3;
  const span = hi - lo || 1;
  const y = (v) => top + (hgt - top - bottom) * (1 - (v - lo) / span);
  for (let k = 0; k <= 4; k++) {
    const v = lo + (span * k) / 4;
    svg.append(s("line", { x1: left, x2: w - 8, y1: y(v), y2: y(v), class: "gridline" }), s("text", { x: left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, fmt(v)));
  }
  const slot = (w - left - 8) / bars.length;
  bars.forEach((b, i) => {
    const x = left + i * slot + slot * 0.2, bw = slot * 0.6, c = b.cell;
    svg.append(s("text", { x: x + bw / 2, y: hgt - bottom + 16, class: "axis", "text-anchor": "middle" }, b.row.label.length > 22 ? b.row.id : b.row.label));
    if (c.mean === null) {
      svg.append(s("text", { x: x + bw / 2, y: hgt - bottom - 6, class: "small muted", "text-anchor": "middle" }, c.status));
      return;
    }
    svg.append(s("rect", { x, y: y(c.mean), width: bw, height: Math.max(1, y(lo) - y(c.mean)), class: `bar grp-${b.row.group}${c.best ? " best" : ""}` },
      s("title", {}, `${b.row.label}: ${fmt(c.mean)}${c.std !== null ? ` ± ${fmt(c.std)}` : ""} (n=${c.n})`)));
    if (c.std !== null) {
      const cx = x + bw / 2;
      svg.append(s("line", { x1: cx, x2: cx, y1: y(c.mean + c.std), y2: y(c.mean - c.std), class: "errbar" }),
        s("line", { x1: cx - 6, x2: cx + 6, y1: y(c.mean + c.std), y2: y(c.mean + c.std), class: "errbar" }),
        s("line", { x1: cx - 6, x2: cx + 6, y1: y(c.mean - c.std), y2: y(c.mean - c.std), class: "errbar" }));
    }
    svg.append(s("text", { x: x + bw / 2, y: y(c.mean + (c.std || 0)) - 4, class: c.best ? "small best" : "small", "text-anchor": "middle" }, fmt(c.mean)));
  });
  svg.append(s("line", { x1: left, x2: w - 8, y1: y(lo), y2: y(lo), class: "axisline" }));
  return svg;
}

function curveKey(r) {
  return r.method ? `${r.method} · ${r.dataset}` : r.id;
}

function colourOf(runs, r) {
  const keys = [...new Set(runs.map(curveKey))].sort();
  return keys.indexOf(curveKey(r)) % 8;
}

function curveCharts(runs) {
  const metrics = [...new Set(runs.flatMap((r) => Object.keys(r.curves)))].sort();
  const keys = [...new Set(runs.map(curveKey))].sort();
  const legend = keys.length > 1 ? h("div", { class: "legend" }, keys.map((k, i) => h("span", { class: "legend-item" },
    s("svg", { width: 18, height: 10 }, s("line", { x1: 0, x2: 18, y1: 5, y2: 5, class: `line c${i % 8}` })), ` ${k}`))) : "";
  return h("div", { class: "plots" }, metrics.map((m) => h("figure", { class: "card plot", "data-curve": m },
    h("figcaption", {}, h("b", {}, m), h("span", { class: "muted" }, " (one line per run)")), lineChart(runs, m), legend)));
}

function lineChart(runs, metric) {
  const w = 420, hgt = 220, left = 48, bottom = 28, top = 10;
  const series = runs.filter((r) => r.curves[metric]).map((r) => ({ id: r.id, pts: r.curves[metric], k: colourOf(runs, r) }));
  const xs = series.flatMap((sr) => sr.pts.map((p) => p[0])), ys = series.flatMap((sr) => sr.pts.map((p) => p[1]));
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const X = (v) => left + (w - left - 8) * ((v - x0) / ((x1 - x0) || 1));
  const Y = (v) => top + (hgt - top - bottom) * (1 - (v - y0) / ((y1 - y0) || 1));
  const svg = s("svg", { class: "chart curves", viewBox: `0 0 ${w} ${hgt}`, width: "100%", role: "img" });
  for (let k = 0; k <= 4; k++) {
    const v = y0 + ((y1 - y0) * k) / 4;
    svg.append(s("line", { x1: left, x2: w - 8, y1: Y(v), y2: Y(v), class: "gridline" }), s("text", { x: left - 6, y: Y(v) + 4, class: "axis", "text-anchor": "end" }, fmt(v)));
  }
  const xfmt = (v) => (Number.isInteger(v) ? String(v) : fmt(v));
  svg.append(s("text", { x: left, y: hgt - 8, class: "axis" }, xfmt(x0)), s("text", { x: w - 8, y: hgt - 8, class: "axis", "text-anchor": "end" }, xfmt(x1)));
  for (const sr of series) {
    svg.append(s("polyline", { points: sr.pts.map((p) => `${X(p[0])},${Y(p[1])}`).join(" "), class: `line c${sr.k}` }, s("title", {}, sr.id)));
  }
  return svg;
}

// ---- start ------------------------------------------------------------------------------

function applyQueryFromHash() {
  const m = location.hash.match(/\?q=([^&]*)/);
  if (m && decodeURIComponent(m[1]) !== state.filters.q) {
    state.filters = Object.assign({}, NO_FILTERS, { q: decodeURIComponent(m[1]) });
    state.offset = 0;
    state.page = null;
  }
}

applyQueryFromHash();
setInterval(() => { // metrics change with every pass, commit or not
  if (state.summary && parseRoute().view === "gpus") loadHealth().then(render);
}, 15000);
refresh().then(connect).catch((e) => { showError(e); connect(); });
