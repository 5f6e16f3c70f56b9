"""Conditions and trigger rules on real workers (in-thread): when true/false, skips that cascade, gathered
inputs with skipped parents as null, all_done after a failure under both policies, retry with rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import in_thread_worker, wait_for
from wfcelery import Workflow
from wfcelery.errors import RunFailed
from wfcelery.states import NodeStatus, RunStatus

S, F, K, X = NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.REVOKED


def statuses(run: Any) -> dict[str, NodeStatus]:
    return {name: n.status for name, n in run.state().nodes.items()}


def test_when_true_runs_when_false_skips_and_skipped_parents_are_null(app: Any, engine: Any) -> None:
    wf = Workflow("branch")
    wf.add("check", "proj.add", args=[2, 3])
    wf.add("big", "proj.echo", after="check", when="results.check > `3`")
    wf.add("small", "proj.echo", after="check", when="results.check <= `3`")
    wf.add("after_small", "proj.echo", after="small")  # all_success: skipped with it
    wf.add("join", "proj.echo", after=["small", "big"], trigger="none_failed")
    wf.add("notify", "proj.echo", after="join", when="params.notify")
    with in_thread_worker(app):
        run = engine.submit(wf, params={"notify": False})
        results = run.wait(timeout=30)
    assert statuses(run) == {
        "check": S,
        "big": S,
        "small": K,
        "after_small": K,
        "join": S,
        "notify": K,
    }
    assert run.state().status is RunStatus.SUCCEEDED  # skips alone do not fail a run
    assert results["big"] == {"args": [5], "kwargs": {}}
    # several parents: one list in `after` order, the skipped parent contributes null
    assert results["join"] == {"args": [[None, {"args": [5], "kwargs": {}}]], "kwargs": {}}
    small = run.state().nodes["small"]
    assert small.error == {"type": "Skipped", "message": "skipped: condition 'results.check <= `3`' is false"}
    assert run.state().nodes["after_small"].error["type"] == "Skipped"


def test_a_root_condition_over_params(app: Any, engine: Any) -> None:
    wf = Workflow("roots")
    wf.add("maybe", "proj.noop", when="params.go")
    wf.add("then", "proj.noop", after="maybe")
    wf.add("always", "proj.noop", after="maybe", trigger="all_done")
    with in_thread_worker(app):
        off = engine.submit(wf, params={"go": False})
        on = engine.submit(wf, params={"go": True})
        off.wait(timeout=30)
        on.wait(timeout=30)
    assert statuses(off) == {"maybe": K, "then": K, "always": S}
    assert statuses(on) == {"maybe": S, "then": S, "always": S}


@pytest.mark.parametrize("policy", ["fail_fast", "continue"])
def test_all_done_notify_runs_after_a_failure_and_the_run_still_fails(
    app: Any, engine: Any, policy: str
) -> None:
    wf = Workflow("notify", on_failure=policy)
    wf.add("extract", "proj.add", args=[1, 1])
    wf.add("transform", "proj.fail", after="extract", kwargs={"message": "bad rows"})
    wf.add("load", "proj.echo", after="transform")
    wf.add("side", "proj.echo", after="extract", when="`false`")
    wf.add("notify", "proj.echo", after=["load", "side"], trigger="all_done")
    wf.add("cleanup", "proj.echo", after="notify")  # depends only on a failure handler: survives fail_fast
    wf.add("alarm", "proj.echo", after="transform", trigger="one_failed")
    wf.add("all_bad", "proj.echo", after=["transform", "load"], trigger="all_failed")
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(RunFailed) as info:
            run.wait(timeout=30)
    got = statuses(run)
    load = X if policy == "fail_fast" else K
    assert got == {
        "extract": S,
        "transform": F,
        "load": load,
        "side": K,
        "notify": S,
        "cleanup": S,
        "alarm": S,
        "all_bad": S,
    }
    assert info.value.status == "FAILED"
    assert set(info.value.failed) == {"transform"}
    results = info.value.results
    assert results["notify"] == {"args": [[None, None]], "kwargs": {}}
    assert results["alarm"] == {"args": [None], "kwargs": {}}
    if policy == "continue":
        assert run.state().nodes["load"].error["type"] == "UpstreamFailed"


def test_retry_reruns_what_did_not_succeed_and_decides_rules_again(app: Any, engine: Any, r: Any) -> None:
    prefix = app.conf.wfcelery_key_prefix
    key = f"{prefix}:flaky"
    wf = Workflow("retry-rules", on_failure="continue")
    wf.add("a", "proj.count")
    wf.add("flaky", "proj.flaky", after="a", args=[1, key], immutable=True)
    wf.add("next", "proj.count", after="flaky")
    wf.add("on_error", "proj.count", after="flaky", trigger="one_failed")
    wf.add("report", "proj.count", after=["next", "on_error"], trigger="all_done")
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(RunFailed):
            run.wait(timeout=30)
        assert statuses(run) == {"a": S, "flaky": F, "next": K, "on_error": S, "report": S}
        run.retry()
        run.wait(timeout=30)
    counts = r.hgetall(f"{prefix}:count:{run.id}")
    # flaky succeeded on retry; next now runs; on_error and report had succeeded and are not re-run
    assert statuses(run) == {"a": S, "flaky": S, "next": S, "on_error": S, "report": S}
    assert counts == {"a": "1", "next": "1", "on_error": "1", "report": "1"}


def test_a_condition_that_fails_at_run_time_fails_the_node_naming_it(app: Any, engine: Any) -> None:
    wf = Workflow("bad-condition", on_failure="continue")
    wf.add("a", "proj.add", args=[1, 2])
    wf.add("b", "proj.noop", after="a", when="length(results.a) > `1`")  # length() of a number
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(RunFailed) as info:
            run.wait(timeout=30)
    assert "length(results.a)" in info.value.failed["b"]
    assert "ConditionError" in info.value.failed["b"]


def test_a_plain_workflow_is_unchanged_by_rules(app: Any, engine: Any) -> None:
    """No rule, no condition: the plan carries no rule spec and the counters work as before."""
    wf = Workflow("plain")
    wf.add("a", "proj.add", args=[1, 2]) >> wf.add("b", "proj.add", args=[10])
    with in_thread_worker(app):
        run = engine.submit(wf)
        assert run.wait(timeout=30) == {"a": 3, "b": 13}
    wait_for(lambda: run.state().finished)
