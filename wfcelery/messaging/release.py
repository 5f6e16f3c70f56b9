"""Publishing released nodes, conditions and maps first: shared by the client API (submit, resume,
retry) and the worker side (children released by a success, a failure or a skip).

A node the tracker queued is published with its parents' results in ``after`` order (a parent that did not
succeed contributes null). A node with a ``when`` condition is evaluated here first (rules.py): false ->
the tracker settles it SKIPPED and decides its children by their trigger rules, which may release more
nodes (handled in the same loop); an expression that fails at run time (a JMESPath type error) fails the
node, naming the expression. A mapped node is expanded here: its map source's list (checked against
``max_map``) becomes one instance per element, queued in the tracker then published; a value that is not
a list, or too long, fails the node saying so.

A node in a pool is published only once it holds a slot and a token of its pool; otherwise it waits
for the pool, with no message out (ops/pool_flow.py).

Under the canvas executor (``plan.executor == "canvas"``) a released entry of a segment publishes the
whole segment as one native canvas, and a released node inside a published segment is left to its
canvas (segments.py).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from wfcelery.definition.executor import Executor
from wfcelery.definition.rules import condition_holds, condition_scope, expand, map_limit
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.plan.compiler import Plan
from wfcelery.plan.segments import Segment, build, leaf_ids, segment_of
from wfcelery.tracker.keys import Slot, canvas_task_id, instance_slot, split_slot, task_id
from wfcelery.tracker.outcomes import FailMode, Finish
from wfcelery.tracker.records import NodeRecord, canvas_field, kwargs_repr, message_headers
from wfcelery.tracker.states import NodeStatus
from wfcelery.tracker.store import Tracker

logger = logging.getLogger("wfcelery.release")


def publish_released(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    released: Sequence[tuple[int, int]],
    params: Mapping[str, Any],
    known: Mapping[Slot, Any] | None = None,
    producer: Any = None,
    sent: Callable[[int], None] | None = None,
) -> list[Finish]:
    """Publish ``released`` (node index, epoch) nodes. ``known``: results already in hand (skips one read);
    ``producer``: a kombu producer to publish with (else one from the app's pool); ``sent(n)``: told how
    many messages were sent so far, as they go.

    Returns the run's end when a skip or a failed condition ended it (the caller sends the callback)."""
    finishes: list[Finish] = []
    pending = list(released)
    if plan.executor is Executor.CANVAS:
        pending = publish_segments(tracker, dispatch, plan, run_id, pending, params, known or {})
    done = 0
    while pending:
        results = _parent_results(tracker, plan, run_id, [i for i, _ in pending], known or {})
        waiting: list[tuple[int, int]] = []
        ready, pending = _evaluate(
            tracker, dispatch, plan, run_id, pending, params, results, finishes, waiting
        )
        if ready and plan.pools:
            from wfcelery.ops.pool_flow import gate  # ops publishes through this module: imported here

            ready = gate(tracker, dispatch, plan, run_id, ready)
        if ready:
            counted = None if sent is None else (lambda n, base=done: sent(base + n))
            dispatch.publish(plan, run_id, ready, params, producer=producer, sent=counted)
            done += len(ready)
        if waiting:
            from wfcelery.ops.arming import arm_nodes  # ops publishes through this module: imported here

            armed = arm_nodes(tracker, dispatch, plan, run_id, waiting, params)
            pending += armed.released
            finishes += armed.finishes
    return finishes


def publish_segments(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    released: Sequence[tuple[int, int]],
    params: Mapping[str, Any],
    known: Mapping[Slot, Any],
) -> list[tuple[int, int]]:
    """The canvas executor: publish the segment of each released entry as one canvas; returns the nodes
    still to publish one message each (singletons, and everything after a resume or retry).

    A released node inside a published segment is not sent again: the segment's canvas carries it (the
    tracker counts every edge, so it saw the node released). After resume or retry, the segments are
    those of the nodes planned again (``Tracker.remaining``)."""
    rest: list[tuple[int, int]] = []
    due: dict[tuple[int, ...], tuple[Segment, int]] = {}
    plans: dict[int, dict[int, Segment]] = {}
    for index, epoch in released:
        if epoch not in plans:  # epoch 0: the whole plan; later: what resume / retry planned again
            remaining = tracker.remaining(run_id, epoch) if epoch else None
            plans[epoch] = segment_of(plan, remaining) if remaining or not epoch else {}
        seg = plans[epoch].get(index)
        if seg is None or not seg.canvas:
            rest.append((index, epoch))
        elif index in seg.entries:
            due.setdefault(seg.nodes, (seg, epoch))
    for seg, epoch in due.values():
        publish_segment(tracker, dispatch, plan, run_id, seg, epoch, params, known)
    return rest


def publish_segment(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    seg: Segment,
    epoch: int,
    params: Mapping[str, Any],
    known: Mapping[Slot, Any],
) -> None:
    """Build one segment's canvas with its entries' inputs (their parents' stored results), every id
    fixed (node ids as the counters executor's), record the ids that are no node's, and apply it."""
    results = _parent_results(tracker, plan, run_id, seg.entries, known)
    inputs = {e: [results.get(p) for p in plan.nodes[e].parents] for e in seg.entries}
    names = [n.name for n in plan.nodes]

    def options(i: int) -> dict[str, Any]:
        node = plan.nodes[i]
        return {
            "headers": message_headers(run_id, node.name, plan.digest),
            "kwargsrepr": kwargs_repr(node.kwargs, run_id, names[i], params),
            "serializer": "json",
        }

    serials = itertools.count(seg.nodes[0] * 1_000_000)  # unique per segment of the epoch

    def aux_id() -> str:
        return canvas_task_id(run_id, epoch, next(serials))

    canvas = build(
        plan, seg, dispatch.app, inputs, params, lambda i: task_id(run_id, i, epoch), options, aux_id
    )
    ids = leaf_ids(canvas.signature)
    node_ids = set(canvas.task_ids.values())
    tracker.record_canvas(run_id, canvas_field(epoch, seg.nodes[0]), [i for i in ids if i not in node_ids])
    dispatch.publish_canvas(run_id, canvas.signature, ids)


def _parent_results(
    tracker: Tracker, plan: Plan, run_id: str, nodes: Sequence[int], known: Mapping[Slot, Any]
) -> dict[Slot, Any]:
    wanted = sorted({p for i in nodes for p in plan.nodes[i].parents} - set(known))
    found = tracker.results(run_id, wanted)
    found.update(known)
    return found


def _evaluate(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    pending: Sequence[tuple[int, int]],
    params: Mapping[str, Any],
    results: Mapping[Slot, Any],
    finishes: list[Finish],
    waiting: list[tuple[int, int]],
) -> tuple[list[tuple[Slot, int, list[Any]]], list[tuple[int, int]]]:
    """Split ``pending`` into messages to send and the nodes that skips released next (nodes with no task
    go to ``waiting``: they are armed, not published)."""
    ready: list[tuple[Slot, int, list[Any]]] = []
    more: list[tuple[int, int]] = []
    for index, epoch in pending:
        node = plan.nodes[index]
        parent_results = [results.get(p) for p in node.parents]
        if node.when is not None:
            scope = condition_scope(params, [plan.nodes[p].name for p in node.parents], parent_results)
            try:
                holds = condition_holds(node.when, scope)
            except ValueError as e:
                fail_node(
                    tracker, dispatch, plan, run_id, index, epoch, "ConditionError", str(e), more, finishes
                )
                continue
            if not holds:
                reason = {"type": "Skipped", "message": f"skipped: condition {node.when!r} is false"}
                skipped = tracker.skip(run_id, index, epoch, reason, plan.rule_spec)
                more += [(i, skipped.epoch) for i in skipped.released]
                finishes += [skipped.finish] if skipped.finish else []
                continue
        if not node.has_task:
            waiting.append((index, epoch))
            continue
        if node.map is None:
            ready.append((index, epoch, parent_results))
            continue
        limit = map_limit(node.max_map, tracker.settings.max_map)
        try:
            elements = expand(results.get(node.map), limit, node.name, plan.nodes[node.map].name)
        except ValueError as e:
            fail_node(tracker, dispatch, plan, run_id, index, epoch, "MapError", str(e), more, finishes)
            continue
        out = tracker.expand(run_id, index, epoch, len(elements), plan.rule_spec)
        if out.epoch >= 0:  # queued (or, for [], succeeded); else stale or paused: resume re-plans it
            ready += [(instance_slot(index, i), epoch, [e]) for i, e in enumerate(elements)]
            more += [(i, out.epoch) for i in out.released]
            finishes += [out.finish] if out.finish else []
    return ready, more


def fail_node(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    index: int,
    epoch: int,
    kind: str,
    message: str,
    more: list[tuple[int, int]],
    finishes: list[Finish],
) -> None:
    """A released node cannot run (its condition or its map input is wrong), or a node with no task failed
    (a wait's timeout, a child run that failed): FAILED for good, naming why."""
    error = {"type": kind, "message": message, "traceback": ""}
    plain_continue = plan.on_failure == "continue" and not plan.rule_spec
    descendants = plan.descendants([index]) if plain_continue else []
    out = tracker.fail(run_id, index, epoch, error, FailMode.FAILED, -1, descendants, 0, plan.rule_spec)
    dispatch.revoke(run_id, out.revoke)
    more += [(i, out.epoch) for i in out.released]
    finishes += [out.finish] if out.finish else []


def map_elements(tracker: Tracker, plan: Plan, run_id: str, index: int) -> list[Any]:
    """The list a mapped node expanded over (its map source's stored result), to re-publish instances."""
    source = plan.nodes[index].map
    assert source is not None, f"node {plan.nodes[index].name!r} is not mapped"
    value = tracker.results(run_id, [source]).get(source)
    return value if isinstance(value, list) else []


def publish_instances(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    slots: Sequence[str],
    epoch: int,
    params: Mapping[str, Any],
) -> None:
    """Re-publish instances of mapped nodes (resume, retry), each with its element."""
    elements: dict[int, list[Any]] = {}
    items: list[tuple[Slot, int, list[Any]]] = []
    for slot in slots:
        index, instance = split_slot(slot)
        if index not in elements:
            elements[index] = map_elements(tracker, plan, run_id, index)
        items.append((slot, epoch, [elements[index][instance or 0]]))
    if plan.pools:
        from wfcelery.ops.pool_flow import gate  # ops publishes through this module: imported here

        items = gate(tracker, dispatch, plan, run_id, items)
    dispatch.publish(plan, run_id, items, params)


def revoke_canvas(tracker: Tracker, dispatch: Dispatcher, plan: Plan, run_id: str) -> None:
    """A canvas-executor run was paused, cancelled or failed: revoke every id of its published segments
    that has not started -- nodes still PENDING inside a canvas (their ids are known: the counters
    executor's) and the barriers / pass-throughs recorded at publish. The start gate holds anyway; the
    revokes spare the workers the messages."""
    if plan.executor is not Executor.CANVAS:
        return
    record, nodes, _ = tracker.read_run(run_id)
    ids = [
        task_id(run_id, i, n.epoch)
        for i, n in ((i, nodes.get(i) or NodeRecord()) for i in range(len(plan.nodes)))
        if n.status in (NodeStatus.PENDING, NodeStatus.QUEUED)
    ]
    ids += tracker.canvas_ids(run_id, record.epoch)
    for start in range(0, len(ids), 5_000):
        dispatch.app.control.revoke(ids[start : start + 5_000])
