"""Child runs: a sub-workflow node runs a registered workflow as a run of its own, linked both ways.

The parent's node records its child's id in its wait mark (run-record field ``wt:<node>``); the child's
run record names its parent run and node (field ``parent``). Both sides of the API use this module: the
client (submit stores the child plans, control reaches the children) and the worker side (a released
sub-workflow node starts its child; a child that ends settles its parent's node).

* **start** (:func:`ensure_child`): the child's plan was compiled and stored at submit (the parent plan
  names it by digest: ``Plan.subplans``); its params are the node's ``params`` with the parent run's params
  filled in, checked against the child workflow (a missing param fails the node, naming it). A node that
  had a child run before (a retry of the parent) gets the same run again: retried if it FAILED or was
  CANCELLED, resumed if PAUSED, read if it SUCCEEDED.
* **end** (:func:`after_end`, called wherever a run ends): a child that SUCCEEDED settles its node with its
  results (a dict by node name, bounded like a result); one that FAILED or was CANCELLED fails the node
  with its error summary, and the parent's failure policy applies. A run that ends other than SUCCEEDED
  cancels its live children, each fenced by the epoch it was read at (:func:`idle_children`): a retry of
  the parent that lands between the read and the cancel re-arms the node, which finds the child live and
  cancels and retries it under a new epoch (:func:`ensure_child`), so the late cancel leaves it running.
* **control** (:func:`halt_run`, :func:`replan_run`): pause and cancel reach the live children, resume
  resumes the paused ones; retry re-arms the node, which retries its child; cleanup (client) deletes them.

A notification lost to an outage is repaired by the reconciler's sweep (:func:`sweep_waits`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from wfcelery.definition.model import Workflow
from wfcelery.definition.params import substitute
from wfcelery.errors import ControlError, DefinitionError, RunNotFound, TrackerError, WfCeleryError
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.messaging.release import fail_node, publish_instances, publish_released, revoke_canvas
from wfcelery.ops.submit import ended as run_ended
from wfcelery.ops.submit import limit_fields, start_run
from wfcelery.ops.waits import encode_result, waits_of
from wfcelery.plan.compiler import Plan
from wfcelery.tracker.base import converted_errors
from wfcelery.tracker.outcomes import Finish, HaltOutcome, ReplanOutcome, SucceedOutcome
from wfcelery.tracker.records import NodeRecord, ParentLink, RunRecord, new_run
from wfcelery.tracker.states import NodeStatus, RunStatus, WaitKind
from wfcelery.tracker.store import Tracker

logger = logging.getLogger("wfcelery.subruns")


# -- submit: the child plans -------------------------------------------------------------------------------


def compile_subplans(
    tracker: Tracker,
    wf: Workflow,
    lookup: Callable[[str], Workflow | None],
    compile_one: Callable[[Workflow, Mapping[str, str]], Plan],
) -> dict[str, str]:
    """Compile each child of ``wf``'s sub-workflow nodes (and theirs) with ``compile_one(child, its own
    subplans)``, store the plans in the tracker, and return the digest of each sub-workflow node's child
    plan by node name (``compile_workflow``'s ``subplans``). ``wf`` passed
    :func:`~wfcelery.definition.waits.check_nesting` with ``lookup``."""
    found: dict[str, str] = {}
    for node in wf.nodes.values():
        if node.subworkflow is None:
            continue
        child = lookup(node.subworkflow)
        assert child is not None  # check_nesting refused unknown ones
        plan = compile_one(child, compile_subplans(tracker, child, lookup, compile_one))
        store_plan(tracker, plan)
        found[node.name] = plan.digest
    return found


def store_plan(tracker: Tracker, plan: Plan) -> None:
    """Store a child's plan (kept as long as a run's plan: two run TTLs, renewed when a run starts)."""
    ttl = tracker.settings.run_ttl * 2
    with converted_errors("store a child workflow's plan"):
        tracker.client.set(tracker.keys.plan(plan.digest), plan.blob, ex=ttl)


def check_child_params(
    wf: Workflow, params: Mapping[str, Any], lookup: Callable[[str], Workflow | None], limits: Any
) -> None:
    """Refuse at submit a child run whose params would be wrong once the node is reached (naming the node)."""
    for node in wf.nodes.values():
        child = lookup(node.subworkflow) if node.subworkflow else None
        if child is None:
            continue
        try:
            resolved = child.resolve_params(substitute(node.params or {}, params), limits)
        except DefinitionError as e:
            raise type(e)(f"node {node.name!r} (workflow {child.name!r}): {e}") from None
        check_child_params(child, resolved, lookup, limits)


# -- start ------------------------------------------------------------------------------------------------


def ensure_child(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    index: int,
    child_id: str,
    params: Mapping[str, Any],
    finishes: list[Finish],
    fresh: bool = False,
) -> tuple[str, str] | None:
    """Make sure the child run of WAITING node ``index`` runs; returns (error type, message) when it
    cannot start (the caller fails the node), else None. ``fresh``: the node was armed by this call (not
    a release delivered again, nor the sweep's repair)."""
    try:
        record = tracker.run_record(child_id)
    except RunNotFound:
        return create_child(tracker, dispatch, plan, run_id, index, child_id, params)
    if fresh and record.status in (RunStatus.RUNNING, RunStatus.QUEUED):
        # The live child of an earlier arm of this node (the parent was retried before its end's cancel of
        # the child landed, or the child was resumed or retried by hand): cancelled and retried here, it
        # runs under an epoch that no cancel decided before this arm has read (halt_run's fence).
        try:
            halt_run(tracker, dispatch, child_id, "cancel", epoch=record.epoch, settle_parent=False)
            record = tracker.run_record(child_id)
        except RunNotFound:  # deleted meanwhile (a cleanup of the child alone): the node starts a new one
            return create_child(tracker, dispatch, plan, run_id, index, child_id, params)
    if record.status is RunStatus.PAUSED and tracker.run_record(run_id).status is RunStatus.RUNNING:
        replan_run(tracker, dispatch, child_id, "resume")
    elif record.status in (RunStatus.FAILED, RunStatus.CANCELLED):
        replan_run(tracker, dispatch, child_id, "retry")
    elif record.status is RunStatus.SUCCEEDED:
        child_ended(tracker, dispatch, child_id, record)
    return None


def create_child(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    index: int,
    child_id: str,
    params: Mapping[str, Any],
) -> tuple[str, str] | None:
    node = plan.nodes[index]
    digest = plan.subplans.get(index)
    if digest is None:
        return "ChildRunError", f"no plan of workflow {node.subworkflow!r} was stored with this run's plan"
    try:
        child = waits_of(tracker).plans.get(digest)
    except TrackerError as e:
        return "ChildRunError", f"the plan of workflow {node.subworkflow!r} is gone: {e}"
    try:
        limits = tracker.settings.limits
        child_wf = Workflow.from_dict(child.definition)
        resolved = child_wf.resolve_params(substitute(node.params or {}, params), limits)
    except DefinitionError as e:
        return type(e).__name__, f"workflow {child.name!r}: {e}"
    record = new_run(
        name=child.name,
        plan_digest=digest,
        total=len(child.nodes),
        created_ms=tracker.server_ms(),
        params=resolved,
        policy=child.on_failure,
        ttl=tracker.settings.run_ttl,
        events_maxlen=tracker.settings.events_maxlen,
        executor=child.executor,
        parent=ParentLink(run_id, index, node.name),
        # the child workflow's own max_active_runs and deadline hold for its child runs too
        limits=limit_fields(tracker, child.name, child_wf.limits, resolved),
    )
    # a publish that fails deletes the child again: the release is kept and delivered again, and starts it
    started = start_run(tracker, dispatch, child, child_id, record, resolved)
    for finish in started.finishes:
        ended(tracker, dispatch, child, child_id, finish)
    return None


# -- end ----------------------------------------------------------------------------------------------------


def ended(tracker: Tracker, dispatch: Dispatcher, plan: Plan, run_id: str, finish: Finish) -> None:
    """A transition made here ended a run: close the workers' gate, index it, keep its plan and key, send
    its callback (:func:`wfcelery.ops.submit.ended`), reach its parent and children (:func:`after_end`)."""
    if finish.status != RunStatus.SUCCEEDED.value:
        tracker.set_gate(run_id, RunStatus(finish.status), finish.epoch)
    run_ended(tracker, dispatch, run_id, finish, plan.name, plan.digest)
    after_end(tracker, dispatch, run_id, finish, plan)


def after_end(
    tracker: Tracker,
    dispatch: Dispatcher,
    run_id: str,
    finish: Finish,
    plan: Plan | None = None,
    settle_parent: bool = True,
) -> None:
    """A run ended: a child run (``finish.parent``) settles its parent's node (unless ``settle_parent`` is
    False: a child cancelled because its parent's node no longer waits on it); a run that did not succeed
    cancels its live children (read only when ``plan``, if given, has sub-workflow nodes: a plain run's
    end costs no round trip here). Never raises: what an outage stops here, the reconciler's sweep does
    later."""
    try:
        failed = finish.status != RunStatus.SUCCEEDED.value
        if failed and (plan is None or any(n.subworkflow for n in plan.nodes)):
            # each only at the epoch read (a child retried since keeps running); their ends do not settle
            # this run's nodes: those wait on no child, or on a child again under a new epoch
            for child, epoch in idle_children(tracker, run_id, finish.status):
                with contextlib.suppress(RunNotFound):  # deleted meanwhile
                    halt_run(tracker, dispatch, child, "cancel", epoch=epoch, settle_parent=False)
        if finish.parent is not None and settle_parent:
            child_ended(tracker, dispatch, run_id, tracker.run_record(run_id))
    except RunNotFound:
        return
    except WfCeleryError as e:
        logger.warning("wfcelery: run %s ended; its parent or children are settled later: %s", run_id, e)


def child_ended(tracker: Tracker, dispatch: Dispatcher, child_id: str, record: RunRecord) -> None:
    """Settle the parent's node of a child run that ended (nothing when it no longer waits on it, or when
    the child runs again: a retry since its end)."""
    assert record.parent is not None
    if not record.status.finished:
        return
    parent_id, index = record.parent.run_id, record.parent.index
    try:
        parent, nodes, _ = tracker.read_run(parent_id, only=[index])
    except RunNotFound:
        return
    node, mark = nodes.get(index) or NodeRecord(), parent.waits.get(index)
    if node.status is not NodeStatus.WAITING or mark is None or mark.run != child_id:
        return
    plan = waits_of(tracker).plans.get(parent.plan)
    released: list[tuple[int, int]] = []
    finishes: list[Finish] = []
    problem = _failure(tracker, child_id, record)
    if problem is None:
        try:
            encoded = encode_result(
                results_by_name(tracker, child_id, record),
                tracker.settings.limits,
                f"the results of child run {child_id}",
            )
        except DefinitionError as e:
            problem = ("ResultError", str(e))
        else:
            out = waits_of(tracker).child_succeeded(parent_id, plan, index, child_id, encoded)
            _collect(out, released, finishes)
    if problem is not None:
        fail_node(tracker, dispatch, plan, parent_id, index, node.epoch, *problem, released, finishes)
    _publish(tracker, dispatch, plan, parent_id, parent.params, released, finishes)


def _failure(tracker: Tracker, child_id: str, record: RunRecord) -> tuple[str, str] | None:
    """(error type, message) of a child run that did not succeed, naming its failed nodes."""
    if record.status is RunStatus.SUCCEEDED:
        return None
    what = f"child run {child_id} ({record.name}) {record.status.value}"
    if record.status is RunStatus.CANCELLED:
        return "ChildRunCancelled", f"{what}: it was cancelled"
    _, nodes, errors = tracker.read_run(child_id)
    plan = waits_of(tracker).plans.get(record.plan)
    parts = []
    for slot, error in sorted(errors.last.items(), key=lambda item: str(item[0])):
        n = nodes.get(slot)
        if n is not None and n.status is NodeStatus.FAILED and isinstance(slot, int):
            parts.append(f"{plan.nodes[slot].name}: {error.get('type')}: {error.get('message')}")
    return "ChildRunFailed", f"{what}: " + ("; ".join(parts) or "no node failed")


def results_by_name(tracker: Tracker, run_id: str, record: RunRecord) -> dict[str, Any]:
    """A run's results by node name (what ``run.results()`` returns): a child run's, for its parent."""
    _, nodes, _ = tracker.read_run(run_id)
    plan = waits_of(tracker).plans.get(record.plan)
    raw = tracker.results(run_id)
    return {
        n.name: raw.get(n.index)
        for n in plan.nodes
        if (nodes.get(n.index) or NodeRecord()).status is NodeStatus.SUCCEEDED
    }


def _collect(out: SucceedOutcome | None, released: list[tuple[int, int]], finishes: list[Finish]) -> None:
    if out is not None:
        released += [(i, out.epoch) for i in out.released]
        finishes += [out.finish] if out.finish else []


def _publish(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    params: Mapping[str, Any],
    released: list[tuple[int, int]],
    finishes: list[Finish],
) -> None:
    """Publish what a settled waiting node released, and handle the run's end if it ended."""
    if released:
        finishes += publish_released(tracker, dispatch, plan, run_id, released, params)
    for finish in finishes:
        ended(tracker, dispatch, plan, run_id, finish)


@dataclass(frozen=True)
class Settled:
    """What settling a waiting node (node ``index`` at ``epoch``) leaves to do: publish the nodes it
    released, with the run's params, and end the run if it ended (:func:`publish_settled`; the worker side
    keeps it in its outbox when the broker or the tracker is away)."""

    plan: Plan
    run_id: str
    index: int
    epoch: int
    released: list[tuple[int, int]]
    params: Mapping[str, Any]
    finishes: list[Finish]


def settle_success(plan: Plan, run_id: str, index: int, epoch: int, out: SucceedOutcome) -> Settled:
    """What a waiting node's success (a signal, a timer) released and ended."""
    released: list[tuple[int, int]] = []
    finishes: list[Finish] = []
    _collect(out, released, finishes)
    return Settled(plan, run_id, index, epoch, released, out.params or {}, finishes)


def settle_failure(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    index: int,
    epoch: int,
    kind: str,
    message: str,
) -> Settled:
    """Fail a waiting node (a wait's timeout): the failure policy applies (fail.lua, revokes sent)."""
    released: list[tuple[int, int]] = []
    finishes: list[Finish] = []
    fail_node(tracker, dispatch, plan, run_id, index, epoch, kind, message, released, finishes)
    params = tracker.run_record(run_id).params if released else {}
    return Settled(plan, run_id, index, epoch, released, params, finishes)


def publish_settled(tracker: Tracker, dispatch: Dispatcher, settled: Settled) -> None:
    """Publish what a settled waiting node released, and handle its run's end."""
    s = settled
    _publish(tracker, dispatch, s.plan, s.run_id, s.params, list(s.released), list(s.finishes))


# -- control ------------------------------------------------------------------------------------------------


def children(record: RunRecord) -> list[str]:
    """The child runs a run started (its sub-workflow nodes')."""
    return [m.run for _, m in sorted(record.waits.items()) if m.kind is WaitKind.RUN and m.run]


def idle_children(tracker: Tracker, run_id: str, status: str) -> list[tuple[str, int]]:
    """The live child runs of a run that ended ``status`` whose nodes no longer wait on them, each with
    its epoch: none if the run was retried since (its nodes wait on their children again: a late end must
    not cancel them). Each child's epoch is read before the parent is read again, so a retry of the parent
    that lands after this answer has moved the epoch of any child it retried, and the cancel fenced by the
    epoch read here (:func:`halt_run`) leaves that child running."""
    candidates = _idle(tracker, run_id, status)
    if not candidates:
        return []
    live: dict[str, int] = {}
    for child in candidates:
        with contextlib.suppress(RunNotFound):  # not started yet, or deleted
            record = tracker.run_record(child)
            if not record.status.finished:
                live[child] = record.epoch
    still = set(_idle(tracker, run_id, status)) if live else set()
    return [(child, epoch) for child, epoch in live.items() if child in still]


def _idle(tracker: Tracker, run_id: str, status: str) -> list[str]:
    record, nodes, _ = tracker.read_run(run_id)
    if record.status.value != status:
        return []
    return [
        m.run
        for i, m in sorted(record.waits.items())
        if m.kind is WaitKind.RUN
        and m.run
        and (nodes.get(i) or NodeRecord()).status is not NodeStatus.WAITING
    ]


def halt_run(
    tracker: Tracker,
    dispatch: Dispatcher,
    run_id: str,
    op: str,
    terminate: bool = False,
    error: str = "",
    epoch: int | None = None,
    settle_parent: bool = True,
) -> HaltOutcome:
    """Pause or cancel a run (halt.lua; ``op`` 'deadline': fail it with ``error``, ops/deadlines.py) once
    every worker's local gate has stopped starting its bodies on its own (``Tracker.fence_gate``), then
    tell the workers' gate, revoke what had not started, end it (cancel: callback, parent) and do the same
    to its live children. With ``epoch``, only a run still at that epoch: a decision made on a read
    (a child found idle) does not reach the run resumed or retried since; ``settle_parent``: see
    :func:`after_end`. Raises :class:`RunNotFound`."""
    if epoch is not None:  # decided on a read: not worth fencing the workers' gate for a run moved on
        current = tracker.run_record(run_id)
        if current.epoch != epoch or current.status.finished:
            status = current.status.value
            return HaltOutcome(status, status, None, current.epoch, (), ())
    tracker.fence_gate(run_id)  # no worker starts a body of it on its own from here (worker/gate.py)
    try:
        out = tracker.halt(run_id, op, error, epoch)
    except RunNotFound:
        tracker.drop_gate_entries([run_id])
        raise
    if not out.changed:  # nothing to halt: the gate says what the run is
        now = RunStatus(out.after)
        open_ = now in (RunStatus.RUNNING, RunStatus.QUEUED)
        tracker.set_gate(run_id, RunStatus.RUNNING if open_ else now, out.epoch)
    if out.changed:
        record = tracker.run_record(run_id)
        plan = waits_of(tracker).plans.get(record.plan)
        tracker.set_gate(run_id, RunStatus(out.after), out.epoch)
        dispatch.revoke(run_id, out.queued)
        revoke_canvas(tracker, dispatch, plan, run_id)
        if terminate and out.running:
            dispatch.revoke(run_id, out.running, terminate=True)
        if out.finish is not None:
            run_ended(tracker, dispatch, run_id, out.finish, plan.name, plan.digest)
            # the children are cancelled there
            after_end(tracker, dispatch, run_id, out.finish, plan, settle_parent)
        else:
            for child in children(record):
                with contextlib.suppress(RunNotFound, ControlError):  # gone, or halted already
                    halt_run(tracker, dispatch, child, op, error=error)
    return out


def replan_run(tracker: Tracker, dispatch: Dispatcher, run_id: str, op: str) -> ReplanOutcome:
    """Resume (a PAUSED run) or retry (a FAILED or CANCELLED one) under a new epoch, publish what is queued
    again, and resume the paused children of its waiting sub-workflow nodes (a retry reaches a child when
    its node is armed again). Raises :class:`RunNotFound`; a refusal is ``replanned=False``."""
    record = tracker.run_record(run_id)
    plan = waits_of(tracker).plans.get(record.plan)
    out = tracker.replan(run_id, op, plan.parents, plan.rule_spec, plan.executor)
    if not out.replanned:
        return out
    tracker.refresh_plan(plan.digest)
    if op == "retry":  # it is no longer a run that ended so
        tracker.unindex_ended(run_id, [out.before])
    tracker.set_gate(run_id, RunStatus.RUNNING, out.epoch)
    if out.finish is not None:  # every node finished meanwhile: the run ends here
        ended(tracker, dispatch, plan, run_id, out.finish)
    queued = [(i, out.epoch) for i in out.queued]
    for finish in publish_released(tracker, dispatch, plan, run_id, queued, record.params):
        ended(tracker, dispatch, plan, run_id, finish)
    if out.instances:
        publish_instances(tracker, dispatch, plan, run_id, out.instances, out.epoch, record.params)
    if op == "resume":
        for child in children(record):
            with contextlib.suppress(RunNotFound, ControlError):  # gone, or not paused
                replan_run(tracker, dispatch, child, "resume")
    return out
