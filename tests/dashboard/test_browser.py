"""The page in a real headless Chromium (Debian's ``chromium``, over the DevTools pipe).

Skipped when Chromium is not installed. Screenshots of each view go to the artifacts directory
(``$RECONCILER_ARTIFACTS/dashboard`` when set).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import yaml

from reconciler.dashboard import Dashboard
from reconciler.engine import reconcile_once
from tests.dashboard.cdp import Browser, BrowserError
from tests.dashboard.conftest import git, state_of
from tests.dashboard.http import get_json

PROBE = {
    "target": "local", "observed_at": "2026-11-26T12:00:00+00:00", "reachable": True, "host": "gpu-box",
    "gpus": [
        {"index": 0, "name": "NVIDIA A100-SXM4-80GB", "memory_total_mb": 81920, "memory_used_mb": 61440,
         "utilization_pct": 96, "processes": [[4242, 61000.0]]},
        {"index": 1, "name": "NVIDIA A100-SXM4-80GB", "memory_total_mb": 81920, "memory_used_mb": 12000,
         "utilization_pct": 35, "processes": [[4343, 11000.0]]},
        {"index": 2, "name": "NVIDIA RTX A6000", "memory_total_mb": 49140, "memory_used_mb": 0,
         "utilization_pct": 0, "processes": []},
    ],
}  # fmt: skip


def open_page(browser: Browser, dash: Dashboard, view: str = "tables") -> None:
    browser.goto(f"{dash.url}#/{view}")
    commit = dash.watcher.current
    browser.wait_for(f"document.body.dataset.commit === {json.dumps(commit)}")
    browser.wait_for("document.getElementById('live').classList.contains('on')")


def show(browser: Browser, view: str, ready: str) -> None:
    browser.evaluate(f"location.hash = {json.dumps('#/' + view)}")
    try:
        browser.wait_for(f"!!({ready})")
    except BrowserError as exc:
        text = browser.evaluate("location.hash + '\\n' + document.getElementById('main').innerText.slice(0, 800)")
        raise AssertionError(f"{exc}\npage: {text}") from exc


def test_design_table_cells_show_their_statuses_and_the_best_result(
    browser: Browser, dashboard: Dashboard, artifacts: Path
) -> None:
    open_page(browser, dashboard)
    cells = browser.wait_for(
        "Array.from(document.querySelectorAll('td.cell[data-cell]')).map(td => ({id: td.dataset.cell,"
        " status: td.dataset.status, text: td.innerText, best: !!td.querySelector('.value.best')}))"
    )
    api_cells = {c["design_id"]: c for c in get_json(dashboard.url + "api/tables")[0]["cells"]}
    assert {c["id"]: c["status"] for c in cells} == {k: c["status"] for k, c in api_cells.items()}
    assert {c["id"]: c["status"] for c in cells}["broken"] == "failed"
    for cell in cells:
        api = api_cells[cell["id"]]
        assert cell["best"] == api["best"], cell
        if api["mean"] is not None:
            assert f"{api['mean']:.3f}" in cell["text"] and f"± {api['std']:.3f}" in cell["text"]
            assert "done 3/3" in cell["text"]
    assert [c["id"] for c in cells if c["best"]] == ["mlp_blobs", "mlp_moons"]
    browser.screenshot(artifacts / "01-design-tables.png")


def test_every_view_renders(browser: Browser, dashboard: Dashboard, project: Path, artifacts: Path) -> None:
    (project / ".reconciler" / "observed").mkdir(parents=True, exist_ok=True)
    (project / ".reconciler" / "observed" / "local.json").write_text(json.dumps(PROBE))
    dashboard.cache.invalidate()
    open_page(browser, dashboard, "experiments")

    rows = "document.querySelectorAll('#exp-rows tr').length"
    assert browser.wait_for(rows) == 13
    browser.screenshot(artifacts / "02-experiments.png")
    browser.evaluate(
        "(() => { const s = document.querySelector('select[data-filter=status]'); s.value = 'failed';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    assert browser.wait_for(f"{rows} === 1 && document.querySelector('#exp-rows tr').dataset.exp") == "broken"
    browser.evaluate(
        "(() => { const s = document.querySelector('select[data-filter=status]'); s.value = '';"
        " s.dispatchEvent(new Event('change')); const q = document.querySelector('input[data-filter=q]');"
        " q.value = 'moons_s2'; q.dispatchEvent(new Event('input')); })()"
    )
    shown = browser.wait_for(
        f"{rows} === 2 && Array.from(document.querySelectorAll('#exp-rows tr')).map(r => r.dataset.exp)"
    )
    assert shown == ["logreg_moons_s2", "mlp_moons_s2"]

    show(browser, "exp/mlp_moons_s0", "document.querySelector('.exp .attempt')")
    browser.click("button[data-log='1']")
    log = browser.wait_for(
        "(t => t && t.includes('done:') && t)((document.querySelector('pre[data-log-of=\"1\"]') || {}).innerText)",
        timeout=15,
    )
    assert "done: accuracy=" in log and "step 10/10" in log
    assert browser.evaluate("document.querySelectorAll('.exp svg.curves polyline').length") == 1
    history = browser.evaluate("document.querySelectorAll('table.history tbody tr').length")
    assert history == 3
    browser.screenshot(artifacts / "03-experiment.png")

    show(browser, "exp/broken", "document.querySelector('.exp .escalation')")
    assert "Decision needed" in browser.evaluate("document.querySelector('.escalation').innerText")
    browser.screenshot(artifacts / "04-experiment-failed.png")

    show(browser, "gpus", "document.querySelector('.target svg.gpus')")
    labels = browser.evaluate("Array.from(document.querySelectorAll('svg.gpus .gpu-label')).map(t => t.textContent)")
    assert labels == ["0: NVIDIA A100-SXM4-80GB", "1: NVIDIA A100-SXM4-80GB", "2: NVIDIA RTX A6000 (blacklisted)"]
    browser.screenshot(artifacts / "05-targets-gpus.png")

    show(browser, "escalations", "document.querySelector('[data-escalation=broken]')")
    buttons = browser.evaluate(
        "Array.from(document.querySelectorAll('[data-escalation=broken] button')).map(b => b.dataset.action)"
    )
    assert buttons == ["retry", "fail", "cancel"]
    browser.screenshot(artifacts / "06-escalations.png")

    show(browser, "results", "document.querySelectorAll('svg.bars rect.bar').length === 4")
    assert browser.evaluate("document.querySelectorAll('svg.bars line.errbar').length") == 12  # 4 bars x 3 strokes
    assert browser.evaluate("document.querySelectorAll('svg.bars rect.bar.best').length") == 2
    assert browser.evaluate("document.querySelectorAll('svg.curves polyline').length") == 12  # loss, every done run
    browser.screenshot(artifacts / "07-results.png")
    assert not [c for c in browser.console if c.startswith("exception")], browser.console


def test_a_status_commit_reaches_the_open_page_within_two_seconds(
    browser: Browser, dashboard: Dashboard, project: Path, artifacts: Path
) -> None:
    open_page(browser, dashboard)
    cell = "document.querySelector('td.cell[data-cell=broken]').dataset.status"
    assert browser.wait_for(cell) == "failed"
    resolve = [sys.executable, "-m", "reconciler", "resolve", "-C", str(project), "broken", "--retry"]
    subprocess.run(resolve, check=True, capture_output=True)
    reconcile_once(project, log=lambda _m: None)  # launches attempt 2: a status commit
    committed = time.monotonic()
    assert state_of(project).get("broken").status.value == "running"  # type: ignore[union-attr]
    assert git(project, "log", "-1", "--format=%s").startswith("reconcile:")
    browser.wait_for(f"{cell} === 'running'", timeout=2.0, step=0.02)
    assert time.monotonic() - committed < 2.0
    browser.screenshot(artifacts / "08-live-update.png")


def test_a_decision_button_commits_the_decision_and_the_next_pass_applies_it(
    browser: Browser, dashboard: Dashboard, project: Path, artifacts: Path
) -> None:
    open_page(browser, dashboard, "escalations")
    before = git(project, "rev-parse", "HEAD")
    browser.wait_for("!!document.querySelector('[data-escalation=broken] button[data-action=retry]')")
    browser.evaluate("document.querySelector('input[data-note=broken]').value = 'fixed the flag'")
    browser.click("[data-escalation=broken] button[data-action=retry]")
    message = browser.wait_for("(document.querySelector('[data-result=broken]') || {}).innerText", timeout=60)
    assert "the next pass applies it" in message, message
    assert git(project, "rev-parse", "HEAD^") == before
    assert git(project, "log", "-1", "--format=%s") == "resolve: retry broken"
    decisions = yaml.safe_load(git(project, "show", "HEAD:dispatch/decisions.yaml"))["decisions"]
    assert [(d["exp"], d["action"], d["reason"]) for d in decisions] == [("broken", "retry", "fixed the flag")]
    browser.wait_for("!!document.querySelector('[data-escalation=broken] [data-pending=retry]')", timeout=2.0)
    assert browser.evaluate("document.querySelectorAll('[data-escalation=broken] button').length") == 0
    browser.screenshot(artifacts / "09-decision-recorded.png")

    reconcile_once(project, log=lambda _m: None)
    state = state_of(project)
    assert decisions[0]["id"] in state.decisions_applied
    assert state.get("broken").attempt == 2  # type: ignore[union-attr]
    browser.wait_for("!!document.querySelector('.empty-note')", timeout=2.0)  # the escalation is closed
    browser.screenshot(artifacts / "10-after-pass.png")


def test_a_non_loopback_page_needs_the_token_link(browser: Browser, project: Path, artifacts: Path) -> None:
    token = "browser-token-0123456789abcdef"
    dash = Dashboard(project, bind="0.0.0.0", port=0, token=token).start()
    try:
        base = f"http://127.0.0.1:{dash.port}/"
        browser.send("Network.clearBrowserCookies", session=browser.session)
        browser.goto(base)
        assert "a token is required" in browser.evaluate("document.body.innerText")
        browser.goto(f"{base}?token={token}")
        browser.wait_for("document.querySelectorAll('td.cell[data-cell]').length === 5")
        browser.wait_for("document.getElementById('live').classList.contains('on')")
        assert "token" not in browser.evaluate("location.href")
        browser.screenshot(artifacts / "11-token-link.png")
    finally:
        browser.send("Network.clearBrowserCookies", session=browser.session)
        dash.stop()


def test_the_first_load_asks_for_a_page_of_rows_not_the_snapshot(
    browser: Browser, dashboard: Dashboard, artifacts: Path
) -> None:
    open_page(browser, dashboard, "experiments")
    rows = "document.querySelectorAll('#exp-rows tr').length"
    assert browser.wait_for(rows) == 13
    asked = browser.evaluate(
        "performance.getEntriesByType('resource').map(e => new URL(e.name).pathname + new URL(e.name).search)"
    )
    api = [a for a in asked if a.startswith("/api/")]
    assert not [a for a in api if a.startswith("/api/snapshot")], api
    assert "/api/summary" in api
    (page,) = [a for a in api if a.startswith("/api/experiments?")]
    assert "offset=0" in page and "limit=100" in page, page
    assert browser.evaluate("performance.getEntriesByName('reconcile:rows').length") == 1
    assert browser.evaluate("document.getElementById('exp-shown').textContent") == "1\u201313 of 13"

    browser.click("th[data-sort=id]")  # the same key again: the reverse order, from the server
    first = "document.querySelector('#exp-rows tr').dataset.exp"
    assert browser.wait_for(f"{first} === 'mlp_moons_s2' && {first}")
    browser.click("th[data-sort=status]")
    assert browser.wait_for(f"{first} !== 'mlp_moons_s2' && {first}") == "logreg_blobs_s0"  # done first, then failed
    browser.evaluate(
        "(() => { const s = document.querySelector('select[data-filter=phase]'); s.value = 'pilot';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    assert browser.wait_for(f"{rows} === 13 && {rows}") == 13
    asked = browser.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert not [a for a in asked if "/api/snapshot" in a]
    assert not [c for c in browser.console if c.startswith("exception")], browser.console
    browser.screenshot(artifacts / "12-experiments-paged.png")
