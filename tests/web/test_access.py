"""Who may do what, over real HTTP against the real server (uvicorn, real Redis): credentials on every API
route (the page shells load without, and show the login form); failed logins rate-limited per client
address (429 + Retry-After, then a valid login works again); writes refused cross-site and in read-only
mode."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.helpers import in_thread_worker, wait_for
from tests.web.conftest import Server
from tests.web.test_api import chain
from wfcelery import RunStatus

pytestmark = pytest.mark.timeout(60)


def test_auth_protects_every_api_route_and_the_pages_load_without_a_basic_challenge(serve):
    """The API, the OpenAPI document and the metrics need credentials; the page shells and their static
    files hold no data and load without (the page then shows its login form). No answer challenges
    Basic: the browser would open its own login dialog over the form."""
    server = serve(auth="admin:s3cret")
    with server.client() as anonymous, server.client(auth=("admin", "s3cret")) as admin:
        for path in ("/api/health", "/api/runs", "/api/me", "/openapi.json", "/metrics", "/no-such-page"):
            resp = anonymous.get(path)
            assert resp.status_code == 401, path
            assert resp.headers["www-authenticate"] == 'Bearer realm="wfcelery"', path
            assert admin.get(path).status_code in (200, 404), path
        for path in (
            "/",
            "/runs/x",
            "/definitions",
            "/definitions/x",
            "/schedules",
            "/history",
            "/static/js/main.js",
        ):
            resp = anonymous.get(path)
            assert resp.status_code == 200, path
            assert "www-authenticate" not in resp.headers, path
        assert "&quot;passwordLogin&quot;: true" in anonymous.get("/").text
        assert anonymous.post("/runs/x").status_code == 401  # only reads of the pages are open
        assert anonymous.get("/api/health", auth=("admin", "wrong")).status_code == 401
        assert anonymous.post(f"/api/runs/{'a' * 32}/pause").status_code == 401
        assert admin.get("/api/health").json()["status"] == "ok"
        assert admin.get("/api/me").json() == {"name": "admin", "role": "admin"}


def test_auth_and_flower_url_come_from_the_app_settings(make_test_app):
    """``wfcelery_web_auth`` and ``wfcelery_flower_url`` in the Celery app's configuration, with no
    ``create_app`` argument (what ``wfcelery web`` without --auth / --flower-url serves)."""
    app = make_test_app(wfcelery_web_auth="admin:s3cret", wfcelery_flower_url="http://flower.local:5555/")
    engine = app._wfcelery_engine
    with in_thread_worker(app):
        run = engine.submit(chain())
        run.wait(timeout=20)
    server = Server(engine).start()
    try:
        with server.client() as anonymous, server.client(auth=("admin", "s3cret")) as admin:
            for path in ("/api/runs", f"/api/runs/{run.id}/nodes/extract"):
                assert anonymous.get(path).status_code == 401, path
            assert anonymous.get("/api/runs", auth=("admin", "wrong")).status_code == 401
            view = admin.get(f"/api/runs/{run.id}/nodes/extract").json()
            assert view["task_id"]
            assert view["flower_url"] == f"http://flower.local:5555/task/{view['task_id']}"
    finally:
        server.stop()


def test_writes_refuse_cross_site_requests(engine, http, server):
    engine.register(chain())
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        for method, path in (
            ("POST", "/api/runs"),
            ("POST", f"/api/runs/{'a' * 32}/cancel"),
            ("DELETE", f"/api/runs/{'a' * 32}"),
        ):
            resp = http.request(method, path, headers=headers, json={"name": "etl"})
            assert resp.status_code == 403, (method, path, headers)
            assert "cross-site" in resp.json()["error"]
    assert engine.runs() == []
    same = http.post("/api/runs", headers={"Origin": server.url}, json={"name": "etl"})
    assert same.status_code == 201  # the dashboard's own requests pass
    assert http.get("/api/runs", headers={"Origin": "http://evil.example"}).status_code == 200  # reads do


def test_read_only_refuses_every_write_and_tells_the_page(engine, serve):
    engine.register(chain())
    run = engine.submit(chain())
    server = serve(read_only=True)
    with server.client() as http:
        for method, path in (
            ("POST", "/api/runs"),
            ("POST", f"/api/runs/{run.id}/pause"),
            ("POST", f"/api/runs/{run.id}/cancel"),
            ("DELETE", f"/api/runs/{run.id}"),
        ):
            resp = http.request(method, path, json={"name": "etl"})
            assert resp.status_code == 403, path
            assert "read-only" in resp.json()["error"]
        assert http.get("/api/health").json()["read_only"] is True
        assert "&quot;readOnly&quot;: true" in http.get(f"/runs/{run.id}").text
    assert engine.run(run.id).state().status is RunStatus.RUNNING
    assert [r.id for r in engine.runs()] == [run.id]


WINDOW = 3.0  # seconds: the four requests before the 429 take milliseconds, even on a loaded machine


@pytest.mark.parametrize(
    "app", [{"wfcelery_web_auth_failures": 3, "wfcelery_web_auth_window": WINDOW}], indirect=True
)
def test_failed_logins_are_rate_limited_per_address_then_a_valid_login_works_again(serve):
    window = WINDOW
    server = serve(auth="admin:s3cret")
    right, wrong = ("admin", "s3cret"), ("admin", "wrong")
    with server.client() as http:
        for _ in range(5):  # no credentials at all: the browser's first request, not a failed login
            assert http.get("/api/health").status_code == 401
        assert http.get("/api/health", auth=right).status_code == 200
        for _ in range(3):
            assert http.get("/api/health", auth=wrong).status_code == 401
        blocked = http.get("/api/health", auth=right)  # the right password too: the address waits
        assert blocked.status_code == 429
        assert blocked.json()["type"] == "TooManyRequests"
        retry_after = int(blocked.headers["retry-after"])
        assert 1 <= retry_after <= window
        # another client address is not held back by this one's failures
        other = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"), base_url=server.url)
        with other:
            assert other.get("/api/health", auth=right).status_code == 200
        time.sleep(retry_after)
        wait_for(lambda: http.get("/api/health", auth=right).status_code == 200, timeout=5, message="unblock")


def test_two_hundred_wrong_passwords_are_not_answered_at_full_speed(serve):
    server = serve(auth="admin:s3cret")  # the default: 10 failures a minute per address
    with server.client() as http:
        codes = [http.get("/api/runs", auth=("admin", f"guess{i}")).status_code for i in range(200)]
        assert codes[:10] == [401] * 10
        assert set(codes[10:]) == {429}
        assert http.get("/api/runs", auth=("admin", "s3cret")).status_code == 429


def test_a_malformed_auth_setting_is_refused_at_startup(engine):
    from wfcelery import ConfigurationError
    from wfcelery.web import create_app

    for auth in ("admin", ":secret"):
        with pytest.raises(ConfigurationError, match="user:password"):
            create_app(engine, auth=auth)
