"""Pause, resume, cancel and retry on a real Redis with real workers (DESIGN.md section 5).

The guarantees under test:
  * after ``pause()`` returns no node of the run starts until ``resume()`` -- also on a worker that missed the
    revoke broadcast (it was down) or whose message filter is stale (the start gate, start.lua, refuses it);
  * nodes running at the pause finish and are recorded; their children wait; resume completes the run and
    every node runs exactly once;
  * cancel is final (``terminate=True`` kills the running task on prefork); retry re-runs only what did not
    succeed; a worker process killed mid-task is redelivered (acks_late) and no child is released twice;
  * every operation is idempotent and refuses clearly.

Probes (tests/proj.py): ``proj.record`` writes start/end times (Redis TIME) and a runs counter per node,
``proj.count`` a counter per node, ``proj.block`` runs until the test pushes to a Redis list.
"""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest
import redis

from tests.helpers import counts, in_thread_worker, probe, wait_for
from wfcelery import ControlError, NodeStatus, RunNotFound, RunState, RunStatus, Workflow

pytestmark = pytest.mark.timeout(90)


# -- helpers -------------------------------------------------------------------------------------------


def queue_len(r: redis.Redis, queue: str) -> int:
    """Messages waiting in a kombu Redis queue (the plain list and its priority lists)."""
    return sum(int(r.llen(name)) for name in [queue] + [f"{queue}\x06\x16{p}" for p in (3, 6, 9)])


def unacked_of(r: redis.Redis, run_id: str) -> int:
    """Messages of this run delivered to a worker and not acknowledged yet (kombu's ``unacked`` hash)."""
    return sum(run_id in v for v in r.hvals("unacked"))


def redis_now_ms(r: redis.Redis) -> float:
    sec, usec = r.time()
    return int(sec) * 1000 + int(usec) / 1000


def node_statuses(state: RunState) -> dict[str, NodeStatus]:
    return {name: n.status for name, n in state.nodes.items()}


def of_status(state: RunState, *statuses: NodeStatus) -> set[str]:
    return {name for name, n in state.nodes.items() if n.status in statuses}


def layered(name: str, layers: int, width: int, task: str, **kwargs: Any) -> Workflow:
    """``layers`` x ``width`` nodes; node i of a layer waits for nodes i and i+1 of the previous one."""
    wf = Workflow(name)
    for layer in range(layers):
        for i in range(width):
            after = [] if layer == 0 else [f"L{layer - 1}_{i}", f"L{layer - 1}_{(i + 1) % width}"]
            wf.add(f"L{layer}_{i}", task, after=after, kwargs=dict(kwargs))
    return wf


def drained(r: redis.Redis, queue: str, run_id: str) -> bool:
    """Every message of the run published so far has been consumed and acknowledged (run or dropped)."""
    return queue_len(r, queue) == 0 and unacked_of(r, run_id) == 0


# -- 1. pause a 300-node run mid-flight ----------------------------------------------------------------


@pytest.mark.parametrize("lease", [0, 4], ids=["start-script", "local-gate"])
def test_pause_mid_flight_nothing_starts_then_resume_runs_every_node_once(
    app, engine, r, worker_process, lease
):
    queue = app.conf.task_default_queue
    conf = {"wfcelery_gate_lease": lease}
    worker_process(app, [queue], "p1", concurrency=2, conf=conf)
    worker_process(app, [queue], "p2", concurrency=2, conf=conf)
    wf = layered("pause300", layers=10, width=30, task="proj.record", sleep=0.01)
    run = engine.submit(wf)

    wait_for(lambda: run.state().counts["SUCCEEDED"] >= 60, timeout=60, message="60 nodes done")
    state = run.pause()
    paused_ms = redis_now_ms(r)  # the moment pause() returned, on Redis's clock (the probes' clock)

    assert isinstance(state, RunState)
    assert state.status is RunStatus.PAUSED
    assert state.paused_at is not None
    done_at_pause = state.counts["SUCCEEDED"]
    assert 60 <= done_at_pause < 300, "pause came too late to test anything"
    running_at_pause = of_status(state, NodeStatus.RUNNING)

    # Running nodes finish and are recorded; then nothing is running and every message of the run that was
    # out (queued before the pause) has been consumed and dropped by the workers' gates.
    wait_for(lambda: run.state().counts["RUNNING"] == 0, timeout=30, message="running nodes to finish")
    wait_for(lambda: drained(r, queue, run.id), timeout=30, message="queued messages to be dropped")
    before = r.hgetall(engine.tracker.keys.nodes(run.id)), probe(r, app, run.id)
    # Both workers are up and consuming: tasks sent now run to the end; meanwhile nothing of the run moves.
    markers = [app.send_task("proj.echo", args=[i]) for i in range(8)]
    wait_for(lambda: all(m.ready() for m in markers), timeout=30, message="the workers to run 8 other tasks")
    after = r.hgetall(engine.tracker.keys.nodes(run.id)), probe(r, app, run.id)
    assert after == before, "a node changed while the run was paused"

    paused = run.state()
    assert paused.status is RunStatus.PAUSED
    # The tracker's start times (set by the start gate, atomic with pause) are all before the pause.
    late = {
        name: n.started_at
        for name, n in paused.nodes.items()
        if n.started_at is not None and n.started_at > paused.paused_at
    }
    assert not late, f"nodes started after the pause: {late}"
    # The probes' own start times: only nodes RUNNING in the state pause() returned may start after it.
    body_started_late = {
        k.split(":")[0] for k, v in after[1].items() if k.endswith(":start") and int(v) / 1000 > paused_ms
    }
    assert body_started_late <= running_at_pause
    # Children of the nodes that finished during the pause were not released.
    assert paused.counts["SUCCEEDED"] == done_at_pause + len(
        running_at_pause & of_status(paused, NodeStatus.SUCCEEDED)
    )
    assert of_status(
        paused, NodeStatus.PENDING, NodeStatus.QUEUED, NodeStatus.REVOKED, NodeStatus.SUCCEEDED
    ) == set(paused.nodes)

    resumed = run.resume()
    assert resumed.status is RunStatus.RUNNING
    assert resumed.epoch == state.epoch + 1
    results = run.wait(timeout=90)
    assert len(results) == 300
    final = run.state()
    assert final.status is RunStatus.SUCCEEDED
    assert final.counts["SUCCEEDED"] == 300
    runs = {k.split(":")[0]: int(v) for k, v in probe(r, app, run.id).items() if k.endswith(":runs")}
    assert runs == {name: 1 for name in wf.nodes}, "some node ran twice or never"
    assert all(n.attempts == 1 for n in final.nodes.values())


# -- 2. lost revoke: the worker was down when the run was paused ----------------------------------------


def fan_out(name: str, key: str, width: int = 8) -> Workflow:
    """A ``proj.block`` root (held by the test) and ``width`` proj.count children, fanned in to ``end``."""
    wf = Workflow(name)
    root = wf.add("root", "proj.block", args=[key, 60], immutable=True)
    kids = [wf.add(f"k{i}", "proj.count") for i in range(width)]
    root >> kids >> wf.add("end", "proj.count")
    return wf


def test_lost_revoke_worker_started_after_pause_runs_nothing(app, engine, r, uid, worker_process):
    queue = app.conf.task_default_queue
    first = worker_process(app, [queue], "lost-a", concurrency=2)
    gated = engine.submit(fan_out("lost1", f"{uid}:go1"))  # dropped by the new worker's message filter
    stale = engine.submit(fan_out("lost2", f"{uid}:go2"))  # its gate entry vanishes: the start script refuses
    for run in (gated, stale):
        wait_for(
            lambda run=run: run.state().nodes["root"].status is NodeStatus.RUNNING,
            timeout=30,
            message="the root to run",
        )

    # The only worker goes down while the roots run; their success publishes the children into the queue.
    first.proc.send_signal(signal.SIGTERM)  # warm shutdown: stops consuming, lets running tasks finish
    # It no longer answers a ping once its consumer has stopped (the roots it runs are still blocked).
    wait_for(
        lambda: not app.control.ping(destination=[first.hostname], timeout=0.3),
        timeout=30,
        message="the worker to stop consuming",
    )
    r.rpush(f"{uid}:go1", "go")
    r.rpush(f"{uid}:go2", "go")
    first.proc.wait(timeout=30)
    for run in (gated, stale):
        wait_for(
            lambda run=run: run.state().nodes["root"].status is NodeStatus.SUCCEEDED,
            timeout=10,
            message="the roots to be recorded",
        )
    assert queue_len(r, queue) > 0, "the children should wait in the queue"

    # Pause with no worker listening: the revoke broadcast is lost.
    at_pause = {run.id: run.pause() for run in (gated, stale)}
    # The second worker's message filter has never heard of `stale` being paused (as if the pub/sub message
    # and the resync were both missed), and the worker has no local gate (a leased process cannot miss a
    # change: it acknowledges each one, test_local_gate.py): only the start script stands in the way.
    r.hdel(engine.tracker.keys.gate, stale.id)

    worker_process(app, [queue], "lost-b", concurrency=2, conf={"wfcelery_gate_lease": 0})
    wait_for(
        lambda: all(drained(r, queue, run.id) for run in (gated, stale)),
        timeout=30,
        message="the new worker to consume the queued messages",
    )

    for run in (gated, stale):
        state, before = run.state(), at_pause[run.id]
        not_started = of_status(before, NodeStatus.QUEUED, NodeStatus.PENDING)
        assert {f"k{i}" for i in range(8)} <= not_started | set(counts(r, app, run.id))
        assert len(not_started) >= 8, "most children should still have been queued at the pause"
        ran = {n for n, c in counts(r, app, run.id).items() if c}
        assert not ran & not_started, f"nodes of a paused run ran: {ran & not_started}"
        assert state.status is RunStatus.PAUSED
        assert of_status(state, NodeStatus.RUNNING) == set()
        ends = {state.nodes[n].status for n in not_started}
        assert ends <= {NodeStatus.QUEUED, NodeStatus.PENDING, NodeStatus.REVOKED}
    # The stale filter let the messages through to the pool; the start script refused them there.
    assert of_status(stale.state(), NodeStatus.REVOKED) >= {f"k{i}" for i in range(8)} - set(
        counts(r, app, stale.id)
    )

    for run in (gated, stale):
        assert run.resume().status is RunStatus.RUNNING
    for run in (gated, stale):
        run.wait(timeout=30)
        assert counts(r, app, run.id) == {**{f"k{i}": 1 for i in range(8)}, "end": 1}


# -- 3. cancel ----------------------------------------------------------------------------------------------


def test_cancel_lets_the_running_task_finish_starts_nothing_and_is_final(app, engine, r, uid):
    queue = app.conf.task_default_queue
    wf = fan_out("cancel", f"{uid}:go", width=3)
    for i in range(4):
        wf.add(f"x{i}", "proj.count")  # independent roots, queued behind the root (one worker thread)
    with in_thread_worker(app, concurrency=1):
        run = engine.submit(wf)
        wait_for(lambda: run.state().nodes["root"].status is NodeStatus.RUNNING, message="the root to run")
        state = run.cancel()
        assert state.status is RunStatus.CANCELLED
        assert state.finished_at is not None
        assert state.nodes["root"].status is NodeStatus.RUNNING  # not terminated: it goes on
        assert of_status(state, NodeStatus.REVOKED) == set(wf.nodes) - {"root"}
        again = run.cancel()  # idempotent
        assert again.status is RunStatus.CANCELLED
        assert node_statuses(again) == node_statuses(state)

        r.rpush(f"{uid}:go", "go")
        wait_for(
            lambda: run.state().nodes["root"].status is NodeStatus.SUCCEEDED, message="the root recorded"
        )
        wait_for(lambda: drained(r, queue, run.id), message="queued messages dropped")
        final = run.state()
        assert final.status is RunStatus.CANCELLED
        assert counts(r, app, run.id) == {}, "nothing may start after cancel"
        assert engine.tracker.results(run.id) == {0: "released"}
        for op in (run.pause, run.resume):
            with pytest.raises(ControlError, match="CANCELLED"):
                op()

    # A cancelled run can be retried: only what did not succeed runs, the root is not run again.
    assert run.retry().status is RunStatus.RUNNING  # no worker now: nothing can end it before this read
    with in_thread_worker(app, concurrency=1):
        assert run.wait(timeout=30)["end"] == "end"
    final = run.state()
    assert final.nodes["root"].attempts == 1
    assert counts(r, app, run.id) == {
        **{f"k{i}": 1 for i in range(3)},
        **{f"x{i}": 1 for i in range(4)},
        "end": 1,
    }


def test_cancel_terminate_kills_the_running_task_on_prefork(app, engine, r, uid, worker_process):
    queue = app.conf.task_default_queue
    w = worker_process(app, [queue], "term", concurrency=1)
    run = engine.submit(fan_out("terminate", f"{uid}:never", width=2))
    wait_for(lambda: run.state().nodes["root"].status is NodeStatus.RUNNING, timeout=30, message="the root")
    [child] = w.child_pids()

    state = run.cancel(terminate=True)
    assert state.status is RunStatus.CANCELLED
    # The pool child running the task is killed (the task would otherwise block for 60 s) and replaced.
    wait_for(lambda: child not in w.child_pids() and w.child_pids(), timeout=30, message="the child killed")
    wait_for(
        lambda: run.state().nodes["root"].status is NodeStatus.REVOKED,
        timeout=30,
        message="the terminated node recorded as REVOKED",
    )
    final = run.state()
    assert final.status is RunStatus.CANCELLED
    assert final.nodes["root"].status is not NodeStatus.SUCCEEDED
    assert engine.tracker.results(run.id) == {}
    assert counts(r, app, run.id) == {}
    assert run.cancel(terminate=True).status is RunStatus.CANCELLED  # idempotent


# -- 4. retry after a failure -------------------------------------------------------------------------------


def test_retry_after_failure_reuses_the_results_that_succeeded(app, engine, r, uid):
    wf = Workflow("retry")
    a = wf.add("a", "proj.count")
    f = wf.add("f", "proj.flaky", args=[1, f"{uid}:flaky"], immutable=True)  # fails its first attempt only
    c = wf.add("c", "proj.count")
    b = wf.add("b", "proj.count")
    d = wf.add("d", "proj.count")
    a >> f >> c
    a >> b
    f >> d
    b >> d
    wf.add("side", "proj.count", kwargs={"sleep": 0.05})  # an independent root
    with in_thread_worker(app, concurrency=2):
        run = engine.submit(wf)
        failed = wait_for(
            lambda: (s := run.state()).finished and not of_status(s, NodeStatus.RUNNING) and s,
            timeout=30,
            message="the run to fail and its running nodes (side) to be recorded",
        )
        assert failed.status is RunStatus.FAILED
        assert failed.nodes["f"].status is NodeStatus.FAILED
        assert failed.nodes["f"].error["type"] == "RuntimeError"
        assert failed.nodes["f"].attempts == 1
        assert failed.nodes["a"].status is NodeStatus.SUCCEEDED
        assert failed.nodes["c"].status is NodeStatus.REVOKED
        assert failed.nodes["d"].status is NodeStatus.REVOKED
        succeeded = of_status(failed, NodeStatus.SUCCEEDED)
        counts_before = counts(r, app, run.id)
        assert set(counts_before) == succeeded - {"f"}

    retried = run.retry()  # the cause is gone: proj.flaky succeeds from its second attempt
    assert retried.status is RunStatus.RUNNING  # no worker now: nothing can end it before this read
    assert retried.epoch == failed.epoch + 1
    with in_thread_worker(app, concurrency=2):
        results = run.wait(timeout=30)
    assert results["f"] == 2
    assert results["d"] == "d"
    final = run.state()
    assert final.status is RunStatus.SUCCEEDED
    assert final.nodes["f"].attempts == 2  # the attempt history stays
    assert final.nodes["a"].attempts == 1
    after = counts(r, app, run.id)
    assert after == {n: 1 for n in ("a", "b", "c", "d", "side")}
    for name in succeeded - {"f"}:
        assert final.nodes[name].epoch == 0, f"{name} succeeded before the retry and must not run again"


# -- 5. a worker process killed mid-task ------------------------------------------------------------------


@pytest.mark.parametrize("resumed", [False, True], ids=["plain", "across-resume"])
def test_worker_child_killed_mid_task_is_redelivered_and_children_released_once(
    app, engine, r, uid, worker_process, resumed
):
    queue = app.conf.task_default_queue
    w = worker_process(app, [queue], "kill", concurrency=1)
    wf = fan_out("sigkill", f"{uid}:go", width=3)
    run = engine.submit(wf)
    wait_for(lambda: run.state().nodes["root"].status is NodeStatus.RUNNING, timeout=30, message="the root")
    if resumed:  # the run moves on to epoch 1 while the root still runs under epoch 0
        run.pause()
        assert run.resume().nodes["root"].status is NodeStatus.RUNNING
    [child] = w.child_pids()
    os.kill(child, signal.SIGKILL)

    # acks_late + reject_on_worker_lost: the message goes back to the queue and runs again on a new child.
    wait_for(
        lambda: (n := run.state().nodes["root"]).attempts >= 2 and n.status is NodeStatus.RUNNING,
        timeout=30,
        message="the root redelivered",
    )
    assert child not in w.child_pids()
    r.rpush(f"{uid}:go", "go")
    results = run.wait(timeout=30)
    assert results["root"] == "released"
    final = run.state()
    assert final.status is RunStatus.SUCCEEDED
    assert final.nodes["root"].attempts == 2
    assert counts(r, app, run.id) == {**{f"k{i}": 1 for i in range(3)}, "end": 1}, "a child released twice"


# -- 6. idempotency and refusals -------------------------------------------------------------------------


def test_control_is_idempotent_and_refuses_clearly(app, engine, r, uid):
    wf = fan_out("idem", f"{uid}:go", width=2)
    with in_thread_worker(app, concurrency=2):
        run = engine.submit(wf)
        wait_for(lambda: run.state().nodes["root"].status is NodeStatus.RUNNING, message="the root to run")
        first = run.pause()
        second = run.pause()
        assert first.status is second.status is RunStatus.PAUSED
        assert second.paused_at == first.paused_at
        assert second.epoch == first.epoch

        r.rpush(f"{uid}:go", "go")  # the running root finishes while paused: its children wait
        wait_for(lambda: run.state().nodes["root"].status is NodeStatus.SUCCEEDED, message="the root")
    paused = run.state()
    assert paused.status is RunStatus.PAUSED
    assert of_status(paused, NodeStatus.PENDING) == {"k0", "k1", "end"}

    resumed = run.resume()  # no worker now: the run stays RUNNING through both calls
    assert resumed.status is RunStatus.RUNNING
    assert resumed.epoch == first.epoch + 1
    noop = run.resume()  # resuming a running run changes nothing
    assert noop.status is RunStatus.RUNNING
    assert noop.epoch == resumed.epoch
    with in_thread_worker(app, concurrency=2):
        run.wait(timeout=30)

    done = run.state()
    assert done.status is RunStatus.SUCCEEDED
    for op, pattern in (
        (run.resume, "cannot resume .* SUCCEEDED, not PAUSED"),
        (run.retry, "cannot retry .* SUCCEEDED, not FAILED or CANCELLED"),
        (run.pause, "cannot pause .* SUCCEEDED"),
        (run.cancel, "cannot cancel .* SUCCEEDED"),
    ):
        with pytest.raises(ControlError, match=pattern):
            op()
    assert node_statuses(run.state()) == node_statuses(done)
    assert run.state().epoch == done.epoch

    unknown = "0" * 32
    for op in (engine.pause, engine.resume, engine.cancel, engine.retry, engine.run):
        with pytest.raises(RunNotFound, match=unknown):
            op(unknown)
    assert r.exists(engine.tracker.keys.run(unknown)) == 0


@pytest.mark.parametrize("native", [False, True], ids=["tracker-retry", "celery-retry"])
def test_node_running_across_pause_and_resume_retries_and_releases_its_children(app, engine, r, uid, native):
    """A node started before the pause runs on under the old epoch; its retry must not be gated as stale."""
    wf = Workflow("across")
    f = wf.add(
        "f",
        "proj.block_flaky",
        args=[f"{uid}:go", 1, f"{uid}:n", native],
        immutable=True,
        retries=0 if native else 1,
    )
    f >> wf.add("g", "proj.count")
    with in_thread_worker(app, concurrency=2):
        run = engine.submit(wf)
        wait_for(lambda: run.state().nodes["f"].status is NodeStatus.RUNNING, message="f to run")
        paused = run.pause()
        assert paused.nodes["f"].status is NodeStatus.RUNNING
        resumed = run.resume()  # f is still running (epoch 0) while the run moves to epoch 1
        assert resumed.epoch == 1
        assert resumed.nodes["f"].status is NodeStatus.RUNNING
        r.rpush(f"{uid}:go", "first", "second")  # attempt 1 fails, the tracker retries it
        results = run.wait(timeout=30)
    assert results == {"f": 2, "g": "g"}
    final = run.state()
    assert final.nodes["f"].attempts == 2
    assert counts(r, app, run.id) == {"g": 1}


def test_resume_ends_a_run_whose_last_node_finished_while_paused(app, engine, r, uid):
    """Nothing is left to re-plan at resume: the run must end there, and its callback fire once."""
    key = f"t{uid}:hold"
    wf = Workflow("finish-while-paused")
    a = wf.add("a", "proj.add", args=[1, 1])
    b = wf.add("b", "proj.block", args=[key], immutable=True)
    a >> b
    callback = app.signature("proj.callback", kwargs={"tag": "done"})
    with in_thread_worker(app):
        run = engine.submit(wf, on_success=callback)
        wait_for(lambda: run.state().nodes["b"].status is NodeStatus.RUNNING, message="b running")
        assert run.pause().status is RunStatus.PAUSED
        r.rpush(key, "go")
        wait_for(lambda: run.state().nodes["b"].status is NodeStatus.SUCCEEDED, message="b succeeded")
        assert run.state().status is RunStatus.PAUSED  # a paused run does not end by itself
        assert run.resume().status is RunStatus.SUCCEEDED
        assert run.wait(timeout=10) == {"a": 2, "b": "released"}
        wait_for(lambda: r.lrange(f"t{uid}:callbacks", 0, -1), message="callback")
    assert r.lrange(f"t{uid}:callbacks", 0, -1) == [f"done:{run.id}"]
    assert all(r.ttl(k) > 0 for k in r.scan_iter(engine.tracker.keys.run_pattern(run.id)))


def test_worker_child_killed_while_paused_node_is_replanned_at_resume(app, engine, r, uid, worker_process):
    """The killed node's message comes back while the run is paused: it must not run, and must not stay
    RUNNING in the tracker either (resume would skip it and the run would never end)."""
    queue = app.conf.task_default_queue
    w = worker_process(app, [queue], "killp", concurrency=1)
    wf = fan_out("sigkill-paused", f"{uid}:go", width=2)
    run = engine.submit(wf)
    wait_for(lambda: run.state().nodes["root"].status is NodeStatus.RUNNING, timeout=30, message="the root")
    assert run.pause().nodes["root"].status is NodeStatus.RUNNING
    [child] = w.child_pids()
    os.kill(child, signal.SIGKILL)
    wait_for(
        lambda: run.state().nodes["root"].status is NodeStatus.REVOKED,
        timeout=30,
        message="the redelivered root refused while paused",
    )
    assert run.state().status is RunStatus.PAUSED
    r.rpush(f"{uid}:go", "go")
    run.resume()
    assert run.wait(timeout=30)["root"] == "released"
    assert counts(r, app, run.id) == {"k0": 1, "k1": 1, "end": 1}
