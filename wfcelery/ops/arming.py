"""Arming released nodes with no task: where the release path (``messaging/release.py``) would publish a
task message, a wait, a sleep or a sub-workflow node starts waiting instead (QUEUED -> WAITING, arm.lua).

* a wait: listed in the ``signals`` index ("Waiting for you"), with a timer at its timeout's deadline;
* a sleep: a timer at its end -- ``duration`` after now (Redis's clock: when the node was reached), or
  its ``until`` time with the run's params filled in (a value that is no time fails the node, naming it);
* a sub-workflow: its child run is started (``ops.subruns``): a new one, or -- when the node ran before
  (a retry of the parent) -- the same child run, retried or resumed.

Each step is safe to repeat: a release delivered twice (an outbox replay, the reconciler re-publishing a
node left QUEUED) finds the node WAITING and only makes sure its timer and its child run are there.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from wfcelery.definition.waits import NodeKind, resolve_until
from wfcelery.errors import SchemaError
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.ops.waits import ArmOutcome, ArmVerdict, waits_of
from wfcelery.plan.compiler import Plan
from wfcelery.tracker.outcomes import Finish
from wfcelery.tracker.records import TimerEntry
from wfcelery.tracker.states import WaitKind
from wfcelery.tracker.store import Tracker

logger = logging.getLogger("wfcelery.waits")


class Armed:
    """What arming a batch of nodes led to: nodes released further (a node that failed to arm fails,
    and the failure policy may release others) and the runs that ended."""

    def __init__(self) -> None:
        self.released: list[tuple[int, int]] = []
        self.finishes: list[Finish] = []


def arm_nodes(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    nodes: list[tuple[int, int]],
    params: Mapping[str, Any],
) -> Armed:
    """Arm these released (node index, epoch) nodes with no task."""
    armed = Armed()
    for index, epoch in nodes:
        kind = plan.nodes[index].kind
        if kind is NodeKind.WORKFLOW:
            _arm_workflow(tracker, dispatch, plan, run_id, index, epoch, params, armed)
        else:
            _arm_timed(tracker, dispatch, plan, run_id, index, epoch, params, armed)
    return armed


def _arm_timed(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    index: int,
    epoch: int,
    params: Mapping[str, Any],
    armed: Armed,
) -> None:
    """A wait (for a signal, maybe until a timeout) or a sleep: the node, then its timer (a timer missing
    after a crash in between is set again by the reconciler's sweep: ``ops/sweep.py``)."""
    waits, node = waits_of(tracker), plan.nodes[index]
    in_ms = at_ms = None
    if node.kind is NodeKind.WAIT:
        kind = WaitKind.SIGNAL
        in_ms = None if node.timeout is None else int(node.timeout * 1000)
    elif node.sleep is not None:
        kind, in_ms = WaitKind.TIME, int(node.sleep * 1000)
    else:
        kind = WaitKind.TIME
        try:
            at_ms = int(resolve_until(node.until, params, f"node {node.name!r}: until") * 1000)
        except SchemaError as e:
            _fail(tracker, dispatch, plan, run_id, index, epoch, "SleepError", str(e), armed)
            return
    out = waits.arm(run_id, index, epoch, kind, in_ms, at_ms)
    if not out.waiting or out.mark is None:
        return  # paused (resume re-plans it), stale or gone
    entry = TimerEntry(run_id, index, epoch)
    if out.mark.at_ms is not None:
        waits.add_timer(entry, out.mark.at_ms)
    if kind is WaitKind.SIGNAL:
        waits.add_signal_wait(entry, tracker.server_ms())


def _arm_workflow(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    index: int,
    epoch: int,
    params: Mapping[str, Any],
    armed: Armed,
) -> None:
    from wfcelery.ops.subruns import ensure_child  # it publishes through the release path: imported here

    out: ArmOutcome = waits_of(tracker).arm(run_id, index, epoch, WaitKind.RUN, child=uuid.uuid4().hex)
    if out.waiting and out.mark is not None and out.mark.run:
        fresh = out.verdict is ArmVerdict.ARMED
        problem = ensure_child(
            tracker, dispatch, plan, run_id, index, out.mark.run, params, armed.finishes, fresh
        )
        if problem is not None:
            _fail(tracker, dispatch, plan, run_id, index, epoch, *problem, armed)


def _fail(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    index: int,
    epoch: int,
    kind: str,
    message: str,
    armed: Armed,
) -> None:
    from wfcelery.messaging.release import fail_node

    logger.warning("wfcelery: run %s node %r: %s", run_id, plan.nodes[index].name, message)
    fail_node(tracker, dispatch, plan, run_id, index, epoch, kind, message, armed.released, armed.finishes)
