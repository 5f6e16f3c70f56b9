"""The dashboard in headless Chromium with a token: the browser's login (a token as the Basic password)
opens it, the page and its event stream follow the run, and the page shows only what the role may do --
while the server refuses the rest anyway."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from wfcelery import Workflow
from wfcelery.tracker.access import Role

pytestmark = [pytest.mark.timeout(120), pytest.mark.browser]


@pytest.fixture
def login(browser: Any) -> Iterator[Any]:
    contexts: list[Any] = []

    def open_as(user: str, token: str) -> Any:
        contexts.append(browser.new_context(http_credentials={"username": user, "password": token}))
        return contexts[-1].new_page()

    yield open_as
    for c in contexts:
        c.close()


def test_a_viewer_sees_no_control_button_an_operator_no_delete_and_writes_are_refused(engine, serve, login):
    wf = Workflow("roles")
    wf.add("only", "proj.noop")
    engine.register(wf)
    run = engine.submit(wf)  # no worker: stays RUNNING
    viewer = engine.create_token("carol", Role.VIEWER)
    operator = engine.create_token("bob", Role.OPERATOR)
    server = serve()

    page = login("carol", viewer)
    page.goto(f"{server.url}/runs/{run.id}")
    page.wait_for_selector('#run-status [data-status="RUNNING"]')  # the API calls and the stream work
    assert page.locator(".actions button").count() == 0
    assert page.locator("#mode").text_content() == "carol (viewer)"
    status = page.evaluate(f"fetch('/api/runs/{run.id}/pause', {{method: 'POST'}}).then(r => r.status)")
    assert status == 403  # hidden, and refused anyway
    page.goto(f"{server.url}/definitions/roles")
    page.wait_for_selector('#graph [data-node="only"]')
    assert page.locator("#start-run").count() == 0

    page = login("bob", operator)
    page.goto(f"{server.url}/runs/{run.id}")
    page.wait_for_selector("#btn-pause")
    assert page.locator("#btn-cleanup").count() == 0  # deleting is the admin's
    page.goto(f"{server.url}/definitions/roles")
    page.wait_for_selector("#start-run")
