"""Tokens and roles over real HTTP (uvicorn, real Redis): Bearer tokens, credentials required once a token
exists, one rule per API route (the table is checked against the OpenAPI document, so a new route without a
rule fails here), each role against each route, 429 for guessed tokens, and the actor in the audit trail."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.helpers import in_thread_worker, wait_for
from tests.web.test_api import chain
from wfcelery.tracker.access import Role
from wfcelery.web.roles import RULES

pytestmark = pytest.mark.timeout(90)

ROLES = (Role.VIEWER, Role.OPERATOR, Role.ADMIN)
#: A run id that is well formed but names no run: an allowed call answers 404, changing nothing.
NO_RUN = "0" * 32
#: Values for the path parameters of the routes.
PATH_VALUES = {"run_id": NO_RUN, "node": "nope", "name": "no-such-definition", "key": "no-such-key"}
#: Bodies of the routes that take one (valid, so an allowed call gets past validation to its 404).
BODIES = {("POST", "/api/runs"): {"name": "no-such-definition"}}


@pytest.fixture
def tokens(engine: Any) -> dict[Role, str]:
    return {role: engine.create_token(f"{role.value}-bot", role) for role in ROLES}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_routes(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (method.upper(), path)
        for path, item in openapi["paths"].items()
        for method in item
        if path.startswith("/api/")
    )


def test_every_route_has_a_rule_and_each_role_gets_exactly_what_its_rule_allows(serve, tokens):
    server = serve()
    with server.client() as http:
        openapi = http.get("/openapi.json", headers=bearer(tokens[Role.VIEWER])).json()
        routes = api_routes(openapi)
        assert routes, "the OpenAPI document lists no API route"
        missing = [r for r in routes if r not in RULES]
        assert missing == [], f"API routes without an access rule in wfcelery/web/roles.py: {missing}"
        assert ("GET", "/api/audit") in routes
        assert RULES[("GET", "/api/audit")] is Role.ADMIN
        for method, path in routes:
            url = path.format(**PATH_VALUES)
            needed = RULES[(method, path)]
            for role in ROLES:
                resp = http.request(
                    method, url, headers=bearer(tokens[role]), json=BODIES.get((method, path))
                )
                if role.allows(needed):
                    assert resp.status_code not in (401, 403), (role, method, path, resp.text)
                else:
                    assert resp.status_code == 403, (role, method, path, resp.text)
                    body = resp.json()
                    assert body["type"] == "Forbidden"
                    assert f"needs the {needed} role" in body["error"]
            anonymous = http.request(method, url, json=BODIES.get((method, path)))
            assert anonymous.status_code == 401, (method, path)


def test_once_a_token_exists_no_data_is_served_without_credentials(serve, engine):
    server = serve()
    with server.client() as http:
        assert http.get("/api/runs").status_code == 200  # no token yet: an open local server
        token = engine.create_token("carol", Role.VIEWER)
        for path in ("/api/runs", "/api/me", "/openapi.json"):
            # the server looks again within a couple of seconds
            wait_for(lambda p=path: http.get(p).status_code == 401, timeout=10, message=f"{path} refused")
        for path in ("/", "/static/js/main.js"):  # no data: the page loads, and shows its login form
            assert http.get(path).status_code == 200, path
        assert http.get("/api/runs", headers=bearer(token)).status_code == 200
        assert http.get("/api/runs", auth=("carol", token)).status_code == 200  # a token as Basic password
        assert http.get("/api/me", headers=bearer(token)).json() == {"name": "carol", "role": "viewer"}
        engine.revoke_token("carol")
        assert http.get("/api/runs", headers=bearer(token)).status_code == 401  # at once


def test_the_basic_login_stays_an_admin_beside_tokens(serve, tokens):
    server = serve(auth="root:s3cret")
    with server.client() as http:
        assert http.get("/api/me", auth=("root", "s3cret")).json() == {"name": "root", "role": "admin"}
        assert http.get("/api/audit", auth=("root", "s3cret")).status_code == 200
        assert http.get("/api/audit", headers=bearer(tokens[Role.OPERATOR])).status_code == 403
        assert http.get("/api/runs", headers=bearer(tokens[Role.VIEWER])).status_code == 200


def test_guessed_tokens_are_rate_limited_then_a_valid_one_works_after_the_window(make_test_app):
    app = make_test_app(wfcelery_web_auth_failures=3, wfcelery_web_auth_window=2)
    engine = app._wfcelery_engine
    token = engine.create_token("dave", Role.VIEWER)
    from tests.web.conftest import Server

    server = Server(engine).start()
    try:
        with server.client() as http:
            for _ in range(3):
                assert http.get("/api/runs", headers=bearer("wfc_guess")).status_code == 401
            locked = http.get("/api/runs", headers=bearer(token))
            assert locked.status_code == 429
            assert int(locked.headers["retry-after"]) >= 1
            wait_for(
                lambda: http.get("/api/runs", headers=bearer(token)).status_code == 200,
                timeout=10,
                message="the valid token accepted after the window",
            )
    finally:
        server.stop()


def test_writes_are_audited_with_the_token_name_as_actor(make_test_app):
    app = make_test_app()
    engine = app._wfcelery_engine
    with in_thread_worker(app):
        run = engine.submit(chain())
        run.wait(timeout=20)
    operator = engine.create_token("bob", Role.OPERATOR)
    admin = engine.create_token("eve", Role.ADMIN)
    from tests.web.conftest import Server

    server = Server(engine).start()
    try:
        with server.client() as http:
            refused = http.post(f"/api/runs/{run.id}/pause", headers=bearer(operator))
            assert refused.status_code == 409  # a finished run: the attempt is still recorded
            assert http.delete(f"/api/runs/{run.id}", headers=bearer(operator)).status_code == 403
            entries = http.get("/api/audit", headers=bearer(admin)).json()["entries"]
    finally:
        server.stop()
    paused = [e for e in entries if e["action"] == "pause"]
    assert paused
    assert paused[0]["actor"] == "bob"
    assert paused[0]["target"] == f"run {run.id}"
    assert not [e for e in entries if e["action"] == "cleanup"]  # the refused delete changed nothing


def test_a_viewer_token_cannot_write_even_with_a_browser_origin(serve, tokens):
    server = serve()
    with httpx.Client(base_url=server.url, timeout=20) as http:
        resp = http.post(
            "/api/runs", json={"name": "x"}, headers={**bearer(tokens[Role.VIEWER]), "Origin": server.url}
        )
        assert resp.status_code == 403
        assert resp.json()["type"] == "Forbidden"


def test_nothing_is_served_without_credentials_while_the_tracker_is_down(make_test_app, faulty_redis):
    """Once tokens exist, an outage of the tracker's Redis (which holds them) fails closed: the API, the
    OpenAPI document and /metrics answer 503, not 200 to an anonymous caller; the same server answers 401
    again once Redis is back. The page shells and static files hold no data: they load throughout (the page
    shows its login form, or says why its API calls fail)."""
    app = make_test_app(wfcelery_redis_url=faulty_redis.url_db(1), wfcelery_redis_timeout=2)
    engine = app._wfcelery_engine
    engine.create_token("erin", Role.VIEWER)
    from tests.web.conftest import Server

    server = Server(engine).start()
    paths = ["/metrics", "/api/runs", "/openapi.json"]
    shells = ["/", "/static/app.css"]
    try:
        with server.client() as http:
            assert {p: http.get(p).status_code for p in paths} == dict.fromkeys(paths, 401)
            faulty_redis.shutdown()
            wait_for(
                lambda: {p: http.get(p).status_code for p in paths} == dict.fromkeys(paths, 503),
                timeout=20,
                message="every path refused while the tokens cannot be read",
            )
            assert {p: http.get(p).status_code for p in shells} == dict.fromkeys(shells, 200)
            faulty_redis.start()
            wait_for(
                lambda: {p: http.get(p).status_code for p in paths} == dict.fromkeys(paths, 401),
                timeout=20,
                message="credentials required again once Redis is back",
            )
    finally:
        server.stop()
