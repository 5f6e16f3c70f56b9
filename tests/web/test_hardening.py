"""What the web server refuses to trust, over real HTTP against the real server (uvicorn, real Redis).

Security headers on every response; CORS only for configured origins; a Host allowlist; a clean 400 for a
``Last-Event-ID`` that is no event id; bidi control characters refused in a submitted definition's names;
a broker outage answers 503; every error -- unknown routes and methods included -- in the documented
``{"error", "type"}`` shape (docs/web-security.md).
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import pytest

from tests.redis_server import free_port
from wfcelery import Workflow

pytestmark = pytest.mark.timeout(60)


def one_node(name: str = "one") -> Workflow:
    wf = Workflow(name)
    wf.add("only", "proj.noop")
    return wf


def assert_error(resp: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = resp.json()
    assert set(body) <= {"error", "type", "detail"}, body
    assert body["type"] == kind, body
    assert body["error"], body
    return body


# -- headers ---------------------------------------------------------------------------------------------


def test_every_response_carries_the_security_headers(engine, serve):
    run = engine.submit(one_node())  # no worker: stays RUNNING
    server = serve()
    with server.client() as http, server.client(auth=None) as other:
        responses = [
            http.get("/"),
            http.get(f"/runs/{run.id}"),
            http.get("/static/app.css"),
            http.get("/openapi.json"),
            http.get("/api/runs"),
            http.get(f"/api/runs/{'0' * 32}"),  # 404
            http.get("/no/such/page/at/all"),  # 404 of the router
            http.post("/api/runs", json={}),  # 422
            other.get("/api/health", headers={"Host": "evil.example"}),  # 400 of the Host check
        ]
        with http.stream("GET", f"/api/runs/{run.id}/events") as stream:  # the live event stream
            responses.append(stream)
    for resp in responses:
        where = f"{resp.request.method} {resp.request.url.path} -> {resp.status_code}"
        csp = resp.headers.get("content-security-policy", "")
        directives = {d.strip().split(" ", 1)[0]: d.strip() for d in csp.split(";") if d.strip()}
        assert directives.get("default-src") == "default-src 'self'", where
        assert directives.get("frame-ancestors") == "frame-ancestors 'none'", where
        assert "'unsafe-inline'" not in directives.get("script-src", "script-src 'self'"), where
        assert resp.headers.get("x-content-type-options") == "nosniff", where
        assert resp.headers.get("referrer-policy") in ("no-referrer", "same-origin"), where
        assert resp.headers.get("x-frame-options") == "DENY", where


def test_no_inline_script_in_the_pages(http):
    page = http.get("/").text
    assert "<script>" not in page.replace(" ", "")
    for tag in page.split("<script")[1:]:
        assert "src=" in tag.split(">", 1)[0], tag[:80]


# -- CORS ------------------------------------------------------------------------------------------------


def test_a_foreign_origin_gets_no_cors_grant_by_default(engine, http):
    run = engine.submit(one_node())
    for path in ("/api/runs", f"/api/runs/{run.id}", "/static/js/wf-run-progress.js"):
        resp = http.get(path, headers={"Origin": "http://evil.example"})
        assert resp.status_code == 200, path
        assert "access-control-allow-origin" not in resp.headers, path
    preflight = http.options(
        "/api/runs",
        headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers


def test_a_configured_origin_may_read_and_only_read(engine, serve):
    shop = "http://shop.example:8080"
    run = engine.submit(one_node())
    server = serve(cors_origins=(shop,))
    with server.client() as http:
        for path in (f"/api/runs/{run.id}", "/static/js/wf-run-progress.js", "/static/wf-run-progress.js"):
            resp = http.get(path, headers={"Origin": shop})
            assert resp.status_code == 200, path
            assert resp.headers["access-control-allow-origin"] == shop, path
            assert "access-control-allow-credentials" not in resp.headers
        other = http.get(f"/api/runs/{run.id}", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        asks = {"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"}
        preflight = http.options(f"/api/runs/{run.id}", headers=asks)
        assert "access-control-allow-origin" not in preflight.headers
        assert "Disallowed CORS origin" in assert_error(preflight, 400, "BadRequest")["error"]
        # writes stay same-origin: the configured origin is trusted to read, not to drive runs
        write = http.post(f"/api/runs/{run.id}/pause", headers={"Origin": shop})
        assert_error(write, 403, "Forbidden")


# -- Host allowlist ----------------------------------------------------------------------------------------


def test_a_foreign_host_header_is_refused_before_anything_runs(engine, http):
    engine.register(one_node("etl"))
    evil = {"Host": "evil.example", "Origin": "http://evil.example"}  # DNS rebinding: Origin matches Host
    for method, path in (("GET", "/api/runs"), ("GET", "/"), ("POST", "/api/runs")):
        resp = http.request(method, path, headers=evil, json={"name": "etl"})
        body = assert_error(resp, 400, "BadHost")
        assert "evil.example" in body["error"]
        assert "--allowed-host" in body["error"]
    assert engine.runs() == []
    for host in ("localhost", "127.0.0.1", "[::1]", "LOCALHOST:8555"):  # loopback names, any port
        assert http.get("/api/health", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_are_configurable(engine, serve):
    server = serve(allowed_hosts=("ops.example.com", "*.internal"))
    with server.client() as http:
        for host in ("ops.example.com", "ops.example.com:443", "wf.internal"):
            assert http.get("/api/health", headers={"Host": host}).status_code == 200, host
        for host in ("127.0.0.1", "example.com", "internal", "evil.example"):
            assert_error(http.get("/api/health", headers={"Host": host}), 400, "BadHost")


# -- errors ----------------------------------------------------------------------------------------------


def test_unknown_routes_and_methods_answer_in_the_error_shape(http):
    assert_error(http.get("/api/nope"), 404, "NotFound")
    assert_error(http.get("/static/nope.js"), 404, "NotFound")
    assert_error(http.get("/static/../pyproject.toml"), 404, "NotFound")
    not_allowed = assert_error(http.put("/api/runs"), 405, "MethodNotAllowed")
    assert "PUT" in not_allowed["error"]
    assert_error(http.post(f"/api/runs/{'0' * 32}/graph"), 405, "MethodNotAllowed")


def test_a_validation_error_does_not_echo_the_request(http):
    many = {f"key{i}": i for i in range(20_000)}  # ~300 kB, under the body limit
    resp = http.post("/api/runs", json={"name": "etl", "params": [1], "bogus": many})
    body = assert_error(resp, 422, "ValidationError")
    assert len(resp.content) < 4096, len(resp.content)
    assert "key19999" not in resp.text
    assert "bogus" in body["error"]


def test_a_broker_outage_answers_503(make_test_app):
    from tests.web.conftest import Server

    app = make_test_app(
        broker=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
        broker_connection_timeout=0.5,
        broker_connection_max_retries=0,
        task_publish_retry_policy={"max_retries": 0},
        wfcelery_inspect_timeout=0,
    )
    server = Server(app._wfcelery_engine).start()
    try:
        with server.client() as http:
            resp = http.post("/api/runs", json={"definition": one_node().to_dict()})
        body = assert_error(resp, 503, "BrokerUnavailable")
        assert "broker" in body["error"]
    finally:
        server.stop()


# -- Last-Event-ID ---------------------------------------------------------------------------------------


def test_a_last_event_id_that_is_no_event_id_is_a_clean_400(engine, http, caplog):
    run = engine.submit(one_node())  # logged: the node's QUEUED, one line ("0 0 Q\n")
    end, events = run.events(0)
    assert len(events) == 1
    caplog.set_level(logging.ERROR)
    inside, past, skips = "3", str(end + 1), f"{end}.2"  # in the line, past the log, 2 of 0 events after
    for cursor in (inside, "5.999", past, skips, "abc", "1.2.3", "-4", "9" * 40, "0.x"):
        for headers, params in (({"Last-Event-ID": cursor}, {}), ({}, {"last_event_id": cursor})):
            resp = http.get(f"/api/runs/{run.id}/events", headers=headers, params=params)
            body = assert_error(resp, 400, "InvalidEventId")
            assert repr(cursor) in body["error"]
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    with http.stream("GET", f"/api/runs/{run.id}/events", headers={"Last-Event-ID": str(end)}) as resumed:
        assert resumed.status_code == 200  # the end of the one event: a valid id


# -- bidi control characters -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "definition"),
    [
        ("definition.name", {"name": "report\u202egpj.exe", "tasks": [{"name": "a", "task": "proj.noop"}]}),
        ("definition.tasks[0].name", {"name": "r", "tasks": [{"name": "a\u2066b", "task": "proj.noop"}]}),
        ("definition.tasks[0].task", {"name": "r", "tasks": [{"name": "a", "task": "proj.noop\u200f"}]}),
    ],
)
def test_bidi_controls_in_a_submitted_definition_are_refused_naming_the_field(
    engine, http, field, definition
):
    body = assert_error(http.post("/api/runs", json={"definition": definition}), 422, "ValidationError")
    assert body["error"].startswith(f"{field}: ")
    assert "bidirectional" in body["error"]
    assert "\\u" in body["error"]
    assert not any(0x200E <= ord(c) <= 0x2069 for c in body["error"])
    assert engine.runs() == []


def test_bidi_controls_in_a_run_name_or_params_key_are_refused(engine, http):
    engine.register(one_node("etl"))
    body = assert_error(http.post("/api/runs", json={"name": "etl\u202e"}), 422, "ValidationError")
    assert body["error"].startswith("name: ")
    resp = http.post("/api/runs", json={"name": "etl", "params": {"x\u202a": 1}})
    body = assert_error(resp, 422, "ValidationError")
    assert body["error"].startswith("params: ")
    assert engine.runs() == []


# -- settings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("conf", "named"),
    [
        ({"wfcelery_web_cors_origins": "*"}, "wfcelery_web_cors_origins: '*'"),
        ({"wfcelery_web_cors_origins": ["shop.example"]}, "wfcelery_web_cors_origins: 'shop.example'"),
        ({"wfcelery_web_max_body_bytes": 0}, "wfcelery_web_max_body_bytes must be a whole number >= 1"),
        ({"wfcelery_web_request_timeout": 0}, "wfcelery_web_request_timeout must be a number of seconds > 0"),
        ({"wfcelery_web_allowed_hosts": 5}, "wfcelery_web_allowed_hosts must be a list of names"),
    ],
)
def test_a_bad_web_setting_is_one_clear_error(make_test_app, conf, named):
    from wfcelery import ConfigurationError

    with pytest.raises(ConfigurationError, match=re.escape(named)):
        make_test_app(**conf)._wfcelery_engine.settings  # noqa: B018  (settings are read on first use)


def test_the_web_settings_come_from_the_app_configuration(make_test_app):
    from tests.web.conftest import Server

    app = make_test_app(
        wfcelery_web_cors_origins="https://shop.example, https://blog.example/",
        wfcelery_web_allowed_hosts=["ops.example"],
    )
    server = Server(app._wfcelery_engine).start()
    try:
        with server.client() as http:
            ok = http.get("/api/health", headers={"Host": "ops.example", "Origin": "https://blog.example"})
            assert ok.status_code == 200
            assert ok.headers["access-control-allow-origin"] == "https://blog.example"
            assert_error(http.get("/api/health"), 400, "BadHost")  # 127.0.0.1 is not listed any more
    finally:
        server.stop()
