"""Flower finds a workflow run: a real `celery flower` process, a worker that sends task events, and
Flower's REST API (`/api/tasks?search=`), as the docs tell users to search.

Every task of a run carries ``kwargsrepr`` with ``wf_run`` and ``wf_node``, so ``kwargs:wf_run=<id>``
(Flower's exact key=value match) finds all of them, and ``kwargs:wf_node=<name>`` narrows to one node.
wfcelery.install sets task_send_sent_event and worker_send_task_events, which Flower needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery

from tests.helpers import ROOT, in_thread_worker, wait_for
from tests.redis_server import free_port
from wfcelery import Workflow

pytest.importorskip("flower")


class Flower:
    def __init__(self, app: Celery) -> None:
        self.port = free_port()
        env = {
            **os.environ,
            "WFCELERY_TEST_BROKER": app.conf.broker_url,
            "WFCELERY_TEST_BACKEND": app.conf.wfcelery_redis_url,
            "WFCELERY_TEST_PREFIX": app.conf.wfcelery_key_prefix,
            "WFCELERY_TEST_QUEUE": app.conf.task_default_queue,
            "PYTHONPATH": str(ROOT),
            # Flower 2.2 refuses its API without auth unless told so (local test process only)
            "FLOWER_UNAUTHENTICATED_API": "true",
        }
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "tests.proj",
                "flower",
                f"--port={self.port}",
                "--address=127.0.0.1",
                "--persistent=False",
                "--inspect_timeout=500",
                "--logging=warning",
            ],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def get(self, path: str, **query: Any) -> Any:
        url = f"http://127.0.0.1:{self.port}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
        return json.loads(body) if path.startswith("/api/") else body

    def up(self) -> bool:
        if self.proc.poll() is not None:
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            pytest.fail(f"flower exited with {self.proc.returncode}: {err[-2000:]}")
        try:
            return self.get("/healthcheck") == "OK"
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def search(self, query: str) -> dict[str, Any]:
        return dict(self.get("/api/tasks", search=query))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def flower(app: Celery) -> Iterator[Flower]:
    f = Flower(app)
    try:
        wait_for(f.up, timeout=30, interval=0.2, message="flower to answer /healthcheck")
        yield f
    finally:
        f.stop()


def test_flower_finds_every_task_of_a_run_by_run_id_and_node(
    app: Celery, engine: Any, flower: Flower
) -> None:
    wf = Workflow("flower-check")
    a = wf.add("extract", "proj.add", args=[1, 2])
    b = wf.add("left", "proj.add", kwargs={"y": 10})
    c = wf.add("right", "proj.add", kwargs={"y": 100})
    d = wf.add("merge", "proj.total")
    a >> [b, c] >> d
    with in_thread_worker(app):
        # Flower subscribes to events shortly after its HTTP server is up: wait until it sees a probe task.
        def probe_seen() -> bool:
            app.send_task("proj.noop", queue=app.conf.task_default_queue)  # one more each poll
            return bool(flower.get("/api/tasks", taskname="proj.noop"))

        wait_for(probe_seen, timeout=30, interval=0.3, message="flower to receive task events")
        run = engine.submit(wf)
        assert run.wait(timeout=30) == {"extract": 3, "left": 13, "right": 103, "merge": 116}
        nodes = {"extract", "left", "right", "merge"}

        def all_found() -> dict[str, Any] | None:
            found = flower.search(f"kwargs:wf_run={run.id}")
            done = {_node(t) for t in found.values() if t["state"] == "SUCCESS"}
            return found if done == nodes else None

        found = wait_for(all_found, timeout=30, interval=0.3, message="flower to list the run's 4 tasks")

        mapped = Workflow("flower-map")  # an instance of a mapped node is found by its own name
        mapped.add("files", "proj.add", args=[[0, 1, 2], []])
        mapped.add("resize", "proj.add", map="files", args=[10])
        mapped_run = engine.submit(mapped)
        mapped_run.wait(timeout=30)
        instance = mapped_run.state().nodes["resize[1]"]

        def instance_found() -> dict[str, Any] | None:
            hits = flower.search(f"kwargs:wf_run={mapped_run.id} kwargs:wf_node=resize[1]")
            return hits if hits and all(t["state"] == "SUCCESS" for t in hits.values()) else None

        hits = wait_for(instance_found, timeout=30, interval=0.3, message="flower to find resize[1]")

        keyed = Workflow("flower-keyed")  # a keyed run's tasks are found by the key
        keyed.add("only", "proj.add", args=[1, 1])
        keyed_run = engine.submit(keyed, run_key="nightly-2026-12-06")
        keyed_run.wait(timeout=30)

        def key_found() -> dict[str, Any] | None:
            by_key = flower.search("kwargs:wf_key=nightly-2026-12-06")
            text = flower.search("nightly-2026-12-06")
            return by_key if by_key and set(by_key) == set(text) else None

        by_key = wait_for(key_found, timeout=30, interval=0.3, message="flower to find the run key")
    assert list(by_key) == [keyed_run.state().nodes["only"].task_id]
    assert list(hits) == [instance.task_id]
    assert hits[instance.task_id]["result"] == "11"

    state = run.state()
    assert set(found) == {n.task_id for n in state.nodes.values()}
    for task_id, task in found.items():
        node = _node(task)
        assert task_id == state.nodes[node].task_id
        assert task["name"] in ("proj.add", "proj.total")
        assert task["worker"]
    assert set(flower.search(run.id)) == set(found)  # free text: task ids contain the run id
    one = flower.search(f"kwargs:wf_run={run.id} kwargs:wf_node=merge")
    assert [_node(t) for t in one.values()] == ["merge"]
    assert one[state.nodes["merge"].task_id]["result"] == "116"
    assert "wf_run" in one[state.nodes["merge"].task_id]["kwargs"]


def _node(task: dict[str, Any]) -> str:
    import ast

    return str(ast.literal_eval(task["kwargs"])["wf_node"])


def test_event_settings_flower_needs_are_defaults_the_user_can_override(make_test_app: Any) -> None:
    app = make_test_app()
    assert app.conf.task_send_sent_event is True
    assert app.conf.worker_send_task_events is True
    quiet = make_test_app(task_send_sent_event=False, worker_send_task_events=False)
    assert quiet.conf.task_send_sent_event is False
    assert quiet.conf.worker_send_task_events is False


def test_flower_sees_a_tracker_level_retry_as_a_retry(
    app: Celery, engine: Any, flower: Flower, uid: str
) -> None:
    wf = Workflow("flower-retry")
    wf.add("flaky", "proj.flaky", args=[1, f"t{uid}:flower-retry"], retries=2)  # fails once, then 2
    with in_thread_worker(app):

        def probe_seen() -> bool:
            app.send_task("proj.noop", queue=app.conf.task_default_queue)
            return bool(flower.get("/api/tasks", taskname="proj.noop"))

        wait_for(probe_seen, timeout=30, interval=0.3, message="flower to receive task events")
        run = engine.submit(wf)
        assert run.wait(timeout=30) == {"flaky": 2}
        task_id = run.state().nodes["flaky"].task_id

        def finished() -> dict[str, Any] | None:
            # a task-retried event, as for Celery's own Task.retry: events reach Flower in the order they
            # arrive, so the retry may be merged in after the success is already shown
            info = dict(flower.get(f"/api/task/info/{task_id}"))
            return info if info.get("state") == "SUCCESS" and info.get("retried") is not None else None

        info = wait_for(
            finished, timeout=30, interval=0.3, message="flower to see the task retried and succeeded"
        )
    assert info["retries"] == 1  # the message sent again says it is the first retry
    assert info["failed"] is None  # never shown as a failure
