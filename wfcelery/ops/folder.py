"""Definitions own their schedules: a YAML/JSON file in the ``wfcelery_definitions`` folder with a
top-level ``schedule:`` is scheduled from that file.

The elected scheduler loop scans the folder every ``wfcelery_schedule_scan`` seconds (30): a new file is
scheduled, an edited one changes its schedule (the timing, params, definition; its paused state is kept),
a file deleted -- or whose ``schedule:`` was removed -- removes its schedule, all at the next scan. The
schedule is named after the workflow (``name:``) and its source is ``file:<file name>``. A schedule made
through the API is never touched by the scan (a file naming the same schedule is logged and left out);
a file that does not load (invalid YAML, unknown key, bad cron...) is logged and its schedule, if it had
one, is kept as it was until the file is fixed or deleted.

Task names are not checked against the app here: the loop may run in a worker that does not register
every task of the fleet (the definitions page and ``wfcelery validate`` check them).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from wfcelery.definition.loader import load
from wfcelery.definition.params import SLOT_PARAMS_SAMPLE
from wfcelery.errors import WfCeleryError
from wfcelery.ops.store import FILE_PREFIX, ScheduleRecord, ScheduleStore
from wfcelery.settings import Settings

logger = logging.getLogger("wfcelery.scheduler")

#: Definition file suffixes (as ``engine.definitions()``).
SUFFIXES = (".yaml", ".yml", ".json")


def scan_folder(store: ScheduleStore, settings: Settings, now_ms: int) -> list[str]:
    """Bring the file-owned schedules in line with the folder. Returns what changed, one line each."""
    folder = settings.definitions
    if not folder:
        return []
    stored = store.all()
    seen: set[str] = set()
    broken: set[str] = set()
    changes: list[str] = []
    for path in sorted(Path(folder).glob("*")):
        if path.suffix.lower() not in SUFFIXES:
            continue
        source = FILE_PREFIX + path.name
        try:
            record = _record(path, settings, source)
        except WfCeleryError as e:
            broken.add(source)
            logger.warning("wfcelery scheduler: definition %s not scheduled: %s", path, e)
            continue
        if record is None:
            continue
        existing = stored.get(record.name)
        if existing is not None and not existing.source.startswith(FILE_PREFIX):
            logger.warning(
                "wfcelery scheduler: %s schedules %r, a schedule made through the API: left alone",
                path,
                record.name,
            )
            continue
        if record.name in seen:
            logger.warning("wfcelery scheduler: %s schedules %r again: left out", path, record.name)
            continue
        seen.add(record.name)
        if existing is not None and existing.same_definition(record):
            continue
        paused = existing.paused if existing is not None else False
        record = replace(record, paused=paused)
        same_timing = existing is not None and existing.timing == record.timing
        store.put(record, record.timing.next_after(now_ms), keep_next=same_timing)
        changes.append(f"{'changed' if existing else 'added'} {record.name} ({source})")
    for name, record in stored.items():
        if record.source.startswith(FILE_PREFIX) and name not in seen and record.source not in broken:
            store.delete(name)
            changes.append(f"removed {name} ({record.source})")
    for line in changes:
        logger.info("wfcelery scheduler: %s", line)
    return changes


def _record(path: Path, settings: Settings, source: str) -> ScheduleRecord | None:
    """The schedule a definition file asks for, checked as ``engine.schedule`` checks one (but for task
    names), or None for a file without ``schedule:``."""
    limits = settings.limits
    wf = load(path, limits.max_plan_bytes)
    if wf.schedule is None:
        return None
    wf.validate(None, limits)
    spec = wf.schedule
    wf.resolve_params({**spec.params, **SLOT_PARAMS_SAMPLE}, limits)
    definition = wf.to_dict()
    definition.pop("schedule", None)
    return ScheduleRecord(
        name=wf.name,
        workflow=definition,
        timing=spec.timing,
        params=dict(spec.params),
        catchup=spec.catchup,
        max_active_runs=spec.max_active_runs,
        source=source,
    )
