"""When a schedule fires: a cron expression in a time zone, or a fixed grid ``every`` N seconds.

Pure slot arithmetic (no Redis): the schedule store and the elected loop (``wfcelery.ops``) and
``Workflow.from_dict`` (a definition's top-level ``schedule:``) all parse a timing here, so a bad one is
the same clear error everywhere, naming the field.

* ``cron``: 5 fields (minute hour day month weekday) or 6, seconds last (``* * * * * */5``: every five
  seconds), as croniter reads them, evaluated in ``timezone`` (an IANA name, zoneinfo; default UTC).
* ``every``: seconds (``90``) or a duration (``"15m"``, ``"1h"``, ``"30s"``, ``"1d"``, ``"1h30m"``). Slots
  sit on a fixed grid aligned on the Unix epoch: every multiple of N seconds, whatever the time a loop
  happens to look. The time zone does not move the grid.

Daylight saving time (cron in a zone that has it), as croniter computes and as Vixie cron behaves:

* spring forward (Europe/Paris, last Sunday of March, 02:00 -> 03:00): a slot in the skipped hour
  (``30 2 * * *``) fires once, at 03:00 local, the first instant after the gap;
* fall back (last Sunday of October, 03:00 -> 02:00): the repeated hour happens twice. An expression with
  fixed hours (``30 2 * * *``) fires once, at the first 02:30; an expression whose hour field is a
  wildcard (``*/30 * * * *``) keeps its pace through both passes, since those are distinct instants.

A slot is an instant; it is named by its ISO 8601 UTC form (``2026-03-29T01:00:00Z``), which is what run
keys and the ``scheduled_at`` param carry.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterError

from wfcelery.errors import ScheduleError

#: Keys of a definition's top-level ``schedule:`` mapping.
SCHEDULE_KEYS = frozenset({"cron", "every", "timezone", "params", "catchup", "max_active_runs"})

#: Seconds per unit of an ``every`` duration.
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(?:(\d+)([smhdw]))")
#: Largest ``every``: a year (anything longer is a cron job).
MAX_EVERY = 366 * 86400


def iso(ms: int) -> str:
    """A slot's name: ISO 8601 UTC, seconds precision (``2026-12-06T02:00:00Z``)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(value: str | datetime | float, field: str) -> int:
    """An instant given as ISO 8601 (``2026-12-06``, ``2026-12-06T02:00``, with ``Z`` or an offset; naive
    means UTC), a datetime or Unix seconds -> ms since the epoch. Raises :class:`ScheduleError`."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return int(value * 1000)
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ScheduleError(field, f"not an ISO 8601 time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_every(value: Any) -> int:
    """``every`` in seconds: a positive whole number, or a duration such as ``"15m"`` or ``"1h30m"``."""
    if isinstance(value, bool):
        raise ScheduleError("every", f"must be a number of seconds or a duration like '15m', not {value!r}")
    if isinstance(value, int | float):
        seconds: float = value
    elif isinstance(value, str) and (text := value.strip().lower().replace(" ", "")).isdigit():
        seconds = int(text)
    elif isinstance(value, str) and re.fullmatch(r"(\d+[smhdw])+", text):
        seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(text))
    else:
        raise ScheduleError("every", f"must be a number of seconds or a duration like '15m', not {value!r}")
    if not math.isfinite(seconds) or seconds <= 0 or seconds != int(seconds):
        raise ScheduleError("every", f"must be a whole number of seconds > 0, not {value!r}")
    if seconds > MAX_EVERY:
        raise ScheduleError("every", f"at most {MAX_EVERY} seconds (a year); use cron for rarer schedules")
    return int(seconds)


def parse_timezone(value: Any) -> ZoneInfo:
    if not isinstance(value, str) or not value:
        raise ScheduleError("timezone", f"must be an IANA time zone name like 'Europe/Paris', not {value!r}")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(
            "timezone", f"unknown time zone {value!r} (an IANA name like 'Europe/Paris')"
        ) from None


def parse_cron(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ScheduleError("cron", f"must be a cron expression like '0 2 * * *', not {value!r}")
    expr = " ".join(value.split())
    fields = len(expr.split(" "))
    if fields not in (5, 6):
        raise ScheduleError(
            "cron", f"{value!r} has {fields} fields; give 5 (minute hour day month weekday) or 6 (+ seconds)"
        )
    try:
        croniter(expr, datetime(2026, 1, 1, tzinfo=UTC))
    except (CroniterError, ValueError, KeyError) as e:
        raise ScheduleError("cron", f"invalid cron expression {value!r}: {e}") from None
    return expr


@dataclass(frozen=True)
class Timing:
    """Exactly one of ``cron`` and ``every`` (seconds); ``timezone`` applies to cron."""

    cron: str | None = None
    every: int | None = None
    timezone: str = "UTC"

    @classmethod
    def parse(cls, cron: Any = None, every: Any = None, timezone: Any = None) -> Timing:
        """Check and normalise; raises :class:`ScheduleError` naming the field."""
        if (cron is None) == (every is None):
            raise ScheduleError("cron", "give exactly one of cron=... or every=...")
        zone = "UTC" if timezone is None else timezone
        parse_timezone(zone)
        if cron is not None:
            return cls(cron=parse_cron(cron), timezone=zone)
        return cls(every=parse_every(every), timezone=zone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron!r}" + ("" if self.timezone == "UTC" else f" ({self.timezone})")
        return f"every {self.every} s"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"timezone": self.timezone}
        if self.cron is not None:
            out["cron"] = self.cron
        else:
            out["every"] = self.every
        return out

    # -- slots ---------------------------------------------------------------------------------------

    def next_after(self, ms: int) -> int:
        """The first slot strictly after ``ms``."""
        if self.every is not None:
            step = self.every * 1000
            return (ms // step + 1) * step
        for slot in self._cron_from(ms):
            return slot
        raise AssertionError("a cron expression always has a next slot")  # pragma: no cover

    def slots(self, start_ms: int, end_ms: int, limit: int | None = None) -> list[int]:
        """Slots in ``[start_ms, end_ms]``, ascending; with ``limit``, only the latest ``limit`` of them."""
        if end_ms < start_ms or limit == 0:
            return []
        if self.every is not None:
            step = self.every * 1000
            first = -(-start_ms // step) * step
            last = end_ms // step * step
            if limit is not None:
                first = max(first, last - (limit - 1) * step)
            return list(range(first, last + 1, step))
        if limit is not None:
            start_ms = max(start_ms, self._back(end_ms, limit))
        found: list[int] = []
        for slot in self._cron_from(start_ms - 1):
            if slot > end_ms:
                break
            found.append(slot)
        return found[-limit:] if limit is not None else found

    def _back(self, end_ms: int, count: int) -> int:
        """A time at or before the ``count``-th latest slot up to ``end_ms`` (croniter's backward walk only
        finds where to start; slots themselves always come from the forward walk, DST rules included)."""
        assert self.cron is not None
        it = croniter(self.cron, self._local(end_ms + 1000))
        moment = end_ms
        for _ in range(count + 1):  # + 1: the walk starts a second late
            moment = int(it.get_prev(datetime).timestamp() * 1000)
        return moment - 3_600_000  # a DST hour of margin: the forward walk decides

    def _local(self, ms: int) -> datetime:
        return datetime.fromtimestamp(ms / 1000, UTC).astimezone(self.zone)

    def _cron_from(self, ms: int) -> Iterator[int]:
        """Slots strictly after ``ms`` (a generator), the repeated hour of a fall-back day handled as the
        module docstring says."""
        assert self.cron is not None
        it = croniter(self.cron, self._local(ms))
        fixed_hours = not self.cron.split(" ")[1].startswith("*")
        while True:
            moment = it.get_next(datetime)
            if fixed_hours and _second_pass(moment):
                continue
            yield int(moment.timestamp() * 1000)


def _second_pass(moment: datetime) -> bool:
    """Whether a local time lies in the second pass of a fall-back day's repeated hour."""
    naive = moment.replace(tzinfo=None)
    zone = moment.tzinfo
    first = naive.replace(tzinfo=zone, fold=0).utcoffset()
    second = naive.replace(tzinfo=zone, fold=1).utcoffset()
    return first != second and moment.utcoffset() == second and first is not None and second is not None


@dataclass(frozen=True)
class ScheduleSpec:
    """A definition file's ``schedule:`` mapping: its timing and options (the schedule is named after the
    workflow)."""

    timing: Timing
    params: Mapping[str, Any]
    catchup: bool = False
    max_active_runs: int | None = None

    @classmethod
    def from_dict(cls, data: Any) -> ScheduleSpec:
        """Raises :class:`ScheduleError` naming the field."""
        if not isinstance(data, Mapping):
            raise ScheduleError("schedule", f"expected a mapping, got {type(data).__name__}")
        unknown = sorted(set(data) - SCHEDULE_KEYS, key=str)
        if unknown:
            known = ", ".join(sorted(SCHEDULE_KEYS))
            raise ScheduleError("schedule", f"unknown key {unknown[0]!r} (known: {known})")
        params = data.get("params") or {}
        if not isinstance(params, Mapping):
            raise ScheduleError("params", "must be a mapping")
        return cls(
            Timing.parse(data.get("cron"), data.get("every"), data.get("timezone")),
            dict(params),
            check_catchup(data.get("catchup", False)),
            check_max_active(data.get("max_active_runs")),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {**self.timing.to_dict(), "catchup": self.catchup}
        if self.params:
            out["params"] = dict(self.params)
        if self.max_active_runs is not None:
            out["max_active_runs"] = self.max_active_runs
        return out


def check_catchup(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ScheduleError("catchup", f"must be true or false, not {value!r}")
    return value


def check_max_active(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ScheduleError("max_active_runs", f"must be a whole number >= 1 (or none), not {value!r}")
    return value
