"""Runs end to end on a real Redis and a real (in-thread) Celery worker: shapes, exact dependencies, results.

Every ``proj.record`` node writes its start/end time (Redis TIME, microseconds) and a run counter into a probe
hash, so the tests check ordering on one clock, without sleeps.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

import wfcelery
from tests.helpers import in_thread_worker, probe_times, released, status_of, wait_for
from wfcelery import NodeStatus, RunFailed, RunStatus, Workflow


def assert_edges(wf: Workflow, times: dict[str, dict[str, Any]]) -> None:
    """Every node ran exactly once and started only after each of its parents ended."""
    assert sorted(times) == sorted(wf.nodes), "every node ran"
    assert {n: t["runs"] for n, t in times.items() if t["runs"] != 1} == {}, "each node ran exactly once"
    late = [
        (p, n.name) for n in wf.nodes.values() for p in n.after if times[p]["end"] > times[n.name]["start"]
    ]
    assert late == [], "child started before its parent ended"


def test_chain(app, engine):
    wf = Workflow("chain")
    a = wf.add("a", "proj.add", args=[1, 2])
    b = wf.add("b", "proj.add", kwargs={"y": 10})
    c = wf.add("c", "proj.add", kwargs={"y": 100})
    a >> b >> c
    with in_thread_worker(app):
        run = engine.submit(wf)
        assert run.wait(timeout=30) == {"a": 3, "b": 13, "c": 113}
    state = run.state()
    assert state.status is RunStatus.SUCCEEDED
    assert {n.status for n in state.nodes.values()} == {NodeStatus.SUCCEEDED}
    assert state.counts["SUCCEEDED"] == 3


def test_follow_times_out_on_a_run_nobody_works_then_ends_on_the_final_state(app, engine):
    wf = Workflow("follow")
    wf.add("a", "proj.add", args=[1, 2]) >> wf.add("b", "proj.add", kwargs={"y": 10})
    run = engine.submit(wf)  # no worker yet: nothing moves
    follow = run.follow(timeout=0.5, tick=0.1)
    assert next(follow).status is RunStatus.RUNNING  # the state now, first
    with pytest.raises(wfcelery.WaitTimeout):
        list(follow)
    with in_thread_worker(app):
        states = list(run.follow(timeout=30))
    assert states[-1].status is RunStatus.SUCCEEDED
    assert not any(s.finished for s in states[:-1])  # it stops at the first final state


def test_fan_out_fan_in_timing(app, engine, r):
    wf = Workflow("fan")
    src = wf.add("src", "proj.record")
    mids = [wf.add(f"m{i}", "proj.record") for i in range(6)]
    sink = wf.add("sink", "proj.record")
    src >> mids >> sink
    with in_thread_worker(app):
        run = engine.submit(wf)
        results = run.wait(timeout=30)
    assert results == {name: name for name in wf.nodes}
    assert_edges(wf, probe_times(r, app, run.id))


def test_diamond(app, engine, r, uid):
    hold = f"t{uid}:hold-b"
    wf = Workflow("diamond")
    a = wf.add("a", "proj.record")
    b = wf.add("b", "proj.record", kwargs={"hold": hold})
    c = wf.add("c", "proj.record")
    d = wf.add("d", "proj.echo")
    a >> [b, c] >> d
    with in_thread_worker(app), released(r, hold):
        run = engine.submit(wf)
        wait_for(lambda: status_of(run, "c") is NodeStatus.SUCCEEDED, message="c to succeed while b runs")
        r.rpush(hold, "go")  # b ends only now: after c
        results = run.wait(timeout=30)
    # d's parents are [b, c] in that order whatever order they finished in (b ended last)
    assert results["d"] == {"args": [["b", "c"]], "kwargs": {}}
    times = probe_times(r, app, run.id)
    assert times["b"]["end"] > times["c"]["end"]
    wf_times = {k: v for k, v in times.items() if k != "d"}
    for parent in ("b", "c"):
        assert wf_times[parent]["start"] >= wf_times["a"]["end"]
    assert run.state().nodes["d"].started_at * 1e6 >= times["b"]["end"] - 1000  # ms resolution


def test_n_shape_does_not_wait_for_non_ancestor(app, engine, r, uid):
    """a->c, a->d, b->d: c needs only a, so it runs while b is still running; d waits for both.
    b is held until c has succeeded: if c waited for b, c would never succeed and the test fails."""
    hold = f"t{uid}:hold-b"
    wf = Workflow("n-shape")
    a = wf.add("a", "proj.record")
    b = wf.add("b", "proj.record", kwargs={"hold": hold})
    c = wf.add("c", "proj.record")
    d = wf.add("d", "proj.record")
    a >> [c, d]
    b >> d
    with in_thread_worker(app), released(r, hold):
        run = engine.submit(wf)
        wait_for(lambda: status_of(run, "c") is NodeStatus.SUCCEEDED, message="c to succeed while b runs")
        assert status_of(run, "d") is NodeStatus.PENDING  # b has not ended
        r.rpush(hold, "go")
        run.wait(timeout=30)
    t = probe_times(r, app, run.id)
    assert_edges(wf, t)
    assert t["c"]["start"] < t["b"]["end"], "c waited for b, which is not its ancestor"
    assert t["d"]["start"] >= max(t["a"]["end"], t["b"]["end"])


def random_dag(n: int, seed: int) -> tuple[Workflow, set[str]]:
    """A random DAG of ``n`` proj.record nodes plus one ``gate`` root (proj.block) that a few nodes
    depend on. Returns the workflow and the gate's descendants."""
    rng = random.Random(seed)
    wf = Workflow(f"random-{n}", on_failure="continue")
    wf.add("gate", "proj.block", args=["${release}"], kwargs={"timeout": 60})
    names: list[str] = []
    for i in range(n - 1):
        parents = rng.sample(names, k=min(len(names), rng.choice([0, 1, 1, 2, 2, 3, 4])))
        if i > 20 and rng.random() < 0.02:
            parents.append("gate")
        name = f"n{i:03d}"
        wf.add(name, "proj.record", after=parents)
        names.append(name)
    children: dict[str, list[str]] = {name: [] for name in wf.nodes}
    for node in wf.nodes.values():
        for p in node.after:
            children[p].append(node.name)
    below: set[str] = set()
    stack = list(children["gate"])
    while stack:
        node = stack.pop()
        if node not in below:
            below.add(node)
            stack.extend(children[node])
    return wf, below


def test_random_dag_200_exact_dependencies(app, engine, r, uid):
    wf, gated = random_dag(200, seed=20261122)
    free = set(wf.nodes) - gated - {"gate"}
    assert len(gated) >= 3
    assert len(free) >= 100
    release = f"t{uid}:release"
    with in_thread_worker(app, concurrency=4):
        run = engine.submit(wf, params={"release": release})

        # While the gate node runs, every node that does not descend from it finishes, and none that
        # does has started: nothing waits for a non-ancestor, nothing runs before its ancestors.
        def free_done() -> bool:
            nodes = run.state().nodes
            return all(nodes[n].status is NodeStatus.SUCCEEDED for n in free)

        wait_for(free_done, timeout=60, message="nodes that do not descend from the gate")
        state = run.state()
        assert state.nodes["gate"].status is NodeStatus.RUNNING
        assert {state.nodes[n].status for n in gated} == {NodeStatus.PENDING}
        assert not set(probe_times(r, app, run.id)) & gated
        r.rpush(release, "go")
        results = run.wait(timeout=60)
    assert len(results) == 200
    times = probe_times(r, app, run.id)
    times["gate"] = {"start": 0, "end": int(run.state().nodes["gate"].finished_at * 1e6), "runs": 1}
    # the gate's end is the tracker's (ms): a child starts after it was recorded
    assert_edges(wf, times)
    state = run.state()
    assert {n.attempts for n in state.nodes.values()} == {1}
    assert state.counts["SUCCEEDED"] == 200


def test_results_flow_like_canvas(app, engine):
    wf = Workflow("results")
    root = wf.add("root", "proj.echo", args=[1, "x"], kwargs={"k": True})
    one = wf.add("one", "proj.echo", args=["own"])
    left = wf.add("left", "proj.add", args=[2, 3])
    right = wf.add("right", "proj.add", args=[10, 20])
    many = wf.add("many", "proj.echo", args=["tail"], after=["right", "left", "root"])
    imm = wf.add("imm", "proj.echo", args=["mine"], kwargs={"z": 1}, immutable=True)
    root >> one
    [left, right] >> imm
    _ = many
    with in_thread_worker(app):
        results = engine.submit(wf).wait(timeout=30)
    root_result = {"args": [1, "x"], "kwargs": {"k": True}}
    assert results["root"] == root_result  # roots get only their own args
    assert results["one"] == {"args": [root_result, "own"], "kwargs": {}}  # one parent: first argument
    assert results["many"] == {"args": [[30, 5, root_result], "tail"], "kwargs": {}}  # list in parent order
    assert results["imm"] == {"args": ["mine"], "kwargs": {"z": 1}}  # immutable: only its own


def test_params_fill_placeholders(app, engine):
    wf = Workflow("params", params={"n": 1})
    wf.add("p", "proj.echo", args=["${day}", "day=${day}", "${n}"], kwargs={"cfg": {"limit": "${limit}"}})
    with in_thread_worker(app):
        results = engine.submit(wf, params={"day": "2026-11-22", "limit": 5}).wait(timeout=30)
    assert results["p"] == {"args": ["2026-11-22", "day=2026-11-22", 1], "kwargs": {"cfg": {"limit": 5}}}


def test_missing_param_is_refused_before_anything_runs(app, engine, r):
    wf = Workflow("params")
    wf.add("p", "proj.echo", args=["${day}"])
    with pytest.raises(wfcelery.DefinitionError, match="day"):
        engine.submit(wf)
    assert engine.runs() == []


def test_run_failed_names_the_failed_node(app, engine):
    wf = Workflow("fails")
    a = wf.add("a", "proj.add", args=[1, 1])
    bad = wf.add("bad", "proj.fail", kwargs={"message": "kaput"})
    c = wf.add("c", "proj.noop")
    a >> bad >> c
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(RunFailed) as info:
            run.wait(timeout=30)
    err = info.value
    assert err.status == "FAILED"
    assert err.run_id == run.id
    assert err.failed == {"bad": "ValueError: kaput"}
    assert "bad" in str(err)
    assert "kaput" in str(err)
    assert err.results == {"a": 2}
    state = run.state()
    assert state.nodes["bad"].status is NodeStatus.FAILED
    assert state.nodes["bad"].error["type"] == "ValueError"
    assert "kaput" in state.nodes["bad"].error["traceback"]
    assert state.nodes["c"].status is NodeStatus.REVOKED


def test_a_run_of_ten_thousand_roots_is_created_plain_and_keyed(app, engine):
    """Creating a run writes every root's record in one script: past the ~8000 values Redis's Lua puts
    on its stack, in chunks. 10,000 independent nodes, submitted as is and with a run key."""
    wf = Workflow("wide-roots")
    for i in range(10_000):
        wf.add(f"n{i}", "proj.noop")
    for run in (engine.submit(wf), engine.submit(wf, run_key="wide-roots:1")):
        state = run.state(check_workers=False)
        assert (state.total, state.counts["QUEUED"]) == (10_000, 10_000)
        run.cancel()
