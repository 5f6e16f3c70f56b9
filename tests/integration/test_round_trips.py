"""The hot path's tracker round trips, counted on the wire: a real worker whose tracker client counts every
request it sends to the real Redis from the threads that run tasks (the success report after the body
runs there; the worker's services -- heartbeat, reconciler, message filter, the local gate's lease and its
writer of RUNNING records -- run in threads of their own and are not counted).

Budget (docs: design): with the local gate (``wfcelery_gate_lease``, on by default), one per node --
succeed.lua after the body, which also records the node's start (the worker's leased gate let the body
start without asking: worker/gate.py) and returns what a released fan-in child needs; without it (a
lease of 0), start.lua before the body and succeed.lua after it -- plus, once per run, one pipeline when
the run ends (the plan's refresh, and the read of the run's parent: a child run settles its parent's
node). A regression to one more call per node
(an HMGET of fan-in arguments, a separate read) fails here. A message that may be a copy (redelivered,
re-sent, retried), or a process without a fresh lease, asks start.lua first.

A submit costs two, whatever the run's size: create.lua writes the run, the shared plan, the run index and
the live set; once the roots' messages are out, one pipeline confirms the run and writes the submit's
audit entry (as many as a pipelined create and the audit entry's XADD). The confirmation is what lets the
reconciler tell a run whose client gave up on its write (never published: it must never run) from one
whose messages wait in a backlog (Redis cannot know whether a client read a reply).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any, ClassVar

import pytest
import redis

from tests.helpers import counts, in_thread_worker, wait_for
from wfcelery import NodeStatus, RunStatus, Workflow
from wfcelery.tracker.store import Tracker


class CountingConnection(redis.Connection):
    """A redis-py connection that records each request sent from a task-running (pool) thread.

    A connection's handshake (HELLO, CLIENT SETINFO, SELECT) is not counted: it happens once per pooled
    connection, whenever the pool first needs a second one, not once per node."""

    log: ClassVar[list[str]] = []
    lock = threading.Lock()
    handshake = False
    #: Threads whose requests are counted (by name prefix): the pool threads that run tasks.
    counted: ClassVar[str] = "ThreadPoolExecutor"

    def on_connect_check_health(self, check_health: bool = True) -> None:
        self.handshake = True
        try:
            super().on_connect_check_health(check_health)
        finally:
            self.handshake = False

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self._name = str(args[0])
        super().send_command(*args, **kwargs)

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.handshake and threading.current_thread().name.startswith(self.counted):
            name, self._name = getattr(self, "_name", "PIPELINE"), "PIPELINE"
            with self.lock:
                self.log.append(name)
        super().send_packed_command(command, check_health)


def _workflow(pool: str | None = None) -> Workflow:
    wf = Workflow("round-trips" if pool is None else "round-trips-pooled")
    a = wf.add("a", "proj.add", args=[1], pool=pool)
    b = wf.add("b", "proj.add", args=[2], after=[a], pool=pool)
    c = wf.add("c", "proj.add", args=[3], after=[b], pool=pool)  # a chain: one parent each
    x = wf.add("x", "proj.add", args=[10], pool=pool)
    wf.add("join", "proj.total", after=[c, x], pool=pool)  # a fan-in: gets [c's result, x's result]
    return wf


def _counted_worker_tracker(app: Any, engine: Any, redis_url: str) -> redis.Redis:
    client = redis.Redis.from_url(redis_url, decode_responses=True, connection_class=CountingConnection)
    app._wfcelery_worker.__dict__["tracker"] = Tracker(engine.settings, client=client)
    return client


@pytest.mark.parametrize(
    ("app", "per_node"),
    [({"wfcelery_gate_lease": 4}, 1), ({"wfcelery_gate_lease": 0}, 2)],
    indirect=["app"],
    ids=["local-gate", "start-script"],
)
def test_tracker_round_trips_per_node(app: Any, engine: Any, redis_url: str, per_node: int) -> None:
    client = _counted_worker_tracker(app, engine, redis_url)  # the worker's tracker only
    wf = _workflow()
    with in_thread_worker(app):
        engine.submit(wf).wait(timeout=30)  # warm: the worker caches the plan (one GET per plan and process)
        client.connection_pool.disconnect()  # the counted run connects anew: handshakes are not counted
        CountingConnection.log.clear()
        run = engine.submit(wf)
        results = run.wait(timeout=30)
    calls = Counter(CountingConnection.log)
    nodes = len(wf.nodes)
    assert run.state().status is RunStatus.SUCCEEDED
    assert results["join"] == 16  # the fan-in got both parents' results from succeed.lua
    # local gate: succeed (with the start) per node; without it, start.lua and succeed. At the run's end one
    # pipeline keeps the plan and indexes the run's end.
    assert calls == Counter({"EVALSHA": per_node * nodes, "PIPELINE": 1}), calls
    state = run.state()  # every start recorded all the same: attempt, worker, start time
    assert all(n.attempts == 1 and n.worker and n.started_at for n in state.nodes.values()), state.nodes


@pytest.mark.parametrize("app", [{"wfcelery_pools": {"db": 10}}], indirect=True)
def test_a_pooled_node_gives_its_slot_back_in_its_success_call(app: Any, engine: Any, redis_url: str) -> None:
    """On one Redis server a pooled node's slot goes back in succeed.lua's own step: a pooled node costs
    its success call, plus one pool_acquire per child it releases (the slot is taken at publish)."""
    client = _counted_worker_tracker(app, engine, redis_url)
    wf = _workflow(pool="db")
    with in_thread_worker(app):
        engine.submit(wf).wait(timeout=30)
        client.connection_pool.disconnect()
        CountingConnection.log.clear()
        run = engine.submit(wf)
        results = run.wait(timeout=30)
    assert results["join"] == 16
    # five success calls; b, c and join were released by a worker and took their slots there (a and x: the
    # submit's); no pool_release after any success
    assert Counter(CountingConnection.log) == Counter({"EVALSHA": 5 + 3, "PIPELINE": 1})
    assert (engine.pool("db").used, engine.pool("db").waiting) == (0, 0)


class SubmitCountingConnection(CountingConnection):
    """Counts the requests of the test's own thread: the client's submit."""

    log: ClassVar[list[str]] = []
    counted = "MainThread"


def test_two_tracker_round_trips_per_submit(app: Any, engine: Any, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True, connection_class=SubmitCountingConnection)
    engine.__dict__["tracker"] = Tracker(engine.settings, client=client)
    wf = _workflow()  # two roots, five nodes
    engine.submit(wf)  # the first submit loads the scripts
    client.connection_pool.disconnect()
    SubmitCountingConnection.log.clear()
    run = engine.submit(wf)
    assert Counter(SubmitCountingConnection.log) == Counter({"EVALSHA": 1, "PIPELINE": 1})
    assert client.hget(engine.tracker.keys.run(run.id), "unconfirmed") is None  # confirmed


@pytest.mark.parametrize(
    ("app", "first"),
    [
        ({"wfcelery_inline_depth": 10, "wfcelery_gate_lease": 4}, 0),
        ({"wfcelery_inline_depth": 10, "wfcelery_gate_lease": 0}, 1),
    ],
    indirect=["app"],
    ids=["local-gate", "start-script"],
)
def test_inline_chain_one_round_trip_per_node(app: Any, engine: Any, redis_url: str, first: int) -> None:
    client = _counted_worker_tracker(app, engine, redis_url)
    wf = Workflow("inline-chain")
    wf.add("n0", "proj.add", args=[1])
    for i in range(1, 6):
        wf.add(f"n{i}", "proj.add", args=[i], after=[f"n{i - 1}"])
    with in_thread_worker(app):
        engine.submit(wf).wait(timeout=30)  # warm the plan cache
        client.connection_pool.disconnect()
        CountingConnection.log.clear()
        run = engine.submit(wf)
        results = run.wait(timeout=30)
    nodes = len(wf.nodes)
    state = run.state()
    assert state.status is RunStatus.SUCCEEDED
    assert results["n5"] == 1 + sum(range(1, 6))  # each child got its parent's result
    assert all(n.attempts == 1 for n in state.nodes.values())
    # one succeed.lua per node (each starts the next node); the first node's start is start.lua's, or
    # recorded by its succeed.lua on the local gate
    assert Counter(CountingConnection.log) == Counter({"EVALSHA": nodes + first, "PIPELINE": 1})


@pytest.mark.parametrize("app", [{"wfcelery_inline_depth": 10}], indirect=True)
def test_pause_refuses_the_next_inline_child(app: Any, engine: Any, r: Any, uid: str) -> None:
    key = f"{uid}:go"
    wf = Workflow("inline-pause")
    wf.add("a", "proj.count")
    wf.add("b", "proj.count_block", args=[key], after=["a"], immutable=True)  # runs inline after a
    wf.add("c", "proj.count", after=["b"], immutable=True)
    with in_thread_worker(app):
        run = engine.submit(wf)
        wait_for(lambda: run.state().nodes["b"].status is NodeStatus.RUNNING, message="b RUNNING")
        assert run.pause().status is RunStatus.PAUSED
        r.rpush(key, "go")
        wait_for(lambda: run.state().nodes["b"].status is NodeStatus.SUCCEEDED, message="b SUCCEEDED")
        state = run.state()  # b's succeed.lua saw the pause: c was neither released nor started
        assert state.status is RunStatus.PAUSED
        assert state.nodes["c"].status is NodeStatus.PENDING
        assert counts(r, app, run.id) == {"a": 1, "b": 1}
        run.resume()
        run.wait(timeout=30)
    assert counts(r, app, run.id) == {"a": 1, "b": 1, "c": 1}


@pytest.mark.parametrize("app", [{"wfcelery_inline_depth": 10}], indirect=True)
def test_inline_children_send_task_events(app: Any, engine: Any) -> None:
    """What Flower sees of a continued child: task-received, task-started, task-succeeded under its own
    task id and name (no task-sent: no message was published)."""
    seen: list[dict[str, Any]] = []
    with app.connection_for_read() as conn:
        receiver = app.events.Receiver(conn, handlers={"*": seen.append})
        listening = threading.Thread(target=receiver.capture, kwargs={"limit": None}, daemon=True)
        listening.start()
        try:
            wf = Workflow("inline-events")
            wf.add("a", "proj.add", args=[1])
            wf.add("b", "proj.add", args=[2], after=["a"])
            with in_thread_worker(app):
                run = engine.submit(wf)
                run.wait(timeout=30)
                child = f"{run.id}-1-0"  # node b, epoch 0

                def kinds() -> set[str]:
                    return {e["type"] for e in list(seen) if e.get("uuid") == child}

                wait_for(lambda: "task-succeeded" in kinds(), message="b's task-succeeded event")
        finally:
            receiver.should_stop = True
            listening.join(10)
    events = {e["type"]: e for e in list(seen) if e.get("uuid") == child}
    assert {"task-received", "task-started", "task-succeeded"} <= set(events)
    assert "task-sent" not in events
    assert events["task-received"]["name"] == "proj.add"
    assert run.state().nodes["b"].attempts == 1
