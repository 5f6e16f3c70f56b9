"""What the reconciler's sweep repairs of nodes with no task (``worker/reconciler.py`` calls it per live run):
the steps that happen beside a transition, not inside it, and that a process dying in between, or an
outage, could leave undone.

* a wait or sleep WAITING without its timer (or a wait missing from the ``signals`` index): added again;
* a sub-workflow node WAITING on a child run that ended: settled from the child's end now; on a child run
  that does not exist (seen so on two sweeps in a row): the child is started;
* a node with no task QUEUED in a running run on two sweeps in a row (released, never armed): armed;
* a child run whose parent's node no longer waits on it (the parent failed fast, was cancelled or deleted
  while the child was not told): cancelled.

"Two sweeps in a row" leaves the process that released the node the time to arm it or start its child
(milliseconds): a repair never races the normal path into a second child run.
"""

from __future__ import annotations

from wfcelery.errors import RunNotFound
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.messaging.release import publish_released
from wfcelery.ops.subruns import (
    child_ended,
    ended,
    ensure_child,
    halt_run,
    publish_settled,
    settle_failure,
)
from wfcelery.ops.waits import waits_of
from wfcelery.plan.compiler import Plan
from wfcelery.tracker.keys import Slot
from wfcelery.tracker.outcomes import Finish
from wfcelery.tracker.records import NodeRecord, RunRecord, TimerEntry
from wfcelery.tracker.states import NodeStatus, RunStatus, WaitKind
from wfcelery.tracker.store import Tracker

#: (node index, epoch) of the suspicious nodes a sweep saw, per run: acted on when seen again next sweep.
Seen = dict[str, set[tuple[int, int]]]


def sweep_waits(
    tracker: Tracker,
    dispatch: Dispatcher,
    run_id: str,
    record: RunRecord,
    nodes: dict[Slot, NodeRecord],
    seen: Seen,
) -> list[tuple[str, str, str]]:
    """Repair one live run's nodes with no task; returns (node, action, why) of each repair made."""
    waits = waits_of(tracker)
    plan = waits.plans.get(record.plan)
    done: list[tuple[str, str, str]] = []
    before, now = seen.pop(run_id, set()), set()
    if record.parent is not None and _orphan(tracker, run_id, record):
        # fenced by the epoch read before the parent was: a child its parent retried since keeps running
        out = halt_run(tracker, dispatch, run_id, "cancel", epoch=record.epoch, settle_parent=False)
        if not out.changed:
            return []
        return [("-", "cancelled", f"its parent run {record.parent.run_id} no longer waits on it")]
    for index, node in ((i, n) for i, n in nodes.items() if isinstance(i, int)):
        if plan.nodes[index].has_task:
            continue
        suspicious = (index, node.epoch)
        name = plan.nodes[index].name
        if node.status is NodeStatus.QUEUED and record.status is RunStatus.RUNNING:
            now.add(suspicious)
            if suspicious in before:
                publish_released(tracker, dispatch, plan, run_id, [suspicious], record.params)
                done.append((name, "armed", "it was released but never started waiting"))
        elif node.status is NodeStatus.WAITING:
            why = _check_waiting(tracker, dispatch, plan, run_id, record, index, node, suspicious in before)
            if why == "missing":
                now.add(suspicious)
            elif why:
                done.append((name, "repaired", why))
    if now:
        seen[run_id] = now
    return done


def _check_waiting(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    record: RunRecord,
    index: int,
    node: NodeRecord,
    seen_before: bool,
) -> str:
    """Repair a WAITING node's timer, index entry or child run; returns what was done ('' nothing;
    'missing': its child run does not exist, not acted on before a second sweep)."""
    waits, mark = waits_of(tracker), record.waits.get(index)
    if mark is None:
        return ""
    entry = TimerEntry(run_id, index, node.epoch)
    if mark.kind is not WaitKind.RUN:
        if mark.kind is WaitKind.SIGNAL:
            waits.add_signal_wait(entry, record.created_ms + (node.started_ms or 0))
        if mark.at_ms is not None and waits.ensure_timer(entry, mark.at_ms):
            return "its timer was missing: set again"
        return ""
    assert mark.run is not None
    try:
        child = tracker.run_record(mark.run)
    except RunNotFound:
        if not seen_before:
            return "missing"
        finishes: list[Finish] = []
        problem = ensure_child(tracker, dispatch, plan, run_id, index, mark.run, record.params, finishes)
        for finish in finishes:
            ended(tracker, dispatch, plan, run_id, finish)
        if problem is not None:
            settled = settle_failure(tracker, dispatch, plan, run_id, index, node.epoch, *problem)
            publish_settled(tracker, dispatch, settled)
            return f"its child run {mark.run} did not exist and cannot start: {problem[1]}"
        return f"its child run {mark.run} did not exist: started"
    if child.status.finished:
        child_ended(tracker, dispatch, mark.run, child)
        return f"its child run {mark.run} had ended {child.status.value}: settled"
    return ""


def _orphan(tracker: Tracker, run_id: str, record: RunRecord) -> bool:
    """A live child run whose parent's node does not wait on it (any more)."""
    assert record.parent is not None
    if record.status.finished:
        return False
    try:
        parent, nodes, _ = tracker.read_run(record.parent.run_id, only=[record.parent.index])
    except RunNotFound:
        return True
    node = nodes.get(record.parent.index) or NodeRecord()
    mark = parent.waits.get(record.parent.index)
    waiting = node.status is NodeStatus.WAITING and mark is not None and mark.run == run_id
    return not waiting and node.status.terminal
