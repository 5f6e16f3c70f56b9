"""The dashboard in headless Chromium with a token: its own login form (no browser Basic dialog) opens it,
keeps the token for the tab and sends it as ``Authorization: Bearer`` on every API call and on the event
stream; the page shows only what the role may do -- while the server refuses the rest anyway -- and a
wrong token, a sign-out or a revoked token bring the form back."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import in_thread_worker
from wfcelery import Workflow
from wfcelery.tracker.access import Role

pytestmark = [pytest.mark.timeout(120), pytest.mark.browser]


def sign_in(page: Any, url: str, token: str) -> None:
    page.goto(url)
    page.fill("#login-token", token)
    page.click("#login-submit")


def forced_post(page: Any, path: str) -> int:
    """A write the page does not offer, sent by hand with the tab's stored credentials."""
    auth = "{Authorization: sessionStorage.getItem('wfcelery.auth')}"
    script = f"fetch({path!r}, {{method: 'POST', headers: {auth}}}).then(r => r.status)"
    return int(page.evaluate(script))


def test_a_viewer_signs_in_sees_runs_but_no_control_and_writes_are_refused_an_operator_sees_pause(
    engine, serve, page, browser
):
    wf = Workflow("roles")
    wf.add("only", "proj.noop")
    engine.register(wf)
    run = engine.submit(wf)  # no worker: stays RUNNING
    viewer = engine.create_token("carol", Role.VIEWER)
    operator = engine.create_token("bob", Role.OPERATOR)
    server = serve()
    challenges: list[str] = []  # any Basic challenge would open the browser's own login dialog
    page.on("response", lambda r: challenges.append(r.headers.get("www-authenticate", "")))

    page.goto(f"{server.url}/runs/{run.id}")
    page.wait_for_selector("#login-token")  # the form, not the run
    assert page.locator("#login-user").count() == 0  # no --auth login on this server: token only
    sign_in(page, f"{server.url}/", viewer)
    page.wait_for_selector(f'tr[data-run="{run.id}"]')  # the runs list, read with the token
    assert page.locator("#mode").text_content() == "carol (viewer)"
    assert page.evaluate("sessionStorage.getItem('wfcelery.auth')") == f"Bearer {viewer}"
    page.goto(f"{server.url}/runs/{run.id}")  # the same tab: still signed in
    page.wait_for_selector('#run-status [data-status="RUNNING"]')  # the API calls and the stream work
    page.wait_for_selector("#live.on")
    assert page.locator(".actions button").count() == 0
    assert forced_post(page, f"/api/runs/{run.id}/pause") == 403  # hidden, and refused anyway
    page.goto(f"{server.url}/definitions/roles")
    page.wait_for_selector('#graph [data-node="only"]')
    assert page.locator("#start-run").count() == 0
    assert not [c for c in challenges if "basic" in c.lower()]

    context = browser.new_context()
    try:
        other = context.new_page()  # another tab's session: signed in on its own
        sign_in(other, f"{server.url}/runs/{run.id}", operator)
        other.wait_for_selector("#btn-pause")
        assert other.locator("#btn-cleanup").count() == 0  # deleting is the admin's
        other.goto(f"{server.url}/definitions/roles")
        other.wait_for_selector("#start-run")
    finally:
        context.close()


def test_a_wrong_token_is_refused_on_the_form_and_sign_out_returns_to_it(engine, serve, page):
    token = engine.create_token("carol", Role.VIEWER)
    server = serve()
    sign_in(page, f"{server.url}/", "wfc_not-a-token")
    error = page.wait_for_selector("#login-error:not([hidden])")
    assert "wrong, unknown or revoked" in error.inner_text()
    assert page.evaluate("sessionStorage.getItem('wfcelery.auth')") is None

    page.fill("#login-token", token)
    page.click("#login-submit")
    page.wait_for_selector("#sign-out")
    page.click("#sign-out")
    page.wait_for_selector("#login-token")
    assert page.evaluate("sessionStorage.getItem('wfcelery.auth')") is None
    page.reload()
    page.wait_for_selector("#login-token")  # the token is forgotten, not only hidden


def test_the_admin_login_of_auth_signs_in_with_user_and_password(engine, serve, page):
    server = serve(auth="admin:s3cret")
    page.goto(f"{server.url}/")
    page.fill("#login-user", "admin")
    page.fill("#login-password", "wrong")
    page.click("#login-submit")
    page.wait_for_selector("#login-error:not([hidden])")
    page.fill("#login-password", "s3cret")
    page.click("#login-submit")
    page.wait_for_selector("#sign-out")
    assert page.locator("#mode").text_content() == "admin (admin)"


def test_a_revoked_token_sends_the_open_page_back_to_the_form(engine, serve, page):
    token = engine.create_token("carol", Role.VIEWER)
    server = serve()
    sign_in(page, f"{server.url}/", token)
    page.wait_for_selector("#sign-out")
    engine.revoke_token("carol")
    # the runs list refreshes every 2 s: its next call is refused, and the page shows the form again
    page.wait_for_selector("#login-token", timeout=20_000)
    assert "sign in again" in page.locator("#login-error").inner_text()


def test_the_run_page_stays_live_after_signing_in(app, engine, serve, page, r, uid):
    wf = Workflow("live-login")
    wf.add("extract", "proj.block", args=[f"{uid}:extract"]) >> wf.add("load", "proj.count")
    token = engine.create_token("carol", Role.VIEWER)
    server = serve()
    with in_thread_worker(app):
        run = engine.submit(wf)
        sign_in(page, f"{server.url}/runs/{run.id}", token)
        extract = page.locator('[data-node="extract"]')
        extract.and_(page.locator('[data-status="RUNNING"]')).wait_for(timeout=15_000)
        r.lpush(f"{uid}:extract", 1)  # the node finishes: the page shows it without a reload
        extract.and_(page.locator('[data-status="SUCCEEDED"]')).wait_for(timeout=15_000)
        page.wait_for_selector('#run-status [data-status="SUCCEEDED"]', timeout=20_000)
        assert page.locator("#run-done").inner_text() == "2 / 2 nodes done"
