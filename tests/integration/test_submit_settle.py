"""A submit that raised never runs: a write that got no answer is settled before ``submit`` returns.

The run is written by one script (create.lua) that refuses when the run's tombstone exists, and is written
*unconfirmed*. A create that got no answer (a hung tracker executes it later) is settled for
``wfcelery_submit_settle`` seconds: found -> its roots are sent and the run returned; not found -> the
tombstone makes sure it never lands, and submit raises TrackerUnavailable saying nothing was submitted.
The reconciler never re-sends an unconfirmed run that never started, and cancels it past its deadline.

The hung-tracker tests freeze (SIGSTOP) a redis-server of their own during submit: its kernel still
accepts connections and buffers what clients send, and when it wakes it executes every command it had
received -- the create included, long after the client gave up.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from tests.conftest import illegal_transitions
from tests.helpers import counts, in_thread_worker, wait_for
from tests.proj import make_app
from tests.redis_server import FaultyRedis
from wfcelery import NodeStatus, RunStatus, TrackerUnavailable, Workflow
from wfcelery.tracker.outcomes import CreateResult
from wfcelery.tracker.records import new_run
from wfcelery.worker.reconciler import Reconciler, Repair


def chain(n: int = 3) -> Workflow:
    wf = Workflow("settle")
    for i in range(n):
        wf.add(f"n{i}", "proj.count", immutable=True, after=[f"n{i - 1}"] if i else [])
    return wf


def write_run(engine: Any, unconfirmed_s: float) -> tuple[str, Any]:
    """What a submit writes before it publishes anything: the run, unconfirmed."""
    plan = engine.plans.remember(_plan(engine))
    run_id = uuid.uuid4().hex
    record = new_run(
        name=plan.name,
        plan_digest=plan.digest,
        total=len(plan.nodes),
        created_ms=int(time.time() * 1000),
        params={},
        policy=plan.on_failure,
        ttl=engine.settings.run_ttl,
        events_maxlen=engine.settings.events_maxlen,
    )
    out = engine.tracker.create_run(run_id, record, plan.roots, plan.digest, plan.blob, unconfirmed_s)
    assert out.result is CreateResult.CREATED
    return run_id, plan


def _plan(engine: Any) -> Any:
    from wfcelery.plan.compiler import compile_workflow

    return compile_workflow(chain(), engine.settings.routes)


# -- the scripts -------------------------------------------------------------------------------------------


def test_a_settled_submit_refuses_its_late_write(engine: Any, r: redis.Redis) -> None:
    """settle.lua on a run that was not written leaves a tombstone; create.lua then writes nothing -- no
    run, no index entry, nothing for the reconciler. Settling a run that was written finds it."""
    tracker, keys = engine.tracker, engine.tracker.keys
    late = "a" * 32
    assert tracker.settle_run(late) is CreateResult.VOID
    plan = _plan(engine)
    record = new_run(
        name=plan.name,
        plan_digest=plan.digest,
        total=len(plan.nodes),
        created_ms=int(time.time() * 1000),
        params={},
        policy=plan.on_failure,
        ttl=engine.settings.run_ttl,
        events_maxlen=engine.settings.events_maxlen,
    )
    out = tracker.create_run(late, record, plan.roots, plan.digest, plan.blob, 60)
    assert out.result is CreateResult.VOID
    assert r.exists(keys.run(late), keys.nodes(late), keys.events(late)) == 0
    assert r.zscore(keys.index, late) is None
    assert not r.sismember(keys.live, late)
    assert 0 < r.ttl(keys.void(late)) <= engine.settings.run_ttl
    written, _ = write_run(engine, 60)
    assert tracker.settle_run(written) is CreateResult.EXISTS
    assert not r.exists(keys.void(written))
    again = tracker.create_run(written, record, plan.roots, plan.digest, plan.blob, 60)
    assert again.result is CreateResult.EXISTS  # a second delivery of the same create changes nothing


def test_a_submitted_run_is_confirmed(app: Celery, engine: Any, r: redis.Redis) -> None:
    with in_thread_worker(app):
        run = engine.submit(chain())
        assert r.hget(engine.tracker.keys.run(run.id), "unconfirmed") is None
        assert run.wait(timeout=30) == {"n0": "n0", "n1": "n1", "n2": "n2"}


@pytest.mark.parametrize("app", [{"wfcelery_queued_timeout": 0.2}], indirect=True)
def test_an_unconfirmed_run_is_never_resent_and_is_cancelled_past_its_deadline(
    app: Celery, engine: Any, r: redis.Redis
) -> None:
    """A run written by a submit that then gave up (nothing published): its roots stay QUEUED past
    wfcelery_queued_timeout, yet no sweep re-sends them (a re-sent message would wait in the broker's
    queue: no worker runs here); past its deadline it is CANCELLED, every node REVOKED saying why."""
    run_id, _ = write_run(engine, unconfirmed_s=2)
    rec = Reconciler(app._wfcelery_worker, hostname="test-sweep", patient=False)
    written = time.monotonic()
    assert rec.sweep() == []
    time.sleep(0.3)  # past wfcelery_queued_timeout, as seen by this reconciler
    assert rec.sweep() == []  # a confirmed run's root would be re-sent now
    repairs = wait_for(rec.sweep, timeout=20, interval=0.2, message="the unconfirmed run cancelled")
    assert time.monotonic() - written >= 1.5
    assert repairs == [Repair(run_id, None, "cancelled", "its submit never completed, and it never started")]
    state = engine.run(run_id).state()
    assert state.status is RunStatus.CANCELLED
    assert {n.status for n in state.nodes.values()} == {NodeStatus.REVOKED}
    assert state.nodes["n0"].error["type"] == "SubmitNotConfirmed"
    assert rec.sweep() == []
    assert r.llen(app.conf.task_default_queue) == 0  # nothing was ever sent


# -- a hung tracker during submit --------------------------------------------------------------------------


@pytest.fixture
def hung_app(faulty_redis: FaultyRedis, redis_url: str, uid: str, tmp_path: Path) -> Any:
    """The tracker on a server of the test's own (frozen during submit); the broker and the body counters
    on the suite's Redis. Fast worker settings, and wfcelery_queued_timeout 1 s: a run the reconciler
    would re-send is re-sent within seconds."""

    def make(settle: float) -> Celery:
        return make_app(
            redis_url,
            faulty_redis.url_db(1),
            f"t{uid}",
            f"q{uid}",
            test_probe_url=redis_url,
            wfcelery_redis_timeout=0.5,
            wfcelery_submit_settle=settle,
            wfcelery_queued_timeout=1,
            wfcelery_heartbeat=0.5,
            wfcelery_sweep_interval=0.5,
            wfcelery_gate_wait=0.5,
            wfcelery_report_retry=1,
            wfcelery_outbox_dir=str(tmp_path / "outbox"),
        )

    return make


@pytest.mark.parametrize(
    ("frozen_for", "settle"),
    [(None, 1.0), (1.5, 4.0)],
    ids=["frozen-through-the-submit", "frozen-1.5s"],
)
def test_submit_against_a_hung_tracker_returns_a_run_that_succeeds_or_nothing_ever_runs(
    frozen_for: float | None,
    settle: float,
    hung_app: Any,
    faulty_redis: FaultyRedis,
    r: redis.Redis,
) -> None:
    """The tracker's Redis frozen while submit writes the run. Either submit returns a run that
    succeeds (each body once), or it raises TrackerUnavailable saying nothing was submitted and -- past
    the reconciler's deadline for unconfirmed runs, with the write landing when Redis wakes -- no body
    ever ran: the run is absent (tombstoned) or CANCELLED. Frozen through the whole submit, it raises."""
    app = hung_app(settle)
    engine = app._wfcelery_engine
    tracker = redis.Redis.from_url(app.conf.wfcelery_redis_url, decode_responses=True)
    keys = engine.tracker.keys
    with in_thread_worker(app):
        # a first run loads the scripts (a script Redis does not know yet would fail when it wakes) and
        # connects: what hangs is the write itself
        assert engine.submit(chain()).wait(timeout=30)
        raised: TrackerUnavailable | None = None
        took = 0.0
        with faulty_redis.frozen():
            if frozen_for is not None:
                thaw = threading.Timer(frozen_for, faulty_redis.thaw)
                thaw.start()
            started = time.monotonic()
            try:
                run = engine.submit(chain())
            except TrackerUnavailable as e:
                raised = e
            took = time.monotonic() - started
        assert took < engine.settings.settle_seconds + 4 * engine.settings.redis_timeout + 2
        if raised is None:
            assert frozen_for is not None
            assert run.wait(timeout=30) == {"n0": "n0", "n1": "n1", "n2": "n2"}
            assert counts(r, app, run.id) == {"n0": 1, "n1": 1, "n2": 1}
            return
        assert "nothing was submitted" in str(raised)
        named = re.search(r"\b[0-9a-f]{32}\b", str(raised))
        assert named, raised
        run_id = named.group(0)

        def settled() -> bool:
            status = tracker.hget(keys.run(run_id), "status")
            if status is None:  # its write was refused: the tombstone is there
                return bool(tracker.exists(keys.void(run_id)))
            return status == RunStatus.CANCELLED.value

        bound = engine.settings.unconfirmed_bound
        wait_for(settled, timeout=bound + 20, interval=0.2, message="the unsubmitted run absent or CANCELLED")
        time.sleep(2)  # more than wfcelery_queued_timeout and several sweeps: nothing is re-sent now
        assert counts(r, app, run_id) == {}
        assert not illegal_transitions(tracker.get(keys.events(run_id)) or "")
    if frozen_for is None:
        assert raised is not None


@pytest.mark.parametrize("fault", ["connection refused", "out of memory"])
def test_a_refused_write_raises_at_once_with_nothing_to_settle(
    fault: str, hung_app: Any, faulty_redis: FaultyRedis, r: redis.Redis
) -> None:
    """A write Redis refused (OOM under noeviction) or never received (the connection was refused) cannot
    land later: submit says nothing was submitted at once, without settling it, and writes nothing."""
    app = hung_app(settle=30.0)
    engine = app._wfcelery_engine
    tracker = redis.Redis.from_url(app.conf.wfcelery_redis_url, decode_responses=True)
    tracker.config_set("maxmemory-policy", "noeviction")
    before = set(tracker.keys("*"))
    if fault == "connection refused":
        faulty_redis.shutdown()
    else:
        tracker.config_set("maxmemory", 1)
    try:
        started = time.monotonic()
        with pytest.raises(TrackerUnavailable, match="nothing was submitted"):
            engine.submit(chain())
        assert time.monotonic() - started < 5  # not the 30 s a write that may land is settled for
    finally:
        if fault == "out of memory":
            tracker.config_set("maxmemory", 0)
    if fault == "connection refused":
        faulty_redis.start()
    assert set(tracker.keys("*")) == before
