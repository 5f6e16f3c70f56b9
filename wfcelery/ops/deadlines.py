"""Run deadlines: a run not ended ``deadline`` after its submit FAILS with the run error "deadline exceeded".

The deadline is a time on Redis's clock, kept in the run record (``tracker.runlimits.DEADLINE_FIELD``) and
indexed in the ``deadlines`` sorted set (keys.deadlines: no hash tag, it indexes every run, so it is written
beside the run's creation, not inside it). The elected timer loop (ops/timers.py, inside the workers) reads
the deadlines due on each pass -- at most :data:`~wfcelery.ops.timers.MAX_SLEEP` apart -- and fails each run
in one atomic call (halt.lua 'deadline': as a cancel, but FAILED): its pending nodes never start, its queued
messages are revoked, its running nodes are revoked with ``terminate=True`` (the prefork and gevent pools
stop them, as ``cancel(terminate=True)`` does), its ``on_failure`` callback is sent once (the script ending
the run answers once) and its admission group admits the next QUEUED run.

A deadline counts from the submit, also for a run that waits QUEUED for ``max_active_runs``: it bounds
how long the caller waits for the run's end, whatever the run waited for. The reconciler's sweep is the
safety net: a run past its deadline that the loop missed (its index entry lost between the run's creation
and its indexing) is failed there, and a live run's entry is written again. A retry of a run failed at its
deadline runs without one (halt.lua marks the deadline fired).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

from wfcelery.errors import RunNotFound
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.tracker.base import converted_errors

if TYPE_CHECKING:
    from wfcelery.tracker.records import RunRecord
    from wfcelery.tracker.store import Tracker

logger = logging.getLogger("wfcelery.deadlines")

#: The error of a run failed at its deadline (``RunState.error``).
DEADLINE_ERROR = {"type": "DeadlineExceeded", "message": "deadline exceeded"}
#: Deadlines fired per read at most (the rest on the next pass, right after).
BATCH = 500


def index_deadline(tracker: Tracker, run_id: str, at_ms: int) -> None:
    """Index run ``run_id``'s deadline (ms, Redis's clock) for the timer loop."""
    with converted_errors(f"index the deadline of run {run_id}"):
        tracker.client.zadd(tracker.keys.deadlines, {run_id: at_ms})


def due_deadlines(tracker: Tracker, now_ms: int, limit: int = BATCH) -> list[str]:
    """Runs whose deadline is due by ``now_ms``, earliest first."""
    with converted_errors("read the due deadlines"):
        found = tracker.client.zrangebyscore(tracker.keys.deadlines, "-inf", now_ms, start=0, num=limit)
    return [str(r) for r in found]


def next_deadline(tracker: Tracker) -> int | None:
    """The earliest indexed deadline (ms), if any."""
    with converted_errors("read the next deadline"):
        first = tracker.client.zrange(tracker.keys.deadlines, 0, 0, withscores=True)
    return int(first[0][1]) if first else None


def fail_at_deadline(tracker: Tracker, dispatch: Dispatcher, run_id: str) -> bool:
    """Fail run ``run_id`` at its deadline (see the module docstring) and drop its index entry. Returns
    whether this call failed it (False: it had ended, its deadline was not due, or it is gone)."""
    # imported here: ops.subruns imports ops.submit, which indexes deadlines with this module
    from wfcelery.ops.subruns import halt_run

    try:
        out = halt_run(
            tracker, dispatch, run_id, "deadline", terminate=True, error=json.dumps(DEADLINE_ERROR)
        )
        changed = out.changed
    except RunNotFound:
        changed = False
    with converted_errors(f"drop the deadline of run {run_id}"):
        tracker.client.zrem(tracker.keys.deadlines, run_id)
    return changed


def fire_due(tracker: Tracker, dispatch: Dispatcher, now_ms: int) -> int:
    """Fail every run whose deadline is due by ``now_ms`` (the timer loop's pass). Returns how many."""
    failed = 0
    for run_id in due_deadlines(tracker, now_ms):
        try:
            failed += fail_at_deadline(tracker, dispatch, run_id)
        except RunNotFound:
            continue
    return failed


def check_deadline(
    tracker: Tracker, dispatch: Dispatcher, run_id: str, record: RunRecord, now_ms: int
) -> str | None:
    """The reconciler's check of one live run: past its deadline and not ended -> failed now (returns
    why); not due -> its index entry is written again (a lost one is mended)."""
    if record.deadline_ms is None or record.deadline_fired or record.status.finished:
        return None
    if now_ms < record.deadline_ms:
        index_deadline(tracker, run_id, record.deadline_ms)
        return None
    if fail_at_deadline(tracker, dispatch, run_id):
        return f"its deadline passed {(now_ms - record.deadline_ms) / 1000:.1f} s ago: failed"
    return None
