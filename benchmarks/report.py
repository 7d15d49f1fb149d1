"""Turns the benchmark's results (a JSON-able dict) into markdown tables and SVG charts."""

from __future__ import annotations

from typing import Any

from benchmarks.planning import median
from benchmarks.svg import COLOURS, Series, log_chart


def _md(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(x) for x in r) + " |" for r in rows]
    return "\n".join(lines)


def _s(x: float) -> str:
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:.0f}"


def _ratio(naive: dict[str, Any] | None, ours: float) -> str:
    if not naive or ours <= 0:
        return "-"
    mark = "~" if naive["extrapolated"] else ""
    ratio = naive["wall_s"] / ours
    return f"{mark}{ratio:.1f}x" if ratio < 10 else f"{mark}{ratio:.0f}x"


def _naive_s(naive: dict[str, Any] | None) -> str:
    if not naive:
        return "-"
    if naive["extrapolated"]:
        return f"~{_s(naive['wall_s'])} ({naive['polled']} polled)"
    return _s(naive["wall_s"])


def ok(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The cells that ran to the end (a failed cell has ``error`` and no steady figures)."""
    return [c for c in cells if "error" not in c]


def grid_table(cells: list[dict[str, Any]]) -> str:
    rows = []
    for c in ok(cells):
        st = c["steady"]
        sp = c["split"]
        rows.append(
            [
                c["hosts"],
                f"{c['experiments']:,}",
                f"{sp['done']}/{sp['running']}/{sp['pending']}",
                _s(st["wall_s"]),
                st["commands"],
                f"{st['bytes'] / 1024:.0f}",
                _s(st["cpu_s"]),
                _s(st["target_cpu_s"]),
                f"{st['peak_mib']:.0f}",
                f"{st['plan_ms']:.0f}",
                f"{st['commit_ms']:.0f}",
                "none" if c["idle_commits"] == 0 else f"{c['idle_commits']}!",
                _naive_s(c["naive"].get("seed")),
                _ratio(c["naive"].get("seed"), st["wall_s"]),
                _naive_s(c["naive"].get("per_host")),
                _ratio(c["naive"].get("per_host"), st["wall_s"]),
            ]
        )
    header = [
        "H",
        "N",
        "done/running/pending",
        "pass s",
        "cmds",
        "KiB",
        "CPU s",
        "target CPU s",
        "peak MiB",
        "plan ms",
        "commit ms",
        "idle commits",
        "naive (seed) s",
        "ratio",
        "naive (per host) s",
        "ratio",
    ]
    return _md(header, rows)


def first_pass_table(cells: list[dict[str, Any]]) -> str:
    rows = []
    for c in cells:
        for p in c["passes"]:
            if p["pass"] == "idle":
                continue
            rows.append(
                [
                    c["hosts"],
                    f"{c['experiments']:,}",
                    p["pass"],
                    _s(p["wall_s"]),
                    p["commands"],
                    f"{p['bytes'] / 1024:.0f}",
                    p["io_actions"],
                    _s(p["cpu_s"]),
                    f"{p['peak_mib']:.0f}",
                    f"{p['observe_ms']:.0f}",
                    f"{p['plan_ms']:.0f}",
                    f"{p['apply_ms']:.0f}",
                    f"{p['commit_ms']:.0f}",
                    "yes" if p["committed"] else "no",
                    "; ".join(f"{t}: {e[:60]}" for t, e in p["unreachable"].items()) or "",
                ]
            )
    header = [
        "H",
        "N",
        "pass",
        "wall s",
        "cmds",
        "KiB",
        "actions",
        "CPU s",
        "peak MiB",
        "observe ms",
        "plan ms",
        "apply ms",
        "commit ms",
        "commit",
        "unreachable",
    ]
    return _md(header, rows)


def planning_lines(p: dict[str, Any]) -> list[str]:
    n = f"{p['experiments']:,}"
    return [
        f"- steady, {n} running, nothing to do: **{median(p['steady_ms']):.0f} ms** median of "
        f"{len(p['steady_ms'])} (target < 200 ms; empty plan: {p['steady_empty']}); healthy live runs "
        "come without log tails (the probe sends a live run's tail only when it may hold a fatal line), "
        "1 in 100 with a suspect tail",
        *(
            [
                f"- the same with a 20-line log tail for every live run (a probe without that filter): "
                f"{median(p['steady_tails_ms']):.0f} ms (empty plan: {p['steady_tails_empty']})"
            ]
            if "steady_tails_ms" in p
            else []
        ),
        f"- cold, {n} pending, {p['cold_launches']:,} launches placed: {median(p['cold_ms']):.0f} ms",
        f"- stage-gated, {p['staged_waiting']:,} of {n} waiting for stage 1: {median(p['staged_ms']):.0f} ms",
    ]


def watch_lines(w: dict[str, Any]) -> list[str]:
    lat = w.get("latencies_s") or []
    if "error" in w:
        return [f"- watch latency: FAILED: {w['error'][:300]}"]
    if not lat:
        return ["- watch latency: not measured"]
    return [
        f"- commit -> launch in watch mode ({w['target']}, {len(lat)} commits): median "
        f"**{median(lat):.2f} s**, max {max(lat):.2f} s (target < 2 s); first launch after start "
        f"{w['first_launch_s']:.2f} s"
    ]


def target_line(cells: list[dict[str, Any]]) -> list[str]:
    out = []
    for c in ok(cells):
        if c["experiments"] == 2000 and c["hosts"] == 16:
            st = c["steady"]["wall_s"]
            for variant in ("seed", "per_host"):
                nv = c["naive"].get(variant)
                if nv:
                    ratio = nv["wall_s"] / st
                    verdict = "met" if ratio >= 20 else "NOT met"
                    out.append(
                        f"- N=2,000, H=16, naive `{variant}`: {ratio:.0f}x faster "
                        f"({st:.2f} s vs {nv['wall_s']:.1f} s{', extrapolated' if nv['extrapolated'] else ''}); "
                        f"target >= 20x {verdict}"
                    )
    return out


def _client(cells: list[dict[str, Any]], variant: str) -> str:
    clients = sorted({c["naive"][variant].get("client", "?") for c in ok(cells) if c["naive"].get(variant)})
    return ", ".join(clients) or "none run"


def markdown(results: dict[str, Any]) -> str:
    m = results["meta"]
    cells = results["cells"]
    lines = [
        f"# reconciler benchmark — {m['date']}, {m['label']}",
        "",
        f"Machine: {m['cpus']} cores, {m['platform']}, Python {m['python']}. {m['note']}",
        f"Targets: {m['targets']}. Fleet: {m['fleet']}",
        f"Mode: {m['mode']}; steady passes per cell: {m['steady_passes']}; total {results.get('total_s', 0):.0f} s.",
        "",
        "## Steady pass (nothing to do) vs the naive poller",
        "",
        "`pass s`, `cmds`, `KiB`, `CPU s` (controller: user + system), `target CPU s` (SSH servers and "
        "the commands they ran), `peak MiB` (controller's peak RSS during the pass), `plan ms`, "
        "`commit ms` (the commit step of an idle pass: it finds nothing to commit): medians over the "
        "steady passes. Naive: one SSH command per running experiment per poll; `seed` = "
        '`ssh host "<check>"` per command, one loop over everything (what the seed\'s agents and '
        f"supervisor do; client: {_client(cells, 'seed')}); `per host` = one kept connection and one "
        "loop per host, hosts in parallel. `~`: polled a sample and scaled linearly.",
        "",
        grid_table(cells),
        "",
        *target_line(cells),
        "",
        "## First passes (building the recorded state)",
        "",
        "`adopt`: one pass after each desired-state commit (batches of at most "
        f"{m['batch']:,} experiments), adopting the pre-created run dirs and pulling the done "
        "results back over SFTP; `settle`: passes until nothing changes.",
        "",
        first_pass_table(cells),
        "",
        "## Planning alone (pure `make_plan`, synthetic inputs)",
        "",
    ]
    if results.get("planning"):
        lines += planning_lines(results["planning"])
    lines += ["", "## Watch mode", ""]
    if results.get("watch"):
        lines += watch_lines(results["watch"])
    failed = [c for c in cells if "error" in c]
    if failed:
        lines += ["", "## Failed cells", ""]
        lines += [f"- H={c['hosts']} N={c['experiments']:,}: {c['error'][:400]}" for c in failed]
    checks = results.get("checks", [])
    lines += ["", "## Checks", ""]
    lines += [f"- {c}" for c in checks] or ["- all steady passes: commands == H, no commit"]
    return "\n".join(lines) + "\n"


def wall_chart(results: dict[str, Any]) -> str:
    cells = ok(results["cells"])
    series = []
    for i, h in enumerate(sorted({c["hosts"] for c in cells})):
        mine = sorted((c for c in cells if c["hosts"] == h), key=lambda c: c["experiments"])
        colour = COLOURS[i % len(COLOURS)]
        series.append(
            Series(f"reconciler, H={h}", colour, False, tuple((c["experiments"], c["steady"]["wall_s"]) for c in mine))
        )
        naive = tuple((c["experiments"], c["naive"]["seed"]["wall_s"]) for c in mine if c["naive"].get("seed"))
        if naive:
            series.append(Series(f"naive poller, H={h}", colour, True, naive))
    m = results["meta"]
    return log_chart(
        series,
        title="Wall time per pass / poll, steady state",
        x_label="experiments N (40% done, 30% running, 30% pending)",
        y_label="seconds (log)",
        note=(
            f"measured on {m['label']} ({m['cpus']} cores, shared), {m['date']}; "
            "naive = seed style, one ssh command (new connection) per running run"
        ),
    )


def commands_chart(results: dict[str, Any]) -> str:
    cells = ok(results["cells"])
    series = []
    for i, h in enumerate(sorted({c["hosts"] for c in cells})):
        mine = sorted((c for c in cells if c["hosts"] == h), key=lambda c: c["experiments"])
        colour = COLOURS[i % len(COLOURS)]
        series.append(
            Series(
                f"reconciler, H={h}", colour, False, tuple((c["experiments"], c["steady"]["commands"]) for c in mine)
            )
        )
        naive = tuple((c["experiments"], c["naive"]["seed"]["commands"]) for c in mine if c["naive"].get("seed"))
        if naive:
            series.append(Series(f"naive poller, H={h}", colour, True, naive))
    m = results["meta"]
    return log_chart(
        series,
        title="Remote commands per pass / poll",
        x_label="experiments N (40% done, 30% running, 30% pending)",
        y_label="commands (log)",
        note=f"measured on {m['label']}, {m['date']}",
    )
