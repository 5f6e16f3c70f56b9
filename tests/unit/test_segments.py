"""The canvas executor's segments (wfcelery.plan.segments), checked on random DAGs with the independent canvas
walk of test_canvas: the edges inside segments (as the built canvases really order them) plus the edges
the tracker releases (into segment entries) are exactly the DAG's edges, and every node receives what
the counters executor gives it."""

from __future__ import annotations

from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.unit.test_canvas import APP, INPUT, Walk, ancestors, expected_input, sp_dags
from tests.unit.test_properties import Dag, dags
from wfcelery import Workflow
from wfcelery.plan.compiler import Plan, compile_workflow
from wfcelery.plan.segments import build, segments

PROPERTY = settings(max_examples=200, deadline=None)


def symbolic(plan: Plan, entry: int) -> list[Any]:
    return [("r", plan.nodes[p].name) for p in plan.nodes[entry].parents]


def check(wf: Workflow) -> list[Any]:
    plan = compile_workflow(wf, executor="canvas")
    segs = segments(plan)
    names = [n.name for n in plan.nodes]
    home = {i: k for k, seg in enumerate(segs) for i in seg.nodes}
    assert sorted(home) == list(range(len(plan.nodes))), "a partition of the nodes"
    edges = {(p, n.index) for n in plan.nodes for p in n.parents}
    inside = {(p, c) for p, c in edges if home[p] == home[c]}
    released = {(p, e) for seg in segs for e in seg.entries for p in plan.nodes[e].parents}
    assert inside | released == edges  # canvas edges + tracker edges = the DAG's
    assert not inside & released
    closure = ancestors({n.name: [names[p] for p in n.parents] for n in plan.nodes})
    for k, seg in enumerate(segs):
        for e in seg.entries:
            assert tuple(sorted(plan.nodes[e].parents)) == seg.parents, "entries share their parents"
            assert all(home[p] < k for p in plan.nodes[e].parents), "segments run in order"
        if not seg.canvas:
            assert len(seg.nodes) == 1
            continue
        assert all(plan.nodes[i].retries == 0 for i in seg.nodes), "retries are published alone"
        inputs = {e: symbolic(plan, e) for e in seg.entries}
        canvas = build(plan, seg, APP, inputs, {}, lambda i: names[i], lambda i: {})
        walk = Walk(canvas)
        members = {names[i] for i in seg.nodes}
        assert set(walk.seen) == members
        for i in seg.nodes:
            name, node = names[i], plan.nodes[i]
            seen = walk.seen[name]
            assert seen.before == closure[name] & members, f"{name} starts after {sorted(seen.before)}"
            if i in seg.entries and not node.parents:  # a root: the canvas's own input (nothing)
                assert seen.received == (None if node.immutable else INPUT)
            elif i in seg.entries:  # its parents' results are in its args: the canvas hands it nothing
                assert seen.received is None
                if not node.immutable:
                    got = inputs[i]
                    assert seen.sig.args[0] == (got if node.takes_list() else got[0])
            else:
                assert seen.received == expected_input(wf, name), f"{name} receives {seen.received}"
    return list(segs)


@PROPERTY
@given(dags(max_nodes=14), st.lists(st.integers(0, 13), max_size=3))
def test_segments_plus_tracker_edges_are_the_dag(dag: Dag, retried: list[int]) -> None:
    wf = dag.workflow()
    for i in retried:
        if i < dag.size:
            wf[f"n{i}"].retries = 1
    segs = check(wf)
    event(f"{len(segs)} segments" if len(segs) < 4 else "4+ segments")


@PROPERTY
@given(sp_dags())
def test_a_series_parallel_dag_is_one_segment(wf: Workflow) -> None:
    segs = check(wf)
    if len(segs) > 1:  # only when results cannot travel in one canvas (NotSeriesParallel "results")
        event("results split it")
        return
    assert segs[0].canvas or len(wf.nodes) == 1


def test_the_n_shape_splits_where_it_must() -> None:
    wf = Workflow("n")
    for name, after in (("a", []), ("b", []), ("c", ["a"]), ("d", ["a", "b"])):
        wf.add(name, "t.work", after=after)
    segs = check(wf)
    plan = compile_workflow(wf, executor="canvas")
    by_name = [{plan.nodes[i].name for i in s.nodes} for s in segs]
    assert by_name == [{"a", "b", "c"}, {"d"}]


def test_maps_conditions_rules_and_retries_are_published_alone() -> None:
    wf = Workflow("dynamic")
    wf.add("a", "t.work")
    wf.add("b", "t.work", after=["a"], retries=2)
    wf.add("c", "t.work", after=["b"])
    segs = check(wf)
    assert [(s.nodes, s.canvas) for s in segs] == [((0,), False), ((1,), False), ((2,), False)]
    wf.add("d", "t.work", after=["c"], when="params.go")
    assert all(not s.canvas for s in segments(compile_workflow(wf, executor="canvas")))
