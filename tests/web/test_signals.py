"""Signals over HTTP and in the dashboard, on the real server, a real worker and (for the page) Chromium.

``POST /api/runs/{id}/nodes/{node}/signal``: the body is the payload, the node's result; 409 (the refusal's
text) for a second signal, a node not waiting, a paused or finished run; 422 for a payload over the bound
of a result; 404 for an unknown node. The node panel's signal control sends the JSON field, "Waiting for
you" lists the node on the runs page, and a sub-workflow node links to its child run.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helpers import in_thread_worker, status_of, wait_for
from wfcelery import NodeStatus, RunStatus, Workflow

pytestmark = pytest.mark.timeout(90)


def approval(name: str = "release") -> Workflow:
    wf = Workflow(name)
    wf.add("build", "proj.add", args=[1, 2])
    wf.wait("approve", after="build", timeout="1h")
    wf.add("ship", "proj.echo", after="approve")
    return wf


@pytest.mark.parametrize("app", [{"wfcelery_max_result_bytes": 1000}], indirect=True)
def test_signal_over_rest(app: Any, engine: Any, http: Any) -> None:
    with in_thread_worker(app):
        run = engine.submit(approval())
        wait_for(lambda: status_of(run, "approve") is NodeStatus.WAITING, message="approve WAITING")
        url = f"/api/runs/{run.id}/nodes/approve/signal"
        waiting = http.get("/api/waiting").json()
        assert [(w["run"], w["node"], w["workflow"]) for w in waiting] == [(run.id, "approve", "release")]
        assert waiting[0]["until"] == pytest.approx(waiting[0]["since"] + 3600, abs=1)
        panel = http.get(f"/api/runs/{run.id}/nodes/approve").json()
        assert panel["kind"] == "wait"
        assert panel["waiting"]["for"] == "signal"
        assert panel["task"] == "wait for a signal (timeout 1h)"
        assert panel["flower_url"] is None
        too_big = http.post(url, json="x" * 2000)  # over the bound of a result, under the body limit
        assert too_big.status_code == 422
        assert "wfcelery_max_result_bytes" in too_big.json()["error"]
        assert http.post(f"/api/runs/{run.id}/nodes/nope/signal", json=1).status_code == 404
        assert http.post(f"/api/runs/{run.id}/nodes/build/signal", json=1).status_code == 409
        run.pause()
        paused = http.post(url, json={"by": "rest"})
        assert paused.status_code == 409
        assert "PAUSED" in paused.json()["error"]
        run.resume()
        sent = http.post(url, json={"by": "rest"})
        assert sent.status_code == 200, sent.text
        assert sent.json()["nodes"]["approve"]["status"] == "SUCCEEDED"
        again = http.post(url, json={"by": "rest"})
        assert again.status_code == 409
        assert again.json()["type"] == "SignalRefused"
        assert run.wait(timeout=20)["ship"] == {"args": [{"by": "rest"}], "kwargs": {}}
        finished = http.post(url)  # no body: null
        assert finished.status_code == 409
        assert "SUCCEEDED: it takes no signal" in finished.json()["error"]
        assert http.get("/api/waiting").json() == []


def test_the_dashboard_signal_control_waiting_list_and_child_run_link(
    app: Any,
    engine: Any,
    server: Any,
    page: Any,
) -> None:
    child = Workflow("etl")
    child.add("x", "proj.add", args=[1, 1])
    engine.register(child)
    wf = approval("shipping")
    wf.add("sub", workflow="etl", after="ship")
    with in_thread_worker(app):
        run = engine.submit(wf)
        wait_for(lambda: status_of(run, "approve") is NodeStatus.WAITING, message="approve WAITING")
        stream = f"**/api/runs/{run.id}/events"
        held: list[Any] = []  # the run page's event stream, held until the signal field has been typed in
        page.route(stream, lambda route: held.append(route))
        page.goto(f"{server.url}/")
        row = page.locator(f'#waiting [data-waiting="{run.id}/approve"]')  # redrawn every 2 s: a locator
        row.wait_for(timeout=10_000)
        assert "shipping" in row.inner_text()
        with page.expect_request(stream):  # the run page asks for its event stream (held below)
            row.locator("a").click()  # opens the run with the node's panel
        page.wait_for_selector("#signal-form", timeout=10_000)
        assert page.locator("#panel-name").inner_text() == "approve"
        panel = page.inner_text("#node-panel")  # a wait node: no task, queue, worker or attempts to show
        assert "wait for a signal (timeout 1h)" in panel
        assert not {"Queue", "Task id", "Attempts", "Worker"} & set(panel.splitlines())
        # an hour's timeout shown to the second: "59 min 58 s", or "1 h 0 min" when read within half a second
        waiting_for = page.inner_text("#waiting-for")
        shown = re.search(r"Waiting for a signal \(times out in (?:(\d+) h )?(\d+) min", waiting_for)
        assert shown, waiting_for
        assert 55 <= 60 * int(shown[1] or 0) + int(shown[2]) <= 60
        assert page.locator("#signal-send").inner_text() == "Approve"
        page.fill("#signal-data", "{oops")
        assert page.locator("#signal-send").is_disabled()
        assert "not JSON" in page.inner_text("#signal-problem")
        # The stream's replay redraws approve's panel: what was typed, its problem and the focus stay.
        typed = page.query_selector("#signal-data")
        assert held, "the run page's event stream was held"
        held[0].continue_()
        page.unroute(stream)
        page.wait_for_function("field => !field.isConnected", arg=typed, timeout=10_000)
        assert page.input_value("#signal-data") == "{oops"
        assert page.evaluate("document.activeElement.id") == "signal-data"
        assert page.locator("#signal-send").is_disabled()
        assert "not JSON" in page.inner_text("#signal-problem")
        page.fill("#signal-data", '{"by": "browser"}')
        assert page.locator("#signal-send").inner_text() == "Send"
        page.click("#signal-send")
        page.wait_for_selector("#toast:not([hidden])")
        assert "Signal sent to approve" in page.inner_text("#toast")
        page.wait_for_selector('#run-status [data-status="SUCCEEDED"]', timeout=20_000)
        assert run.result("approve") == {"by": "browser"}
        assert run.state().status is RunStatus.SUCCEEDED
        link = page.locator('[data-node="sub"] a.subflow-link')
        link.wait_for(timeout=10_000)
        child_id = run.state().nodes["sub"].child_run
        assert link.get_attribute("data-child-run") == child_id
        link.click()
        page.wait_for_url(f"{server.url}/runs/{child_id}")
        page.wait_for_selector('#run-status [data-status="SUCCEEDED"]', timeout=10_000)
