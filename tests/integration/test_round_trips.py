"""The hot path's tracker round trips, counted on the wire: a real worker whose tracker client counts every
request it sends to the real Redis from the threads that run tasks (the start gate before the body and the
success report after it run there; the worker's services -- heartbeat, reconciler, message filter -- run
in threads of their own and are not counted).

Budget (README "Performance"): two per node -- start.lua before the body, succeed.lua after it, which also
returns what a released fan-in child needs -- plus, once per run, the plan's refresh when the run ends.
A regression to a third call per node (an HMGET of fan-in arguments, a separate read) fails here.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, ClassVar

import redis

from tests.helpers import in_thread_worker
from wfcelery import RunStatus, Workflow
from wfcelery.tracker import Tracker


class CountingConnection(redis.Connection):
    """A redis-py connection that records each request sent from a task-running (pool) thread."""

    log: ClassVar[list[str]] = []
    lock = threading.Lock()

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self._name = str(args[0])
        super().send_command(*args, **kwargs)

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if threading.current_thread().name.startswith("ThreadPoolExecutor"):
            name, self._name = getattr(self, "_name", "PIPELINE"), "PIPELINE"
            with self.lock:
                self.log.append(name)
        super().send_packed_command(command, check_health)


def _workflow() -> Workflow:
    wf = Workflow("round-trips")
    a = wf.add("a", "proj.add", args=[1])
    b = wf.add("b", "proj.add", args=[2], after=[a])
    c = wf.add("c", "proj.add", args=[3], after=[b])  # a chain: one parent each
    x = wf.add("x", "proj.add", args=[10])
    wf.add("join", "proj.total", after=[c, x])  # a fan-in: gets [c's result, x's result]
    return wf


def test_two_tracker_round_trips_per_node(app: Any, engine: Any, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True, connection_class=CountingConnection)
    side = app._wfcelery_worker
    side.__dict__["tracker"] = Tracker(engine.settings, client=client)  # the worker's tracker only
    wf = _workflow()
    with in_thread_worker(app):
        engine.submit(wf).wait(timeout=30)  # warm: the worker caches the plan (one GET per plan and process)
        CountingConnection.log.clear()
        run = engine.submit(wf)
        results = run.wait(timeout=30)
    calls = Counter(CountingConnection.log)
    nodes = len(wf.nodes)
    assert run.state().status is RunStatus.SUCCEEDED
    assert results["join"] == 16  # the fan-in got both parents' results from succeed.lua
    assert calls == Counter({"EVALSHA": 2 * nodes, "EXPIRE": 1}), calls  # start + succeed per node
