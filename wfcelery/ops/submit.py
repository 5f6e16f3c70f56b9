"""Starting a run from a compiled plan: what ``engine.submit`` and the scheduler loop both do once a
definition is validated and compiled (the loop runs inside the workers, which do not import the client).

The run is created in the tracker (with its run key, if any: :mod:`.runkeys`), then its roots are
published. A publish that fails deletes the run again (and its key, and the plan if this submit created
it and no other run uses it), so a failed submit leaves no trace. A run of a workflow with
``max_active_runs`` is created QUEUED and asks for its turn (:mod:`.admission`); one with a deadline has it
indexed (:mod:`.deadlines`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wfcelery import tracing
from wfcelery.definition.runlimits import RunLimits
from wfcelery.errors import WfCeleryError
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.messaging.release import publish_released
from wfcelery.ops.admission import admissions_of, group_of, release, start_admitted
from wfcelery.ops.deadlines import index_deadline
from wfcelery.ops.runkeys import create_keyed
from wfcelery.plan.compiler import Plan
from wfcelery.tracker.outcomes import Finish
from wfcelery.tracker.records import new_run
from wfcelery.tracker.runlimits import ADMISSION_FIELD, DEADLINE_FIELD, Admission, RunLimitFields
from wfcelery.tracker.states import RunStatus
from wfcelery.tracker.store import Tracker

logger = logging.getLogger("wfcelery.submit")


@dataclass(frozen=True)
class Started:
    """``run_id`` is the new run (``created``), or the run that already held the run key."""

    run_id: str
    created: bool
    finishes: list[Finish] = field(default_factory=list)


def run_record(
    tracker: Tracker,
    plan: Plan,
    run_id: str,
    params: Mapping[str, Any],
    run_key: str | None = None,
    on_success: dict[str, Any] | None = None,
    on_failure: dict[str, Any] | None = None,
    limits: RunLimitFields | None = None,
) -> dict[str, str | int]:
    """A new run's record (``records.new_run``) for ``plan``, with the tracker's settings (TTL, event log
    size); ``limits``: its admission group and deadline (:func:`limit_fields`)."""
    settings = tracker.settings
    return new_run(
        name=plan.name,
        plan_digest=plan.digest,
        total=len(plan.nodes),
        created_ms=int(time.time() * 1000),
        params=params,
        policy=plan.on_failure,
        ttl=settings.run_ttl,
        events_maxlen=settings.events_maxlen,
        on_success=on_success,
        on_failure=on_failure,
        executor=plan.executor,
        run_key=run_key,
        limits=limits,
    )


def limit_fields(
    tracker: Tracker,
    workflow: str,
    limits: RunLimits,
    params: Mapping[str, Any],
    deadline: float | None = None,
) -> RunLimitFields | None:
    """What a new run's record holds of its workflow's limits: QUEUED with its admission group under
    ``max_active_runs``, and its deadline (``deadline`` seconds from now, Redis's clock; default: the
    workflow's). None when there is none of either."""
    group = group_of(workflow, limits, params)
    seconds = deadline if deadline is not None else limits.deadline
    if group is None and seconds is None:
        return None
    at_ms = None if seconds is None else tracker.server_ms() + int(seconds * 1000)
    return RunLimitFields(queued=group is not None, admission=group, deadline_ms=at_ms)


def start_run(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    record: Mapping[str, str | int],
    params: Mapping[str, Any],
    run_key: str | None = None,
    producer: Any = None,
    now_ms: int | None = None,
    sent: Callable[[int], None] | None = None,
) -> Started:
    """Create the run (``record``: ``records.new_run``) and publish its roots. ``finishes``: the run ended
    at once (every root skipped by its condition); the caller sends its callback (:func:`ended`).
    ``sent(n)``: told how many root messages are out, as they go."""
    labels, new_labels = plan_labels(tracker, plan, dispatch.app)  # the metrics' label table
    record = {**record, **labels}
    queued = record.get("status") == RunStatus.QUEUED.value
    roots = () if queued else plan.roots  # a QUEUED run's roots are queued when it is admitted
    if run_key is None:
        bound = tracker.settings.unconfirmed_bound
        created_plan = tracker.create_run(run_id, record, roots, plan.digest, plan.blob, bound).plan_created
    else:
        holder, created_plan = create_keyed(tracker, run_key, run_id, record, plan, now_ms, roots)
        if holder is not None:
            return Started(holder, False)
    try:
        if DEADLINE_FIELD in record:
            index_deadline(tracker, run_id, int(record[DEADLINE_FIELD]))
        if queued:
            finishes = _enter(tracker, dispatch, plan, run_id, str(record[ADMISSION_FIELD]), producer)
        else:
            finishes = publish_released(
                tracker, dispatch, plan, run_id, [(i, 0) for i in roots], params, producer=producer, sent=sent
            )
    except Exception:
        created = int(record["created"])
        discard(tracker, run_id, plan.digest if created_plan else None, created, run_key, plan.name)
        if queued:  # it may hold a place of its group: give it back
            admit_next(tracker, dispatch, run_id, Admission.decode(str(record[ADMISSION_FIELD])))
        raise
    tracker.register_labels(new_labels)  # the run is out: its new label values join the registries
    tracker.confirm_run(run_id)  # its roots are out: the reconciler never cancels it as unconfirmed
    return Started(run_id, True, finishes)


def _enter(
    tracker: Tracker, dispatch: Dispatcher, plan: Plan, run_id: str, group: str, producer: Any
) -> list[Finish]:
    """A QUEUED run asks for its turn; admitted now, it starts (its roots published)."""
    if not admissions_of(tracker).enter(Admission.decode(group), run_id):
        return []
    return start_admitted(tracker, dispatch, run_id, plan, producer)[1]


#: The ``queue`` label of a node that is never sent to a queue: a wait, a sleep, a child workflow.
NO_QUEUE = "(none)"


def plan_labels(tracker: Tracker, plan: Plan, app: Any) -> tuple[dict[str, str], list[Any]]:
    """The run-record fields of the metrics' label table for a run of ``plan`` (the (task, queue) of each
    node; tracker/counters.py) and the label values to register once the run is out."""
    default = str(app.conf.task_default_queue or "celery")
    return tracker.plan_labels(
        plan.digest,
        plan.name,
        lambda: [
            (n.task, n.queue or default) if n.has_task else (f"({n.kind.value})", NO_QUEUE)
            for n in plan.nodes
        ],
    )


def discard(
    tracker: Tracker,
    run_id: str,
    plan_digest: str | None,
    created_ms: int,
    run_key: str | None = None,
    workflow: str | None = None,
) -> None:
    """Delete a run whose first messages could not be sent: nothing ran, so leave no trace. The plan
    goes too when this submit created it (``plan_digest``) and no run submitted since uses it (runs
    of one definition share the key; a minute of margin covers clients whose clocks differ). A failed
    cleanup is logged: the caller re-raises the publish error, which says what went wrong."""
    try:
        if plan_digest is not None and tracker.plan_in_use(plan_digest, created_ms - 60_000, run_id):
            plan_digest = None
        tracker.delete_run(run_id, plan_digest, run_key, workflow)
    except WfCeleryError as e:
        logger.warning("wfcelery: could not delete run %s after its publish failed: %s", run_id, e)


def ended(
    tracker: Tracker,
    dispatch: Dispatcher,
    run_id: str,
    finish: Finish | None,
    workflow: str | None = None,
    plan_digest: str | None = None,
) -> None:
    """A run ended (a script returned its :class:`Finish` once): it is indexed in the history (and
    ``plan_digest``, its plan, kept as long as its keys, in the same round trip), its span is emitted when
    this process traces, its key gets the run's TTL, its callback is sent."""
    if finish is None:
        return
    tracker.index_ended(run_id, finish.status, finish.created_ms, workflow, plan_digest)
    if tracing.active():  # the run's span (tracing.py)
        name = workflow or tracker.run_record(run_id).name
        tracing.run_ended(run_id, name, finish.status, finish.created_ms)
    if finish.run_key:
        try:
            tracker.keep_key(finish.run_key, run_id)
        except WfCeleryError as e:  # the reconciler sets it when it drops the ended run from its list
            logger.warning("wfcelery: could not keep the run key of run %s: %s", run_id, e)
    dispatch.callback(run_id, finish.status, finish.callback)
    if finish.admission is not None:
        admit_next(tracker, dispatch, run_id, finish.admission)


def admit_next(tracker: Tracker, dispatch: Dispatcher, run_id: str, group: Admission) -> None:
    """Run ``run_id`` of admission group ``group`` ended: the next QUEUED runs start (:mod:`.admission`).
    An error (the tracker or the broker away) is logged, never raised into the caller's end of a run: the
    reconciler starts them on a later sweep, or re-sends the roots of one started but not published."""
    try:
        finishes = release(tracker, dispatch, run_id, group)
    except Exception as e:
        logger.warning("wfcelery: run %s ended; the next queued runs start on a later sweep: %s", run_id, e)
        return
    for started, finish in finishes:
        ended(tracker, dispatch, started, finish)
