"""Conditions and trigger rules on real workers (in-thread): when true/false, skips that cascade, gathered
inputs with skipped parents as null, all_done after a failure under both policies, retry with rules."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import in_thread_worker, wait_for
from wfcelery import Workflow
from wfcelery.errors import RunFailed
from wfcelery.tracker.states import NodeStatus, RunStatus

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
    # flaky succeeded on retry; next now runs; on_error and report are downstream of it, so they are decided
    # again: one_failed no longer holds (SKIPPED; its earlier run is history), all_done runs again
    assert statuses(run) == {"a": S, "flaky": S, "next": S, "on_error": K, "report": S}
    assert counts == {"a": "1", "next": "1", "on_error": "1", "report": "2"}
    assert run.state().status is RunStatus.SUCCEEDED


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


# -- map ------------------------------------------------------------------------------------------------


def map_reduce(n: int, **resize: Any) -> Workflow:
    wf = Workflow(f"map{n}")
    wf.add("files", "proj.add", args=[list(range(n)), []])  # add(list, []) returns the list
    wf.add("resize", "proj.add", map="files", args=[10], **resize)  # element + 10
    wf.add("report", "proj.total", after="resize")  # gets the list of instance results
    return wf


@pytest.mark.parametrize("n", [0, 1, 1000])
def test_map_over_0_1_and_1000_elements(app: Any, engine: Any, n: int) -> None:
    with in_thread_worker(app, concurrency=8):
        run = engine.submit(map_reduce(n))
        results = run.wait(timeout=90)
    assert results["resize"] == [i + 10 for i in range(n)]  # element order
    assert results["report"] == sum(i + 10 for i in range(n))
    state = run.state()
    instances = [s for s in state.nodes.values() if s.instance is not None]
    assert [s.name for s in instances] == [f"resize[{i}]" for i in range(n)]
    assert all(s.status is S and s.attempts == 1 and s.worker for s in instances)
    assert state.nodes["resize"].status is S
    assert state.status is RunStatus.SUCCEEDED


def test_map_of_a_map_is_element_wise(app: Any, engine: Any) -> None:
    wf = map_reduce(5)
    wf.add("again", "proj.add", map="resize", args=[100])
    with in_thread_worker(app):
        results = engine.submit(wf).wait(timeout=30)
    assert results["again"] == [i + 110 for i in range(5)]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": 1}, "which is an object, not a list"),
        (list(range(4)), "maps over 4 elements of 'files', more than max_map=3"),
    ],
)
def test_a_map_over_a_non_list_or_too_long_fails_the_node_saying_so(
    app: Any, engine: Any, value: Any, message: str
) -> None:
    wf = Workflow("badmap", on_failure="continue")
    if isinstance(value, dict):
        wf.add("files", "proj.echo", kwargs=value)  # returns an object
    else:
        wf.add("files", "proj.add", args=[value, []])
    wf.add("resize", "proj.noop", map="files", max_map=3)
    wf.add("report", "proj.noop", after="resize")
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(RunFailed) as info:
            run.wait(timeout=30)
    assert "MapError" in info.value.failed["resize"]
    assert message in info.value.failed["resize"]
    assert statuses(run) == {"files": S, "resize": F, "report": K}


def test_a_failing_instance_with_retries_under_continue(app: Any, engine: Any, r: Any, uid: str) -> None:
    wf = Workflow("flaky-map", on_failure="continue")
    wf.add("files", "proj.add", args=[[0, 1, 2, 3], []])
    wf.add("work", "proj.map_flaky", map="files", args=[uid], kwargs={"failing": [2], "times": 9}, retries=2)
    wf.add("report", "proj.total", after="work")
    wf.add("notify", "proj.echo", after="work", trigger="all_done")
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(RunFailed) as info:
            run.wait(timeout=60)
    state = run.state()
    assert {f"work[{i}]": state.nodes[f"work[{i}]"].status for i in range(4)} == {
        "work[0]": S,
        "work[1]": S,
        "work[2]": F,
        "work[3]": S,
    }
    assert state.nodes["work[2]"].attempts == 3  # the first try and 2 retries
    assert (state.nodes["work"].status, state.nodes["report"].status) == (F, K)
    assert info.value.results["notify"] == {"args": [None], "kwargs": {}}
    assert "element 2 failed" in info.value.failed["work[2]"]
    assert r.hgetall(f"{app.conf.wfcelery_key_prefix}:{uid}") == {"0": "1", "1": "1", "2": "3", "3": "1"}


def test_retry_reruns_only_the_failed_instance(app: Any, engine: Any, r: Any, uid: str) -> None:
    wf = Workflow("retry-map")
    wf.add("files", "proj.add", args=[list(range(6)), []])
    wf.add("work", "proj.map_flaky", map="files", args=[uid], kwargs={"failing": [4]})
    wf.add("report", "proj.total", after="work")
    with in_thread_worker(app, concurrency=1):  # one at a time: instance 4 fails before 5 starts
        run = engine.submit(wf)
        with pytest.raises(RunFailed):
            run.wait(timeout=30)
        run.retry()
        results = run.wait(timeout=30)
    assert results["work"] == [0, 2, 4, 6, 8, 10]
    assert results["report"] == 30
    counts = r.hgetall(f"{app.conf.wfcelery_key_prefix}:{uid}")
    ran = {k: v for k, v in counts.items() if k != "5"}
    assert ran == {"0": "1", "1": "1", "2": "1", "3": "1", "4": "2"}  # only the failed instance again
    assert counts.get("5") in (None, "1")  # revoked by fail_fast before it started, or ran once


def test_pause_in_the_middle_of_a_1000_instance_map_then_resume(app: Any, engine: Any, r: Any) -> None:
    wf = Workflow("pause-map")
    wf.add("files", "proj.add", args=[list(range(1000)), []])
    wf.add("work", "proj.count", map="files")
    wf.add("report", "proj.noop", after="work")
    key = f"{app.conf.wfcelery_key_prefix}:count:"
    with in_thread_worker(app, concurrency=4):
        run = engine.submit(wf)
        wait_for(lambda: r.hlen(key + run.id) >= 100, timeout=60, message="100 instances ran")
        run.pause()
        wait_for(
            lambda: (
                not any(
                    n.status is NodeStatus.RUNNING
                    for n in run.state().nodes.values()
                    if n.instance is not None
                )
            ),
            timeout=30,
            message="running instances to end",
        )
        ran_before = r.hlen(key + run.id)
        paused = run.state()
        assert paused.status is RunStatus.PAUSED
        assert ran_before < 1000, "pause came too late to test anything"
        assert r.hlen(key + run.id) == ran_before  # nothing starts while paused
        run.resume()
        run.wait(timeout=120)
    counts = r.hgetall(key + run.id)
    assert counts == {f"work[{i}]": "1" for i in range(1000)}  # every instance ran exactly once
    assert run.state().status is RunStatus.SUCCEEDED


def test_a_mapped_all_done_node_is_skipped_when_its_list_never_came(app: Any, engine: Any) -> None:
    wf = Workflow("map-source-skipped", on_failure="continue")
    wf.add("files", "proj.add", args=[[1, 2], []], when="params.go")
    wf.add("bad", "proj.fail")
    wf.add("each", "proj.noop", map="files", after=["bad"], trigger="all_done")
    wf.add("after_bad", "proj.echo", after="bad", trigger="all_done")
    wf.add("each_failed", "proj.noop", map="bad", trigger="all_done")
    with in_thread_worker(app):
        run = engine.submit(wf, params={"go": False})
        with pytest.raises(RunFailed):
            run.wait(timeout=30)
    nodes = run.state().nodes
    assert {name: n.status for name, n in nodes.items()} == {
        "files": K,
        "bad": F,
        "each": K,
        "after_bad": S,
        "each_failed": K,
    }
    assert nodes["each"].error["type"] == "Skipped"  # its list's source was skipped by a condition
    assert nodes["each_failed"].error["type"] == "UpstreamFailed"  # its source failed
