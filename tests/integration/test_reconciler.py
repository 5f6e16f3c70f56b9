"""The reconciler's repairs that no worker death triggers, on real Redis state.

A node RUNNING past its time limit plus grace; a RUNNING run whose nodes are all done; a QUEUED node whose
message was deleted from the broker (``wfcelery_queued_timeout``); one sweeper at a time (the lease); a
gone worker noticed at the heartbeat's pace, not the full sweep's. Each calls ``Reconciler(...).sweep()``
on state a real run left, as ``wfcelery sweep`` does, or runs the elected loop in its threads; the worker
side it repairs through is the app's own (``app._wfcelery_worker``: it publishes to the real broker).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from tests.helpers import counts, in_thread_worker, wait_for
from wfcelery import NodeStatus, RunStatus, Workflow
from wfcelery.worker.heartbeat import GONE_BEATS
from wfcelery.worker.reconciler import Reconciler, Repair


def sweeper(app: Celery, patient: bool = False, hostname: str = "test-sweep") -> Reconciler:
    return Reconciler(app._wfcelery_worker, hostname=hostname, patient=patient)


def alive(engine: Any, host: str, task_ids: set[str], ttl: float = 60) -> None:
    """A heartbeat of ``host``, booted before anything started, running ``task_ids``; its key lives
    ``ttl`` seconds."""
    engine.tracker.beat(host, engine.tracker.server_ms() - 60_000, task_ids, ttl)


@pytest.mark.parametrize("app", [{"wfcelery_time_limit_grace": 1}], indirect=True)
def test_node_running_past_its_time_limit_plus_grace_fails(app: Celery, engine: Any, uid: str) -> None:
    """Its worker lives (it beats and lists the task) but never reports: Celery's own time limit did not
    end it (a hung C call, a lost report). Not before limit + grace; then the node FAILS naming both."""
    host = f"slow-{uid}@here"
    wf = Workflow("time-limit")
    wf.add("a", "proj.count", time_limit=3)
    wf.add("b", "proj.count", after=["a"], immutable=True)
    run = engine.submit(wf)
    alive(engine, host, {run.state().nodes["a"].task_id})
    assert engine.tracker.start(run.id, 0, 0, host).run
    rec = sweeper(app)
    assert rec.sweep() == []  # within its time limit
    repairs = wait_for(rec.sweep, timeout=20, interval=0.2, message="the time-limit repair")
    why = "RUNNING past its time limit of 3 s (+1 s grace)"
    assert repairs == [Repair(run.id, "a", "failed", why)]
    state = run.state()
    assert state.status is RunStatus.FAILED
    assert state.nodes["a"].status is NodeStatus.FAILED
    assert state.nodes["a"].error["type"] == "TimeLimitExceeded"
    assert why in state.nodes["a"].error["message"]
    with pytest.raises(Exception, match="time limit of 3 s"):
        run.wait(timeout=10)


#: The in-worker reconciler of the in-thread worker stays off: only the test's sweeps repair.
NO_WORKER_SWEEPS = {"wfcelery_sweep_interval": 0}


@pytest.mark.parametrize("app", [NO_WORKER_SWEEPS], indirect=True)
def test_running_run_whose_nodes_are_all_done_ends(app: Celery, engine: Any, r: redis.Redis) -> None:
    """A run whose every node SUCCEEDED but whose record still says RUNNING (the state a lost end left
    behind): the sweep ends it, `wait()` returns, and the next sweep drops it from the live list."""
    wf = Workflow("all-done")
    wf.add("a", "proj.count")
    wf.add("b", "proj.count", after=["a"], immutable=True)
    with in_thread_worker(app):
        run = engine.submit(wf)
        assert run.wait(timeout=30) == {"a": "a", "b": "b"}
    keys = engine.tracker.keys
    r.hset(keys.run(run.id), "status", "RUNNING")  # as if the end was never recorded
    r.hdel(keys.run(run.id), "finished")
    log = r.get(keys.events(run.id)) or ""  # nor its line in the event log
    r.set(keys.events(run.id), "".join(x for x in log.splitlines(keepends=True) if " run " not in x))
    r.sadd(keys.live, run.id)
    assert run.state().status is RunStatus.RUNNING
    rec = sweeper(app)
    assert rec.sweep() == [Repair(run.id, None, "finished", "every node was done: SUCCEEDED")]
    state = run.state()
    assert state.status is RunStatus.SUCCEEDED
    assert state.finished_at is not None
    assert run.wait(timeout=10) == {"a": "a", "b": "b"}
    assert rec.sweep() == []
    assert run.id not in engine.tracker.live_runs()


@pytest.mark.parametrize("app", [{**NO_WORKER_SWEEPS, "wfcelery_queued_timeout": 1}], indirect=True)
def test_queued_node_whose_message_was_lost_is_republished_once(
    app: Celery, engine: Any, r: redis.Redis
) -> None:
    """The node's message is deleted from the broker (purged: no worker will ever get it). After
    wfcelery_queued_timeout the sweep re-publishes it under a new epoch -- once: a node that waits on (a
    backlog, no worker yet) is not re-sent again -- and a worker then runs it once."""
    wf = Workflow("lost-message")
    wf.add("a", "proj.count")
    run = engine.submit(wf)
    queue = app.conf.task_default_queue
    assert r.llen(queue) == 1
    assert app.control.purge() == 1  # the message is gone from the broker for good
    assert r.llen(queue) == 0
    rec = sweeper(app)
    assert rec.sweep() == []  # first seen QUEUED now
    repairs = wait_for(rec.sweep, timeout=20, interval=0.2, message="the queued-timeout repair")
    why = "QUEUED 1 s (wfcelery_queued_timeout): its message may be lost"
    assert repairs == [Repair(run.id, "a", "requeued", why)]
    node = run.state().nodes["a"]
    assert (node.status, node.epoch) == (NodeStatus.QUEUED, 1)
    assert r.llen(queue) == 1  # re-published
    # Still QUEUED well past the timeout again (no worker yet): not re-published a second time.
    seen = time.monotonic()
    while time.monotonic() - seen < 3:
        assert rec.sweep() == []
        time.sleep(0.2)
    assert r.llen(queue) == 1
    with in_thread_worker(app):
        assert run.wait(timeout=30) == {"a": "a"}
    assert counts(r, app, run.id) == {"a": 1}


#: A lease of 1.5 s (three beats): a holder whose thread a loaded machine stalls longer loses it, as it
#: should, and the other one sweeps; the test is about a holder that keeps renewing.
@pytest.mark.parametrize("app", [{"wfcelery_heartbeat": 0.5, "wfcelery_sweep_interval": 0.5}], indirect=True)
def test_one_sweeper_at_a_time_and_another_takes_over(
    app: Celery, engine: Any, r: redis.Redis, uid: str
) -> None:
    """Two workers' reconcilers run their elected loops: only the lease holder sweeps; when it stops,
    the other takes the lease once it expires (three beats) and sweeps from then on."""
    swept: list[str] = []

    class Counted(Reconciler):
        def sweep(self, keep_lease: Callable[[], bool] | None = None) -> list[Repair]:
            swept.append(self.hostname)
            return super().sweep(keep_lease)

    side = app._wfcelery_worker
    loops = [Counted(side, f"{name}-{uid}@here") for name in ("one", "two")]
    for loop in loops:
        loop.start()
    try:
        wait_for(lambda: len(swept) >= 10, timeout=20, message="ten sweeps")
        holder = r.get(engine.tracker.keys.reconciler)
        assert set(swept) == {holder}, swept
        first, other = (loops[0], loops[1]) if holder == loops[0].hostname else (loops[1], loops[0])
        first.stop()
        wait_for(lambda: swept[-1] == other.hostname, timeout=20, message="the other one sweeping")
        del swept[: swept.index(other.hostname)]
        wait_for(lambda: len(swept) >= 10, timeout=20, message="ten more sweeps")
        assert set(swept) == {other.hostname}, swept
        assert r.get(engine.tracker.keys.reconciler) == other.hostname
    finally:
        for loop in loops:
            loop.stop()


@pytest.fixture
def running_loop() -> Iterator[list[Reconciler]]:
    started: list[Reconciler] = []
    yield started
    for loop in started:
        loop.stop()


@pytest.mark.parametrize("app", [{"wfcelery_heartbeat": 0.3, "wfcelery_sweep_interval": 600}], indirect=True)
def test_gone_worker_is_noticed_at_the_heartbeat_pace_not_the_sweeps(
    app: Celery, engine: Any, r: redis.Redis, uid: str, running_loop: list[Reconciler], caplog: Any
) -> None:
    """The elected loop's first full sweep is 10 minutes away. The worker beat once and stopped: the loop's
    heartbeat check finds its last beat GONE_BEATS beats old, sweeps at once and re-publishes the node --
    and stops watching that worker."""
    ghost = f"ghost-{uid}@nowhere"
    wf = Workflow("ghost")
    wf.add("a", "proj.count")
    run = engine.submit(wf)
    alive(engine, ghost, {run.state().nodes["a"].task_id}, ttl=3)
    assert engine.tracker.start(run.id, 0, 0, ghost).run
    assert ghost in engine.tracker.workers()
    caplog.set_level(logging.WARNING, logger="wfcelery.reconciler")
    loop = Reconciler(app._wfcelery_worker, f"sweeper-{uid}@here")
    running_loop.append(loop)
    started = time.monotonic()
    loop.start()
    expected = f"{run.id} a: requeued (worker {ghost} is gone (no heartbeat for "
    wait_for(lambda: any(expected in m for m in caplog.messages), timeout=20, message="the requeue")
    # the beat is GONE_BEATS beats (of 0.3 s) old once the loop has reached Redis for a beat and a second
    # (its first tick after 0.3 s): far before 600 s
    assert time.monotonic() - started < GONE_BEATS * 0.3 + 0.3 + 1.3 + 5
    node = run.state().nodes["a"]
    assert (node.status, node.epoch) == (NodeStatus.QUEUED, 1)
    assert ghost not in engine.tracker.workers()
