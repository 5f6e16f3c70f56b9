"""The translator to native canvas, checked by walking the Celery objects it returns.

The walk below is independent of wfcelery.plan.canvas: it reads the Signature tree Celery's own constructors
produced (chains, chords, tasks), runs it symbolically -- a chain step gets the previous step's result, a
chord's members get the chord's input and its body the list of their results, ``celery.accumulate(index=0)``
returns its first argument -- and records, for every workflow node, what it received and which nodes had
finished before it started. Those must be exactly the DAG's ancestors and the counters executor's arguments.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from celery import Celery, chain, group
from celery.canvas import Signature, _chain, _chord
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.unit.test_properties import Dag, dags
from wfcelery import NotSeriesParallel, SchemaError, Workflow
from wfcelery.plan.canvas import ACCUMULATE, Canvas, FalseDependencyWarning, translate
from wfcelery.plan.compiler import compile_workflow

PROPERTY = settings(max_examples=200, deadline=None)
INPUT = ("input",)  # what a root receives: the canvas's own input (nothing, unless embedded)


@pytest.fixture(scope="module")
def app() -> Celery:
    app = Celery("canvas-unit", set_as_current=False)
    for name in ("t.work", "t.other"):
        app.task(name=name, shared=False)(_noop)
    return app


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


APP = Celery("canvas-props", set_as_current=False)


# -- the independent walk ---------------------------------------------------------------------------


@dataclass
class Seen:
    received: Any  # None (immutable), INPUT, ("r", name) or ("list", (...))
    before: frozenset[str]  # nodes finished before it started
    sig: Signature


class Walk:
    def __init__(self, canvas: Canvas) -> None:
        self.names = {tid: name for name, tid in canvas.task_ids.items()}
        self.seen: dict[str, Seen] = {}
        self.accumulates = 0
        self.output, _ = self.run(canvas.signature, INPUT, frozenset())

    def run(self, sig: Signature, value: Any, before: frozenset[str]) -> tuple[Any, frozenset[str]]:
        assert not isinstance(sig, group) or isinstance(sig, _chord), f"bare group {sig!r}"
        if isinstance(sig, _chord):
            return self.chord(sig, value, before)
        if isinstance(sig, _chain):
            assert sig.tasks, (
                f"empty chain {sig!r}"
            )  # one step: Celery's `chain | task` folds into a chord body
            for step in sig.tasks:
                assert not (isinstance(step, group) and not isinstance(step, _chord)), (
                    f"group in chain {sig!r}"
                )
                value, before = self.run(step, value, before)
            return value, before
        return self.task(sig, value, before)

    def chord(self, sig: _chord, value: Any, before: frozenset[str]) -> tuple[Any, frozenset[str]]:
        members = header(sig)
        body = sig.body
        assert not isinstance(body, group) or isinstance(body, _chord), f"group as chord body {sig!r}"
        assert not isinstance(body, _chord), f"chord as chord body {sig!r}"
        if len(members) == 1:  # only for gather: one pass-through, so its body gets [x]
            assert members[0].task == ACCUMULATE, f"one-member chord {sig!r}"
        outs, done = [], before
        for m in members:
            assert not isinstance(m, group) or isinstance(m, _chord), f"group in chord header {sig!r}"
            out, finished = self.run(m, value, before)
            outs.append(out)
            done |= finished
        return self.run(body, ("list", tuple(outs)), done)

    def task(self, sig: Signature, value: Any, before: frozenset[str]) -> tuple[Any, frozenset[str]]:
        if sig.task == ACCUMULATE:
            assert sig.kwargs == {"index": 0}
            assert not sig.immutable
            assert not sig.args
            self.accumulates += 1
            return value, before
        name = self.names[sig.options["task_id"]]
        assert name not in self.seen, f"{name} appears twice"
        self.seen[name] = Seen(None if sig.immutable else value, before, sig)
        return ("r", name), before | {name}


def header(sig: _chord) -> list[Signature]:
    return list(sig.tasks.tasks if isinstance(sig.tasks, group) else sig.tasks)


def expected_input(wf: Workflow, name: str) -> Any:
    node = wf[name]
    if node.immutable:
        return None
    if not node.after:
        return INPUT
    if len(node.after) == 1 and not node.gather:
        return ("r", node.after[0])
    return ("list", tuple(("r", p) for p in node.after))


def ancestors(parents: dict[str, list[str]]) -> dict[str, frozenset[str]]:
    out: dict[str, frozenset[str]] = {}

    def of(n: str) -> frozenset[str]:
        if n not in out:
            out[n] = frozenset(itertools.chain.from_iterable([p, *of(p)] for p in parents[n]))
        return out[n]

    for n in parents:
        of(n)
    return out


def assert_exact(wf: Workflow, canvas: Canvas, extra: Sequence[tuple[str, str]] = ()) -> Walk:
    """Every node ran once, after exactly its ancestors (plus the reported false dependencies), with
    exactly the arguments the counters executor gives it."""
    walk = Walk(canvas)
    assert set(walk.seen) == set(wf.nodes)
    parents = {n: list(node.after) for n, node in wf.nodes.items()}
    for a, b in extra:
        parents[b].append(a)
    closure = ancestors(parents)
    plan = compile_workflow(wf)
    for name, seen in walk.seen.items():
        assert seen.before == closure[name], f"{name} starts after {sorted(seen.before)}"
        wanted = expected_input(wf, name)
        if wanted == INPUT and closure[name]:  # a root made to wait: still only its own args
            wanted = None
        assert seen.received == wanted, f"{name} receives {seen.received}"
        node = plan.by_name[name]
        assert tuple(seen.sig.args) == node.args
        assert seen.sig.kwargs == dict(node.kwargs)
    return walk


def has_induced_n(parents: dict[str, list[str]]) -> bool:
    """Brute force: four nodes ordered exactly like a<c, a<d, b<d (the poset is not series-parallel)."""
    anc = ancestors(parents)

    def lt(x: str, y: str) -> bool:
        return x in anc[y]

    def apart(x: str, y: str) -> bool:
        return not lt(x, y) and not lt(y, x)

    for a, b, c, d in itertools.permutations(parents, 4):
        if lt(a, c) and lt(a, d) and lt(b, d) and apart(a, b) and apart(c, d) and apart(b, c):
            return True
    return False


# -- examples ---------------------------------------------------------------------------------------


def build(edges: str, nodes: str = "", **opts: dict[str, Any]) -> Workflow:
    """``build("a>b b>c")``: nodes by name, edges in `after` order as written."""
    wf = Workflow("w")
    pairs = [tuple(e.split(">")) for e in edges.split()]
    for n in dict.fromkeys([*nodes.split(), *itertools.chain.from_iterable(pairs)]):
        wf.add(n, "t.work", args=[n], **opts.get(n, {}))
    for a, b in pairs:
        wf[a] >> wf[b]
    return wf


def canvas_of(wf: Workflow, exact: bool = True) -> Canvas:
    return translate(compile_workflow(wf.validate()), APP, exact=exact)


SHAPES = {
    "chain": "a>b b>c",
    "fan-out": "a>b a>c",
    "diamond": "a>b a>c b>d c>d",
    "chain of groups": "a>b a>c b>d c>d d>e d>f e>g f>g",
    "two parents, two children": "a>x b>x a>y b>y",
    "transitive edge with result": "a>b b>c a>c",
    "nested join": "a>b b>c c>d b>e d>f e>f a>g f>h g>h",
}


@pytest.mark.parametrize("edges", SHAPES.values(), ids=SHAPES.keys())
def test_shapes_are_exact(edges: str) -> None:
    wf = build(edges)
    assert_exact(wf, canvas_of(wf))


def test_chain_is_a_plain_chain_with_queues_limits_and_params(app: Celery) -> None:
    wf = Workflow("w")
    wf.add("a", "t.work", args=["${day}"], type="io", priority=3)
    wf.add("b", "t.other", after="a", queue="big", time_limit=30, soft_time_limit=20)
    sig = wf.to_canvas(app, params={"day": "2026-12-01"})
    assert isinstance(sig, _chain)
    assert [s.task for s in sig.tasks] == ["t.work", "t.other"]
    a, b = sig.tasks
    assert a.args == ("2026-12-01",)
    assert a.options["queue"] == "io"
    assert a.options["priority"] == 3
    assert b.options["queue"] == "big"
    assert b.options["time_limit"] == 30
    assert b.options["soft_time_limit"] == 20
    assert a.options["task_id"] != b.options["task_id"]


def test_routes_setting_renames_queues(app: Celery) -> None:
    app.conf.wfcelery_routes = {"io": "io-fast"}
    try:
        wf = Workflow("w")
        wf.add("a", "t.work", type="io")
        assert wf.to_canvas(app).options["queue"] == "io-fast"
    finally:
        app.conf.wfcelery_routes = {}


def test_fan_in_is_a_flat_chord_in_after_order() -> None:
    wf = build("a>d c>d b>d")
    sig = canvas_of(wf).signature
    assert isinstance(sig, _chord)
    assert [m.args[0] for m in header(sig)] == ["a", "c", "b"]
    assert sig.body.args == ("d",)


def test_two_parents_two_children_join_in_one_barrier() -> None:
    wf = build("a>x b>x a>y b>y")
    canvas = canvas_of(wf)
    assert canvas.barriers == 2  # the join, and the end (two last nodes: the result is [x, y])
    first, second = canvas.signature.tasks
    assert first.body.task == ACCUMULATE
    assert [m.args[0] for m in header(second)] == ["x", "y"]


def test_immutable_transitive_edge_needs_no_pass_through() -> None:
    wf = build("a>b b>c a>c", c={"immutable": True})
    canvas = canvas_of(wf)
    assert canvas.pass_throughs == 0
    assert [s.args[0] for s in canvas.signature.tasks] == ["a", "b", "c"]
    assert_exact(wf, canvas)


def test_gather_with_one_parent_is_a_one_member_chord() -> None:
    wf = build("a>b", b={"gather": True})
    walk = assert_exact(wf, canvas_of(wf))
    assert walk.seen["b"].received == ("list", (("r", "a"),))


def test_gather_and_immutable_exclude_each_other() -> None:
    with pytest.raises(SchemaError, match="gather and immutable"):
        Workflow("w").add("a", "t.work", gather=True, immutable=True)


def test_gather_must_be_a_boolean_in_a_definition() -> None:
    with pytest.raises(SchemaError, match="gather must be bool"):
        Workflow.from_dict({"name": "w", "tasks": [{"name": "a", "task": "t.work", "gather": "yes"}]})


def test_gather_round_trips_through_the_schema() -> None:
    wf = build("a>b", b={"gather": True})
    again = Workflow.from_dict(wf.to_dict())
    assert again["b"].gather
    assert not again["a"].gather
    assert compile_workflow(again).by_name["b"].takes_list()


def test_the_n_shape_is_refused_naming_its_edges() -> None:
    wf = build("a>c a>d b>d")
    with pytest.raises(NotSeriesParallel, match="a -> c, a -> d, b -> d") as err:
        canvas_of(wf)
    assert err.value.edges == [("a", "c"), ("a", "d"), ("b", "d")]
    assert err.value.reason == "dependencies"


def test_inexact_canvas_reports_the_waits_it_adds(app: Celery) -> None:
    wf = Workflow("w")
    for n in "abcd":
        wf.add(n, "t.work", args=[n])
    wf["a"] >> wf["c"]
    [wf["a"], wf["b"]] >> wf["d"]
    canvas = canvas_of(wf, exact=False)
    assert canvas.false_dependencies == (("a", "b"),)  # b (a root: it takes no result) waits for a
    assert_exact(wf, canvas, extra=canvas.false_dependencies)
    with pytest.warns(FalseDependencyWarning, match="a -> b"):
        wf.to_canvas(app, exact=False)


def test_results_canvas_cannot_deliver_are_refused() -> None:
    wf = build("a>b b>c b>d a>e c>f d>f e>f")  # f takes [c, d, e]; c and d fork inside one branch
    with pytest.raises(NotSeriesParallel, match=r"\[\[c, d\], e\]") as err:
        canvas_of(wf)
    assert err.value.reason == "results"
    assert ("e", "f") in err.value.edges
    wf["f"].immutable = True
    assert_exact(wf, canvas_of(wf))


def test_siblings_of_one_barrier_must_list_parents_alike() -> None:
    wf = build("a>x b>x b>y a>y")  # y lists b first
    with pytest.raises(NotSeriesParallel, match=r"List its parents as \[a, b\]"):
        canvas_of(wf)


def test_roots_take_the_previous_result_when_embedded(app: Celery) -> None:
    wf = build("a>b")
    sig = chain(app.signature("t.other"), wf.to_canvas(app), app.signature("t.other"))
    assert [s.task for s in sig.tasks] == ["t.other", "t.work", "t.work", "t.other"]
    assert not sig.tasks[1].immutable


def test_a_long_chain_translates_in_linear_time() -> None:
    wf = Workflow("long")
    prev = wf.add("n0", "t.work")
    for i in range(1, 3000):
        prev = prev >> wf.add(f"n{i}", "t.work")
    sig = canvas_of(wf).signature
    assert len(sig.tasks) == 3000


# -- properties -------------------------------------------------------------------------------------


@st.composite
def sp_dags(draw: st.DrawFn, max_leaves: int = 14) -> Workflow:
    """Series-parallel DAGs built by composition, with random redundant (transitive) edges, parent order,
    immutable and gather flags."""
    counter = itertools.count()

    def grow(depth: int) -> tuple[list[str], list[str], list[tuple[str, str]]]:
        """Returns (sources, sinks, edges) of a random SP piece."""
        kind = draw(st.sampled_from(["leaf", "leaf", "series", "parallel"] if depth < 4 else ["leaf"]))
        if kind == "leaf":
            n = f"n{next(counter)}"
            return [n], [n], []
        parts = [grow(depth + 1) for _ in range(draw(st.integers(2, 3)))]
        if kind == "parallel":
            return (
                [s for p in parts for s in p[0]],
                [s for p in parts for s in p[1]],
                [e for p in parts for e in p[2]],
            )
        edges = [e for p in parts for e in p[2]]
        for (_, sinks, _), (sources, _, _) in itertools.pairwise(parts):
            edges += [(a, b) for a in sinks for b in sources]
        return parts[0][0], parts[-1][1], edges

    _, _, edges = grow(0)
    names = sorted({n for e in edges for n in e} or {"n0"}, key=lambda n: int(n[1:]))
    parents = {n: [a for a, b in edges if b == n] for n in names}
    closure = ancestors(parents)
    for n in names:  # a few redundant edges: they change nothing in the order, but a result travels
        extra = sorted(closure[n] - set(parents[n]))
        parents[n] += draw(st.lists(st.sampled_from(extra), unique=True, max_size=2)) if extra else []
    rng = random.Random(draw(st.integers(0, 2**32)))
    wf = Workflow("sp")
    for n in names:
        flag = draw(st.sampled_from(["", "", "", "immutable", "gather"]))
        after = rng.sample(parents[n], len(parents[n]))
        wf.add(n, "t.work", args=[n], after=after, **({flag: True} if flag else {}))
    return wf


def immutable_copy(wf: Workflow) -> Workflow:
    data = wf.to_dict()
    for t in data["tasks"]:
        t.pop("gather", None)
        t["immutable"] = True
    return Workflow.from_dict(data)


def attempt(wf: Workflow, exact: bool = True) -> Canvas | NotSeriesParallel:
    try:
        return canvas_of(wf, exact)
    except NotSeriesParallel as err:
        return err


@PROPERTY
@given(sp_dags())
def test_series_parallel_dags_translate_exactly(wf: Workflow) -> None:
    assert_exact(immutable_copy(wf), canvas_of(immutable_copy(wf)))  # the order alone: always exact
    canvas = attempt(wf)
    if isinstance(canvas, NotSeriesParallel):  # only when results cannot travel: a join over nested forks...
        assert canvas.reason == "results"
        event("results refused")
        return
    event("results exact")
    assert_exact(wf, canvas)


@PROPERTY
@given(dags(max_nodes=10))
def test_not_series_parallel_exactly_when_the_order_holds_an_n(dag: Dag) -> None:
    wf = immutable_copy(dag.workflow())
    parents = {n: list(node.after) for n, node in wf.nodes.items()}
    canvas = attempt(wf)
    if not isinstance(canvas, NotSeriesParallel):
        assert not has_induced_n(parents)
        assert_exact(wf, canvas)
        return
    event("not series-parallel")
    assert has_induced_n(parents)
    assert canvas.reason == "dependencies"
    (a, c), (a2, d), (b, d2) = canvas.edges
    anc = ancestors(parents)
    assert (a, d) == (a2, d2)
    assert all(x in anc[y] for x, y in canvas.edges)  # three dependencies...
    for x, y in ((a, b), (c, d), (b, c)):  # ... forming an N: no other order among the four
        assert x not in anc[y]
        assert y not in anc[x]


@PROPERTY
@given(dags(max_nodes=12))
def test_inexact_canvas_adds_only_the_waits_it_reports(dag: Dag) -> None:
    for wf in (immutable_copy(dag.workflow()), dag.workflow()):
        canvas = attempt(wf, exact=False)
        if isinstance(canvas, NotSeriesParallel):  # a barrier would change what some node receives
            assert canvas.reason == "results"
            assert any(not wf[n].immutable for n in wf.nodes)
            continue
        assert_exact(wf, canvas, extra=canvas.false_dependencies)
        if not canvas.false_dependencies:
            assert not has_induced_n({n: list(node.after) for n, node in wf.nodes.items()})
