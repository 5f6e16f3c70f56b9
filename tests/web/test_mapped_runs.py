"""A run with a mapped node, seen over HTTP: the event stream names every instance (``resize[1]``) and ends,
and the node view reads an instance as it reads a node."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import in_thread_worker
from tests.integration import test_cli
from tests.integration.test_cli import invoke
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


def test_a_mapped_run_is_counted_the_same_on_every_surface(
    app: Any, engine: Any, http: Any, tmp_path: Path
) -> None:
    """Nodes are the definition's (a mapped node counts once); its instances are counted apart: submit,
    status, list, watch and the REST API all say 3 nodes and 3 instances for files -> resize x3 -> report."""
    wf = map_reduce(3)
    flow = tmp_path / "map.json"
    flow.write_text(json.dumps(wf.to_dict()))
    test_cli.APP = app
    try:
        with in_thread_worker(app):
            submitted = invoke("submit", str(flow), "--wait")
        run_id = submitted.stdout.splitlines()[0]
        status = invoke("status", run_id).stdout
        as_json = json.loads(invoke("status", run_id, "--json").stdout)
        listed = invoke("list", "--name", wf.name).stdout
        listed_json = json.loads(invoke("list", "--name", wf.name, "--json").stdout)
        watched = invoke("watch", run_id).stdout
    finally:
        test_cli.APP = None
    summary = "3/3 nodes done: 3 succeeded; 3 instances: 3 succeeded"
    assert re.search(
        rf"\({wf.name}, 3 nodes(, 3 instances)?\): (RUNNING|SUCCEEDED)", submitted.stderr
    )  # as it stood when first read: a fast worker may have ended the run by then
    assert summary in submitted.stderr.splitlines()[-1]
    assert summary in status.splitlines()[0]
    assert f"({wf.name}, 3 nodes, 3 instances)" in watched
    assert summary in watched.splitlines()[-1]
    row = next(line for line in listed.splitlines() if line.startswith(run_id))
    assert row.split()[3:5] == ["3/3", "3"]
    assert listed_json[0] | {"total": 3, "done": 3, "instances": 3} == listed_json[0]
    counts = {"total": 3, "done": 3, "instances": 3}
    assert as_json | counts == as_json
    assert as_json["counts"]["SUCCEEDED"] == 3
    assert as_json["instance_counts"]["SUCCEEDED"] == 3
    rest = http.get(f"/api/runs/{run_id}").json()
    assert {k: rest[k] for k in (*counts, "counts", "instance_counts")} == {
        k: as_json[k] for k in (*counts, "counts", "instance_counts")
    }
    page = http.get("/api/runs", params={"name": wf.name}).json()["runs"]
    assert page[0] | {"total": 3, "done": 3, "instances": 3} == page[0]
    graph = {n["name"]: n for n in http.get(f"/api/runs/{run_id}/graph").json()["nodes"]}
    queue = app.conf.task_default_queue
    assert {name: n["queue"] for name, n in graph.items()} == dict.fromkeys(graph, queue)  # as status says
    assert {name: n["queue"] for name, n in as_json["nodes"].items() if "[" not in name} == dict.fromkeys(
        graph, queue
    )
    assert graph["resize"]["map"] == "files"
    assert graph["files"]["map"] is None
    assert {n["trigger"] for n in graph.values()} == {"all_success"}
