"""Run history over REST and in the dashboard (real uvicorn, real worker, Chromium): search by workflow,
status, time, run key and params text; pages past 10,000 runs that never read the whole index; a
workflow's record and a node's duration trend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from celery import Celery

from tests.helpers import after_created, in_thread_worker, wait_for
from tests.web.browser import CHROMIUM, launch_args, require_chromium
from tests.web.conftest import Server
from wfcelery import Workflow
from wfcelery.client.history import percentile
from wfcelery.tracker.records import new_run


def _good() -> Workflow:
    wf = Workflow("hist-wf")
    a = wf.add("first", "proj.add", args=[1, 2])
    a >> wf.add("second", "proj.echo", kwargs={"who": "${customer}"})
    return wf


def _bad() -> Workflow:
    wf = Workflow("hist-wf")  # the same workflow, a version whose second step fails
    a = wf.add("first", "proj.add", args=[1, 2])
    a >> wf.add("second", "proj.fail", kwargs={"message": "no such customer: ${customer}"})
    return wf


@pytest.fixture
def known_runs(app: Celery, engine: Any) -> list[Any]:
    runs = []
    with in_thread_worker(app):
        for wf, customer in [(_good(), "acme"), (_good(), "globex"), (_bad(), "initech")]:
            if runs:  # distinct creation times (ms): "newest first" and the 1 ms window are well defined
                after_created(engine, runs[-1].id)
            runs.append(engine.submit(wf, params={"customer": customer}))
        for run in runs:
            wait_for(lambda run=run: run.state().finished, timeout=60, message=f"run {run.id}")
    return runs


def test_search_and_the_workflow_record_over_rest(http: httpx.Client, known_runs: list[Any]) -> None:
    ok, ok2, bad = known_runs
    page = http.get("/api/history/runs", params={"workflow": "hist-wf"}).json()
    assert [r["id"] for r in page["runs"]] == [bad.id, ok2.id, ok.id]  # newest first
    assert page["next"] is None
    failed = http.get("/api/history/runs", params={"status": "FAILED"}).json()["runs"]
    assert [r["id"] for r in failed] == [bad.id]
    both = http.get("/api/history/runs", params={"status": "SUCCEEDED", "workflow": "hist-wf"}).json()
    assert [r["id"] for r in both["runs"]] == [ok2.id, ok.id]
    text = http.get("/api/history/runs", params={"q": "GLOBEX"}).json()["runs"]
    assert [r["id"] for r in text] == [ok2.id]
    created = ok2.state().created_at
    window = {"since": created, "until": created + 0.001, "workflow": "hist-wf"}
    assert [r["id"] for r in http.get("/api/history/runs", params=window).json()["runs"]] == [ok2.id]
    assert http.get("/api/history/runs", params={"run_key": "nightly"}).json()["runs"] == []

    rec = http.get("/api/history/workflows/hist-wf").json()
    durations = [r.state().finished_at - r.state().created_at for r in known_runs]
    assert (rec["recent"], rec["succeeded"], rec["failed"]) == (3, 2, 1)
    assert rec["success_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert rec["duration_p50"] == pytest.approx(percentile(durations, 50), abs=1e-3)
    assert rec["duration_p95"] == pytest.approx(percentile(durations, 95), abs=1e-3)
    assert rec["per_day"][-1]["runs"] == 3
    assert len(rec["per_day"]) == 14
    (failure,) = rec["failures"]
    assert failure["id"] == bad.id
    assert failure["node"] == "second"
    assert failure["error"] == {"type": "ValueError", "message": "no such customer: initech"}

    trend = http.get("/api/history/workflows/hist-wf/nodes/first").json()["runs"]
    assert [t["run"] for t in trend] == [ok.id, ok2.id, bad.id]  # oldest first
    for t, run in zip(trend, known_runs, strict=True):
        n = run.state().nodes["first"]
        assert t["duration"] == pytest.approx(n.finished_at - n.started_at, abs=1e-3)


def test_bad_history_queries_are_422_naming_the_problem(http: httpx.Client) -> None:
    bad = http.get("/api/history/runs", params={"cursor": "nope"})
    assert bad.status_code == 422
    assert "cursor" in bad.json()["error"]
    empty = http.get("/api/history/runs", params={"since": 10, "until": 5})
    assert empty.status_code == 422
    assert "time range" in empty.json()["error"]
    assert http.get("/api/history/runs", params={"status": "DONE"}).status_code == 422


def test_pages_past_10000_runs_read_only_their_page(http: httpx.Client, engine: Any) -> None:
    """12,000 stored runs (written as submit writes them, without publishing: no worker needed); the
    whole index is paged through by cursor, each page reading only its own runs."""
    tracker, now = engine.tracker, int(time.time() * 1000) - 60_000
    ids = [f"{i:032x}" for i in range(1, 12_001)]
    pipe = tracker.client.pipeline(transaction=False)
    for i, run_id in enumerate(ids):
        record = new_run(
            name="hist-big",
            plan_digest="0" * 40,
            total=1,
            created_ms=now + i,
            params={"n": i, "tag": "needle" if i in (5, 11_990) else "hay"},
            policy="fail_fast",
            ttl=3600,
            events_maxlen=1024,
        )
        pipe.hset(tracker.keys.run(run_id), mapping=record)
        pipe.zadd(tracker.keys.index, {run_id: now + i})
        pipe.zadd(tracker.keys.runs_of("hist-big"), {run_id: now + i})
    pipe.execute()

    seen: list[str] = []
    cursor = None
    while True:
        params = {"workflow": "hist-big", "limit": 500, **({"cursor": cursor} if cursor else {})}
        page = http.get("/api/history/runs", params=params).json()
        seen += [r["id"] for r in page["runs"]]
        assert page["scanned"] <= 500
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == ids[::-1]  # every run once, newest first, past the 10,000th

    found, cursor, pages = [], None, 0
    while True:  # a text match reads at most its budget per page (5,000), then hands back a cursor
        params = {"q": "needle", **({"cursor": cursor} if cursor else {})}
        page = http.get("/api/history/runs", params=params).json()
        assert page["scanned"] <= 5_000
        found += [r["id"] for r in page["runs"]]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert found == [ids[11_990], ids[5]]
    assert pages == 3


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=launch_args())
        yield b
        b.close()


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_history_pages_in_chromium(browser: Any, server: Server, known_runs: list[Any]) -> None:
    bad = known_runs[2]
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/history")
    page.fill("input[name=workflow]", "hist-wf")
    page.select_option("select[name=status]", "FAILED")
    page.click("#search button[type=submit]")
    page.wait_for_selector(f'#history tr[data-run="{bad.id}"]')
    assert page.locator("#history tbody tr").count() == 1
    page.click(f'#history tr[data-run="{bad.id}"] a[href$="/history/hist-wf"]')
    page.wait_for_selector("#record")
    assert page.inner_text("#rate") == "66.7 %"
    assert page.inner_text("#recent") == "3"
    assert (page.inner_text("#failed"), page.inner_text("#cancelled")) == ("1", "0")  # the rate's other part
    assert "ValueError: no such customer: initech" in page.inner_text("#failures")
    assert page.locator('#per-day rect[data-runs="3"]').count() == 1
    page.wait_for_selector('#trend-node option[value="first"]', state="attached")
    page.select_option("#trend-node", "first")
    page.wait_for_selector("#trend-chart circle")
    assert page.locator("#trend-chart circle").count() == 3
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_metrics_on_the_dashboards_server(http: httpx.Client, known_runs: list[Any]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    resp = http.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }
    assert samples[("wfcelery_runs_total", (("status", "SUCCEEDED"), ("workflow", "hist-wf")))] == 2
    assert samples[("wfcelery_runs_total", (("status", "FAILED"), ("workflow", "hist-wf")))] == 1
    assert samples[("wfcelery_tracker_up", ())] == 1
