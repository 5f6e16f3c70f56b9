"""What the reconciler's sweep repairs of waiting nodes, each left in the state a process dying at the worst
moment leaves it (the step beside a transition never done): a sleep without its timer, a sub-workflow node
waiting on a child run that was never created, a child run whose parent was cancelled without telling it.
"""

from __future__ import annotations

from typing import Any

import pytest
import redis
from celery.worker import state as worker_state

from tests.helpers import status_of, wait_for
from wfcelery import NodeStatus, RunStatus, Workflow
from wfcelery.worker.reconciler import Reconciler
from wfcelery.worker.side import worker_of

pytestmark = pytest.mark.timeout(60)


def sweeper(app: Any) -> Reconciler:
    """One sweep at a time, as ``wfcelery sweep`` runs it (the worker's own loop sweeps every 15 s)."""
    side = worker_of(app)
    assert side is not None
    return Reconciler(side, hostname="test-sweep", patient=False)


def test_a_sleep_whose_timer_is_missing_gets_it_back(
    app: Any, engine: Any, worker: Any, r: redis.Redis
) -> None:
    wf = Workflow("nap")
    wf.sleep("nap", 1)
    wf.add("after", "proj.add", args=[1, 1], after="nap", immutable=True)
    run = engine.submit(wf)
    wait_for(lambda: status_of(run, "nap") is NodeStatus.WAITING, message="nap WAITING")
    timers = engine.tracker.keys.timers
    assert r.zrem(timers, *r.zrange(timers, 0, -1)) == 1  # as if the worker died before setting it
    repairs = sweeper(app).sweep()
    assert [(x.node, x.action) for x in repairs] == [("nap", "repaired")]
    assert "its timer was missing" in repairs[0].reason
    assert run.wait(timeout=20) == {"nap": None, "after": 2}


def test_a_child_run_never_created_is_started_on_the_second_sweep(
    app: Any, engine: Any, worker: Any, uid: str, r: redis.Redis
) -> None:
    child = Workflow("child")
    child.add("c", "proj.block", args=[f"{uid}:go"])
    engine.register(child)
    wf = Workflow("parent")
    wf.add("sub", workflow="child")
    run = engine.submit(wf)
    child_id = wait_for(lambda: run.state().nodes["sub"].child_run, message="the child run")
    wait_for(lambda: status_of(engine.run(child_id), "c") is NodeStatus.RUNNING, message="its body runs")
    engine.tracker.delete_run(child_id)  # the parent waits on a child that does not exist
    r.rpush(f"{uid}:go", "go")  # let the deleted child's body end
    wait_for(lambda: r.llen(f"{uid}:go") == 0, message="the deleted child's body to take it")
    # ... and its report to land (on nothing): the run is re-created under the same id and node ids, where
    # a late report of the deleted run's body would be taken for the new body's
    wait_for(lambda: not worker_state.active_requests, message="the deleted child's body to end")
    reconciler = sweeper(app)
    assert reconciler.sweep() == []  # the releasing process may be starting it this very moment
    repairs = reconciler.sweep()
    assert [(x.node, x.action) for x in repairs] == [("sub", "repaired")]
    assert f"its child run {child_id} did not exist: started" in repairs[0].reason
    wait_for(lambda: status_of(engine.run(child_id), "c") is NodeStatus.RUNNING, message="the child runs")
    r.rpush(f"{uid}:go", "go")
    assert run.wait(timeout=20) == {"sub": {"c": "released"}}
    assert run.state().nodes["sub"].child_run == child_id


def test_a_child_run_whose_parent_no_longer_waits_is_cancelled(
    app: Any, engine: Any, worker: Any, uid: str, r: redis.Redis
) -> None:
    child = Workflow("child")
    child.add("c", "proj.block", args=[f"{uid}:go"])
    engine.register(child)
    wf = Workflow("parent")
    wf.add("sub", workflow="child")
    run = engine.submit(wf)
    child_id = wait_for(lambda: run.state().nodes["sub"].child_run, message="the child run")
    engine.tracker.halt(run.id, "cancel")  # the tracker's transition alone: the child was never told
    assert engine.run(child_id).state().status is RunStatus.RUNNING
    repairs = sweeper(app).sweep()
    assert ("cancelled", f"its parent run {run.id} no longer waits on it") in [
        (x.action, x.reason) for x in repairs
    ]
    assert engine.run(child_id).state().status is RunStatus.CANCELLED
    r.rpush(f"{uid}:go", "go")
