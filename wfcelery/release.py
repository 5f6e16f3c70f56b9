"""Publishing released nodes, conditions first: shared by the client API (submit, resume, retry) and the
worker side (children released by a success, a failure or a skip).

A node the tracker queued is published with its parents' results in ``after`` order (a parent that did not
succeed contributes null). A node with a ``when`` condition is evaluated here first (rules.py): false ->
the tracker settles it SKIPPED and decides its children by their trigger rules, which may release more
nodes (handled in the same loop); an expression that fails at run time (a JMESPath type error) fails the
node, naming the expression.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from .compiler import Plan
from .dispatch import Dispatcher
from .rules import condition_holds, condition_scope
from .tracker import Finish, Tracker

logger = logging.getLogger("wfcelery.release")


def publish_released(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    released: Sequence[tuple[int, int]],
    params: Mapping[str, Any],
    known: Mapping[int, Any] | None = None,
) -> list[Finish]:
    """Publish ``released`` (node index, epoch) nodes. ``known``: results already in hand (skips one read).

    Returns the run's end when a skip or a failed condition ended it (the caller sends the callback)."""
    finishes: list[Finish] = []
    pending = list(released)
    while pending:
        results = _parent_results(tracker, plan, run_id, [i for i, _ in pending], known or {})
        ready, pending = _evaluate(tracker, dispatch, plan, run_id, pending, params, results, finishes)
        if ready:
            dispatch.publish(plan, run_id, ready, params)
    return finishes


def _parent_results(
    tracker: Tracker, plan: Plan, run_id: str, nodes: Sequence[int], known: Mapping[int, Any]
) -> dict[int, Any]:
    wanted = sorted({p for i in nodes for p in plan.nodes[i].parents} - set(known))
    return {**tracker.results(run_id, wanted), **known}


def _evaluate(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    pending: Sequence[tuple[int, int]],
    params: Mapping[str, Any],
    results: Mapping[int, Any],
    finishes: list[Finish],
) -> tuple[list[tuple[int, int, list[Any]]], list[tuple[int, int]]]:
    """Split ``pending`` into messages to send and the nodes that skips released next."""
    ready: list[tuple[int, int, list[Any]]] = []
    more: list[tuple[int, int]] = []
    for index, epoch in pending:
        node = plan.nodes[index]
        parent_results = [results.get(p) for p in node.parents]
        if node.when is None:
            ready.append((index, epoch, parent_results))
            continue
        scope = condition_scope(params, [plan.nodes[p].name for p in node.parents], parent_results)
        try:
            holds = condition_holds(node.when, scope)
        except ValueError as e:
            error = {"type": "ConditionError", "message": f"node {node.name!r}: {e}", "traceback": ""}
            out = tracker.fail(run_id, index, epoch, error, "failed", -1, [], 0, plan.rule_spec)
            dispatch.revoke(run_id, out.revoke)
            more += [(i, out.epoch) for i in out.released]
            finishes += [out.finish] if out.finish else []
            continue
        if holds:
            ready.append((index, epoch, parent_results))
            continue
        reason = {"type": "Skipped", "message": f"skipped: condition {node.when!r} is false"}
        skipped = tracker.skip(run_id, index, epoch, reason, plan.rule_spec)
        more += [(i, skipped.epoch) for i in skipped.released]
        finishes += [skipped.finish] if skipped.finish else []
    return ready, more
