"""The REST API of run keys and schedules over HTTP (uvicorn on a free port, a real Redis)."""

from __future__ import annotations

import pytest

from wfcelery import Engine, Workflow

pytestmark = pytest.mark.timeout(60)


def nightly() -> Workflow:
    wf = Workflow("nightly")
    wf.add("a", "proj.noop", args=["${scheduled_at}"])
    return wf


def test_post_runs_with_a_run_key_is_201_then_200_with_the_same_run(http, engine: Engine):
    body = {"definition": {"name": "k", "tasks": [{"name": "a", "task": "proj.noop"}]}, "run_key": "api:1"}
    first = http.post("/api/runs", json=body)
    assert first.status_code == 201
    again = http.post("/api/runs", json=body)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["created"] is False
    conflict = http.post("/api/runs", json=body | {"on_conflict": "fail"})
    assert conflict.status_code == 409
    assert first.json()["id"] in conflict.json()["error"]
    assert http.get(f"/api/runs/{first.json()['id']}").json()["run_key"] == "api:1"
    assert http.get("/api/run-keys/api:1").json()["id"] == first.json()["id"]
    assert http.get("/api/run-keys/nope").status_code == 404
    assert len(engine.runs(name="k")) == 1


def test_schedules_create_list_pause_resume_backfill_delete(http, engine: Engine):
    engine.register(nightly())
    made = http.post(
        "/api/schedules",
        json={"name": "n", "workflow": "nightly", "cron": "0 2 * * *", "timezone": "Europe/Paris"},
    )
    assert made.status_code == 201, made.text
    assert made.json() | {"name": "n", "workflow": "nightly", "paused": False} == made.json()
    assert [s["name"] for s in http.get("/api/schedules").json()] == ["n"]
    assert http.post("/api/schedules/n/pause").json()["next_at"] is None
    assert http.post("/api/schedules/n/resume").json()["next_at"] is not None
    window = {"start": "2026-11-01", "end": "2026-11-03T23:00"}
    dry = http.post("/api/schedules/n/backfill", json=window | {"dry_run": True}).json()
    assert [s["run_id"] for s in dry] == [None, None, None]
    fired = http.post("/api/schedules/n/backfill", json=window).json()
    assert len({s["run_id"] for s in fired}) == 3
    one = http.get("/api/schedules/n").json()
    assert sorted(r["run"]["id"] for r in one["runs"]) == sorted(s["run_id"] for s in fired)
    assert http.delete("/api/schedules/n").status_code == 204
    assert http.get("/api/schedules/n").status_code == 404
    assert http.post("/api/schedules/n/pause").status_code == 404


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"cron": "0 2 * *"}, "cron"),
        ({"cron": "0 2 * * *", "timezone": "Mars/Base"}, "timezone"),
        ({"every": 0}, "every"),
        ({"every": -10}, "every"),
        ({"every": 5, "workflow": "nope"}, "workflow"),
        ({"every": 5, "workflow": "/etc/passwd"}, "workflow"),
    ],
)
def test_bad_schedules_are_422_naming_the_field_and_store_nothing(http, engine: Engine, fields, named):
    engine.register(nightly())
    answer = http.post("/api/schedules", json={"name": "bad", "workflow": "nightly"} | fields)
    assert answer.status_code == 422
    assert answer.json()["error"].startswith(f"{named}: ")
    assert engine.schedules() == []


def test_the_schedules_endpoints_are_in_the_openapi_document(http):
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/api/schedules", "/api/schedules/{name}", "/api/schedules/{name}/backfill"} <= set(paths)
    assert "run_key" in str(paths["/api/runs"]["post"])
