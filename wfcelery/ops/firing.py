"""Firing one slot of a schedule: the run of that slot, with run key ``schedule:<name>:<slot>`` and the
param ``scheduled_at``; shared by the elected loop (:mod:`.scheduler`) and backfill (the client API).

A slot fires once however often it is fired: its run key decides (:mod:`.runkeys`), so two loops, a loop
that lost its lease mid-fire, a restart or a backfill over fired slots all reuse the slot's run.

``max_active_runs``: a slot is admitted (``admit.lua``) only while fewer than that many admitted slots of
the schedule are live; admitted slots whose run ended (or whose run was never created: a loop died
between admitting and creating) are dropped first. Admission and run creation are two steps, so the
count is of admitted slots, never of runs: two loops firing different slots at once cannot both pass.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wfcelery.definition.executor import Executor
from wfcelery.definition.model import Workflow
from wfcelery.definition.params import RUN_KEY_PARAM, SCHEDULED_AT_PARAM
from wfcelery.definition.schedule import iso
from wfcelery.errors import WfCeleryError
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.ops.runkeys import CLAIM_GRACE
from wfcelery.ops.store import ScheduleRecord, ScheduleStore, run_key_of
from wfcelery.ops.submit import (
    Started,
    discard,
    ended,
    limit_fields,
    plan_labels,
    run_record,
    start_run,
)
from wfcelery.plan.compiler import Plan, compile_workflow
from wfcelery.tracker.records import RunKeyClaim
from wfcelery.tracker.runkeys import KeyedRun

if TYPE_CHECKING:
    from wfcelery.tracker.store import Tracker

#: Compiled definitions a firer keeps (by the digest of the stored definition).
_CACHE_SIZE = 256

logger = logging.getLogger("wfcelery.scheduler")


@dataclass(frozen=True)
class _Prepared:
    """A slot's run, ready to create."""

    plan: Plan
    run_id: str
    run: dict[str, str | int]
    params: dict[str, Any]
    key: str
    new_labels: list[Any] = field(default_factory=list)  # metric label values to register once it is out
    #: the workflow has max_active_runs or a deadline: created one by one (start_run), not in a batch
    limited: bool = False


def _keyed(p: _Prepared, now_ms: int) -> KeyedRun:
    return (p.key, RunKeyClaim(p.run_id, now_ms), None, p.run, p.plan.roots, p.plan.digest, p.plan.blob)


class Firer:
    """Fires slots of stored schedules through one tracker and one Celery app."""

    def __init__(self, tracker: Tracker, dispatch: Dispatcher) -> None:
        self.tracker = tracker
        self.dispatch = dispatch
        self.settings = tracker.settings
        self.store = ScheduleStore(tracker)
        self._compiled: dict[str, tuple[Workflow, Plan]] = {}

    def compiled(self, record: ScheduleRecord) -> tuple[Workflow, Plan]:
        """The schedule's workflow and plan, compiled once per definition."""
        digest = hashlib.sha1(repr(sorted(record.workflow.items())).encode()).hexdigest()
        found = self._compiled.get(digest)
        if found is None:
            wf = Workflow.from_dict(record.workflow, source=f"schedule {record.name!r}")
            limits = self.settings.limits
            executor = wf.executor or self.settings.executor
            found = wf, compile_workflow(wf, self.settings.routes, limits, executor)
            if len(self._compiled) >= _CACHE_SIZE:
                self._compiled.clear()
            self._compiled[digest] = found
        return found

    def fire(
        self, record: ScheduleRecord, slot_ms: int, now_ms: int | None = None, producer: Any = None
    ) -> Started:
        """Start the slot's run (or find it: its run key decides). The caller remembers the slot
        (``store.fired``). ``now_ms``: Redis's clock, just read; ``producer``: a kombu producer to reuse."""
        return self._start(self.prepare(record, slot_ms), now_ms, producer)

    def fire_many(
        self, slots: Sequence[tuple[ScheduleRecord, int]], now_ms: int, producer: Any = None
    ) -> list[Started | None]:
        """:meth:`fire` for many slots (a tick's), in three round trips whatever their number where it can:
        every run created in one pipeline of atomic scripts, every root published in one batch. A slot
        whose definition cannot run (its params) is logged and None. Runs that need more (a Cluster's
        claim-then-create, roots with conditions or maps, the canvas executor, a key to take over) go one
        by one through :meth:`fire`'s path."""
        out: list[Started | None] = [None] * len(slots)
        batch: list[tuple[int, _Prepared]] = []
        for i, (record, slot_ms) in enumerate(slots):
            try:
                prepared = self.prepare(record, slot_ms)
            except WfCeleryError as e:
                logger.error(
                    "wfcelery scheduler: schedule %r: slot %s not fired: %s", record.name, iso(slot_ms), e
                )
                continue
            if self._batchable(prepared.plan) and not prepared.limited:
                batch.append((i, prepared))
            else:
                out[i] = self._start(prepared, now_ms, producer)
        replies = self.tracker.create_keyed_many([_keyed(p, now_ms) for _, p in batch])
        created = [
            (i, p, made_plan)
            for (i, p), (holder, made_plan) in zip(batch, replies, strict=True)
            if not holder
        ]
        held = [(i, p, h) for (i, p), (h, _) in zip(batch, replies, strict=True) if h is not None]
        try:
            self.dispatch.publish_many(
                ((p.plan, p.run_id, [(r, 0, []) for r in p.plan.roots], p.params) for _, p, _ in created),
                producer,
            )
        except Exception:
            for _, p, made_plan in created:
                discard(
                    self.tracker, p.run_id, p.plan.digest if made_plan else None, int(p.run["created"]), p.key
                )
            raise
        if created:
            self.tracker.register_labels([v for _, p, _ in created for v in p.new_labels])
        for i, p, _ in created:
            out[i] = Started(p.run_id, True)
        alive = self.tracker.runs_exist([h.run_id for _, _, h in held])
        for (i, p, h), exists in zip(held, alive, strict=True):
            out[i] = Started(h.run_id, False) if exists else self._start(p, None, producer)  # take it over
        return out

    def _batchable(self, plan: Plan) -> bool:
        if self.settings.redis_cluster or plan.executor is not Executor.COUNTERS:
            return False
        # a pooled root may wait for its pool: the one-by-one path gates it (ops/pool_flow.py)
        return not plan.pools and all(
            plan.nodes[i].when is None and plan.nodes[i].map is None for i in plan.roots
        )

    def prepare(self, record: ScheduleRecord, slot_ms: int) -> _Prepared:
        """The slot's run, ready to create: plan, id, record, params. Raises a DefinitionError for params
        the definition refuses."""
        wf, plan = self.compiled(record)
        key = run_key_of(record.name, slot_ms)
        given = {**record.params, SCHEDULED_AT_PARAM: iso(slot_ms), RUN_KEY_PARAM: key}
        params = wf.resolve_params(given, self.settings.limits)
        run_id = uuid.uuid4().hex
        labels, new_labels = plan_labels(self.tracker, plan, self.dispatch.app)  # the metrics' label table
        limits = limit_fields(self.tracker, wf.name, wf.limits, params)  # the workflow's own limits
        run = {**run_record(self.tracker, plan, run_id, params, key, limits=limits), **labels}
        return _Prepared(plan, run_id, run, params, key, new_labels, limits is not None)

    def _start(self, p: _Prepared, now_ms: int | None, producer: Any) -> Started:
        started = start_run(
            self.tracker,
            self.dispatch,
            p.plan,
            p.run_id,
            p.run,
            p.params,
            p.key,
            producer=producer,
            now_ms=now_ms,
        )
        for finish in started.finishes:
            ended(self.tracker, self.dispatch, p.run_id, finish)
        return started

    # -- max_active_runs ------------------------------------------------------------------------------

    def admit(self, record: ScheduleRecord, slot_ms: int, now_ms: int) -> bool:
        """Whether the slot may fire now under the schedule's ``max_active_runs`` (always, without one)."""
        if record.max_active_runs is None:
            return True
        claim = self.tracker.key_holder(run_key_of(record.name, slot_ms))
        if claim is not None and self.tracker.run_exists(claim.run_id):
            return True  # fired already: firing it again reuses its run, starts nothing
        self.prune(record, now_ms)
        return self.store.admit(record.name, iso(slot_ms), record.max_active_runs, now_ms)

    def prune(self, record: ScheduleRecord, now_ms: int) -> None:
        """Drop the admitted slots that no longer count: their run ended, expired or was never made."""
        admitted = self.store.admitted(record.name)
        if not admitted:
            return
        slots = sorted(admitted)
        keys = [f"schedule:{record.name}:{slot}" for slot in slots]
        claims = self.tracker.key_holders(keys)
        ids = [c.run_id if c else "" for c in claims]
        records = self.tracker.records([i for i in ids if i])
        by_id = dict(zip([i for i in ids if i], records, strict=True))
        old = now_ms - int(CLAIM_GRACE * 1000) * 2
        gone = []
        for slot, run_id in zip(slots, ids, strict=True):
            run = by_id.get(run_id) if run_id else None
            if run is None and admitted[slot] < old:
                gone.append(slot)  # admitted, but its run was never created (or is gone)
            elif run is not None and run.status.finished:
                gone.append(slot)
        self.store.drop_admitted(record.name, gone)
