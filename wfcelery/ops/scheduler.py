"""The scheduler: an elected loop that fires every schedule's due slots, inside the workers.

Every worker runs one (unless ``wfcelery_scheduler = False``); one of them holds the lease
(``<prefix>:scheduler``, taken and renewed like the reconciler's: :meth:`Fleet.elect`, every
``wfcelery_heartbeat`` seconds, for three of them) and fires. ``wfcelery scheduler`` runs the same loop as
one process. When the holder dies, another worker takes the lease within three heartbeats plus one
(~8 s with the defaults) and fires the slots missed meanwhile (as ``catchup`` says).

A tick reads the schedules due (``schedules:next`` up to Redis's clock, one ZRANGEBYSCORE), fires their
slots (:mod:`.firing`: run key ``schedule:<name>:<slot>``, so a slot fired twice -- two loops during a
lease handover, a loop that lost its lease mid-fire, a restart -- makes one run), moves each schedule's
next slot forward (only forward: ``ZADD GT XX``, so two loops agree and a schedule paused or deleted
meanwhile is not put back), and sleeps until the next slot is due (at most a second, so new schedules are
seen). Per schedule, the slots due between its stored next slot and now are:

* ``catchup=False``: the latest one only (after downtime, the missed ones are skipped);
* ``catchup=True``: every one, the latest ``wfcelery_schedule_catchup`` (100) at most.

With ``max_active_runs``, a slot that may not fire yet (that many runs of the schedule live) stays the
schedule's next slot and is looked at again every quarter second until a run ends: the slot then fires
(``catchup=False``: the latest slot due by then, replacing the one that waited).

The loop also scans the ``wfcelery_definitions`` folder every ``wfcelery_schedule_scan`` seconds
(:mod:`.folder`).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from wfcelery.errors import BrokerUnavailable, TrackerUnavailable
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.ops.elected import ElectedLoop
from wfcelery.ops.firing import Firer
from wfcelery.ops.folder import scan_folder
from wfcelery.ops.store import TRIM_EVERY, ScheduleRecord

if TYPE_CHECKING:
    from wfcelery.tracker.store import Tracker

logger = logging.getLogger("wfcelery.scheduler")

#: Longest sleep between ticks (seconds): a new or changed schedule is seen within it.
MAX_SLEEP = 1.0
#: How often a slot waiting for max_active_runs is looked at again (seconds).
BLOCKED_RETRY = 0.25
#: Schedules fired per tick at most (the rest next tick).
BATCH = 2000


class Scheduler(ElectedLoop):
    """The loop (see the module docstring). ``start()`` runs it in a daemon thread; ``tick()`` is one pass
    (the leader's), for tests and benchmarks."""

    name = "wfcelery scheduler"

    def __init__(self, tracker: Tracker, dispatch: Dispatcher, hostname: str, outage: Any = None) -> None:
        settings = tracker.settings
        super().__init__(
            tracker,
            hostname,
            tracker.keys.scheduler,
            settings.heartbeat or 2.0,
            outage,
            retry_after=MAX_SLEEP,
        )
        self.settings = settings
        self.firer = Firer(tracker, dispatch)
        self.store = self.firer.store
        self._blocked: dict[str, float] = {}
        self._records: dict[str, ScheduleRecord] = {}
        self._next_scan = 0.0
        self._ticks = 0
        #: Fires done by this loop: (slot ms, fired at ms, Redis clock): the benchmark's lag.
        self.fired: list[tuple[int, int]] | None = None

    def step(self) -> float:
        """One pass: seconds to sleep before the next."""
        if not self.lead():
            return self.lease_tick
        if self.settings.definitions and time.monotonic() >= self._next_scan:
            self._next_scan = time.monotonic() + self.settings.schedule_scan
            scan_folder(self.store, self.settings, self.tracker.server_ms())
        return self.tick()

    # -- one tick --------------------------------------------------------------------------------------

    def tick(self) -> float:
        """Fire every due slot; returns seconds until the next is due (at most :data:`MAX_SLEEP`)."""
        now = self.tracker.server_ms()
        clock = time.monotonic()
        due = [(n, at) for n, at in self.store.due(now, BATCH) if self._blocked.get(n, 0.0) <= clock]
        plans: list[tuple[str, int, list[int]]] = []
        batch: list[tuple[ScheduleRecord, int]] = []
        for (name, next_ms), raw in zip(due, self.store.raws([n for n, _ in due]), strict=True):
            record = self._record(raw)
            if record is None or record.paused:
                self.store.forget_next(name)
                continue
            slots, next_slot = self.due_slots(record, next_ms, now)
            plans.append((name, next_slot, slots))
            batch += [(record, slot) for slot in slots]
        if batch:
            try:
                with self.firer.dispatch.app.producer_or_acquire() as producer:
                    started = self.firer.fire_many(batch, now, producer)
            except (TrackerUnavailable, BrokerUnavailable) as e:  # nothing advances: fired again later
                logger.warning("wfcelery scheduler: %d slots not fired yet: %s", len(batch), e)
                for name, _, _ in plans:
                    self._blocked[name] = time.monotonic() + MAX_SLEEP
                return MAX_SLEEP
            if self.fired is not None:
                at = self.tracker.server_ms()
                self.fired += [(slot, at) for (_, slot), run in zip(batch, started, strict=True) if run]
        self._ticks += 1
        self.store.settle(plans, trim=self._ticks % TRIM_EVERY == 0)
        earliest = self.store.earliest()
        if earliest is None:
            return MAX_SLEEP
        if earliest <= now:  # still due: a slot waiting for max_active_runs (or more than one batch)
            return BLOCKED_RETRY if len(due) < BATCH else 0.0
        return min(MAX_SLEEP, (earliest - now) / 1000)

    def due_slots(self, record: ScheduleRecord, next_ms: int, now: int) -> tuple[list[int], int]:
        """The slots of one schedule to fire now (``catchup``, ``max_active_runs``) and its next slot
        after them: the first slot still waiting for ``max_active_runs``, else the first after now."""
        limit = self.settings.schedule_catchup if record.catchup else 1
        slots = record.timing.slots(next_ms, now, max(limit, 1))
        for i, slot in enumerate(slots):
            if not self.firer.admit(record, slot, now):
                self._blocked[record.name] = time.monotonic() + BLOCKED_RETRY
                return slots[:i], slot
        self._blocked.pop(record.name, None)
        return slots, record.timing.next_after(max([now, *slots]))

    def _record(self, raw: str | None) -> ScheduleRecord | None:
        if raw is None:
            return None
        record = self._records.get(raw)
        if record is None:
            if len(self._records) > 10_000:
                self._records.clear()
            record = self._records[raw] = ScheduleRecord.decode(raw)
        return record
