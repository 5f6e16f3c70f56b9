"""Active-run limits: at most ``max_active_runs`` runs of a workflow RUNNING at once, per value of its
``concurrency_key`` (definition/runlimits.py); the others wait QUEUED and start in submit order.

A workflow's runs with one key value form an *admission group* (its id: a digest of the workflow's name and
the value). The group's two sorted sets (keys.admission_active / admission_queue: one hash tag, so one
script decides) hold the runs admitted and the runs waiting, in submit order. A run of such a workflow is
created QUEUED -- no node record, no message --, then asks for its turn (enter.lua); admitted at once, it is
started (admit_run.lua: RUNNING, its roots queued) and its roots are published, as any run's. When a run of
the group ends, however it ends (its last node, a failure, cancel, cleanup, its deadline, the reconciler),
the script that ended it returns its group (``Finish.admission``) and :func:`wfcelery.ops.submit.ended`
lets it leave (leave.lua): the runs first in the queue take the free places and are started.

Each of these steps is atomic, but they are separate scripts (a run's keys and its group's keys cannot
share a Redis Cluster slot), so a process dying between two of them leaves a gap the reconciler repairs
(:func:`repair_queued`, on its sweep of every live run, which QUEUED runs are): a QUEUED run in no group set
enters again; one admitted but never started is started; a group with room and a queue -- its active set
holding runs that ended or no longer exist -- lets them leave. So a QUEUED run waits at most a sweep
interval (``wfcelery_sweep_interval``) past a crash, never forever.

A run that is retried or resumed later runs at once, outside the limit: the limit holds for the runs
admitted from the queue, not for re-plans of runs that already had their turn.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from enum import Enum
from importlib import resources
from typing import TYPE_CHECKING, Any

from wfcelery.errors import RunNotFound
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.messaging.release import publish_released
from wfcelery.ops.waits import waits_of
from wfcelery.tracker.base import common_source, converted_errors
from wfcelery.tracker.records import RunRecord
from wfcelery.tracker.runlimits import Admission
from wfcelery.tracker.states import RunStatus

if TYPE_CHECKING:
    from wfcelery.definition.runlimits import RunLimits
    from wfcelery.plan.compiler import Plan
    from wfcelery.tracker.outcomes import Finish
    from wfcelery.tracker.store import Tracker

logger = logging.getLogger("wfcelery.admission")


def _sources() -> dict[str, str]:
    lua = resources.files("wfcelery.ops") / "lua"
    common = common_source()
    return {
        "enter": (lua / "enter.lua").read_text(),
        "leave": (lua / "leave.lua").read_text(),
        "admit_run": common + "\n" + (lua / "admit_run.lua").read_text(),  # a per-run script
    }


_SOURCES = _sources()


class AdmitVerdict(str, Enum):
    """admit_run.lua's answer."""

    ADMITTED = "admitted"  #: now RUNNING: publish its roots
    NOT_QUEUED = "not_queued"  #: cancelled, failed, or started by another caller already
    GONE = "gone"  #: no such run


def group_of(workflow: str, limits: RunLimits, params: Mapping[str, Any]) -> Admission | None:
    """The admission group of a run of ``workflow`` with ``params`` (None: the workflow has no limit)."""
    if limits.max_active_runs is None:
        return None
    value = limits.key_value(params)
    digest = hashlib.sha1(f"{workflow}\0{value}".encode()).hexdigest()[:20]
    return Admission(digest, limits.max_active_runs)


def admissions_of(tracker: Tracker) -> Admissions:
    """The :class:`Admissions` of this tracker (made once: its scripts are registered on its client)."""
    found: Admissions | None = getattr(tracker, "_wfcelery_admissions", None)
    if found is None:
        found = Admissions(tracker)
        tracker._wfcelery_admissions = found  # type: ignore[attr-defined]
    return found


class Admissions:
    """The admission scripts on one tracker's Redis client."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.keys = tracker.keys
        self.scripts = {name: tracker.client.register_script(src) for name, src in _SOURCES.items()}

    def _group_keys(self, group: Admission) -> list[str]:
        return [self.keys.admission_active(group.group), self.keys.admission_queue(group.group)]

    def enter(self, group: Admission, run_id: str) -> bool:
        """Ask for run ``run_id``'s turn: True when admitted now (the caller starts it)."""
        with converted_errors(f"admit run {run_id}"):
            reply = self.scripts["enter"](keys=self._group_keys(group), args=[run_id, group.limit])
        return str(reply) == "admitted"

    def leave(self, group: Admission, run_id: str = "") -> list[str]:
        """Run ``run_id`` no longer counts ('': none, only look for room); returns the runs admitted now."""
        with converted_errors(f"release the admission of run {run_id or '-'}"):
            reply = self.scripts["leave"](keys=self._group_keys(group), args=[run_id, group.limit])
        return [str(r) for r in reply]

    def admit_run(self, run_id: str, roots: Sequence[int]) -> AdmitVerdict:
        """Start a QUEUED run whose turn came (admit_run.lua)."""
        with converted_errors(f"start run {run_id}"):
            keys = self.tracker.script_keys(run_id)
            reply = self.scripts["admit_run"](keys=keys, args=list(roots))
        return AdmitVerdict(str(reply[0]))

    def members(self, group: Admission) -> tuple[list[str], list[str]]:
        """(the group's admitted runs, its queued runs in order)."""
        active_key, queue_key = self._group_keys(group)
        with converted_errors("read an admission group"):
            active = self.tracker.client.zrange(active_key, 0, -1)
            queue = self.tracker.client.zrange(queue_key, 0, -1)
        return [str(r) for r in active], [str(r) for r in queue]


def start_admitted(
    tracker: Tracker, dispatch: Dispatcher, run_id: str, plan: Plan | None = None, producer: Any = None
) -> tuple[AdmitVerdict, list[Finish]]:
    """Start a QUEUED run whose turn came: RUNNING, roots queued, then published with the run's params.
    Returns the verdict and the ends of runs this caused (every root skipped by its condition)."""
    record = tracker.run_record(run_id)
    plan = plan or waits_of(tracker).plans.get(record.plan)
    verdict = admissions_of(tracker).admit_run(run_id, plan.roots)
    if verdict is not AdmitVerdict.ADMITTED:
        return verdict, []
    roots = [(i, record.epoch) for i in plan.roots]
    finishes = publish_released(tracker, dispatch, plan, run_id, roots, record.params, producer=producer)
    return verdict, finishes


#: (run id, its end) of the runs that ended as they started (every root skipped by its condition).
Ends = list[tuple[str, "Finish"]]


def release(tracker: Tracker, dispatch: Dispatcher, run_id: str, group: Admission) -> Ends:
    """Run ``run_id`` of ``group`` ended (or '' to only look for room): start the runs whose turn came.
    Returns the ends that starting them caused (the caller handles them as any run's end)."""
    admissions, finishes = admissions_of(tracker), []
    pending = admissions.leave(group, run_id)
    while pending:
        nxt = pending.pop(0)
        try:
            verdict, ends = start_admitted(tracker, dispatch, nxt)
        except RunNotFound:
            verdict, ends = AdmitVerdict.GONE, []
        finishes += [(nxt, f) for f in ends]
        if verdict is not AdmitVerdict.ADMITTED:  # it left the queue meanwhile: its place goes on
            pending += admissions.leave(group, nxt)
    return finishes


def repair_queued(tracker: Tracker, dispatch: Dispatcher, run_id: str, record: RunRecord) -> Ends:
    """The reconciler's repair of a QUEUED run (see the module docstring); returns the ends it caused.
    Repairs are logged here: what the run's group held, and what was done."""
    group = record.admission
    if group is None or record.status is not RunStatus.QUEUED:
        return []
    admissions = admissions_of(tracker)
    active, queue = admissions.members(group)
    if run_id not in active and run_id not in queue:
        logger.warning("wfcelery admission: run %s was QUEUED outside its group: queued again", run_id)
        if not admissions.enter(group, run_id):
            return []
        active = [run_id]
    if run_id in active:
        logger.warning("wfcelery admission: run %s was admitted but never started: started", run_id)
        return [(run_id, f) for f in start_admitted(tracker, dispatch, run_id)[1]]
    finishes: Ends = []
    records = dict(zip(active, tracker.records(active), strict=True)) if active else {}
    for other, found in records.items():
        if found is None or found.status.finished:
            logger.warning("wfcelery admission: run %s had ended but still held its place: released", other)
            finishes += release(tracker, dispatch, other, group)
        elif found.status is RunStatus.QUEUED:
            finishes += [(other, f) for f in start_admitted(tracker, dispatch, other)[1]]
    if len(active) < group.limit:
        finishes += release(tracker, dispatch, "", group)
    return finishes
