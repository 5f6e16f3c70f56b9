"""The timer loop: fires the durable timers (sleeps ending, waits timing out) inside the workers.

Every worker runs one; the one holding the lease (``<prefix>:timers:lease``, taken and renewed as the
reconciler's: :meth:`~wfcelery.tracker.fleet.Fleet.elect`, every :data:`LEASE_TICK` seconds for three of
them) fires. Its loop reads the timers due by Redis's clock (the ``timers`` sorted set: one ZRANGEBYSCORE),
settles each in one Lua call (timer.lua: a sleep SUCCEEDS and its children are published; a wait past its
deadline FAILS, "no signal within 2h", and the failure policy applies; a timer whose node moved on is
dropped), then sleeps until the next timer is due -- at most :data:`MAX_SLEEP`, so a timer added meanwhile
is fired within a second. A timer of a paused run is looked at again every second and fires once the run
is resumed. Each pass also fails the runs whose deadline is due (ops/deadlines.py).

The timers live in Redis, not in a worker: no worker slot and no message is held while a node waits, and
a restart of every worker, or of the tracker's Redis (with AOF), loses none. When the lease holder dies,
another worker takes the lease within three lease ticks plus one and fires what came due meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from wfcelery.definition.waits import format_duration
from wfcelery.errors import RunNotFound, TrackerUnavailable
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.ops.deadlines import fire_due, next_deadline
from wfcelery.ops.elected import ElectedLoop
from wfcelery.ops.subruns import Settled, publish_settled, settle_failure, settle_success
from wfcelery.ops.waits import TimerVerdict, waits_of
from wfcelery.tracker.records import TimerEntry
from wfcelery.tracker.store import Tracker

logger = logging.getLogger("wfcelery.timers")

#: Seconds between renewals of the lease (it lives three of them).
LEASE_TICK = 1.0
#: Longest sleep of the lease holder between two reads of the due timers (seconds).
MAX_SLEEP = 0.25
#: Seconds before a paused run's due timer is looked at again.
PAUSED_RETRY = 1.0
#: Seconds before a timer whose settling raised (its plan gone, the broker away) is tried again.
FAILED_RETRY = 30.0
#: Timers fired per read at most (the rest right after).
BATCH = 500


class TimerLoop(ElectedLoop):
    """The loop (see the module docstring); ``start()`` runs it in a daemon thread, ``fire_due()`` is one
    pass (for tests and ``wfcelery sweep``)."""

    name = "wfcelery timers"

    def __init__(
        self,
        tracker: Tracker,
        dispatch: Dispatcher,
        hostname: str,
        outage: Any = None,
        hand_off: Callable[[Settled], None] | None = None,
    ) -> None:
        super().__init__(tracker, hostname, tracker.keys.timers_lease, LEASE_TICK, outage)
        self.dispatch = dispatch
        #: What publishes the nodes a timer released (the worker side's keeps them in its outbox when the
        #: broker or the tracker is away); by default: :func:`~wfcelery.ops.subruns.publish_settled`.
        self.hand_off = hand_off or (lambda settled: publish_settled(tracker, dispatch, settled))
        self.waits = waits_of(tracker)

    def step(self) -> float:
        """One pass: seconds to sleep before the next."""
        if not self.lead():
            return LEASE_TICK
        now = self.fire_due()
        self.fire_deadlines(now)
        dues = [d for d in (self.waits.next_due(), next_deadline(self.tracker)) if d is not None]
        due = min(dues, default=None)
        return MAX_SLEEP if due is None else max(0.005, min(MAX_SLEEP, (due - now) / 1000))

    def fire_due(self) -> int:
        """Fire every timer due now; returns Redis's clock (ms) as read."""
        while True:
            now = self.tracker.server_ms()
            due = self.waits.due_timers(now, BATCH)
            for entry, at in due:
                try:
                    self.fire(entry, at, now)
                except TrackerUnavailable:
                    raise
                except Exception as e:  # one timer that cannot be settled must not hold back the others
                    logger.warning("wfcelery timers: %s of run %s: %s", entry.index, entry.run_id, e)
                    self.waits.postpone(entry, at, now + int(FAILED_RETRY * 1000))
            if len(due) < BATCH or self._stop.is_set():
                return now

    def fire_deadlines(self, now_ms: int) -> None:
        """Fail the runs whose deadline is due (ops/deadlines.py); one that cannot be failed now (the
        broker away) is tried again on the next pass, and by the reconciler."""
        try:
            fire_due(self.tracker, self.dispatch, now_ms)
        except TrackerUnavailable:
            raise
        except Exception as e:
            logger.warning("wfcelery timers: deadlines: %s", e)

    def fire(self, entry: TimerEntry, due_ms: int, now_ms: int) -> TimerVerdict:
        """Settle one due timer (see the module docstring)."""
        try:
            record = self.tracker.run_record(entry.run_id)
        except RunNotFound:
            self.waits.drop_timer(entry, due_ms)
            return TimerVerdict.GONE
        plan = self.waits.plans.get(record.plan)
        out = self.waits.timer(entry, due_ms, plan)
        if out.verdict is TimerVerdict.LATER:
            self.waits.postpone(entry, due_ms, now_ms + int(PAUSED_RETRY * 1000))
            return out.verdict
        self.waits.drop_timer(entry, due_ms)
        if out.verdict is TimerVerdict.SLEPT and out.success is not None:
            self.hand_off(settle_success(plan, entry.run_id, entry.index, entry.epoch, out.success))
        elif out.verdict is TimerVerdict.TIMEOUT:
            self.waits.drop_signal_waits([entry])
            message = f"no signal within {format_duration(plan.nodes[entry.index].timeout or 0)}"
            run_id, index, epoch = entry.run_id, entry.index, entry.epoch
            failed = settle_failure(
                self.tracker, self.dispatch, plan, run_id, index, epoch, "WaitTimeout", message
            )
            self.hand_off(failed)
        return out.verdict
