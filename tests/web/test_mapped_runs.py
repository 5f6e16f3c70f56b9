"""A run with a mapped node, seen over HTTP: the event stream names every instance (``resize[1]``) and ends,
and the node view reads an instance as it reads a node."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import in_thread_worker
from tests.web.test_events import sse
from wfcelery import Workflow

pytestmark = pytest.mark.timeout(60)


def map_reduce(n: int) -> Workflow:
    wf = Workflow(f"web-map{n}")
    wf.add("files", "proj.add", args=[list(range(n)), []])  # add(list, []) returns the list
    wf.add("resize", "proj.add", map="files", args=[10])  # element + 10
    wf.add("report", "proj.total", after="resize")
    return wf


def test_the_stream_names_every_instance_and_ends(app: Any, engine: Any, http: Any) -> None:
    with in_thread_worker(app):
        run = engine.submit(map_reduce(3))
        run.wait(timeout=30)
    messages = list(sse(http, f"/api/runs/{run.id}/events"))
    assert messages[-1]["event"] == "end"
    assert messages[-1]["data"]["status"] == "SUCCEEDED"
    nodes = [m["data"] for m in messages[:-1] if m["event"] == "node"]
    for i in range(3):
        mine = [d for d in nodes if d["node"] == f"resize[{i}]"]
        assert [d["status"] for d in mine] == ["QUEUED", "RUNNING", "SUCCEEDED"]
        assert {(d["index"], d["instance"]) for d in mine} == {(1, i)}
    assert [d["status"] for d in nodes if d["node"] == "report"] == ["QUEUED", "RUNNING", "SUCCEEDED"]
    assert all(d["node"] is not None for d in nodes)


def test_the_node_view_reads_an_instance(app: Any, engine: Any, http: Any) -> None:
    with in_thread_worker(app):
        run = engine.submit(map_reduce(3))
        run.wait(timeout=30)
    view = http.get(f"/api/runs/{run.id}/nodes/resize[1]")
    assert view.status_code == 200, view.text
    body = view.json()
    assert body["name"] == "resize[1]"
    assert body["status"] == "SUCCEEDED"
    assert body["result_preview"] == "11"
    assert body["task"] == "proj.add"
    assert body["parents"] == ["files"]
    assert run.result("resize[2]") == 12
    for missing in ("resize[3]", "files[0]", "nope[0]"):
        answer = http.get(f"/api/runs/{run.id}/nodes/{missing}")
        assert answer.status_code == 404, (missing, answer.text)
        assert missing in answer.json()["error"]
