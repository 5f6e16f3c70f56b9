"""Signals: the payload a wait node waits for becomes its result (``run.signal(node, payload)``, ``wfcelery
signal``, ``POST /api/runs/{id}/nodes/{node}/signal``), and the list of nodes waiting for one.

A signal is one Lua call (signal.lua): of two signals to one node, one wins and the other is refused as
the node is no longer waiting. Refused, with nothing changed (:class:`~wfcelery.errors.SignalRefused`, 409
over HTTP): a node that is no wait node, not reached yet, or done; a run that is paused (resume it first)
or finished. A payload that is no JSON, or over ``wfcelery_max_depth`` / ``wfcelery_max_result_bytes``
(the bounds of a task's result), is bad input (a ``DefinitionError``, 422 over HTTP).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wfcelery.definition.waits import NodeKind
from wfcelery.errors import RunNotFound, SignalRefused
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.ops.subruns import publish_settled, settle_success
from wfcelery.ops.waits import SignalOutcome, SignalVerdict, encode_result, waits_of
from wfcelery.plan.compiler import PlanNode
from wfcelery.tracker.base import converted_errors
from wfcelery.tracker.records import NodeRecord, TimerEntry, WaitMark, wait_field
from wfcelery.tracker.states import NodeStatus, WaitKind
from wfcelery.tracker.store import Tracker


def send_signal(
    tracker: Tracker, dispatch: Dispatcher, run_id: str, node: str, payload: Any
) -> SignalOutcome:
    """Signal ``node`` of ``run_id`` with ``payload`` (its result); publish the children it releases.

    Raises:
        RunNotFound: no such run.
        KeyError: the run has no node of that name.
        SignalRefused: the node takes no signal now (see the module docstring); ``.reason`` says why.
        DefinitionError: the payload is no JSON, or too large or deep.
    """
    waits = waits_of(tracker)
    record = tracker.run_record(run_id)
    plan = waits.plans.get(record.plan)
    found = plan.by_name.get(node)
    if found is None:
        raise KeyError(node)
    if found.kind is not NodeKind.WAIT:
        raise SignalRefused(
            f"node {node!r} of run {run_id} is no wait node ({found.describe()}): only wait nodes "
            "(wf.wait, `wait: signal`) take signals",
            SignalVerdict.NOT_A_WAIT.value,
        )
    encoded = encode_result(payload, tracker.settings.limits, f"the signal to node {node!r}")
    out = waits.signal(run_id, plan, found.index, encoded)
    if out.verdict is SignalVerdict.GONE:
        raise RunNotFound(run_id)
    if out.verdict is not SignalVerdict.OK:
        raise SignalRefused(_refusal(run_id, found, out), out.verdict.value)
    entry = TimerEntry(run_id, found.index, out.epoch)
    waits.drop_timer(entry)
    waits.drop_signal_waits([entry])
    assert out.success is not None
    publish_settled(tracker, dispatch, settle_success(plan, run_id, found.index, out.epoch, out.success))
    return out


def _refusal(run_id: str, node: PlanNode, out: SignalOutcome) -> str:
    where = f"node {node.name!r} of run {run_id}"
    if out.verdict is SignalVerdict.FINISHED:
        return f"run {run_id} is {out.detail}: it takes no signal"
    if out.verdict is SignalVerdict.PAUSED:
        return f"run {run_id} is PAUSED: resume it, then signal {node.name!r}"
    status = out.status
    if status in (NodeStatus.PENDING, NodeStatus.QUEUED):
        return f"{where} is {status.value}: it was not reached yet (it takes a signal once WAITING)"
    if status is NodeStatus.SUCCEEDED:
        return f"{where} is SUCCEEDED: it was signalled already"
    return f"{where} is {status.value if status else out.detail}: it waits for no signal"


@dataclass(frozen=True)
class SignalWait:
    """A node waiting for a signal now ("Waiting for you")."""

    run_id: str
    workflow: str
    node: str
    since: float  # when it started waiting (Unix time)
    until: float | None  # its timeout's deadline, if any

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "workflow": self.workflow,
            "node": self.node,
            "since": self.since,
            "until": self.until,
        }


def signal_waits(tracker: Tracker, limit: int = 50) -> list[SignalWait]:
    """Nodes waiting for a signal, longest waiting first. Entries of nodes that were signalled, timed out,
    revoked or deleted since are dropped from the index as they are met."""
    waits = waits_of(tracker)
    found: list[SignalWait] = []
    stale: list[TimerEntry] = []
    entries = waits.signal_waits(limit * 2 + 20)
    with converted_errors("read the nodes waiting for a signal"):
        pipe = tracker.client.pipeline(transaction=False)
        for entry, _ in entries:
            pipe.hmget(tracker.keys.run(entry.run_id), "name", "plan", wait_field(entry.index))
            pipe.hget(tracker.keys.nodes(entry.run_id), entry.index)
        replies = pipe.execute()
    for i, (entry, at_ms) in enumerate(entries):
        (name, digest, mark), raw = replies[2 * i], replies[2 * i + 1]
        if not name or NodeRecord.decode(raw).status is not NodeStatus.WAITING or not mark:
            stale.append(entry)
            continue
        wait = WaitMark.decode(mark)
        if wait.kind is not WaitKind.SIGNAL or len(found) >= limit:
            continue
        node = waits.plans.get(digest).nodes[entry.index].name
        until = None if wait.at_ms is None else wait.at_ms / 1000
        found.append(SignalWait(entry.run_id, name, node, at_ms / 1000, until))
    waits.drop_signal_waits(stale)
    return found
