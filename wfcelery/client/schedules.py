"""Schedules through the client API: create, list, pause, resume, remove and backfill them.

The elected loop inside the workers fires them (:mod:`wfcelery.ops.scheduler`); this module only writes
and reads the tracker, and fires slots itself for a backfill. Every argument is checked before anything is
stored: a bad one is a :class:`~wfcelery.errors.ScheduleError` naming the field.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from wfcelery.client.audit import audited
from wfcelery.client.base import EngineBase
from wfcelery.client.run import RunSummary
from wfcelery.definition.loader import load
from wfcelery.definition.model import Workflow
from wfcelery.definition.params import SLOT_PARAMS_SAMPLE
from wfcelery.definition.schedule import Timing, check_catchup, check_max_active, iso, parse_instant
from wfcelery.errors import DefinitionError, ScheduleError, ScheduleNotFound
from wfcelery.ops.firing import Firer
from wfcelery.ops.store import FILE_PREFIX, ScheduleInfo, ScheduleRecord, run_key_of

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")


def _named(engine: Any, name: str, *args: Any, result: Any = None, **kwargs: Any) -> str:
    return f"schedule {name}"


@dataclass(frozen=True)
class BackfillSlot:
    """One slot of a backfill: its time (ISO 8601 UTC), its run (None in a dry run) and whether the backfill
    created it (False: the slot had fired already, its run was reused)."""

    slot: str
    run_id: str | None = None
    created: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"slot": self.slot, "run_id": self.run_id, "created": self.created}


class Schedules(EngineBase):
    """The schedule methods of :class:`~wfcelery.client.engine.Engine`."""

    @cached_property
    def firer(self) -> Firer:
        return Firer(self.tracker, self.dispatch)

    def definitions(self) -> dict[str, Workflow]:  # pragma: no cover - Engine's
        raise NotImplementedError

    @audited("schedule", lambda self, name, *a, result=None, **k: f"schedule {name}")
    def schedule(
        self,
        name: str,
        workflow: Workflow | str | Path | Mapping[str, Any],
        *,
        cron: str | None = None,
        every: int | str | None = None,
        timezone: str | None = None,
        params: Mapping[str, Any] | None = None,
        catchup: bool = False,
        max_active_runs: int | None = None,
    ) -> ScheduleInfo:
        """Fire ``workflow`` on a schedule, one run per slot, from the next slot on (or replace the schedule
        of that name, keeping its paused state).

        Args:
            name: the schedule's name (letters, digits, ``_ . -``).
            workflow: a Workflow, the name of a known definition (``engine.definitions()``), a definition
                file or dict.
            cron: a cron expression (5 fields, or 6 with seconds last) in ``timezone``; or
            every: seconds (``5``) or a duration (``"15m"``): slots on a fixed grid, epoch-aligned.
            timezone: an IANA zone for ``cron`` (default UTC).
            params: the runs' params; each run also gets ``scheduled_at`` (its slot, ISO 8601 UTC).
            catchup: after downtime, fire every missed slot (the latest ``wfcelery_schedule_catchup``);
                False: only the latest missed one.
            max_active_runs: a due slot waits while that many runs of the schedule are live.

        Raises:
            ScheduleError: a bad argument, naming the field (nothing stored).
        """
        check_name(name)
        timing = Timing.parse(cron, every, timezone)
        wf = self._scheduled_workflow(workflow)
        record = ScheduleRecord(
            name=name,
            workflow=wf.to_dict(),
            timing=timing,
            params=self._schedule_params(wf, params),
            catchup=check_catchup(catchup),
            max_active_runs=check_max_active(max_active_runs),
        )
        existing = self.firer.store.get(name)
        _refuse_file_owned(existing)
        if existing is not None:
            record = replace(record, paused=existing.paused)
        same_timing = existing is not None and existing.timing == timing
        self.firer.store.put(record, timing.next_after(self.tracker.server_ms()), keep_next=same_timing)
        return self.schedule_info(name)

    def _scheduled_workflow(self, workflow: Workflow | str | Path | Mapping[str, Any]) -> Workflow:
        try:
            if isinstance(workflow, str) and not Path(workflow).suffix:
                known = self.definitions()
                if workflow not in known:
                    raise ScheduleError(
                        "workflow",
                        f"unknown workflow {workflow!r} (known: {', '.join(sorted(known)) or 'none'})",
                    )
                wf = known[workflow]
            elif isinstance(workflow, Workflow):
                wf = workflow
            elif isinstance(workflow, str | Path):
                if not Path(workflow).exists():
                    raise ScheduleError("workflow", f"unknown workflow: no definition file {str(workflow)!r}")
                wf = load(workflow, self.settings.limits.max_plan_bytes)
            else:
                wf = Workflow.from_dict(workflow)
            return wf.validate(self.app if self.settings.check_tasks else None, self.settings.limits)
        except ScheduleError:
            raise
        except DefinitionError as e:
            raise ScheduleError("workflow", str(e)) from None

    def _schedule_params(self, wf: Workflow, params: Mapping[str, Any] | None) -> dict[str, Any]:
        if params is not None and not isinstance(params, Mapping):
            raise ScheduleError("params", f"must be a mapping, not {type(params).__name__}")
        given = dict(params or {})
        try:
            wf.resolve_params({**given, **SLOT_PARAMS_SAMPLE}, self.settings.limits)
        except DefinitionError as e:
            raise ScheduleError("params", str(e)) from None
        return given

    def schedules(self) -> list[ScheduleInfo]:
        """Every schedule, by name: :class:`ScheduleInfo` (name, workflow, next_at, last_at, paused...)."""
        return self.firer.store.infos()

    def schedule_info(self, name: str) -> ScheduleInfo:
        """One schedule. Raises :class:`ScheduleNotFound`."""
        info = self.firer.store.info(name)
        if info is None:
            raise ScheduleNotFound(name)
        return info

    def _stored(self, name: str) -> ScheduleRecord:
        record = self.firer.store.get(name)
        if record is None:
            raise ScheduleNotFound(name)
        return record

    @audited("schedule.pause", _named)
    def pause_schedule(self, name: str) -> ScheduleInfo:
        """Stop firing (runs already started go on). Idempotent."""
        record = self._stored(name)
        self.firer.store.put(replace(record, paused=True), None)
        return self.schedule_info(name)

    @audited("schedule.resume", _named)
    def resume_schedule(self, name: str) -> ScheduleInfo:
        """Fire again from the next slot after now (slots missed while paused are not fired: backfill
        fires them). Idempotent."""
        record = self._stored(name)
        if record.paused:
            resumed = replace(record, paused=False)
            self.firer.store.put(resumed, record.timing.next_after(self.tracker.server_ms()))
        return self.schedule_info(name)

    @audited("schedule.remove", _named)
    def unschedule(self, name: str) -> None:
        """Remove a schedule (its runs are kept). Raises :class:`ScheduleNotFound`, and
        :class:`ScheduleError` for a schedule a definition file owns: the file's next scan would put it
        back, so deleting the file (or its ``schedule:``) is what removes it."""
        _refuse_file_owned(self._stored(name))
        if not self.firer.store.delete(name):
            raise ScheduleNotFound(name)

    def schedule_runs(self, name: str, limit: int = 20) -> list[tuple[str, RunSummary | None]]:
        """The latest fired slots, newest first, each with its run (None once cleaned up or expired)."""
        self._stored(name)
        slots = self.firer.store.recent(name, limit)
        claims = self.tracker.key_holders([run_key_of(name, s) for s in slots])
        ids = [c.run_id for c in claims if c]
        records = dict(zip(ids, self.tracker.records(ids), strict=True))
        out: list[tuple[str, RunSummary | None]] = []
        for slot, claim in zip(slots, claims, strict=True):
            record = records.get(claim.run_id) if claim else None
            out.append((iso(slot), RunSummary.of(claim.run_id, record) if claim and record else None))
        return out

    @audited("schedule.backfill", _named)
    def backfill(
        self,
        name: str,
        start: str | datetime | float,
        end: str | datetime | float,
        *,
        dry_run: bool = False,
        progress: Callable[[BackfillSlot], None] | None = None,
    ) -> list[BackfillSlot]:
        """Fire every slot of ``[start, end]`` once: a slot that fired already keeps its run (its run key
        decides), and ``max_active_runs`` holds (a slot waits for a live run of the schedule to end).
        ``dry_run``: list the slots, fire nothing. ``progress`` is called after each slot."""
        record = self._stored(name)
        start_ms, end_ms = parse_instant(start, "start"), parse_instant(end, "end")
        if end_ms < start_ms:
            raise ScheduleError("end", f"{iso(end_ms)} is before start {iso(start_ms)}")
        slots = record.timing.slots(start_ms, end_ms, self.settings.backfill_max + 1)
        if len(slots) > self.settings.backfill_max:
            raise ScheduleError(
                "start",
                f"the range holds more than {self.settings.backfill_max} slots (wfcelery_backfill_max)",
            )
        done: list[BackfillSlot] = []
        for slot in slots:
            item = BackfillSlot(iso(slot)) if dry_run else self._backfill_slot(record, slot)
            done.append(item)
            if progress is not None:
                progress(item)
        return done

    def _backfill_slot(self, record: ScheduleRecord, slot: int) -> BackfillSlot:
        while not self.firer.admit(record, slot, self.tracker.server_ms()):
            time.sleep(0.2)  # max_active_runs: wait for a live run of the schedule to end
        started = self.firer.fire(record, slot)
        self.firer.store.fired(record.name, slot)
        return BackfillSlot(iso(slot), started.run_id, started.created)


def check_name(name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ScheduleError(
            "name", f"{name!r}: use 1-200 letters, digits, '_', '.' or '-' (not starting with '.' or '-')"
        )
    return name


def _refuse_file_owned(record: ScheduleRecord | None) -> None:
    """A schedule from a definition file changes with its file only: the folder's scan rewrites it."""
    if record is not None and record.source.startswith(FILE_PREFIX):
        raise ScheduleError(
            "name",
            f"schedule {record.name!r} comes from the definition file {record.source[len(FILE_PREFIX) :]} "
            "in wfcelery_definitions: edit or delete that file",
        )
