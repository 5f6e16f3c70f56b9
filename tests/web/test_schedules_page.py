"""The dashboard's Schedules page in a real headless Chromium: schedules with their next fire time, their
recent runs (each linked to its run page, which shows the run key), and pause / resume."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.web.browser import CHROMIUM, launch_args, require_chromium
from tests.web.conftest import Server
from wfcelery import Engine, Workflow

pytestmark = [pytest.mark.timeout(120), pytest.mark.browser]


@pytest.fixture
def page() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=launch_args())
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def test_the_schedules_page_lists_next_fire_and_links_recent_runs(server: Server, engine: Engine, page):
    wf = Workflow("nightly")
    wf.add("a", "proj.noop", args=["${scheduled_at}"])
    engine.schedule("nightly", wf, cron="0 2 * * *", timezone="Europe/Paris")
    fired = engine.backfill("nightly", "2026-11-01", "2026-11-02T12:00")
    page.goto(f"{server.url}/schedules")
    row = page.locator('[data-schedule="nightly"]')
    row.wait_for()
    assert "cron 0 2 * * * (Europe/Paris)" in row.inner_text()
    assert row.locator("td.next").inner_text() not in ("", "—", "paused")
    links = row.locator("a[data-run]")
    assert sorted(links.evaluate_all("els => els.map(e => e.dataset.run)")) == sorted(s.run_id for s in fired)
    row.locator('button[data-action="pause"]').click()
    page.locator('[data-schedule="nightly"] button[data-action="resume"]').wait_for()
    assert engine.schedule_info("nightly").paused
    page.locator('[data-schedule="nightly"] a[data-run]').first.click()
    page.locator("#run-key").wait_for()
    assert "schedule:nightly:2026-11-0" in page.locator("#run-key").inner_text()
