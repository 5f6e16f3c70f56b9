"""The local start gate (worker/gate.py) against real workers and a real Redis: a worker process with a
fresh gate lease starts nodes without asking the tracker, and pause stays strict -- it waits for every
live lease holder's acknowledgement, or for a silent one's lease to lapse; a change a process missed on
the channel is applied at its next renewal; without a lease every start asks start.lua."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from tests.helpers import counts, in_thread_worker, wait_for
from tests.integration.test_faults import kill_whole
from wfcelery import NodeStatus, RunStatus, Workflow
from wfcelery.tracker.records import GATE_SEQ_FIELD, GateEntry

LEASE = 2.0  # seconds: short, so that a lapse is quick to wait for


def _leases(r: Any, engine: Any) -> dict[str, str]:
    return r.hgetall(engine.tracker.keys.gate_leases)


def _lease_left(r: Any, engine: Any) -> float:
    """Seconds left on the freshest gate lease, by Redis's clock (negative: none live)."""
    seconds, micros = r.time()
    now_ms = seconds * 1000 + micros // 1000
    left = [int(value.split(":")[0]) - now_ms for value in _leases(r, engine).values()]
    return max(left, default=-1) / 1000


def _four_blocked(engine: Any, name: str, key: str) -> Any:
    """Submit four independent proj.count_block nodes that run until the test pushes to ``key``."""
    wf = Workflow(name)
    for i in range(4):
        wf.add(f"n{i}", "proj.count_block", args=[key, 60], immutable=True)
    return engine.submit(wf)


@pytest.mark.parametrize("app", [{"wfcelery_gate_lease": LEASE}], indirect=True)
def test_pause_waits_for_a_frozen_workers_lease_and_nothing_starts_there(
    app: Any, engine: Any, r: Any, uid: str, worker_process: Any
) -> None:
    """A worker (one process: threads pool) holds a lease and has two node messages reserved beside the
    two it runs, when it freezes (SIGSTOP). pause() cannot have its acknowledgement: it returns once the
    lease has lapsed, and after SIGCONT the reserved messages start nothing."""
    queue = app.conf.task_default_queue
    conf = {"wfcelery_gate_lease": LEASE}
    worker = worker_process(app, [queue], "frozen", pool="threads", concurrency=2, conf=conf)
    key = f"{uid}:go"
    run = _four_blocked(engine, "frozen-lease", key)
    wait_for(lambda: run.state().counts["RUNNING"] == 2, timeout=30, message="two nodes RUNNING")
    # A lease just renewed (on a busy host a renewal can come late, and a lease that lapsed before the
    # freeze is rightly not waited for: its holder no longer trusts it either)
    wait_for(lambda: _lease_left(r, engine) >= LEASE * 0.6, timeout=10, message="a fresh gate lease")
    worker.proc.send_signal(signal.SIGSTOP)
    try:
        began = time.monotonic()
        state = run.pause()
        waited = time.monotonic() - began
        assert state.status is RunStatus.PAUSED
        # It waited for the lease to lapse (renewed every LEASE/4 before the freeze), and not much longer.
        assert LEASE * 0.5 <= waited <= LEASE + 8, waited
        queued_at_pause = {n for n, s in state.nodes.items() if s.status is NodeStatus.QUEUED}
        assert len(queued_at_pause) == 2
    finally:
        worker.proc.send_signal(signal.SIGCONT)
    r.rpush(key, "go", "go")  # the two running bodies end
    wait_for(lambda: run.state().counts["SUCCEEDED"] == 2, timeout=30, message="the two running nodes to end")
    wait_for(lambda: r.llen(queue) == 0, timeout=30, message="the queue drained")
    # Tasks sent now run after the reserved messages were handed to the pool: none of those started a body.
    markers = [app.send_task("proj.echo", args=[i]) for i in range(4)]
    wait_for(lambda: all(m.ready() for m in markers), timeout=30, message="the worker to run 4 other tasks")
    assert set(counts(r, app, run.id)) == set(state.nodes) - queued_at_pause
    final = run.state()
    assert final.status is RunStatus.PAUSED
    assert {n for n, s in final.nodes.items() if s.status is NodeStatus.QUEUED} <= queued_at_pause
    assert not any(s.status is NodeStatus.RUNNING for s in final.nodes.values())


@pytest.mark.parametrize("app", [{"wfcelery_gate_lease": LEASE}], indirect=True)
def test_a_gate_change_missed_on_the_channel_is_applied_at_the_next_renewal(
    app: Any, engine: Any, r: Any, uid: str
) -> None:
    """A change written to the table without its channel message (as if the message were lost): the
    leased process finds the table ahead of it when it renews its lease, reads it again and acknowledges;
    from then on it sends that run's starts to the tracker."""
    wf = Workflow("missed-change")
    wf.add("a", "proj.count")
    with in_thread_worker(app):
        engine.submit(wf).wait(timeout=30)  # the worker process takes its lease with its first node
        assert _leases(r, engine)
        side = app._wfcelery_worker
        run_id = f"gone-{uid}"
        seq = r.hincrby(engine.tracker.keys.gate, GATE_SEQ_FIELD, 1)
        r.hset(engine.tracker.keys.gate, run_id, GateEntry("P", 0, 0).encode())  # no PUBLISH
        assert engine.tracker.await_gate(seq, timeout=LEASE + 8) == []  # acknowledged after a resync
        assert side.message_filter.entries.get(run_id) == ("P", 0)
        assert not side.gate.admit(f"{run_id}-0-0", run_id, 0, 0, "h")  # the tracker decides its starts


@pytest.mark.parametrize("app", [{"wfcelery_gate_lease": 0}], indirect=True)
def test_without_a_lease_every_start_asks_the_tracker(app: Any, engine: Any, r: Any) -> None:
    """``wfcelery_gate_lease = 0``: no lease is taken and every node's start is start.lua's (its RUNNING
    record is written before the body, with its attempt number)."""
    wf = Workflow("no-lease")
    wf.add("a", "proj.count")
    wf.add("b", "proj.count", after=["a"], immutable=True)
    with in_thread_worker(app):
        run = engine.submit(wf)
        run.wait(timeout=30)
    assert _leases(r, engine) == {}
    events = [e.status for e in engine.tracker.events(run.id)[1] if e.node is not None]
    assert events.count("R") == 2


# Long enough that a loaded machine's late renewal does not send the two starts to start.lua (the test is
# about starts whose records were never written); the dead worker's lease lapses before the repair's fence.
@pytest.mark.parametrize("lease", [0, 10.0], ids=["start-script", "local-gate"])
def test_nodes_a_sigkilled_worker_took_are_sent_again_long_before_the_visibility_timeout(
    lease: float, app: Any, engine: Any, r: Any, uid: str, worker_process: Any
) -> None:
    """A worker (one process, two threads) runs two blocking nodes and holds two more messages it
    reserved when it is SIGKILLed. On a Redis broker its four messages wait in the ``unacked`` hash for
    the visibility timeout (an hour). With the local gate on and ``wfcelery_running_delay`` long, the
    two running nodes were never even recorded RUNNING: all four are QUEUED. The reconciler of another
    worker finds the reserved messages delivered to no live worker (and the RUNNING nodes, if recorded, on
    a dead one) and sends them again under new epochs: the run completes within a minute and a half."""
    queue = app.conf.task_default_queue
    conf = {
        "wfcelery_gate_lease": lease,
        "wfcelery_running_delay": 60,
        "wfcelery_heartbeat": 1,
        "wfcelery_sweep_interval": 1,
        "wfcelery_lost_message_after": 2,
    }
    reserving = {**conf, "worker_prefetch_multiplier": 2}  # two more messages than threads
    doomed = worker_process(app, [queue], "doomed", pool="threads", concurrency=2, conf=reserving)
    key = f"{uid}:go"
    run = _four_blocked(engine, "killed-with-messages", key)
    wait_for(lambda: len(counts(r, app, run.id)) == 2, timeout=30, message="two bodies running")
    wait_for(lambda: r.llen(queue) == 0, timeout=30, message="the other two messages reserved")
    recorded = run.state().counts["RUNNING"]
    assert recorded == (0 if lease else 2)  # with the gate, RUNNING is owed for wfcelery_running_delay
    kill_whole(doomed)
    worker_process(app, [queue], "heir", concurrency=4, conf={**conf, "wfcelery_running_delay": 0.1})
    r.rpush(key, *["go"] * 4)
    run.wait(timeout=90)
    state = run.state()
    assert state.status is RunStatus.SUCCEEDED
    assert all(n.epoch > 0 for n in state.nodes.values())  # every node sent again
    assert sorted(counts(r, app, run.id).values()) == [1, 1, 2, 2]  # the two killed bodies, and no more


def test_a_message_a_live_worker_holds_for_its_rate_limit_is_not_sent_again(
    app: Any, engine: Any, r: Any, worker_process: Any
) -> None:
    """A rate-limited task (6/m: one start every 10 s) on a live worker: each message after the first waits
    in the worker's token bucket -- delivered, unacknowledged, in none of Celery's reserved, active or
    scheduled lists -- longer than ``wfcelery_lost_message_after`` (2 s). The lost-message check asks the
    worker what it holds (``wfcelery_held``) and sends nothing again: every node runs once, at epoch 0."""
    queue = app.conf.task_default_queue
    conf = {
        "wfcelery_heartbeat": 1,
        "wfcelery_sweep_interval": 1,
        "wfcelery_lost_message_after": 2,
        "task_annotations": {"proj.count": {"rate_limit": "6/m"}},
    }
    worker_process(app, [queue], "limited", pool="threads", concurrency=1, conf=conf)
    wf = Workflow("rate-limited")
    for i in range(3):
        wf.add(f"n{i}", "proj.count")
    run = engine.submit(wf)
    run.wait(timeout=90)
    state = run.state()
    assert state.status is RunStatus.SUCCEEDED
    assert [n.epoch for n in state.nodes.values()] == [0, 0, 0]  # none sent again
    assert counts(r, app, run.id) == {"n0": 1, "n1": 1, "n2": 1}
