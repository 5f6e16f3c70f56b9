"""The tracked canvas executor (``engine.submit(wf, executor="canvas")``) on a real Redis and real workers.

Every shape runs under both executors on one in-thread worker: same results, same final RunState. The
control tests check that the canvas really ran (Celery's result keys of the chord bodies / barriers) and
that pause, cancel, retry, fail_fast and continue keep their counters-executor meaning.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from celery import Celery

from tests.helpers import in_thread_worker, released, status_of, wait_for
from tests.integration.test_canvas import SHAPES, echo_workflow, stages
from wfcelery import ConfigurationError, NodeStatus, RunFailed, RunStatus, SchemaError, Workflow
from wfcelery.plan.segments import segments
from wfcelery.tracker.keys import run_of

ALL_SHAPES: dict[str, Callable[[str], Workflow]] = {
    **SHAPES,
    "n shape": lambda n: echo_workflow(n, "a>c a>d b>d"),
}


def random_dag(name: str, size: int = 200, seed: int = 11) -> Workflow:
    rng = random.Random(seed)
    wf = Workflow(name)
    for i in range(size):
        earlier = list(range(max(0, i - 12), i))
        after = [f"n{p}" for p in sorted(rng.sample(earlier, min(len(earlier), rng.choice([0, 1, 1, 2, 3]))))]
        wf.add(f"n{i}", "proj.count", args=[i], after=after)  # returns its name: results stay flat
    return wf


def summary(state: Any) -> dict[str, Any]:
    return {"status": state.status, "nodes": {n: s.status for n, s in state.nodes.items()}}


def test_shapes_give_the_counters_results_and_state(app: Celery, engine: Any, r: Any, uid: str) -> None:
    shapes = {**ALL_SHAPES, "random 200": lambda n: random_dag(n)}
    with in_thread_worker(app, concurrency=8):
        for name, shape in shapes.items():
            wf = shape(name.replace(" ", "-"))
            counters = engine.submit(wf)
            canvas = engine.submit(wf, executor="canvas")
            assert canvas.wait(timeout=60) == counters.wait(timeout=60), name
            state = canvas.state()
            assert state.executor == "canvas"
            assert summary(state) == summary(counters.state()), name
            assert state.counts["SUCCEEDED"] == len(wf.nodes)
            assert {n.attempts for n in state.nodes.values()} == {1}, name
        ran = r.hgetall(f"t{uid}:count:{canvas.id}")  # the random DAG: each node's body ran once
        assert {k: int(v) for k, v in ran.items()} == {n: 1 for n in wf.nodes}


def test_segments_are_native_canvas(app: Celery, engine: Any) -> None:
    """The diamond is one chord: its body's result lands in Celery's backend, published by Celery."""
    wf = echo_workflow("diamond", "a>b a>c b>d c>d")
    with in_thread_worker(app):
        run = engine.submit(wf, executor="canvas")
        results = run.wait(timeout=30)
    state = run.state()
    for node in "abcd":
        assert app.AsyncResult(state.nodes[node].task_id).get(timeout=5) == results[node]
    barriers = engine.tracker.canvas_ids(run.id)
    assert barriers == []  # a diamond needs no barrier: chain(a, chord([b, c], d))


def test_executor_from_definition_and_setting(app: Celery, engine: Any) -> None:
    data = {"name": "d", "executor": "canvas", "tasks": [{"name": "a", "task": "proj.add", "args": [1, 2]}]}
    with in_thread_worker(app):
        run = engine.submit(data)
        assert run.wait(timeout=30) == {"a": 3}
    assert run.state().executor == "canvas"
    assert engine.submit(data, executor="counters").state().executor == "counters"
    with pytest.raises(SchemaError, match="unknown executor 'chords'"):
        engine.submit(data, executor="chords")
    with pytest.raises(SchemaError, match="unknown executor 'fast'"):
        Workflow.from_dict({**data, "executor": "fast"})


def test_unknown_executor_setting_is_one_clear_error(make_test_app: Callable[..., Celery]) -> None:
    app = make_test_app(wfcelery_executor="chords")
    with pytest.raises(ConfigurationError, match="wfcelery_executor: unknown executor 'chords'"):
        app._wfcelery_engine.submit(echo_workflow("x", "a>b"))


def test_the_setting_picks_the_canvas_executor(make_test_app: Callable[..., Celery]) -> None:
    app = make_test_app(wfcelery_executor="canvas")
    with in_thread_worker(app):
        run = app._wfcelery_engine.submit(echo_workflow("x", "a>b"))
        run.wait(timeout=30)
    assert run.state().executor == "canvas"


def test_chords_need_a_result_backend(make_test_app: Callable[..., Celery]) -> None:
    app = make_test_app(result_backend=None, wfcelery_redis_url=None)
    app.conf.result_backend = "disabled://"
    app.conf.wfcelery_redis_url = app.conf.broker_url
    engine = app._wfcelery_engine
    with pytest.raises(ConfigurationError, match="needs a result backend for chords"):
        engine.submit(echo_workflow("diamond", "a>b a>c b>d c>d"), executor="canvas")
    assert engine.runs() == []


def test_pause_holds_every_node_then_resume_finishes(app: Celery, engine: Any, r: Any, uid: str) -> None:
    hold = f"t{uid}:hold"
    wf = Workflow("pausing")
    wf.add("a", "proj.block", args=[hold])
    for n in ("b", "c"):
        wf.add(n, "proj.count", after=["a"])
    wf.add("d", "proj.count", after=["b", "c"])
    wf.add("e", "proj.count", after=["d"])
    with in_thread_worker(app), released(r, hold):
        run = engine.submit(wf, executor="canvas")
        wait_for(lambda: status_of(run, "a") is NodeStatus.RUNNING, message="a running")
        run.pause()
        r.rpush(hold, "go")
        wait_for(lambda: status_of(run, "a") is NodeStatus.SUCCEEDED, message="a to finish while paused")
        b = app.AsyncResult(run.state().nodes["b"].task_id)  # revoked (broadcast) or refused by the gate
        wait_for(
            lambda: b.state == "REVOKED" or status_of(run, "b") is NodeStatus.REVOKED, message="b stopped"
        )
        state = run.state()
        assert state.status is RunStatus.PAUSED
        assert r.hgetall(f"t{uid}:count:{run.id}") == {}  # nothing started while paused
        assert all(state.nodes[n].status is not NodeStatus.FAILED for n in "bcde")
        run.resume()
        results = run.wait(timeout=30)
    assert results == {"a": "released", "b": "b", "c": "c", "d": "d", "e": "e"}
    # resume cut what was left (b, c, d, e) into one canvas again: Celery stored d's result as a chord
    # body (the counters executor sends with ignore_result)
    assert engine.tracker.remaining(run.id, 1) == {1, 2, 3, 4}
    assert app.AsyncResult(run.state().nodes["d"].task_id).get(timeout=5) == "d"
    assert {k: int(v) for k, v in r.hgetall(f"t{uid}:count:{run.id}").items()} == dict.fromkeys("bcde", 1)


def test_a_chord_error_of_a_paused_header_is_no_failure(
    app: Celery, engine: Any, r: Any, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    """One worker slot: b runs (held), c waits behind it. Pause revokes c; Celery counts the revoked header
    member and, once b ends, fails the chord body d with a ChordError in its own backend -- the body
    never reaches a worker, and the tracker does not take it for a failure of d. Resume runs d."""
    hold = f"t{uid}:hold"
    wf = Workflow("chord-pause")
    wf.add("a", "proj.noop")
    wf.add("b", "proj.block", args=[hold], after=["a"], immutable=True)
    wf.add("c", "proj.count", after=["a"])
    wf.add("d", "proj.echo", after=["b", "c"])
    with in_thread_worker(app, concurrency=1), released(r, hold):
        run = engine.submit(wf, executor="canvas")
        wait_for(lambda: status_of(run, "b") is NodeStatus.RUNNING, message="b running")
        run.pause()
        r.rpush(hold, "go")
        wait_for(lambda: "ChordError" in caplog.text, message="Celery to fail the chord body")
        # Celery stored REVOKED (the pause's revoke of a known, unpublished id) or the ChordError for d
        body = app.AsyncResult(run.state().nodes["d"].task_id)
        assert body.state in ("REVOKED", "FAILURE")
        state = run.state()
        assert state.status is RunStatus.PAUSED
        assert state.nodes["b"].status is NodeStatus.SUCCEEDED
        assert state.nodes["d"].status is NodeStatus.PENDING
        assert state.nodes["d"].error is None
        assert r.hgetall(f"t{uid}:count:{run.id}") == {}  # c never started
        run.resume()
        assert run.wait(timeout=30)["d"] == {"args": [["released", "c"]], "kwargs": {}}


def test_cancel_revokes_what_has_not_started(app: Celery, engine: Any, r: Any, uid: str) -> None:
    hold = f"t{uid}:hold"
    wf = Workflow("cancelling")
    wf.add("a", "proj.block", args=[hold])
    wf.add("b", "proj.count", after=["a"])
    wf.add("c", "proj.count", after=["b"])
    with in_thread_worker(app), released(r, hold):
        run = engine.submit(wf, executor="canvas")
        wait_for(lambda: status_of(run, "a") is NodeStatus.RUNNING, message="a running")
        run.cancel()
        r.rpush(hold, "go")
        wait_for(lambda: run.state().nodes["a"].status.terminal, message="a to end")
    state = run.state()
    assert state.status is RunStatus.CANCELLED
    assert r.hgetall(f"t{uid}:count:{run.id}") == {}


def test_retry_after_failure_reuses_what_succeeded(app: Celery, engine: Any, r: Any, uid: str) -> None:
    wf = Workflow("retrying")
    wf.add("a", "proj.add", args=[1, 2])
    wf.add("b", "proj.flaky", args=[1, f"t{uid}:flaky"], after=["a"], immutable=True)
    wf.add("c", "proj.add", kwargs={"y": 10}, after=["b"])
    wf.add("d", "proj.add", kwargs={"y": 100}, after=["a"])
    with in_thread_worker(app):
        run = engine.submit(wf, executor="canvas")
        with pytest.raises(RunFailed):
            run.wait(timeout=30)
        assert run.state().nodes["b"].status is NodeStatus.FAILED
        run.retry()
        assert run.wait(timeout=30) == {"a": 3, "b": 2, "c": 12, "d": 103}
    state = run.state()
    assert state.nodes["a"].attempts == 1
    assert state.nodes["c"].epoch == 1  # re-planned with b, as one canvas: chain(b, c)
    assert app.AsyncResult(state.nodes["c"].task_id).get(timeout=5) == 12


def test_fail_fast_stops_the_canvas(app: Celery, engine: Any, r: Any, uid: str) -> None:
    wf = Workflow("failing")
    wf.add("a", "proj.noop")
    wf.add("bad", "proj.fail", after=["a"])
    wf.add("slow", "proj.count", kwargs={"sleep": 0.5}, after=["a"])
    wf.add("after_slow", "proj.count", after=["slow"])
    wf.add("join", "proj.count", after=["bad", "after_slow"])
    with in_thread_worker(app):
        run = engine.submit(wf, executor="canvas")
        with pytest.raises(RunFailed, match="bad"):
            run.wait(timeout=30)
        wait_for(lambda: run.state().nodes["slow"].status.terminal, message="slow to end")
    state = run.state()
    assert state.status is RunStatus.FAILED
    assert state.nodes["bad"].status is NodeStatus.FAILED
    assert state.nodes["join"].status is not NodeStatus.SUCCEEDED
    assert "after_slow" not in r.hgetall(f"t{uid}:count:{run.id}")


def test_continue_lets_independent_branches_finish(app: Celery, engine: Any, r: Any, uid: str) -> None:
    wf = Workflow("continuing", on_failure="continue")
    wf.add("a", "proj.noop")
    wf.add("bad", "proj.fail", after=["a"])
    wf.add("below", "proj.count", after=["bad"])
    wf.add("ok", "proj.count", after=["a"])
    wf.add("ok2", "proj.count", after=["ok"])
    wf.add("join", "proj.count", after=["below", "ok2"])
    with in_thread_worker(app):
        run = engine.submit(wf, executor="canvas")
        with pytest.raises(RunFailed):
            run.wait(timeout=30)
    state = summary(run.state())
    assert state["status"] is RunStatus.FAILED
    assert state["nodes"] == {
        "a": NodeStatus.SUCCEEDED,
        "bad": NodeStatus.FAILED,
        "below": NodeStatus.SKIPPED,
        "ok": NodeStatus.SUCCEEDED,
        "ok2": NodeStatus.SUCCEEDED,
        "join": NodeStatus.SKIPPED,
    }


def test_cleanup_removes_celerys_result_keys(app: Celery, engine: Any, r: Any) -> None:
    wf = echo_workflow("stages", "a>x b>x a>y b>y x>z y>z")
    assert len(segments(engine.plans.remember(_plan(engine, wf)))) == 1
    with in_thread_worker(app):
        run = engine.submit(wf, executor="canvas")
        run.wait(timeout=30)
    ids = [n.task_id for n in run.state().nodes.values()] + engine.tracker.canvas_ids(run.id)
    assert engine.tracker.canvas_ids(run.id), "a barrier joins [a, b] before [x, y]"
    wait_for(lambda: all(r.exists(f"celery-task-meta-{i}") for i in ids), message="every result stored")
    run.cleanup()
    assert [i for i in ids if r.exists(f"celery-task-meta-{i}")] == []


def _plan(engine: Any, wf: Workflow) -> Any:
    from wfcelery.plan.compiler import compile_workflow

    return compile_workflow(wf, executor="canvas")


def test_no_result_subscription_is_left(app: Celery, engine: Any, r: Any) -> None:
    """Publishing a chord subscribes the publisher to every header result, forever (CELERY-NOTES). Here
    the client publishes the first segments and the worker, in the same process, the chords that follow
    a chain step or a barrier: after 20 runs of two shapes, no subscription and no pending result of a
    run is left, in this process or on the Redis server."""
    shapes = [echo_workflow("small", " ".join(f"a>b{i} b{i}>c" for i in range(8))), stages("stages")]
    with in_thread_worker(app):
        runs = [engine.submit(wf, executor="canvas") for _ in range(10) for wf in shapes]
        for run in runs:
            run.wait(timeout=60)
    backend = app.backend
    consumer = backend.result_consumer
    ours = [
        k for k in getattr(consumer, "subscribed_to", ()) if run_of(k.decode()[len("celery-task-meta-") :])
    ]
    assert ours == []
    assert [t for m in backend._pending_results for t in m if run_of(t)] == []
    channels = [c for c in r.pubsub_channels("celery-task-meta-*") if run_of(c[len("celery-task-meta-") :])]
    assert channels == []


def test_a_subscription_outside_the_continuation_is_left_alone(app: Celery, engine: Any, r: Any) -> None:
    """The worker drops only what a task's own continuation subscribed: a result that code in the worker
    waits on for its own reasons -- here another run's node, which the old scan over every subscription
    dropped -- keeps its channel on the Redis server."""
    other = f"{uuid.uuid4().hex}-0-0"
    channel = f"celery-task-meta-{other}"
    queue = app.conf.task_default_queue
    with in_thread_worker(app, pool="solo", concurrency=1):  # one thread: one result backend for all tasks
        app.send_task("proj.subscribe", args=[other], queue=queue)
        wait_for(lambda: r.pubsub_channels(channel), message="the worker subscribed to the channel")
        engine.submit(stages("stages"), executor="canvas").wait(timeout=60)
        assert r.pubsub_channels(channel) == [channel]
        app.send_task("proj.subscribe", args=[other], kwargs={"undo": True}, queue=queue)
        wait_for(lambda: not r.pubsub_channels(channel), message="the worker unsubscribed")
