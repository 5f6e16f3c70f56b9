"""The Redis tracker on a real Redis and real workers: node states as they happen, retries, failure policies,
callbacks, duplicate deliveries, expiry, cleanup, queries, and hooks that lose Redis.

No blind sleeps: tests wait on conditions (tracker state, Celery results, worker signals, an idle worker).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
from celery import signals
from celery.result import AsyncResult

import wfcelery
from tests.helpers import (
    after_created,
    counts,
    in_thread_worker,
    released,
    run_keys,
    status_of,
    wait_for,
    worker_idle,
)
from tests.proj import make_app
from tests.redis_server import free_port
from wfcelery import (
    ControlError,
    NodeStatus,
    RunFailed,
    RunNotFound,
    RunStatus,
    WaitTimeout,
    Workflow,
)
from wfcelery.tracker.records import COPY_HEADER, RUN_DEFAULTS

# -- helpers -------------------------------------------------------------------------------------------

#: Tests that check Celery's own result keys turn them on (wfcelery's default leaves them to the tracker).
CELERY_RESULTS = {"wfcelery_celery_results": True}


def node_events(engine: Any, run_id: str, node: int) -> list[str]:
    """Status letters the event log recorded for one node, in order."""
    _, events = engine.tracker.events(run_id)
    return [e.status for e in events if e.node == node]


def callbacks(r: Any, app: Any) -> list[str]:
    return r.lrange(f"{app.conf.wfcelery_key_prefix}:callbacks", 0, -1)


@contextmanager
def failures_seen() -> Iterator[dict[str, BaseException]]:
    """task_failure signals in this process (the in-thread worker), by task id."""
    seen: dict[str, BaseException] = {}

    def receiver(sender: Any = None, task_id: str | None = None, exception: Any = None, **_: Any) -> None:
        seen[str(task_id)] = exception

    signals.task_failure.connect(receiver, weak=False)
    try:
        yield seen
    finally:
        signals.task_failure.disconnect(receiver)


def callback_sigs(app: Any) -> dict[str, Any]:
    return {
        "on_success": app.signature("proj.callback", kwargs={"tag": "ok"}),
        "on_failure": app.signature("proj.callback", kwargs={"tag": "failed"}),
    }


# -- node states as they happen ------------------------------------------------------------------------


def test_running_then_succeeded_with_worker_and_times(app, engine, r, uid, worker_process):
    """On a real ``celery worker`` (prefork): the node is RUNNING on that worker while its task blocks."""
    key = f"t{uid}:go"
    wf = Workflow("observe")
    blk = wf.add("blk", "proj.block", args=[key])
    nxt = wf.add("next", "proj.noop")
    blk >> nxt
    worker = worker_process(app, [app.conf.task_default_queue], "observe")
    with released(r, key):
        run = engine.submit(wf)
        wait_for(lambda: status_of(run, "blk") is NodeStatus.RUNNING, message="blk RUNNING")
        state = run.state()
        node = state.nodes["blk"]
        assert node.worker == worker.hostname
        assert node.started_at is not None
        assert node.finished_at is None
        assert node.attempts == 1
        assert node.epoch == 0
        assert node.task_id == f"{run.id}-0-0"
        assert state.nodes["next"].status is NodeStatus.PENDING
        assert state.status is RunStatus.RUNNING
        assert state.started_at is not None
        assert state.counts["RUNNING"] == 1
        assert state.counts["PENDING"] == 1
        assert abs(node.started_at - time.time()) < 30  # a Unix time on Redis's clock

        r.rpush(key, "go")
        run.wait(timeout=30)
    state = run.state()
    node = state.nodes["blk"]
    assert node.status is NodeStatus.SUCCEEDED
    assert node.finished_at >= node.started_at
    assert state.nodes["next"].started_at >= node.finished_at
    assert state.finished_at >= state.nodes["next"].finished_at
    assert node_events(engine, run.id, 0) == ["Q", "R", "S"]
    assert node_events(engine, run.id, 1) == ["Q", "R", "S"]


def test_node_retries_show_retrying_then_succeed(app, engine, r, uid):
    wf = Workflow("retries")
    wf.add("flaky", "proj.flaky", args=[2, f"t{uid}:flaky"], retries=2)
    with in_thread_worker(app):
        run = engine.submit(wf)
        assert run.wait(timeout=30) == {"flaky": 3}
    node = run.state().nodes["flaky"]
    assert node.status is NodeStatus.SUCCEEDED
    assert node.attempts == 3
    assert node_events(engine, run.id, 0) == ["Q", "R", "Y", "R", "Y", "R", "S"]


def test_node_retries_exhausted_fail_the_node(app, engine, r, uid):
    wf = Workflow("retries")
    wf.add("flaky", "proj.flaky", args=[5, f"t{uid}:flaky"], retries=1)
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(RunFailed) as info:
            run.wait(timeout=30)
    assert info.value.failed == {"flaky": "RuntimeError: flaky attempt 2"}
    node = run.state().nodes["flaky"]
    assert node.status is NodeStatus.FAILED
    assert node.attempts == 2
    assert r.get(f"t{uid}:flaky") == "2"  # ran twice, no more


def test_native_celery_retry_shows_retrying_and_attempts(app, engine):
    wf = Workflow("native")
    wf.add("nr", "proj.native_retry", args=[2])
    with in_thread_worker(app):
        run = engine.submit(wf)
        assert run.wait(timeout=30) == {"nr": 2}
    node = run.state().nodes["nr"]
    assert node.status is NodeStatus.SUCCEEDED
    assert node.attempts == 3
    assert node_events(engine, run.id, 0) == ["Q", "R", "Y", "R", "Y", "R", "S"]


# -- failure policies and callbacks --------------------------------------------------------------------


def test_fail_fast_revokes_what_has_not_started(app, engine, r, uid):
    hold, trigger = f"t{uid}:hold", f"t{uid}:trigger"
    wf = Workflow("ff")  # fail_fast is the default
    blk = wf.add("blk", "proj.block", args=[hold])
    trig = wf.add("trig", "proj.block", args=[trigger])
    bad = wf.add("bad", "proj.fail", kwargs={"message": "first failure"})
    after_blk = wf.add("after_blk", "proj.count")
    after_bad = wf.add("after_bad", "proj.count")
    wf.add("stuck", "proj.count", queue=f"nobody-{uid}")  # QUEUED: no worker consumes its queue
    blk >> after_blk
    trig >> bad >> after_bad
    with in_thread_worker(app), released(r, hold, trigger):
        run = engine.submit(wf, **callback_sigs(app))
        wait_for(
            lambda: {status_of(run, "blk"), status_of(run, "trig")} == {NodeStatus.RUNNING},
            message="blk and trig RUNNING",
        )
        r.rpush(trigger, "go")
        with pytest.raises(RunFailed) as info:
            run.wait(timeout=30)
        assert info.value.status == "FAILED"
        assert info.value.failed == {"bad": "ValueError: first failure"}
        state = run.state()
        assert state.status is RunStatus.FAILED
        assert {n: s.status.value for n, s in state.nodes.items()} == {
            "blk": "RUNNING",  # running nodes finish; they are not revoked
            "trig": "SUCCEEDED",
            "bad": "FAILED",
            "after_blk": "REVOKED",
            "after_bad": "REVOKED",
            "stuck": "REVOKED",
        }
        wait_for(lambda: callbacks(r, app), message="on_failure callback")

        # the running node finishes late: recorded, releases nothing, no second callback
        r.rpush(hold, "go")
        wait_for(lambda: status_of(run, "blk") is NodeStatus.SUCCEEDED, message="late success of blk")
        wait_for(lambda: worker_idle(r, app), message="worker idle")
    state = run.state()
    assert state.status is RunStatus.FAILED
    assert state.nodes["after_blk"].status is NodeStatus.REVOKED
    assert counts(r, app, run.id) == {}  # no revoked node ran
    assert callbacks(r, app) == [f"failed:{run.id}"]
    assert all(r.ttl(k) > 0 for k in run_keys(r, engine, run.id)), "late write left a key without TTL"


def test_continue_lets_independent_branches_finish(app, engine, r, uid):
    hold = f"t{uid}:hold"
    wf = Workflow("cont", on_failure="continue")
    ok1 = wf.add("ok1", "proj.block", args=[hold])
    ok2 = wf.add("ok2", "proj.count")
    bad = wf.add("bad", "proj.fail")
    s1 = wf.add("s1", "proj.count")
    s2 = wf.add("s2", "proj.count")
    wf.add("join", "proj.count", after=["ok2", "bad"])
    ok1 >> ok2
    bad >> s1 >> s2
    with in_thread_worker(app), released(r, hold):
        run = engine.submit(wf, **callback_sigs(app))
        wait_for(lambda: status_of(run, "join") is NodeStatus.SKIPPED, message="descendants of bad SKIPPED")
        state = run.state()
        assert state.status is RunStatus.RUNNING  # the independent branch is still going
        assert state.nodes["ok1"].status is NodeStatus.RUNNING
        assert {state.nodes[n].status for n in ("s1", "s2", "join")} == {NodeStatus.SKIPPED}
        r.rpush(hold, "go")
        with pytest.raises(RunFailed) as info:
            run.wait(timeout=30)
        wait_for(lambda: callbacks(r, app), message="on_failure callback")
        wait_for(lambda: worker_idle(r, app), message="worker idle")
    assert info.value.failed == {"bad": "ValueError: boom"}
    assert info.value.results == {"ok1": "released", "ok2": "ok2"}
    state = run.state()
    assert state.status is RunStatus.FAILED
    assert {n: s.status.value for n, s in state.nodes.items()} == {
        "ok1": "SUCCEEDED",
        "ok2": "SUCCEEDED",
        "bad": "FAILED",
        "s1": "SKIPPED",
        "s2": "SKIPPED",
        "join": "SKIPPED",
    }
    assert state.finished_at >= state.nodes["ok2"].finished_at
    assert counts(r, app, run.id) == {"ok2": 1}
    assert callbacks(r, app) == [f"failed:{run.id}"]


def test_callbacks_exactly_once_with_20_runs_finishing_together(app, engine, r):
    """20 runs queued before the worker starts, then finished by 8 threads at once: each run's last nodes
    finish concurrently, and each run sends exactly one callback (on_failure for the runs with a failed
    node)."""
    runs = []
    for i in range(20):
        wf = Workflow(f"cb{i}", on_failure="continue")
        for j in range(3):
            wf.add(f"leaf{j}", "proj.noop")
        if i % 2:
            wf.add("bad", "proj.fail")
        runs.append(engine.submit(wf, **callback_sigs(app)))
    with in_thread_worker(app, concurrency=8):
        for run in runs:
            with suppress(RunFailed):
                run.wait(timeout=60)
        wait_for(lambda: len(callbacks(r, app)) >= 20, timeout=30, message="20 callbacks")
        wait_for(lambda: worker_idle(r, app), message="worker idle")
    expected = sorted(f"{'failed' if i % 2 else 'ok'}:{run.id}" for i, run in enumerate(runs))
    assert sorted(callbacks(r, app)) == expected
    assert [run.state().status for run in runs] == [
        RunStatus.FAILED if i % 2 else RunStatus.SUCCEEDED for i in range(20)
    ]


# -- duplicates, expiry, cleanup -----------------------------------------------------------------------


@pytest.mark.parametrize("app", [CELERY_RESULTS], indirect=True)  # Celery's result keys are checked too
@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_duplicate_delivery_of_a_finished_task_changes_nothing(app, engine, r, pool):
    """A copy that says it may be one (wfcelery's own re-sends do; a broker's redelivery is flagged
    alike) asks the start script, which refuses it (GateClosed, a Reject) before its body runs. The
    request must end (message rejected) in every pool, not hang: solo and threads re-raise what the
    tracer raises."""
    wf = Workflow("dup")
    a = wf.add("a", "proj.count")
    b = wf.add("b", "proj.count")
    a >> b
    with in_thread_worker(app, pool=pool, concurrency=1 if pool == "solo" else 4):
        run = engine.submit(wf)
        run.wait(timeout=30)
        before = (
            r.hgetall(engine.tracker.keys.run(run.id)),
            r.hgetall(engine.tracker.keys.nodes(run.id)),
            r.get(engine.tracker.keys.events(run.id)),
            r.hgetall(engine.tracker.keys.results(run.id)),
        )
        state_before = run.state()
        tid = state_before.nodes["a"].task_id
        plan = engine.plans.get(engine.tracker.run_record(run.id).plan)
        message = plan.message(run.id, 0, 0, {}, ())
        assert message["task_id"] == tid
        message["headers"][COPY_HEADER] = 1
        with failures_seen() as seen:
            app.send_task("proj.count", **message)  # the very same message again
            wait_for(lambda: tid in seen, message="the worker to process the duplicate")
        assert isinstance(seen[tid], wfcelery.worker.hooks.GateClosed)  # refused before the body ran
        wait_for(lambda: worker_idle(r, app), message="worker idle")
    after = (
        r.hgetall(engine.tracker.keys.run(run.id)),
        r.hgetall(engine.tracker.keys.nodes(run.id)),
        r.get(engine.tracker.keys.events(run.id)),
        r.hgetall(engine.tracker.keys.results(run.id)),
    )
    assert after == before
    assert run.state() == state_before
    assert counts(r, app, run.id) == {"a": 1, "b": 1}  # neither the node nor its child ran again
    result = AsyncResult(tid, app=app)
    assert (result.state, result.result) == ("SUCCESS", "a")  # Celery's record of the node is untouched


@pytest.mark.parametrize("app", [{"wfcelery_gate_lease": 4}], indirect=True)
def test_an_unmarked_copy_of_a_finished_task_records_nothing(app, engine, r):
    """A copy no one marked (a publisher's blind retry after a lost connection) starts on the worker's
    local gate without a tracker call: its body may run again, but its report is fenced -- the node, its
    result, the run and its children stay as they were (docs: architecture, "The start gate")."""
    wf = Workflow("dup-unmarked")
    a = wf.add("a", "proj.count")
    b = wf.add("b", "proj.count")
    a >> b
    with in_thread_worker(app):
        run = engine.submit(wf)
        run.wait(timeout=30)
        before = (
            r.hgetall(engine.tracker.keys.nodes(run.id)),
            r.hgetall(engine.tracker.keys.results(run.id)),
        )
        state_before = run.state()
        plan = engine.plans.get(engine.tracker.run_record(run.id).plan)
        app.send_task("proj.count", **plan.message(run.id, 0, 0, {}, ()))  # the very same message again
        wait_for(lambda: counts(r, app, run.id).get("a") == 2, message="the copy's body to run")
        wait_for(lambda: worker_idle(r, app), message="worker idle")
    assert (
        r.hgetall(engine.tracker.keys.nodes(run.id)),
        r.hgetall(engine.tracker.keys.results(run.id)),
    ) == before
    assert run.state() == state_before
    assert counts(r, app, run.id)["b"] == 1  # its child was not released again


def test_ttl_on_every_key_of_a_finished_run(make_test_app, r):
    app = make_test_app(wfcelery_run_ttl=600, **CELERY_RESULTS)
    engine = app._wfcelery_engine
    wf = Workflow("ttl")
    a = wf.add("a", "proj.add", args=[1, 1])
    b = wf.add("b", "proj.fail")
    a >> b
    with in_thread_worker(app):
        ok = engine.submit(Workflow.from_dict({"name": "ok", "tasks": [{"name": "x", "task": "proj.noop"}]}))
        ok.wait(timeout=30)
        failed = engine.submit(wf)
        with pytest.raises(RunFailed):
            failed.wait(timeout=30)
    for run in (ok, failed):
        keys = run_keys(r, engine, run.id)
        names = {k.rsplit(":", 1)[1] for k in keys}
        assert {"run", "nodes", "events"} <= names  # no results key for the noop run: None is not stored
        assert {k: r.ttl(k) for k in keys if not 0 < r.ttl(k) <= 600} == {}
        for node in run.state().nodes.values():
            assert r.ttl(f"celery-task-meta-{node.task_id}") > 0
    assert {"errors", "results"} <= {k.rsplit(":", 1)[1] for k in run_keys(r, engine, failed.id)}


def test_a_run_at_the_defaults_stores_none_of_them_and_behaves_by_them(app, engine, r):
    """policy, ttl, maxlen, executor, params and the done channel are not stored when at their defaults
    (finished runs are kept for days: each byte counts once per run kept); the scripts act on the defaults:
    the done channel is told, every key lives the default TTL, a failure fails the run fast."""
    ok = Workflow("defaults")
    a = ok.add("a", "proj.noop")
    b = ok.add("b", "proj.noop")
    a >> b
    bad = Workflow("defaults-fail")
    x = bad.add("x", "proj.fail")
    y = bad.add("y", "proj.noop")
    x >> y
    pubsub = r.pubsub()
    pubsub.psubscribe(engine.tracker.keys.done_channel("*"))
    with in_thread_worker(app):
        first = engine.submit(ok)
        first.wait(timeout=30)
        failed = engine.submit(bad)
        with pytest.raises(RunFailed):
            failed.wait(timeout=30)
    told = []
    deadline = time.monotonic() + 5
    while not told and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.5)
        if message and message["type"] == "pmessage":
            told.append((message["channel"], message["data"]))
    pubsub.close()
    assert told == [(engine.tracker.keys.done_channel(first.id), "SUCCEEDED")]
    for run in (first, failed):
        raw = r.hgetall(engine.tracker.keys.run(run.id))
        assert set(raw) & {*RUN_DEFAULTS, "chan"} == set()
        assert ("mn" in raw) is (run is failed)  # its nodes' (task, queue) labels: one pair, or two
        day = 24 * 3600
        keys = run_keys(r, engine, run.id)
        assert {k: r.ttl(k) for k in keys if not 6 * day < r.ttl(k) <= 7 * day} == {}
    record = engine.tracker.read_run(failed.id)[0]
    assert (record.policy, record.executor.value, record.params) == ("fail_fast", "counters", {})
    assert failed.state().nodes["y"].status.value == "REVOKED"  # fail_fast: its child is not run


@pytest.mark.parametrize("app", [CELERY_RESULTS], indirect=True)  # Celery's result keys are checked too
def test_cleanup_deletes_every_key_of_the_run(app, engine, r):
    wf = Workflow("clean")
    a = wf.add("a", "proj.add", args=[1, 2])
    b = wf.add("b", "proj.fail")
    c = wf.add("c", "proj.noop")
    a >> [b, c]
    wf2 = Workflow("other")
    wf2.add("x", "proj.noop")
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(RunFailed):
            run.wait(timeout=30)
        other = engine.submit(wf2)
        other.wait(timeout=30)
    ids = [n.task_id for n in run.state().nodes.values() if n.status is not NodeStatus.REVOKED]
    assert ids
    assert all(r.exists(f"celery-task-meta-{t}") for t in ids)
    assert run_keys(r, engine, run.id)

    run.cleanup()

    assert run_keys(r, engine, run.id) == []
    assert [t for t in ids if r.exists(f"celery-task-meta-{t}")] == []
    assert r.zscore(engine.tracker.keys.index, run.id) is None
    # its gate entry stays (until it expires): a message of it still queued somewhere is dropped unrun
    assert r.hget(engine.tracker.keys.gate, run.id).startswith("F")
    with pytest.raises(RunNotFound):
        engine.run(run.id)
    assert [s.id for s in engine.runs()] == [other.id]  # the other run is untouched
    assert run_keys(r, engine, other.id)


@pytest.mark.parametrize("app", [CELERY_RESULTS], indirect=True)  # Celery's result keys are checked too
def test_cleanup_refuses_a_live_run_unless_forced(app, engine, r, uid):
    key = f"t{uid}:hold"
    wf = Workflow("live")
    blk = wf.add("blk", "proj.block", args=[key])
    after = wf.add("after", "proj.count")
    blk >> after
    with in_thread_worker(app), released(r, key):
        run = engine.submit(wf)
        wait_for(lambda: status_of(run, "blk") is NodeStatus.RUNNING, message="blk RUNNING")
        with pytest.raises(ControlError, match="RUNNING"):
            run.cleanup()
        assert run.state().status is RunStatus.RUNNING  # refused: nothing changed
        run.cleanup(force=True)
        assert run_keys(r, engine, run.id) == []
        # the node that was running finishes after the cleanup: its late report must not resurrect keys
        r.rpush(key, "go")
        tid = f"{run.id}-0-0"
        wait_for(lambda: AsyncResult(tid, app=app).state == "SUCCESS", message="blk finished")
        wait_for(lambda: worker_idle(r, app), message="worker idle")
    assert run_keys(r, engine, run.id) == []
    assert counts(r, app, run.id) == {}  # its child never ran
    with pytest.raises(RunNotFound):
        run.state()


def test_a_halt_fenced_by_an_epoch_leaves_a_run_that_moved_on_alone(app, engine, r):
    """halt.lua's epoch fence, atomic with the halt: a cancel decided on a read of epoch 0 does nothing to
    the run resumed since (epoch 1) -- no status change, no event logged -- and cancels it at epoch 1."""
    wf = Workflow("fenced")
    wf.add("a", "proj.add", args=[1, 2])  # no worker: the node stays QUEUED
    run = engine.submit(wf)
    run.pause()
    run.resume()
    assert engine.tracker.run_record(run.id).epoch == 1
    log = r.get(engine.tracker.keys.events(run.id))
    stale = engine.tracker.halt(run.id, "cancel", epoch=0)
    assert (stale.changed, stale.after, stale.epoch) == (False, "RUNNING", 1)
    assert run.state().status is RunStatus.RUNNING
    assert r.get(engine.tracker.keys.events(run.id)) == log
    current = engine.tracker.halt(run.id, "cancel", epoch=1)
    assert (current.changed, current.after) == (True, "CANCELLED")
    assert run.state().status is RunStatus.CANCELLED


def test_late_reports_for_a_deleted_run_write_nothing(app, engine, r):
    """Reports that arrive after cleanup (a node that was running, a retry) must not recreate keys that
    would then live forever without a TTL. Every report reaches its Lua script (valid arguments, no error
    swallowed) and is answered "nothing to do"."""
    wf = Workflow("late")
    a = wf.add("a", "proj.noop")
    b = wf.add("b", "proj.noop")
    a >> b
    run = engine.submit(wf)  # no worker: both stay unstarted
    run.cleanup(force=True)
    assert run_keys(r, engine, run.id) == []
    t = engine.tracker
    error = {"type": "RuntimeError", "message": "late", "traceback": ""}
    assert t.start(run.id, 0, 0, "w@h").reason == "gone"
    assert run_keys(r, engine, run.id) == []
    succeeded = t.succeed(run.id, 0, 0, "1", [(1, 1)])  # node a released its one child b
    assert (succeeded.gone, succeeded.finish, succeeded.released) == (True, None, ())
    assert run_keys(r, engine, run.id) == []
    for mode, retries in (("failed", 0), ("failed", 3), ("retrying", 0), ("revoked", 0)):
        assert t.fail(run.id, 0, 0, error, mode, retries, [1]).action == "gone", mode
        assert run_keys(r, engine, run.id) == []


# -- queries -------------------------------------------------------------------------------------------


def test_runs_lists_newest_first_with_filters(app, engine):
    specs = [
        ("alpha", "proj.noop"),
        ("beta", "proj.noop"),
        ("alpha", "proj.fail"),
        ("beta", "proj.noop"),
        ("alpha", "proj.noop"),
    ]
    runs = []
    with in_thread_worker(app):
        for name, task in specs:
            if runs:  # distinct creation times (ms), so "newest first" is well defined
                after_created(engine, runs[-1].id)
            runs.append(engine.submit({"name": name, "tasks": [{"name": "t", "task": task}]}))
        for run in runs:
            with suppress(RunFailed):
                run.wait(timeout=30)
    newest_first = [run.id for run in reversed(runs)]
    assert [s.id for s in engine.runs()] == newest_first
    assert [s.id for s in engine.runs(limit=2)] == newest_first[:2]
    assert [s.id for s in engine.runs(name="alpha")] == [runs[4].id, runs[2].id, runs[0].id]
    assert [s.id for s in engine.runs(name="alpha", limit=1)] == [runs[4].id]
    assert [s.id for s in engine.runs(status="failed")] == [runs[2].id]
    assert [s.id for s in engine.runs(status="SUCCEEDED", name="beta")] == [runs[3].id, runs[1].id]
    assert engine.runs(status="running") == []
    summary = engine.runs(limit=1)[0]
    assert (summary.name, summary.status, summary.total, summary.done) == ("alpha", RunStatus.SUCCEEDED, 1, 1)
    assert summary.finished_at >= summary.created_at
    assert engine.run(runs[2].id).state().status is RunStatus.FAILED


def test_unknown_run_raises_run_not_found(app, engine):
    with pytest.raises(RunNotFound, match="nope"):
        engine.run("nope")
    with pytest.raises(RunNotFound):
        engine.run("0" * 32)
    with pytest.raises(RunNotFound):
        wfcelery.Run(engine, "0" * 32).state()


def test_wait_timeout(app, engine, r, uid):
    key = f"t{uid}:hold"
    wf = Workflow("slow")
    wf.add("blk", "proj.block", args=[key])
    with in_thread_worker(app), released(r, key):
        run = engine.submit(wf)
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as info:
            run.wait(timeout=0.5)
        assert isinstance(info.value, TimeoutError)
        assert 0.5 <= time.monotonic() - started < 10
        assert run.state().status is RunStatus.RUNNING  # waiting changes nothing
        r.rpush(key, "go")
        assert run.wait(timeout=30) == {"blk": "released"}


# -- a worker whose tracker is unreachable -------------------------------------------------------------


def test_start_gate_is_strict_when_the_tracker_is_unreachable(app, engine, r, caplog):
    """The worker's tracker points at a port where nothing listens; the broker works.

    No body runs unchecked (a paused run would run, and run again at resume): the start gate waits
    ``wfcelery_gate_wait``, then gives the message back to the broker. Nothing is recorded as failed, and a
    worker that can reach the tracker runs the node once. The outage is logged once (one WARNING), not
    once per requeue.
    """
    worker_app = make_app(
        app.conf.broker_url,
        app.conf.result_backend,
        app.conf.wfcelery_key_prefix,
        app.conf.task_default_queue,
        wfcelery_gate_wait=0.2,
        wfcelery_sweep_interval=0,
    )
    wfcelery.install(worker_app, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    wf = Workflow("no-redis")
    wf.add("a", "proj.count")
    run = engine.submit(wf)
    tid = run.state().nodes["a"].task_id
    caplog.set_level(logging.DEBUG, logger="wfcelery")
    try:
        with in_thread_worker(worker_app, concurrency=1):
            wait_for(
                lambda: (
                    sum(f"task {tid} requeued: start gate unreachable" in m for m in caplog.messages) >= 2
                ),
                timeout=30,
                message="the message requeued twice",
            )
    finally:
        worker_app._wfcelery_worker.close_gate()
        worker_app._wfcelery_worker.stop_services()
    worker_side = [
        (rec.levelname, rec.getMessage())
        for rec in caplog.records
        if rec.name.startswith("wfcelery") and rec.name != "wfcelery.engine" and rec.levelno >= logging.INFO
    ]
    assert [level for level, _ in worker_side] == ["WARNING"], worker_side  # not one per requeue
    assert "the tracker's Redis is unreachable" in worker_side[0][1]
    assert r.hgetall(f"{app.conf.wfcelery_key_prefix}:count:{run.id}") == {}, "a body ran unchecked"
    assert status_of(run, "a") is NodeStatus.QUEUED
    # The requeued message may still sit unacked in the stopped worker's channel (the Redis broker restores
    # it only after visibility_timeout): pause + resume re-publishes the QUEUED node under a fresh id, the
    # documented recovery, and fences the old copy as stale.
    run.pause()
    run.resume()
    with in_thread_worker(app):
        assert run.wait(timeout=60) == {"a": "a"}
    assert r.hgetall(f"{app.conf.wfcelery_key_prefix}:count:{run.id}") == {"a": "1"}


def test_event_log_is_capped_and_offsets_stay_valid(make_test_app, r):
    """Past wfcelery_events_maxlen bytes the log drops its older half; a reader's offset still works."""
    app = make_test_app(wfcelery_events_maxlen=300)
    engine = app._wfcelery_engine
    wf = Workflow("long-log")
    nodes = [wf.add(f"n{i}", "proj.noop", immutable=True) for i in range(30)]
    for parent, child in itertools.pairwise(nodes):
        parent >> child
    with in_thread_worker(app):
        run = engine.submit(wf)
        offset, first = engine.tracker.events(run.id)  # read early, like `watch`
        run.wait(timeout=60)
    assert len(r.get(engine.tracker.keys.events(run.id))) <= 300  # ~90 lines were logged
    assert int(r.hget(engine.tracker.keys.run(run.id), "ev_base")) > 0
    end, rest = engine.tracker.events(run.id, after=offset)
    assert rest
    assert end > offset
    assert (rest[-1].node, rest[-1].status) == (None, "SUCCEEDED")  # the newest lines survive
    assert engine.tracker.events(run.id, after=end) == (end, [])
    assert first[0].status == "Q"
    assert first[0].node == 0
    # many runs read at once (the web server's shared streams) answer as each run read alone
    other = engine.submit(wf)  # no worker: its first transitions only
    cursors = {run.id: offset, other.id: 0, "0" * 32: 0}  # a run that does not exist has no events
    assert engine.events_of(cursors) == {
        run.id: (end, rest),
        other.id: engine.tracker.events(other.id),
        "0" * 32: (0, []),
    }
    assert engine.events_of({run.id: end}) == {run.id: (end, [])}
