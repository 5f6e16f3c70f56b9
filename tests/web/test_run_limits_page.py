"""The dashboard (real Chromium) shows a run waiting for max_active_runs as QUEUED, cancels it, and shows a
run failed at its deadline with its error; the runs list filters QUEUED runs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import in_thread_worker, wait_for
from tests.web.test_browser import confirm
from wfcelery import RunStatus, Workflow

pytestmark = [pytest.mark.timeout(120), pytest.mark.browser]


def test_a_queued_run_on_its_page_and_cancelled_from_it(engine: Any, server: Any, page: Any) -> None:
    wf = Workflow("one-at-a-time", max_active_runs=1)
    wf.add("a", "proj.add", args=[1, 2])
    first, queued = engine.submit(wf), engine.submit(wf)  # no worker: the first one never ends
    page.goto(f"{server.url}/runs/{queued.id}")
    page.wait_for_selector('#run-status [data-status="QUEUED"]')
    assert "waiting for max_active_runs" in page.locator("#run-queued").inner_text()
    confirm(page, "cancel")
    page.wait_for_selector('#run-status [data-status="CANCELLED"]', timeout=10_000)
    assert engine.run(queued.id).state().status is RunStatus.CANCELLED
    assert engine.run(first.id).state().status is RunStatus.RUNNING


def test_a_run_failed_at_its_deadline_shows_its_error(app: Any, engine: Any, server: Any, page: Any) -> None:
    wf = Workflow("late", deadline="1s")
    wf.wait("approval")  # no signal comes: the deadline ends the run
    with in_thread_worker(app):
        run = engine.submit(wf)
        wait_for(lambda: run.state().finished, timeout=30, message="the deadline")
    page.goto(f"{server.url}/runs/{run.id}")
    page.wait_for_selector('#run-status [data-status="FAILED"]')
    assert "DeadlineExceeded: deadline exceeded" in page.locator("#run-error").inner_text()
    assert page.locator("#run-deadline").count() == 1
