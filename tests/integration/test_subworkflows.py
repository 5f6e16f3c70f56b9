"""Workflows inside workflows, for real: a sub-workflow node runs a registered workflow as a child run.

The child's results (a dict by node) reach the parent's next node and the runs are linked both ways; a
failed child fails the node with its summary and a retry of the parent retries that same child; pause,
resume, cancel and cleanup of the parent reach the child; recursion, an unknown workflow, nesting past
``wfcelery_max_nesting`` and a child's missing param are refused at submit, before anything is written.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import run_keys, status_of, wait_for
from wfcelery import NodeStatus, ParamError, RunFailed, RunNotFound, RunStatus, Workflow
from wfcelery.errors import NestingError
from wfcelery.ops.subruns import halt_run, idle_children

pytestmark = pytest.mark.timeout(60)


def etl(name: str = "etl") -> Workflow:
    """x = n + 1, y = x + 10."""
    wf = Workflow(name)
    wf.add("x", "proj.add", args=["${n}", 1])
    wf.add("y", "proj.add", kwargs={"y": 10}, after="x")
    return wf


def parent(child: str = "etl", name: str = "daily") -> Workflow:
    wf = Workflow(name)
    wf.add("prep", "proj.add", args=[1, 1])
    wf.add("load", workflow=child, params={"n": "${day}"}, after="prep")
    wf.add("report", "proj.echo", after="load")
    return wf


def child_of(run: Any, node: str = "load") -> Any:
    child = wait_for(lambda: run.state().nodes[node].child_run, message=f"{node}'s child run")
    return run.engine.run(child)


def test_the_childs_results_reach_the_parents_next_node_and_the_runs_are_linked(
    engine: Any, worker: Any, r: Any
) -> None:
    engine.register(etl())
    run = engine.submit(parent(), params={"day": 5})
    results = run.wait(timeout=30)
    assert results["load"] == {"x": 6, "y": 16}
    assert results["report"] == {"args": [{"x": 6, "y": 16}], "kwargs": {}}
    state = run.state()
    child = engine.run(state.nodes["load"].child_run)
    child_state = child.state()
    assert child_state.name == "etl"
    assert child_state.params == {"n": 5}
    assert child_state.parent == (run.id, "load")
    assert child_state.to_dict()["parent"] == {"run": run.id, "node": "load"}
    assert state.nodes["load"].kind.value == "workflow"
    assert state.nodes["load"].worker is None
    assert {s.id for s in engine.runs()} == {run.id, child.id}


def test_a_failed_child_fails_the_node_and_a_retry_of_the_parent_retries_that_child(
    engine: Any, worker: Any, uid: str
) -> None:
    flaky = Workflow("flaky")
    flaky.add("a", "proj.add", args=[1, 2])
    flaky.add("b", "proj.flaky", args=[1, f"{uid}:flaky"], after="a", immutable=True)
    engine.register(flaky)
    wf = Workflow("outer")
    wf.add("sub", workflow="flaky")
    wf.add("after", "proj.echo", after="sub")
    run = engine.submit(wf)
    with pytest.raises(RunFailed):
        run.wait(timeout=30)
    node = run.state().nodes["sub"]
    child_id = node.child_run
    assert node.status is NodeStatus.FAILED
    assert node.error["type"] == "ChildRunFailed"
    assert node.error["message"] == f"child run {child_id} (flaky) FAILED: b: RuntimeError: flaky attempt 1"
    assert engine.run(child_id).state().status is RunStatus.FAILED
    run.retry()
    assert run.wait(timeout=30)["sub"] == {"a": 3, "b": 2}
    assert run.state().nodes["sub"].child_run == child_id  # the same child run, retried
    child = engine.run(child_id).state()
    assert child.status is RunStatus.SUCCEEDED
    assert child.nodes["a"].attempts == 1


@pytest.mark.parametrize("app", [{"wfcelery_sweep_interval": 0}], indirect=True)  # no reconciler's sweep
def test_a_cancel_read_before_a_retry_of_the_parent_does_not_reach_the_retried_child(
    engine: Any, worker: Any, r: Any, uid: str
) -> None:
    """A parent that fails cancels its live child runs in two steps: it reads which ones no longer have a
    node waiting on them, then cancels each. A retry of the parent landing between the two retries the
    child; the late cancel must leave that run alone, and the retried parent must succeed."""
    hold = Workflow("hold")
    hold.add("wait", "proj.block", args=[f"{uid}:hold"])
    engine.register(hold)
    wf = Workflow("guarded")
    wf.add("sub", workflow="hold")
    wf.add("boom", "proj.flaky", args=[1, f"{uid}:boom"])
    run = engine.submit(wf)
    child = child_of(run, "sub")
    with pytest.raises(RunFailed):
        run.wait(timeout=30)  # boom failed fast; the parent's end cancels the child
    wait_for(lambda: child.state().status is RunStatus.CANCELLED, message="the child cancelled")
    child.retry()  # the child runs again on its own: a live child its parent's node does not wait on
    first_step = idle_children(engine.tracker, run.id, RunStatus.FAILED.value)
    assert first_step == [(child.id, engine.tracker.run_record(child.id).epoch)]
    run.retry()  # lands before the cancel: arming the node again cancels and retries the live child
    assert run.state().nodes["sub"].status is NodeStatus.WAITING
    assert engine.tracker.run_record(child.id).epoch > first_step[0][1]
    _, epoch = first_step[0]
    late = halt_run(engine.tracker, engine.dispatch, child.id, "cancel", epoch=epoch, settle_parent=False)
    assert not late.changed
    assert child.state().status is RunStatus.RUNNING
    r.rpush(f"{uid}:hold", "go")
    assert run.wait(timeout=30) == {"sub": {"wait": "released"}, "boom": 2}
    assert run.state().nodes["sub"].child_run == child.id
    assert child.state().status is RunStatus.SUCCEEDED


def test_pause_resume_cancel_retry_and_cleanup_reach_the_child(
    engine: Any, worker: Any, r: Any, uid: str
) -> None:
    slow = Workflow("slow")
    slow.add("first", "proj.block", args=[f"{uid}:one"])
    slow.add("second", "proj.block", args=[f"{uid}:two"], after="first", immutable=True)
    engine.register(slow)
    wf = Workflow("holder")
    wf.add("sub", workflow="slow")
    run = engine.submit(wf)
    child = child_of(run, "sub")
    wait_for(lambda: status_of(child, "first") is NodeStatus.RUNNING, message="the child runs")
    run.pause()
    assert child.state().status is RunStatus.PAUSED
    r.rpush(f"{uid}:one", "go")  # first finishes while paused; second waits for the resume
    wait_for(lambda: status_of(child, "first") is NodeStatus.SUCCEEDED, message="first done")
    assert status_of(child, "second") is NodeStatus.PENDING
    run.resume()
    assert child.state().status is RunStatus.RUNNING
    wait_for(lambda: status_of(child, "second") is NodeStatus.RUNNING, message="second runs")
    run.cancel()
    assert child.state().status is RunStatus.CANCELLED
    assert status_of(run, "sub") is NodeStatus.REVOKED
    r.rpush(f"{uid}:two", "go")  # the running body finishes (recorded in the cancelled child)
    wait_for(lambda: status_of(child, "second") is NodeStatus.SUCCEEDED, message="second done")
    run.retry()  # the node runs again: the same child, retried, has nothing left to run
    assert run.wait(timeout=20) == {"sub": {"first": "released", "second": "released"}}
    assert run.state().nodes["sub"].child_run == child.id
    assert child.state().status is RunStatus.SUCCEEDED
    run.cleanup()
    assert run_keys(r, engine, child.id) == []
    assert run_keys(r, engine, run.id) == []
    with pytest.raises(RunNotFound):
        engine.run(child.id)


def test_recursion_unknown_workflows_depth_and_child_params_are_refused_at_submit(
    make_test_app: Any, r: Any, tmp_path: Any
) -> None:
    (tmp_path / "b.yaml").write_text("name: b\ntasks:\n  - {name: to_a, workflow: a}\n")
    engine = make_test_app(wfcelery_definitions=str(tmp_path))._wfcelery_engine
    with pytest.raises(NestingError, match="runs itself"):
        Workflow("loop").add("me", workflow="loop").workflow.validate()
    a = Workflow("a")
    a.add("to_b", workflow="b")
    with pytest.raises(NestingError, match="workflow 'a' runs itself: a -> b -> a"):
        engine.register(a)  # b (a file of the definitions folder) runs a
    with pytest.raises(NestingError, match="workflow 'a' runs itself: a -> b -> a"):
        engine.submit(a)
    with pytest.raises(NestingError, match="runs workflow 'nowhere', which is not registered"):
        engine.submit(parent("nowhere"), params={"day": 1})
    chain = [etl("level0")]
    for i in range(1, 6):
        wf = Workflow(f"level{i}")
        wf.add("down", workflow=f"level{i - 1}", params={"n": 1})
        chain.append(wf)
    for wf in chain[:5]:
        engine.register(wf)
    with pytest.raises(NestingError, match="nest more than 4 levels deep"):
        engine.submit(chain[5])  # level5 -> level4 -> ... -> level0: five levels below it
    with pytest.raises(NestingError, match="nest more than 4 levels deep"):
        engine.register(chain[5])
    missing = Workflow("missing")
    missing.add("load", workflow="etl")  # etl needs n
    engine.register(etl())
    with pytest.raises(ParamError, match="node 'load' \\(workflow 'etl'\\): workflow 'etl' needs params n"):
        engine.submit(missing)
    assert r.zcard(engine.tracker.keys.index) == 0  # nothing was submitted
