"""The canvas executor's segments: a plan cut into the largest parts native canvas runs exactly.

A *segment* is published as one Celery canvas (:func:`wfcelery.plan.canvas.translate`) once every one of its
*external parents* (parents outside it) has succeeded. To stay exact -- no node ever waits for a node
that is not its ancestor -- every *entry* of a segment (a node with no parent inside it) has the same set
of external parents, every other node has all its parents inside, and the canvas of the segment must be
exact, results included (``translate`` raises :class:`~wfcelery.errors.NotSeriesParallel` otherwise).
Each entry receives its external parents' results as stored by the tracker, baked into its arguments
when the segment is published.

Nodes a canvas cannot carry are segments of their own, published exactly as the counters executor
publishes a node: ``map``, ``when``, a trigger rule other than ``all_success`` (decided at run time by the
tracker), a node with no task (a wait, a sleep, a sub-workflow), a node in a pool (its message waits for
a slot: ops/pools.py) and tracker-level ``retries`` > 0 (a
message sent again would lose its chain or chord continuation). A plan with any map, condition or
trigger rule is all singletons: its Lua rules decide every edge (docs: native canvas).

Segments are found greedily in topological order: a node joins the segment holding all its parents when
that segment stays exact with it; otherwise it is an entry of the segment of the nodes with exactly its
parents (roots: no parents); segments grow to :data:`MAX_SEGMENT` nodes at most. A series-parallel plan
without such nodes is one segment. After resume or retry, the nodes planned again are cut the same way
(``segments(plan, remaining)``). Pure: no Redis, no broker.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from wfcelery.definition.executor import Executor
from wfcelery.definition.params import substitute
from wfcelery.errors import NotSeriesParallel
from wfcelery.plan.canvas import Canvas, translate
from wfcelery.plan.compiler import Plan, PlanNode

#: The executors a run may use (model.EXECUTORS).
#: Nodes a segment grows to, at most, while a plan that is not one canvas is cut (each growth step
#: translates the segment again: this bounds the cut's cost; a series-parallel plan is one segment anyway).
MAX_SEGMENT = 48


@dataclass(frozen=True)
class Segment:
    """A part of a plan published at once.

    Attributes:
        nodes: plan indexes, ascending.
        entries: the nodes without a parent inside the segment.
        parents: the external parents every entry has (sorted plan indexes).
        canvas: False for a node published as one message (a singleton the canvas cannot carry, or a
            segment of one node).
    """

    nodes: tuple[int, ...]
    entries: tuple[int, ...]
    parents: tuple[int, ...]
    canvas: bool


def carries(node: PlanNode) -> bool:
    """Whether a canvas can carry this node (else it is published alone, as the counters executor does)."""
    return (
        node.has_task
        and node.map is None
        and not node.when
        and node.trigger == "all_success"
        and node.retries == 0
        and node.pool is None
    )


def segments(plan: Plan, remaining: frozenset[int] | None = None) -> tuple[Segment, ...]:
    """The plan's segments (cached on the plan); with ``remaining`` (resume, retry), the segments of the
    nodes planned again: a node outside it (succeeded, or still running) is an external parent."""
    cache: dict[frozenset[int] | None, tuple[Segment, ...]] = plan.__dict__.setdefault("_segments", {})
    found = cache.get(remaining)
    if found is None:
        found = _find(plan, remaining)
        if len(cache) > 64:  # a frozen dataclass: cache beside the cached_properties, bounded
            cache.clear()
        cache[remaining] = found
    return found


def segment_of(plan: Plan, remaining: frozenset[int] | None = None) -> dict[int, Segment]:
    """Node index -> its segment (nodes of ``remaining`` only, when given); cached like :func:`segments`."""
    cache: dict[frozenset[int] | None, dict[int, Segment]] = plan.__dict__.setdefault("_segment_of", {})
    found = cache.get(remaining)
    if found is None:
        found = {i: seg for seg in segments(plan, remaining) for i in seg.nodes}
        if len(cache) > 64:
            cache.clear()
        cache[remaining] = found
    return found


def _find(plan: Plan, remaining: frozenset[int] | None = None) -> tuple[Segment, ...]:
    n = len(plan.nodes)
    todo = range(n) if remaining is None else sorted(remaining)
    if plan.dynamic or not n:
        return tuple(_single(plan, i) for i in todo)
    if remaining is None and all(carries(node) for node in plan.nodes) and _exact(plan, list(range(n))):
        return (_make(plan, list(range(n)), True),)
    groups: list[list[int]] = []
    where: dict[int, int] = {i: -1 - i for i in range(n)}  # outside ``remaining``: a group of its own
    by_parents: dict[tuple[int, ...], int] = {}  # open segments of entries with these parents
    for v in _topological(plan):
        if remaining is not None and v not in remaining:
            continue
        node = plan.nodes[v]
        if not carries(node):
            where[v] = len(groups)
            groups.append([v])
            continue
        homes = {where[p] for p in node.parents}
        if len(homes) == 1 and min(homes) >= 0:
            (home,) = homes
            members = groups[home]
            if (
                len(members) < MAX_SEGMENT
                and all(carries(plan.nodes[m]) for m in members)
                and _exact(plan, [*members, v])
            ):
                members.append(v)
                where[v] = home
                continue
        key = tuple(sorted(node.parents))
        home = by_parents.get(key, -1)
        if home >= 0 and len(groups[home]) < MAX_SEGMENT and _exact(plan, [*groups[home], v]):
            groups[home].append(v)
        else:
            home = len(groups)
            groups.append([v])
            by_parents[key] = home
        where[v] = home
    return tuple(_make(plan, sorted(g), len(g) > 1) for g in groups)


def _single(plan: Plan, i: int) -> Segment:
    return Segment((i,), (i,), tuple(sorted(plan.nodes[i].parents)), False)


def _make(plan: Plan, members: list[int], canvas: bool) -> Segment:
    inside = set(members)
    entries = [i for i in members if not any(p in inside for p in plan.nodes[i].parents)]
    parents = sorted(plan.nodes[entries[0]].parents)
    return Segment(tuple(members), tuple(entries), tuple(parents), canvas)


def _exact(plan: Plan, members: list[int]) -> bool:
    """Whether ``members`` form a segment: entries share their parents, others have all theirs inside,
    and the canvas of the part is exact."""
    inside = set(members)
    entry_parents: set[tuple[int, ...]] = set()
    for i in members:
        parents = plan.nodes[i].parents
        outside = [p for p in parents if p not in inside]
        if outside and len(outside) != len(parents):
            return False  # parents both inside and outside
        if outside or not parents:
            entry_parents.add(tuple(sorted(parents)))
    if len(entry_parents) != 1:
        return False
    try:
        translate(sub_plan(plan, members), None, task_id=str, check_only=True)
    except NotSeriesParallel:
        return False
    return True


def _topological(plan: Plan) -> list[int]:
    pending = [len(n.parents) for n in plan.nodes]
    ready = [i for i, c in enumerate(pending) if not c]
    heapq.heapify(ready)
    out = []
    while ready:
        v = heapq.heappop(ready)
        out.append(v)
        for c in plan.nodes[v].children:
            pending[c] -= 1
            if not pending[c]:
                heapq.heappush(ready, c)
    return out


class _Signatures:
    """Stands in for a Celery app while segments are found (``translate`` only builds signatures)."""

    def signature(self, task: str, **options: Any) -> Any:
        from celery.canvas import Signature

        return Signature(task, **options)


_NO_APP: Any = _Signatures()


def sub_plan(
    plan: Plan,
    members: Sequence[int],
    inputs: Mapping[int, Sequence[Any]] | None = None,
    params: Mapping[str, Any] | None = None,
) -> Plan:
    """The segment ``members`` as a plan of its own (node ``k`` is ``members[k]``): its entries become
    roots whose arguments already hold their parents' results (``inputs``: entry -> its parents'
    results in ``after`` order, as the counters executor passes them) and, with ``params``, every
    ``${name}`` is filled in."""
    at = {m: k for k, m in enumerate(members)}
    nodes = []
    for k, m in enumerate(members):
        node = plan.nodes[m]
        args, kwargs = list(node.args), dict(node.kwargs)
        if params and plan.has_placeholders:
            args, kwargs = substitute(args, params), substitute(kwargs, params)
        parents = tuple(at[p] for p in node.parents if p in at)
        entry = bool(node.parents) and not parents
        if entry and not node.immutable:
            got = list((inputs or {}).get(m, [None] * len(node.parents)))
            args.insert(0, got if node.takes_list() else got[0])
        nodes.append(
            replace(
                node,
                index=k,
                args=tuple(args),
                kwargs=kwargs,
                parents=parents,
                children=tuple(at[c] for c in node.children if c in at),
                # an entry's input is in its args already: nothing may be prepended by the canvas
                immutable=node.immutable or entry,
            )
        )
    return Plan(plan.name, plan.on_failure, tuple(nodes), {}, plan.digest, "", Executor.CANVAS)


def build(
    plan: Plan,
    segment: Segment,
    app: Any,
    inputs: Mapping[int, Sequence[Any]],
    params: Mapping[str, Any],
    task_id: Callable[[int], str],
    options: Callable[[int], Mapping[str, Any]],
    aux_id: Callable[[], str] | None = None,
) -> Canvas:
    """The native canvas of ``segment``: ``task_id`` / ``options`` take plan indexes; ``aux_id`` names
    the barriers and pass-throughs."""
    members = segment.nodes
    sub = sub_plan(plan, members, inputs, params)
    return translate(
        sub,
        app,
        None,
        task_id=lambda k: task_id(members[k]),
        options=lambda k: options(members[k]),
        aux_id=aux_id,
    )


def leaf_ids(signature: Any) -> list[str]:
    """Every task id in a built canvas (nodes, barriers and pass-throughs), in the order they appear."""
    from celery.canvas import _chain, _chord  # type: ignore[attr-defined]

    out: list[str] = []
    stack = [signature]
    while stack:
        sig = stack.pop()
        if isinstance(sig, _chord):
            stack.append(sig.body)
            stack.extend(reversed(list(getattr(sig.tasks, "tasks", sig.tasks))))
        elif isinstance(sig, _chain):
            stack.extend(reversed(list(sig.tasks)))
        else:
            out.append(sig.options["task_id"])
    return out


def has_chord(plan: Plan) -> bool:
    """Whether a segment of the plan is published as a chord (a chord needs a result backend)."""
    found: bool | None = plan.__dict__.get("_has_chord")  # of the whole plan
    if found is None:
        from celery.canvas import _chain, _chord  # type: ignore[attr-defined]

        def chords(sig: Any) -> bool:
            if isinstance(sig, _chord):
                return True
            return isinstance(sig, _chain) and any(chords(t) for t in sig.tasks)

        found = any(
            chords(translate(sub_plan(plan, seg.nodes), _NO_APP, task_id=str).signature)
            for seg in segments(plan)
            if seg.canvas
        )
        plan.__dict__["_has_chord"] = found
    return found
