"""Plan -> native Celery canvas: chains of tasks and flat chords, exact or with reported barriers.

:func:`translate` turns a compiled :class:`~wfcelery.plan.compiler.Plan` into one Celery ``Signature`` built
only from the shapes CELERY-NOTES lists as reliable on Celery >= 5.7: tasks, chains, and chords whose
header members are tasks or chains and whose body is a task (or a chain that starts with one). It never
emits a group as a chord body, a bare group inside a group, or a group at the end of a chain: where a
stage of parallel branches is followed by another stage, or ends the workflow, the branches join in a
*barrier*; where a node needs the result of an ancestor that is not the branch right before it, that
result comes through a *pass-through*. Both are Celery's built-in ``celery.accumulate`` with ``index=0``
(registered in every Celery app; a chord body it returns its list, a chain step its input), so the canvas
runs on any Celery worker, with or without wfcelery.

How: the DAG's order (its transitive closure) is split, recursively, into parallel parts (connected
components) and series parts (cuts where everything before precedes everything after). A part that is
connected and has no such cut holds an "N" (``a -> c, a -> d, b -> d``; Valdes, Tarjan & Lawler): canvas
cannot express it, and :class:`~wfcelery.errors.NotSeriesParallel` names those edges. With
``exact=False`` the translator cuts such a part anyway where the cut adds the fewest false dependencies
(trying every cut of one topological order -- a heuristic: the true minimum is NP-hard), and reports the
waits it added.

Results are delivered exactly as the counters executor does (one parent: its result first; several, or
``gather``: one list in ``after`` order; ``immutable``: none), or not at all: a chord hands its body one
list with one entry per header member, and Celery has no built-in task that picks an element out of a
list, so some series-parallel DAGs still cannot get their results right (a join over branches that fork
again, or two children of one barrier that list their parents in different orders). Those raise
``NotSeriesParallel`` with ``reason="results"``; marking the node ``immutable`` or running the workflow
with ``engine.submit`` lifts it.

Roots are mutable signatures: alone they get only their own args, embedded in a chain they receive the
previous step's result first, like any Celery signature.

What a raw canvas cannot carry: per-node ``retries`` are the tracker's (Celery retries a task only by the
task's own ``autoretry_for`` / ``Task.retry``, never by an option of its message), so :func:`to_canvas`
warns (:class:`RetriesNotCarriedWarning`, naming the nodes) rather than drop them silently; the tracked
executors (``engine.submit``, ``executor="canvas"`` included) honour them. Time limits, priority and
queues travel in each task's message and are kept (each signature's options).
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celery import chain, chord
from celery.canvas import Signature

from wfcelery.definition.model import Workflow
from wfcelery.definition.params import substitute
from wfcelery.errors import DefinitionError, NotSeriesParallel
from wfcelery.plan.compiler import Plan, PlanNode, compile_workflow
from wfcelery.plan.decompose import (
    Cut,
    Decomposer,
    Graph,
    Leaf,
    Parallel,
    Series,
    Unit,
)

#: Celery's built-in task used as barrier and pass-through (``index=0``: returns its first argument).
ACCUMULATE = "celery.accumulate"


class FalseDependencyWarning(UserWarning):
    """``to_canvas(exact=False)`` made some nodes wait for nodes they do not depend on."""


class RetriesNotCarriedWarning(UserWarning):
    """``to_canvas`` built a canvas for nodes with ``retries``, which only the tracker performs."""


def dropped_retries(plan: Plan) -> str | None:
    """Why a raw canvas of ``plan`` would not retry what the definition retries (None: nothing dropped)."""
    nodes = [f"{n.name} (retries={n.retries})" for n in plan.nodes if n.retries]
    if not nodes:
        return None
    return (
        f"workflow {plan.name!r}: a raw Celery canvas cannot carry the tracker's retries of "
        f"{', '.join(nodes)}: a failed attempt fails its chain or chord at once. Give the task itself "
        "autoretry_for / max_retries, or run the workflow with engine.submit (executor='canvas' keeps them)"
    )


@dataclass(frozen=True)
class Canvas:
    """What :func:`translate` built.

    Attributes:
        signature: the canvas (a task, a chain or a chord); every task in it has its id set.
        task_ids: node name -> the id of its task (``app.AsyncResult(id)`` gives its result).
        false_dependencies: ``(before, after)``: waits the DAG does not have, added by ``exact=False``
            (``after`` now also waits for ``before``, and everything after it too).
        barriers: ``celery.accumulate`` chord bodies that join parallel branches.
        pass_throughs: ``celery.accumulate`` chain steps that carry an ancestor's result to a node.
    """

    signature: Signature
    task_ids: Mapping[str, str]
    false_dependencies: tuple[tuple[str, str], ...] = ()
    barriers: int = 0
    pass_throughs: int = 0


def to_canvas(
    wf: Workflow, app: Any, params: Mapping[str, Any] | None = None, exact: bool = True
) -> Signature:
    """The workflow as one native Celery signature (see :meth:`Workflow.to_canvas`)."""
    plan = compile_workflow(wf.validate(app), app.conf.get("wfcelery_routes") or {})
    built = translate(plan, app, wf.resolve_params(params), exact=exact)
    dropped = dropped_retries(plan)
    if dropped:
        warnings.warn(dropped, RetriesNotCarriedWarning, stacklevel=3)
    if built.false_dependencies:
        waits = ", ".join(f"{a} -> {b}" for a, b in built.false_dependencies)
        warnings.warn(
            f"workflow {wf.name!r} is not series-parallel; the canvas adds waits it does not have: {waits}",
            FalseDependencyWarning,
            stacklevel=3,
        )
    return built.signature


def translate(
    plan: Plan,
    app: Any,
    params: Mapping[str, Any] | None = None,
    *,
    exact: bool = True,
    task_id: Callable[[int], str] | None = None,
    options: Callable[[int], Mapping[str, Any]] | None = None,
    aux_id: Callable[[], str] | None = None,
    check_only: bool = False,
) -> Canvas:
    """Translate ``plan`` into a native canvas with every task id fixed.

    Args:
        plan: a compiled workflow (routing resolved).
        app: the Celery app the signatures belong to.
        params: values for ``${name}`` placeholders.
        exact: raise :class:`NotSeriesParallel` where canvas cannot express the DAG exactly; ``False``
            adds barriers and reports the waits they introduce in :attr:`Canvas.false_dependencies`.
        task_id: node index -> task id (default: a fresh uuid per node, so the ids parse as no run).
        options: node index -> extra ``apply_async`` options for its signature (headers, ...).
        aux_id: the id of each barrier / pass-through (default: a fresh uuid).
        check_only: only find out whether ``plan`` translates (raises as it would); the returned
            ``signature`` is then a plain tuple tree, not Celery canvas, and ``app`` is not used.
    """
    _refuse_dynamic(plan)
    order: set[tuple[int, int]] = set()
    for _ in range(len(plan.nodes) ** 2 + 1):
        graph = Graph(plan, order)
        try:
            tree = Decomposer(graph, exact).unit(list(range(len(graph.vertices))))
        except Cut as cut:
            order |= cut.edges
            continue
        except NotSeriesParallel as err:
            raise _blame(plan, order, err) from None
        builder = _Builder(
            plan, graph, _Tuples() if check_only else app, dict(params or {}), task_id, options, aux_id
        )
        if check_only:
            builder.chord = lambda members, body: ("chord", members, body)
            builder.chain = lambda *steps: ("chain", steps)
        # Every leaf carries its task id already; Celery keeps them when it freezes the canvas at apply
        # time. Not freezing here keeps building free of I/O: freezing a chord builds GroupResults,
        # which subscribe this client to every header result (CELERY-NOTES).
        signature, _ = builder.build(tree, None)
        names = [n.name for n in plan.nodes]
        return Canvas(
            signature,
            {names[i]: tid for i, tid in sorted(builder.ids.items())},
            tuple((names[a], names[b]) for a, b in sorted(order)),
            builder.barriers,
            builder.pass_throughs,
        )
    raise AssertionError("exact=False did not converge")  # pragma: no cover - each cut orders more pairs


class _Tuples:
    """Stands in for the app when ``translate(check_only=True)``: signatures as plain tuples."""

    def signature(self, task: str, **options: Any) -> Any:
        return (task, options)


def _refuse_dynamic(plan: Plan) -> None:
    """Maps, conditions and trigger rules are decided at run time by the tracker: a canvas cannot."""
    for n in plan.nodes:
        if not n.has_task:
            raise DefinitionError(
                f"node {n.name!r} is a {n.kind.value} node ({n.describe()}): Celery canvas has no task to "
                "wait with: run this workflow with engine.submit()"
            )
        what = (
            "map"
            if n.map is not None
            else "when"
            if n.when
            else "trigger"
            if n.trigger != "all_success"
            else ""
        )
        if what:
            raise DefinitionError(
                f"node {n.name!r} uses {what}, which Celery canvas cannot express (it is decided at run "
                "time): run this workflow with engine.submit()"
            )


def _blame(plan: Plan, order: set[tuple[int, int]], err: NotSeriesParallel) -> NotSeriesParallel:
    """A pass-through can make a series-parallel order not series-parallel (``a -> b -> c`` with ``c``
    taking ``a``'s result directly, and ``b -> d``). Say so, rather than blame the order."""
    if err.reason != "dependencies":
        return err
    order_only = Graph(plan, order, carry_results=False)
    try:
        Decomposer(order_only, exact=True).unit(list(range(len(order_only.vertices))))
    except NotSeriesParallel as plain:
        return plain
    carried = ", ".join(f"{a} -> {b}" for a, b in err.edges)
    return NotSeriesParallel(
        f"canvas cannot pass results exactly here: {carried} form an N once a pass-through carries a result "
        "past the nodes in between (a node takes the result of an ancestor it also reaches through other "
        "nodes). The order alone is series-parallel: mark the node that lists that ancestor immutable, or "
        "run the workflow with engine.submit",
        err.edges,
        "results",
    )


# -- the graph the canvas is cut from ----------------------------------------------------------------


# -- series-parallel decomposition ------------------------------------------------------------------


# -- building the signature -------------------------------------------------------------------------

#: What a step receives or returns: a node's result (its plan index), a list of such, or None (the
#: canvas's own input: nothing, or the previous step's result when embedded in a chain).
_Value = int | tuple[Any, ...] | None


@dataclass
class _Builder:
    plan: Plan
    graph: Graph
    app: Any
    params: dict[str, Any]
    task_id: Callable[[int], str] | None
    options: Callable[[int], Mapping[str, Any]] | None
    aux_id: Callable[[], str] | None = None
    chord: Callable[..., Any] = chord  # check_only: plain tuples (Celery's constructors clone a lot)
    chain: Callable[..., Any] = chain
    ids: dict[int, str] = field(default_factory=dict)
    barriers: int = 0
    pass_throughs: int = 0

    def build(self, unit: Unit, given: _Value) -> tuple[Signature, _Value]:
        if isinstance(unit, Leaf):
            return self._leaf(unit.v, given)
        if isinstance(unit, Parallel):
            members, outs = self._members(unit.parts, given, self._consumers(None))
            return self.chord(members, self._barrier(unit.parts)), outs
        steps: list[Signature] = []
        parts = unit.parts
        i = 0
        while i < len(parts):
            part = parts[i]
            after = parts[i + 1] if i + 1 < len(parts) else None
            if isinstance(part, Leaf):
                step, given = self._leaf(part.v, given)
            elif isinstance(after, Leaf):  # a join: the next node is the chord's body
                members, outs = self._members(part.parts, given, [after.v])
                body, given = self._leaf(after.v, outs)
                step = self.chord(members, body)
                i += 1
            else:  # a stage followed by a stage (or the end): join in a barrier
                members, given = self._members(part.parts, given, self._consumers(after))
                step = self.chord(members, self._barrier(part.parts))
            steps.append(step)
            i += 1
        return (self.chain(*steps) if len(steps) > 1 else steps[0]), given

    # - leaves

    def _leaf(self, v: int, given: _Value) -> tuple[Signature, _Value]:
        vx = self.graph.vertices[v]
        if vx.is_pass:
            self._expect(vx.target, given, vx.node)
            self.pass_throughs += 1
            return self._accumulate(self.plan.nodes[vx.target]), given
        node = self.plan.nodes[vx.node]
        if node.immutable or not node.parents:
            # a root waits for nothing unless exact=False made it; then it still takes only its own args
            return self._signature(node, mutable=not node.immutable and given is None), vx.node
        if node.gather and len(node.parents) == 1 and given == node.parents[0]:
            self.pass_throughs += 1
            return self.chord([self._accumulate(node)], self._signature(node, mutable=True)), vx.node
        self._expect(node.index, given, self._expected(node))
        return self._signature(node, mutable=True), vx.node

    def _expected(self, node: PlanNode) -> _Value:
        return tuple(node.parents) if node.takes_list() else node.parents[0]

    def _expect(self, index: int, given: _Value, wanted: _Value) -> None:
        if given == wanted:
            return
        node = self.plan.nodes[index]
        raise NotSeriesParallel(
            f"canvas cannot hand node {node.name!r} {self._describe(wanted)}: here it would receive "
            f"{self._describe(given)}. A chord gives its body one list entry per branch and Celery has "
            f"no built-in task that picks entries out of a list. {self._hint(node, given)}",
            [(self._name(p), node.name) for p in node.parents],
            "results",
        )

    def _hint(self, node: PlanNode, given: _Value) -> str:
        fixes = f"Mark {node.name!r} immutable or run the workflow with engine.submit"
        if isinstance(given, tuple) and sorted(map(repr, given)) == sorted(map(repr, node.parents)):
            return (
                f"List its parents as {self._describe(given)[9:]} (the order its siblings use), or: {fixes}"
            )
        return fixes

    def _signature(self, node: PlanNode, mutable: bool) -> Signature:
        args, kwargs = list(node.args), dict(node.kwargs)
        if self.params and self.plan.has_placeholders:
            args, kwargs = substitute(args, self.params), substitute(kwargs, self.params)
        tid = self.task_id(node.index) if self.task_id else str(uuid.uuid4())
        self.ids[node.index] = tid
        opts: dict[str, Any] = {**node.options, "task_id": tid}
        if node.queue:
            opts["queue"] = node.queue
        if self.options:
            opts.update(self.options(node.index))
        sig: Signature = self.app.signature(
            node.task, args=args, kwargs=kwargs, immutable=not mutable, **opts
        )
        return sig

    def _accumulate(self, near: PlanNode | None) -> Signature:
        """``celery.accumulate(index=0)`` on ``near``'s queue; its id parses as no node of any run."""
        opts: dict[str, Any] = {"task_id": self.aux_id() if self.aux_id else str(uuid.uuid4())}
        if near is not None and near.queue:
            opts["queue"] = near.queue
        sig: Signature = self.app.signature(ACCUMULATE, kwargs={"index": 0}, **opts)
        return sig

    # - chords

    def _members(
        self, parts: list[Leaf | Series], given: _Value, consumers: list[int]
    ) -> tuple[list[Signature], tuple[Any, ...]]:
        built = [self.build(part, given) for part in parts]
        outs = [out for _, out in built]
        for v in consumers:
            node = self.plan.nodes[self.graph.vertices[v].node]
            if self.graph.vertices[v].is_pass or not node.takes_list():
                continue
            if sorted(map(repr, outs)) == sorted(map(repr, node.parents)):  # a permutation: follow it
                at = {out: i for i, out in enumerate(outs)}
                built = [built[at[p]] for p in node.parents]
                outs = list(node.parents)
            break
        return [sig for sig, _ in built], tuple(outs)

    def _consumers(self, after: Unit | None) -> list[int]:
        """The vertices that receive a stage's list: the first vertices of ``after``."""
        if after is None:
            return []
        first = {v for v in self._vertices(after)}
        return [v for v in sorted(first) if not any(p in first for p in self.graph.parents[v])]

    def _vertices(self, unit: Unit) -> list[int]:
        if isinstance(unit, Leaf):
            return [unit.v]
        return [v for part in unit.parts for v in self._vertices(part)]

    def _barrier(self, parts: Sequence[Unit]) -> Signature:
        # on the queue of the branch it closes: a worker consuming it has just run that branch
        self.barriers += 1
        last = self._vertices(parts[-1])[-1]
        return self._accumulate(self.plan.nodes[self.graph.vertices[last].node])

    # - messages

    def _name(self, index: int) -> str:
        return self.plan.nodes[index].name

    def _describe(self, value: _Value) -> str:
        if value is None:
            return "nothing (the canvas's own input)"
        if isinstance(value, int):
            return f"the result of {self._name(value)}"
        return "the list [" + ", ".join(self._short(v) for v in value) + "]"

    def _short(self, value: _Value) -> str:
        if isinstance(value, int):
            return self._name(value)
        return "[" + ", ".join(self._short(v) for v in value or ()) + "]"
