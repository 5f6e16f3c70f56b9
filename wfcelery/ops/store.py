"""Schedules in the tracker: their definitions, next and last fire times, recent and admitted slots.

Keys (``tracker/keys.py``): ``schedules`` (HASH name -> :class:`ScheduleRecord` JSON), ``schedules:next``
(ZSET name -> the next slot not yet handled, ms; a paused schedule is not in it), ``schedules:last``
(HASH name -> last fired slot, ms), ``schedule:<name>:runs`` (ZSET slot ISO -> slot ms: the latest
:data:`KEEP_RECENT` slots fired; each slot's run is found through its run key) and
``schedule:<name>:active`` (ZSET slot ISO -> admitted at: the slots counted against ``max_active_runs``).
Everything survives restarts: the loop that fires them keeps no state of its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from wfcelery.definition.schedule import Timing, iso
from wfcelery.tracker.base import converted_errors
from wfcelery.tracker.store import Tracker

#: Slots of a schedule remembered for its listing of recent runs (the loop trims every
#: :data:`TRIM_EVERY` ticks, so a few more may be kept meanwhile).
KEEP_RECENT = 50
TRIM_EVERY = 10
#: ``source`` of a schedule made through the API (others: ``file:<name>`` in the definitions folder).
API = "api"
FILE_PREFIX = "file:"

_ADMIT = (resources.files("wfcelery.ops") / "lua" / "admit.lua").read_text()


def run_key_of(name: str, slot_ms: int) -> str:
    """The run key of a schedule's slot: ``schedule:<name>:<slot ISO 8601 UTC>``."""
    return f"schedule:{name}:{iso(slot_ms)}"


@dataclass(frozen=True)
class ScheduleRecord:
    """A stored schedule: the workflow's definition (its dict schema), when it fires, the params of its
    runs, ``catchup``, ``max_active_runs``, whether it is paused, and where it comes from (``api`` or
    ``file:<file name>``)."""

    name: str
    workflow: dict[str, Any]
    timing: Timing
    params: dict[str, Any] = field(default_factory=dict)
    catchup: bool = False
    max_active_runs: int | None = None
    paused: bool = False
    source: str = API

    @property
    def workflow_name(self) -> str:
        return str(self.workflow.get("name", ""))

    def encode(self) -> str:
        return json.dumps(
            {
                "name": self.name,
                "workflow": self.workflow,
                "timing": self.timing.to_dict(),
                "params": self.params,
                "catchup": self.catchup,
                "max_active_runs": self.max_active_runs,
                "paused": self.paused,
                "source": self.source,
            },
            sort_keys=True,
        )

    @classmethod
    def decode(cls, raw: str) -> ScheduleRecord:
        d = json.loads(raw)
        t = d["timing"]
        return cls(
            name=d["name"],
            workflow=d["workflow"],
            timing=Timing(cron=t.get("cron"), every=t.get("every"), timezone=t.get("timezone", "UTC")),
            params=d.get("params") or {},
            catchup=bool(d.get("catchup")),
            max_active_runs=d.get("max_active_runs"),
            paused=bool(d.get("paused")),
            source=d.get("source") or API,
        )

    def same_definition(self, other: ScheduleRecord) -> bool:
        """Equal but for the paused flag (a scan does not un-pause a schedule)."""
        return replace(self, paused=other.paused) == other


def _when(ms: float | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(float(ms) / 1000, UTC)


@dataclass(frozen=True)
class ScheduleInfo:
    """One schedule as ``engine.schedules()`` lists it: next and last fire times are UTC datetimes
    (``next_at`` None while paused, ``last_at`` None before the first fire)."""

    name: str
    workflow: str
    next_at: datetime | None
    last_at: datetime | None
    paused: bool
    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"
    params: dict[str, Any] = field(default_factory=dict)
    catchup: bool = False
    max_active_runs: int | None = None
    source: str = API

    @classmethod
    def of(cls, record: ScheduleRecord, next_ms: float | None, last_ms: float | None) -> ScheduleInfo:
        """The info of a stored schedule, its next and last slots (ms)."""
        return cls(
            record.name,
            record.workflow_name,
            None if record.paused else _when(next_ms),
            _when(last_ms),
            record.paused,
            record.timing.cron,
            record.timing.every,
            record.timing.timezone,
            dict(record.params),
            record.catchup,
            record.max_active_runs,
            record.source,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``GET /api/schedules`` and ``wfcelery schedules --json`` (times ISO 8601)."""
        return {
            "name": self.name,
            "workflow": self.workflow,
            "next_at": self.next_at.isoformat() if self.next_at else None,
            "last_at": self.last_at.isoformat() if self.last_at else None,
            "paused": self.paused,
            "cron": self.cron,
            "every": self.every,
            "timezone": self.timezone,
            "params": self.params,
            "catchup": self.catchup,
            "max_active_runs": self.max_active_runs,
            "source": self.source,
        }


class ScheduleStore:
    """Reads and writes of the schedule keys (one round trip each where it can)."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.keys = tracker.keys
        self.client = tracker.client
        self._admit = self.client.register_script(_ADMIT)

    # -- definitions ----------------------------------------------------------------------------------

    def put(self, record: ScheduleRecord, next_ms: int | None, keep_next: bool = False) -> None:
        """Store a schedule; ``next_ms`` is its next slot (ignored while paused). ``keep_next``: a schedule
        already waiting keeps its next slot (its timing did not change)."""
        k = self.keys
        with converted_errors("store a schedule"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(k.schedules, record.name, record.encode())
            if record.paused or next_ms is None:
                pipe.zrem(k.schedules_next, record.name)
            else:
                pipe.zadd(k.schedules_next, {record.name: next_ms}, nx=keep_next)
            pipe.execute()

    def get(self, name: str) -> ScheduleRecord | None:
        with converted_errors("read a schedule"):
            raw = self.client.hget(self.keys.schedules, name)
        return ScheduleRecord.decode(raw) if raw else None

    def all(self) -> dict[str, ScheduleRecord]:
        with converted_errors("list schedules"):
            raw = self.client.hgetall(self.keys.schedules)
        return {name: ScheduleRecord.decode(v) for name, v in raw.items()}

    def infos(self) -> list[ScheduleInfo]:
        k = self.keys
        with converted_errors("list schedules"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(k.schedules)
            pipe.zrange(k.schedules_next, 0, -1, withscores=True)
            pipe.hgetall(k.schedules_last)
            raw, nexts, lasts = pipe.execute()
        next_of = dict(nexts)
        return [
            ScheduleInfo.of(ScheduleRecord.decode(raw[name]), next_of.get(name), _ms(lasts.get(name)))
            for name in sorted(raw)
        ]

    def info(self, name: str) -> ScheduleInfo | None:
        """One schedule (one round trip)."""
        k = self.keys
        with converted_errors("read a schedule"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(k.schedules, name)
            pipe.zscore(k.schedules_next, name)
            pipe.hget(k.schedules_last, name)
            raw, next_ms, last = pipe.execute()
        return None if raw is None else ScheduleInfo.of(ScheduleRecord.decode(raw), next_ms, _ms(last))

    def delete(self, name: str) -> bool:
        k = self.keys
        with converted_errors("delete a schedule"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hdel(k.schedules, name)
            pipe.zrem(k.schedules_next, name)
            pipe.hdel(k.schedules_last, name)
            pipe.delete(k.schedule_runs(name))
            pipe.delete(k.schedule_active(name))
            return bool(pipe.execute()[0])

    # -- the loop's view ------------------------------------------------------------------------------

    def due(self, now_ms: int, limit: int = 1000) -> list[tuple[str, int]]:
        """Schedules whose next slot is at or before ``now_ms``, earliest first."""
        with converted_errors("read due schedules"):
            found = self.client.zrangebyscore(
                self.keys.schedules_next, "-inf", now_ms, start=0, num=limit, withscores=True
            )
        return [(name, int(score)) for name, score in found]

    def earliest(self) -> int | None:
        with converted_errors("read the next schedule"):
            found = self.client.zrange(self.keys.schedules_next, 0, 0, withscores=True)
        return int(found[0][1]) if found else None

    def raws(self, names: list[str]) -> list[str | None]:
        """Stored definitions of these schedules (JSON; None for one deleted meanwhile)."""
        if not names:
            return []
        with converted_errors("read schedules"):
            return list(self.client.hmget(self.keys.schedules, names))

    def forget_next(self, name: str) -> None:
        with converted_errors("drop a schedule's next slot"):
            self.client.zrem(self.keys.schedules_next, name)

    def fired(self, name: str, slot_ms: int) -> None:
        """Remember a fired slot (last fire time, recent slots)."""
        self.settle([(name, None, [slot_ms])], trim=True)

    def settle(self, updates: Sequence[tuple[str, int | None, list[int]]], trim: bool = True) -> None:
        """After a loop's tick, in one round trip: per schedule, its next slot (None: unchanged) and the
        slots it fired (last fire time, recent slots, trimmed to :data:`KEEP_RECENT` when ``trim``). Next
        slots only move forward, and only for a schedule still waiting (``ZADD GT XX``): two loops agree,
        and a schedule paused or deleted meanwhile is not put back."""
        k = self.keys
        nexts = {name: at for name, at, _ in updates if at is not None}
        lasts = {name: max(slots) for name, _, slots in updates if slots}
        if not nexts and not lasts:
            return
        with converted_errors("record fired slots"):
            pipe = self.client.pipeline(transaction=False)
            if nexts:
                pipe.zadd(k.schedules_next, nexts, xx=True, gt=True)
            if lasts:
                pipe.hset(k.schedules_last, mapping=lasts)
            for name, _, slots in updates:
                if slots:
                    pipe.zadd(k.schedule_runs(name), {iso(s): s for s in slots})
                    if trim:
                        pipe.zremrangebyrank(k.schedule_runs(name), 0, -KEEP_RECENT - 1)
            pipe.execute()

    def recent(self, name: str, limit: int) -> list[int]:
        """The latest fired slots (ms), newest first."""
        with converted_errors("read a schedule's recent slots"):
            found = self.client.zrevrange(self.keys.schedule_runs(name), 0, limit - 1, withscores=True)
        return [int(score) for _, score in found]

    # -- max_active_runs ------------------------------------------------------------------------------

    def admitted(self, name: str) -> dict[str, int]:
        """Slots counted against max_active_runs: slot ISO -> admitted at (ms)."""
        with converted_errors("read a schedule's live slots"):
            found = self.client.zrange(self.keys.schedule_active(name), 0, -1, withscores=True)
        return {slot: int(score) for slot, score in found}

    def drop_admitted(self, name: str, slots: list[str]) -> None:
        if slots:
            with converted_errors("drop ended slots"):
                self.client.zrem(self.keys.schedule_active(name), *slots)

    def admit(self, name: str, slot_iso: str, limit: int, now_ms: int) -> bool:
        with converted_errors("admit a slot"):
            return bool(self._admit(keys=[self.keys.schedule_active(name)], args=[slot_iso, limit, now_ms]))


def _ms(value: Any) -> int | None:
    return None if value is None else int(value)
