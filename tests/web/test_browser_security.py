"""The dashboard's protections as a real browser (headless Chromium) meets them.

A page of another origin cannot frame the dashboard; the dashboard's own pages run under their
Content-Security-Policy without a single violation; names with bidi control characters are shown
neutralised; an id from the address bar reaches the API encoded.
"""

from __future__ import annotations

import pytest

from wfcelery import Workflow

pytestmark = [pytest.mark.timeout(90), pytest.mark.browser]


def test_a_page_of_another_origin_cannot_frame_a_run_page(engine, server, browser, other_origin):
    wf = Workflow("framed")
    wf.add("only", "proj.noop")
    run = engine.submit(wf)  # no worker: stays RUNNING, its Pause button enabled
    folder, origin = other_origin
    (folder / "frame.html").write_text(
        f'<!doctype html><h1>Win a prize</h1><iframe id="f" src="{server.url}/runs/{run.id}"'
        ' width="900" height="600"></iframe>'
    )
    attacker = browser.new_page()
    try:
        # Chromium says why it left the frame blank in the console of the page that tried
        with attacker.expect_console_message(
            lambda m: "frame-ancestors" in m.text, timeout=10_000
        ) as refused:
            attacker.goto(f"{origin}/frame.html")
        assert "frame-ancestors 'none'" in refused.value.text
        assert "blocked" in refused.value.text
        frame = next(f for f in attacker.frames if f != attacker.main_frame)
        assert frame.url.startswith("chrome-error://")  # the browser's error page, not the dashboard
        assert frame.query_selector("#run-status") is None
        assert frame.query_selector("#btn-pause") is None
    finally:
        attacker.close()
    assert engine.run(run.id).state().status.value == "RUNNING"


def test_every_page_runs_under_its_policy_without_a_violation(engine, serve, page):
    """The page fixture fails the test on any violation the browser reports (tests/web/conftest.py)."""
    wf = Workflow("csp", params={"who": "world"})
    wf.add("hello", "proj.echo", args=["${who}"]) >> wf.add("bye", "proj.noop")
    engine.register(wf)
    run = engine.submit(wf)
    server = serve(flower_url="http://flower.local:5555")
    policy = page.goto(f"{server.url}/").headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "unsafe-inline" not in policy
    page.wait_for_selector(f'tr[data-run="{run.id}"]')
    page.goto(f"{server.url}/runs/{run.id}")
    page.wait_for_selector('#run-status [data-status="RUNNING"]')
    page.wait_for_selector("#live.on")
    page.locator('[data-node="hello"]').click()
    page.wait_for_selector("#panel-name")
    page.goto(f"{server.url}/definitions")
    page.wait_for_selector("#definitions")
    page.goto(f"{server.url}/definitions/csp")
    page.wait_for_selector('#graph [data-node="hello"]')
    assert page.locator(".progress, .legend, .graph-wrap").count() >= 1


def test_bidi_controls_in_names_are_shown_neutralised(engine, server, page):
    wf = Workflow("invoice\u202egpj.exe")  # registered from Python: not refused there, shown harmless
    wf.add("only", "proj.noop")
    run = engine.submit(wf)
    page.goto(f"{server.url}/runs/{run.id}")
    page.wait_for_selector('#run-status [data-status="RUNNING"]')
    assert page.locator("h1").inner_text() == "invoice\\u202Egpj.exe"
    page.goto(f"{server.url}/")
    page.wait_for_selector(f'tr[data-run="{run.id}"]')
    assert "invoice\\u202Egpj.exe" in page.locator(f'tr[data-run="{run.id}"]').inner_text()
    shown = page.evaluate("() => document.body.innerText")
    assert not any(c in shown for c in "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def test_an_id_from_the_address_bar_reaches_the_api_encoded(engine, server, page):
    wf = Workflow("enc")
    wf.add("only", "proj.noop")
    run = engine.submit(wf)
    # "<id>?x" put raw into /api/runs/<id>?x would read the real run; encoded, it is no run id at all
    page.goto(f"{server.url}/runs/{run.id}%3Fx")
    page.wait_for_selector(".card.empty")
    assert f"No run {run.id}?x" in page.locator(".card.empty").inner_text()
    assert page.locator("#run-status").count() == 0
