"""The REST API over HTTP: the real server (uvicorn on a free port), a real Redis and a real Celery worker.

Every endpoint and every error code the docs' API table names: 201/204, 404, 409 (the ControlError
text), 422 (naming the node or field), 503 (Redis down); 401 and 403 (auth, cross-site, read-only) are
test_access.py's.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from celery import Celery

from tests.helpers import after_created, in_thread_worker, wait_for
from tests.redis_server import free_port
from tests.web.conftest import Server
from wfcelery import Engine, Workflow

pytestmark = pytest.mark.timeout(60)


def chain(name: str = "etl") -> Workflow:
    wf = Workflow(name, params={"x": 1})
    (
        wf.add("extract", "proj.add", args=["${x}", 2])
        >> wf.add("transform", "proj.add", args=[10])
        >> wf.add("load", "proj.echo")
    )
    return wf


def blocking(key: str, name: str = "hold") -> Workflow:
    wf = Workflow(name)
    wf.add("first", "proj.block", args=[key]) >> wf.add("second", "proj.noop")
    return wf


def test_health_and_openapi_document_every_endpoint(http):
    assert http.get("/api/health").json() == {"status": "ok", "version": "0.1.0", "read_only": False}
    paths = http.get("/openapi.json").json()["paths"]
    expected = {
        "/api/health": {"get"},
        "/api/runs": {"get", "post"},
        "/api/runs/{run_id}": {"get", "delete"},
        "/api/runs/{run_id}/graph": {"get"},
        "/api/runs/{run_id}/results": {"get"},
        "/api/runs/{run_id}/nodes/{node}": {"get"},
        "/api/runs/{run_id}/nodes/{node}/signal": {"post"},
        "/api/waiting": {"get"},
        "/api/runs/{run_id}/events": {"get"},
        "/api/runs/{run_id}/pause": {"post"},
        "/api/runs/{run_id}/resume": {"post"},
        "/api/runs/{run_id}/cancel": {"post"},
        "/api/runs/{run_id}/retry": {"post"},
        "/api/definitions": {"get"},
        "/api/definitions/{name}": {"get"},
        "/api/me": {"get"},
        "/api/audit": {"get"},
        "/api/schedules": {"get", "post"},
        "/api/schedules/{name}": {"get", "delete"},
        "/api/schedules/{name}/pause": {"post"},
        "/api/schedules/{name}/resume": {"post"},
        "/api/schedules/{name}/backfill": {"post"},
        "/api/run-keys/{key}": {"get"},
        "/api/pools": {"get"},
        "/api/pools/{name}": {"put"},
        "/api/history/runs": {"get"},
        "/api/history/workflows/{name}": {"get"},
        "/api/history/workflows/{name}/nodes/{node}": {"get"},
    }
    assert {p: set(ops) for p, ops in paths.items()} == expected


def test_submit_by_name_and_by_body_then_read_every_view(app, engine, serve):
    engine.register(chain())
    server = serve(flower_url="http://flower.local:5555/")
    with in_thread_worker(app), server.client() as http:
        created = http.post("/api/runs", json={"name": "etl", "params": {"x": 5}})
        assert created.status_code == 201
        run_id = created.json()["id"]
        assert created.headers["location"] == f"/api/runs/{run_id}" == created.json()["url"]
        adhoc = {"definition": chain("adhoc").to_dict()}
        assert http.post("/api/runs", json=adhoc | {"executor": "chords"}).status_code == 422
        after_created(engine, run_id)  # "newest first" below is well defined
        other = http.post("/api/runs", json=adhoc | {"executor": "canvas"}).json()["id"]
        assert engine.run(run_id).wait(timeout=20) == {
            "extract": 7,
            "transform": 17,
            "load": {"args": [17], "kwargs": {}},
        }
        engine.run(other).wait(timeout=20)
        assert http.get(f"/api/runs/{other}").json() | {"executor": "canvas", "status": "SUCCEEDED"} == (
            http.get(f"/api/runs/{other}").json()
        )

        state = http.get(f"/api/runs/{run_id}").json()
        assert state == json.loads(json.dumps(engine.run(run_id).state().to_dict()))  # `status --json`
        assert state["status"] == "SUCCEEDED"
        assert state["params"] == {"x": 5}
        assert http.get(f"/api/runs/{run_id}/results").json()["transform"] == 17

        for name, expected in state["nodes"].items():  # the node view reads one node: the same facts
            view = http.get(f"/api/runs/{run_id}/nodes/{name}").json()
            assert {k: view[k] for k in expected} == expected
        node = http.get(f"/api/runs/{run_id}/nodes/transform").json()
        assert node["status"] == "SUCCEEDED"
        assert node["attempts"] == 1
        assert node["worker"]
        assert node["task"] == "proj.add"
        assert node["parents"] == ["extract"]
        assert node["result_preview"] == "17"
        assert node["result_truncated"] is False
        assert node["error"] is None
        assert node["flower_url"] == f"http://flower.local:5555/task/{node['task_id']}"

        graph = http.get(f"/api/runs/{run_id}/graph").json()
        assert [(n["name"], n["parents"]) for n in graph["nodes"]] == [
            ("extract", []),
            ("transform", ["extract"]),
            ("load", ["transform"]),
        ]

        listed = http.get("/api/runs").json()
        assert [r["id"] for r in listed["runs"]] == [other, run_id]  # newest first
        assert listed["next_offset"] is None
        assert listed["runs"][1] | {"done": 3, "total": 3, "status": "SUCCEEDED"} == listed["runs"][1]
        page1 = http.get("/api/runs", params={"limit": 1}).json()
        page2 = http.get("/api/runs", params={"limit": 1, "offset": page1["next_offset"]}).json()
        assert [r["id"] for r in page1["runs"] + page2["runs"]] == [other, run_id]
        assert page2["next_offset"] is None
        assert [r["id"] for r in http.get("/api/runs", params={"name": "etl"}).json()["runs"]] == [run_id]
        assert http.get("/api/runs", params={"status": "FAILED"}).json()["runs"] == []

        assert http.get("/api/definitions").json() == [
            {"name": "etl", "nodes": 3, "on_failure": "fail_fast", "params": ["x"], "defaults": {"x": 1}}
        ]
        definition = http.get("/api/definitions/etl").json()
        assert definition["definition"] == chain().to_dict()
        assert [n["name"] for n in definition["graph"]["nodes"]] == ["extract", "transform", "load"]


def test_node_view_shows_the_error_with_traceback_and_caps_the_result(app, engine, http):
    wf = Workflow("mixed", on_failure="continue")
    wf.add("big", "proj.echo", args=["x" * 10_000])
    wf.add("bad", "proj.fail", kwargs={"message": "bad VAT id"})
    with in_thread_worker(app):
        run_id = http.post("/api/runs", json={"definition": wf.to_dict()}).json()["id"]
        wait_for(lambda: engine.run(run_id).state().finished, message="the run to end")
    bad = http.get(f"/api/runs/{run_id}/nodes/bad").json()
    assert bad["status"] == "FAILED"
    assert bad["error"]["type"] == "ValueError"
    assert bad["error"]["message"] == "bad VAT id"
    assert "Traceback" in bad["error"]["traceback"]
    assert "raise ValueError" in bad["error"]["traceback"]
    big = http.get(f"/api/runs/{run_id}/nodes/big").json()
    assert big["result_truncated"] is True
    assert big["result_preview"].startswith('{"args": ["xxx')
    assert len(big["result_preview"]) <= 4097
    assert big["flower_url"] is None  # no wfcelery_flower_url configured


def test_errors_are_json_with_the_right_codes(app, engine, http, uid):
    engine.register(chain())
    unknown = "0" * 32
    for path in (f"/api/runs/{unknown}", f"/api/runs/{unknown}/results", "/api/runs/not-a-run-id/graph"):
        resp = http.get(path)
        assert resp.status_code == 404, path
        assert resp.json()["type"] == "RunNotFound"
        assert "no workflow run with id" in resp.json()["error"]
    assert http.post(f"/api/runs/{unknown}/pause").status_code == 404
    assert http.delete(f"/api/runs/{unknown}").status_code == 404
    assert http.get(f"/api/runs/{unknown}/events").status_code == 404
    assert http.get("/api/definitions/nope").status_code == 404
    assert http.post("/api/runs", json={"name": "nope"}).status_code == 404

    def invalid(body: object) -> str:
        resp = http.post("/api/runs", json=body)
        assert resp.status_code == 422, resp.text
        return str(resp.json()["error"])

    cycle = {
        "name": "c",
        "tasks": [
            {"name": "a", "task": "proj.noop", "after": ["b"]},
            {"name": "b", "task": "proj.noop", "after": ["a"]},
        ],
    }
    assert "cycle in workflow: " in invalid({"definition": cycle})
    unknown_task = {"name": "u", "tasks": [{"name": "step", "task": "proj.nope"}]}
    assert "step" in invalid({"definition": unknown_task})
    assert "proj.nope" in invalid({"definition": unknown_task})
    assert "retry" in invalid(
        {"definition": {"name": "k", "tasks": [{"name": "a", "task": "proj.noop", "retry": 1}]}}
    )
    needs = Workflow("needs")
    needs.add("a", "proj.add", args=["${day}"])
    assert "day" in invalid({"definition": needs.to_dict()})
    assert "params" in invalid({"name": "etl", "params": [1, 2]})
    assert "exactly one of" in invalid({"name": "etl", "definition": chain().to_dict()})
    assert "exactly one of" in invalid({})
    assert "status" in http.get("/api/runs", params={"status": "BOGUS"}).json()["error"]
    caps = ({"limit": 501}, {"limit": 0}, {"offset": 10_001})  # as the docs' API table states
    for params in caps:
        assert http.get("/api/runs", params=params).status_code == 422, params
    assert engine.runs() == []  # nothing was created by any of these

    with in_thread_worker(app):
        done = engine.submit(chain())
        done.wait(timeout=20)
    refused = http.post(f"/api/runs/{done.id}/pause")
    assert refused.status_code == 409
    assert refused.json() == {"error": f"cannot pause run {done.id}: it is SUCCEEDED", "type": "ControlError"}
    assert http.post(f"/api/runs/{done.id}/retry").status_code == 409

    live = engine.submit(blocking(f"{uid}:never"))  # no worker: stays RUNNING
    conflict = http.delete(f"/api/runs/{live.id}")
    assert conflict.status_code == 409
    assert "cancel it first" in conflict.json()["error"]
    assert http.delete(f"/api/runs/{live.id}", params={"force": "true"}).status_code == 204
    assert http.get(f"/api/runs/{live.id}").status_code == 404


def test_control_endpoints_pause_resume_cancel_retry_delete(app, engine, http, r, uid):
    with in_thread_worker(app):
        run_id = http.post("/api/runs", json={"definition": blocking(f"{uid}:go").to_dict()}).json()["id"]
        run = engine.run(run_id)
        wait_for(lambda: run.state().nodes["first"].status.value == "RUNNING", message="first RUNNING")
        paused = http.post(f"/api/runs/{run_id}/pause")
        assert paused.status_code == 200
        assert paused.json()["status"] == "PAUSED"
        r.lpush(f"{uid}:go", 1)
        wait_for(lambda: run.state().nodes["first"].status.value == "SUCCEEDED", message="first done")
        assert run.state().nodes["second"].status.value != "SUCCEEDED"
        resumed = http.post(f"/api/runs/{run_id}/resume")
        assert resumed.status_code == 200
        # the state after resume: RUNNING, or already SUCCEEDED when the worker ran "second" before the read
        assert resumed.json()["status"] in ("RUNNING", "SUCCEEDED")
        run.wait(timeout=20)
        assert run.state().nodes["second"].status.value == "SUCCEEDED"

        cancel_me = engine.submit(blocking(f"{uid}:go2"))
        wait_for(lambda: cancel_me.state().nodes["first"].status.value == "RUNNING", message="RUNNING")
        cancelled = http.post(f"/api/runs/{cancel_me.id}/cancel").json()
        assert cancelled["status"] == "CANCELLED"
        r.lpush(f"{uid}:go2", 1)
        wait_for(lambda: cancel_me.state().nodes["first"].status.value == "SUCCEEDED", message="first done")
        retried = http.post(f"/api/runs/{cancel_me.id}/retry").json()
        assert retried["status"] in ("RUNNING", "SUCCEEDED")  # as for resume: the worker may be quicker
        assert retried["nodes"]["first"]["status"] == "SUCCEEDED"
        assert cancel_me.wait(timeout=20) == {"first": "released", "second": None}
    assert http.delete(f"/api/runs/{run_id}").status_code == 204
    assert http.get(f"/api/runs/{run_id}").status_code == 404
    assert not r.keys(engine.tracker.keys.run_pattern(run_id))


def test_redis_down_answers_503(app):
    dead = Engine(app, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    server = Server(dead).start()
    try:
        with server.client() as http:
            for resp in (
                http.get("/api/health"),
                http.get("/api/runs"),
                http.get(f"/api/runs/{'a' * 32}"),
                http.post("/api/runs", json={"definition": chain().to_dict()}),
            ):
                assert resp.status_code == 503, resp.text
                assert resp.json()["type"] == "TrackerUnavailable"
                assert "cannot reach the tracker's Redis" in resp.json()["error"]
            # never answered whether tokens exist: every path with data fails closed; the dashboard's
            # page shell holds none, loads, and its API calls say why
            assert http.get("/openapi.json").status_code == 503
            assert http.get("/").status_code == 200
    finally:
        server.stop()


#: URLs the dashboard's files name that are no request to another server: the SVG namespace (an XML name,
#: never fetched) and the embedding examples at the top of wf-run-progress.js (the wfcelery server itself).
NOT_FETCHED = {
    "http://www.w3.org/2000/svg",
    "http://wfcelery-host:8555/static/wf-run-progress.js",
    "http://wfcelery-host:8555/static/js/wf-run-progress.js",
}


def test_works_offline_nothing_served_names_another_server(http, server):
    """No CDN: every page, every file under /static/ and everything the pages link to or load (the
    header's API link included) is served by the app and names no other server. FastAPI's Swagger UI
    (which loads from a CDN) is not served."""
    from wfcelery.web import STATIC

    own = httpx.URL(server.url)
    pending = ["/", f"/runs/{'a' * 32}", "/definitions", "/definitions/etl"]
    pending += [f"/static/{f.relative_to(STATIC).as_posix()}" for f in STATIC.rglob("*") if f.is_file()]
    seen: set[str] = set()
    while pending:
        path = pending.pop()
        if path in seen:
            continue
        seen.add(path)
        resp = http.get(path)
        assert resp.status_code == 200, path
        assert set(re.findall(r"https?://[^\s\"'`<>()]+", resp.text)) - NOT_FETCHED == set(), path
        # a page's links (not those of /static/index.html: the pages' template, with {{root}} unfilled)
        if resp.headers["content-type"].startswith("text/html") and not path.startswith("/static/"):
            for link in re.findall(r'(?:src|href)="([^"]+)"', resp.text):
                if link.startswith("data:"):
                    continue
                url = own.join(link)
                assert (url.scheme, url.host, url.port) == (own.scheme, own.host, own.port), (path, link)
                pending.append(url.path)
    # the pages' own links were followed: the header's API link (the OpenAPI document), script, stylesheet
    assert {"/openapi.json", "/static/js/main.js", "/static/app.css"} <= seen
    for docs in ("/api/docs", "/docs", "/redoc"):
        assert http.get(docs).status_code == 404, docs


def test_cli_serves_on_127_0_0_1_by_default():
    from click.testing import CliRunner

    from wfcelery.cli import cli

    help_text = CliRunner().invoke(cli, ["web", "--help"]).output
    assert re.search(r"--host TEXT\s+Interface to bind.\s+\[default:\s+127.0.0.1\]", help_text)
    assert "--auth USER:PASSWORD" in help_text
    assert "--read-only" in help_text
    assert "--allowed-host NAME" in help_text
    assert "--cors-origin ORIGIN" in help_text


#: A Celery app whose Redis is down (for the `web` command's startup check).
_DEAD = f"redis://127.0.0.1:{free_port()}/0"
dead_app = Celery("dead", broker=_DEAD, backend=_DEAD, set_as_current=False)


def test_web_command_reports_a_missing_redis_in_one_line():
    from click.testing import CliRunner

    from wfcelery.cli import cli

    result = CliRunner().invoke(cli, ["-A", "tests.web.test_api:dead_app", "web", "--port", str(free_port())])
    assert result.exit_code == 2
    assert "cannot reach the tracker's Redis" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_celery_wf_web_serves_the_dashboard(redis_url, uid):
    """`celery -A proj wf web` (the `wfcelery web` console script is the same click command), with a Host
    name and a CORS origin given on the command line."""
    import subprocess
    import sys

    from tests.helpers import ROOT

    port = free_port()
    env = {
        "WFCELERY_TEST_BROKER": redis_url,
        "WFCELERY_TEST_PREFIX": f"t{uid}",
        "PYTHONPATH": str(ROOT),
        "PATH": "/usr/bin:/bin",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.proj",
            "wf",
            "web",
            "--port",
            str(port),
            "--allowed-host",
            "wf.test",
            "--cors-origin",
            "http://shop.test",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                assert proc.poll() is None, "the web command exited"
                return False

        wait_for(healthy, timeout=30, interval=0.1, message="the web command to serve")
        page = httpx.get(f"http://127.0.0.1:{port}/", timeout=5)
        assert "static/js/main.js" in page.text
        assert httpx.get(f"http://127.0.0.1:{port}/static/wf-run-progress.js", timeout=5).status_code == 200
        health = f"http://127.0.0.1:{port}/api/health"
        assert httpx.get(health, headers={"Host": "wf.test"}, timeout=5).status_code == 200
        assert httpx.get(health, headers={"Host": "localhost"}, timeout=5).status_code == 400  # not listed
        shop = httpx.get(health, headers={"Origin": "http://shop.test"}, timeout=5)
        assert shop.headers["access-control-allow-origin"] == "http://shop.test"
    finally:
        proc.kill()
        proc.wait(20)


def test_mounted_inside_another_asgi_app_pages_and_api_follow_the_mount_path(engine):
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from wfcelery.web import create_app

    class Mounted(Server):
        def __init__(self) -> None:
            super().__init__(engine)
            self.server.config.app = Starlette(routes=[Mount("/ops/workflows", app=create_app(engine))])

    server = Mounted().start()
    try:
        with server.client() as http:
            page = http.get("/ops/workflows/")
            assert '<script type="module" src="/ops/workflows/static/js/main.js">' in page.text
            assert "&quot;root&quot;: &quot;/ops/workflows&quot;" in page.text
            assert http.get("/ops/workflows/api/health").json()["status"] == "ok"
            assert http.get("/ops/workflows/static/wf-run-progress.js").status_code == 200
            assert http.get("/ops/workflows/static/js/wf-run-progress.js").status_code == 200
    finally:
        server.stop()


def test_definitions_folder_setting_lists_valid_files_and_starts_runs_by_name(make_test_app, tmp_path):
    (tmp_path / "etl.yaml").write_text(
        "name: etl\ntasks:\n  - {name: one, task: proj.add, args: ['${x}', 1]}\n"
    )
    (tmp_path / "report.json").write_text('{"name": "report", "tasks": [{"name": "r", "task": "proj.noop"}]}')
    (tmp_path / "broken.yaml").write_text("name: broken\ntasks: [{name: a, task: proj.noop, after: [zz]}]\n")
    (tmp_path / "notes.txt").write_text("not a definition")
    app = make_test_app(wfcelery_definitions=str(tmp_path))
    engine = app._wfcelery_engine
    server = Server(engine).start()
    try:
        with server.client() as http, in_thread_worker(app):
            listed = {d["name"]: d for d in http.get("/api/definitions").json()}
            assert set(listed) == {"etl", "report"}  # the invalid file is left out (and logged)
            assert listed["etl"]["params"] == ["x"]
            missing = http.post("/api/runs", json={"name": "etl"})
            assert missing.status_code == 422
            assert "needs params x" in missing.json()["error"]
            run_id = http.post("/api/runs", json={"name": "etl", "params": {"x": 41}}).json()["id"]
            assert engine.run(run_id).wait(timeout=20) == {"one": 42}
            invalid = http.post("/api/runs", json={"name": "broken"})  # the file is there: say what is wrong
            assert invalid.status_code == 422
            assert "broken.yaml: node 'a' lists unknown parent 'zz'" in invalid.json()["error"]
            unknown = http.post("/api/runs", json={"name": "etk"})
            assert unknown.status_code == 404
            assert "no definition named 'etk' (did you mean 'etl'?)" in unknown.json()["error"]
    finally:
        server.stop()
