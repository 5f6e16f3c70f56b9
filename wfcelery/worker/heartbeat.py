"""Heartbeats: each worker's, and how the reconciler judges from them that a worker is gone.

Every worker's main process beats every ``wfcelery_heartbeat`` seconds (``lua/beat.lua``): its key holds
its boot time, the beat's time -- both on Redis's clock -- and the wfcelery tasks its pool runs. The key
lives :data:`KEEP_BEATS` beats, longer than any verdict needs, so that the reconciler reads a beat's
*age* on Redis's clock rather than waiting to see the key vanish. A worker is gone once its last beat
is :data:`GONE_BEATS` beats old (12 s with the defaults): whoever holds the reconciler's lease, and
however long it has held it, acts on the same evidence -- a worker that takes the lease over from a
dead holder does not start counting only then.

Judging by age needs care after a tracker outage: while Redis was away no worker could beat, so every
beat is old when it comes back. The in-worker reconciler (*patient*) therefore judges only while its
own Redis calls have succeeded continuously for a beat and a second (:attr:`Liveness.steady`): time for
every live worker to beat again. A key that is missing altogether (the worker never beat, or beat
:data:`KEEP_BEATS` ago) is acted on once this reconciler has seen it missing for a whole TTL
(:data:`HEARTBEAT_BEATS` beats), on checks that reached Redis. ``wfcelery sweep`` (not patient) judges at
once: a worker is gone when its beat is older than a TTL or missing.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from celery.worker import state as worker_state

from wfcelery.errors import TrackerUnavailable
from wfcelery.tracker.keys import parse_task_id
from wfcelery.tracker.records import WorkerBeat

if TYPE_CHECKING:
    from wfcelery.tracker.store import Tracker
    from wfcelery.worker.outage import Outage

logger = logging.getLogger("wfcelery.reconciler")

#: A heartbeat's TTL, in beats: the reconciler's lease lives as long, and ``wfcelery sweep`` judges a
#: worker gone once its last beat is older.
HEARTBEAT_BEATS = 3
#: The in-worker reconciler judges a worker gone once its last beat is this many beats old: a TTL of
#: silence and a TTL of patience (12 s with the default heartbeat of 2 s), longer than a beat stuck on a
#: slow Redis takes (``wfcelery_redis_timeout`` 5 s, retried 1 s later).
GONE_BEATS = 2 * HEARTBEAT_BEATS
#: A heartbeat key lives this many beats: past :data:`GONE_BEATS`, so its age can be read.
KEEP_BEATS = 10


class Heartbeat:
    """Keeps this worker's heartbeat alive from a daemon thread in its main process."""

    def __init__(
        self, tracker: Tracker, hostname: str, interval: float, outage: Outage | None = None
    ) -> None:
        self.tracker = tracker
        self.outage = outage
        self.hostname = hostname
        self.interval = interval
        self.boot_ms: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        active = [r.id for r in list(worker_state.active_requests) if parse_task_id(r.id or "")]
        beat_ms = self.tracker.beat(self.hostname, self.boot_ms, active, self.interval * KEEP_BEATS)
        if self.boot_ms is None:
            self.boot_ms = beat_ms  # the first beat's time is the boot

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wfcelery-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
                wait = self.interval
                if self.outage is not None:
                    self.outage.up()
            except TrackerUnavailable as e:  # the outage's one WARNING says it, not one line a second
                if self.outage is not None:
                    self.outage.down(e)
                else:
                    logger.warning("wfcelery heartbeat: %s", e)
                wait = min(1.0, self.interval)  # beat again as soon as the tracker is back
            except Exception as e:
                logger.warning("wfcelery heartbeat: %s", e)
                wait = min(1.0, self.interval)  # beat again as soon as the tracker is back
            self._stop.wait(wait)


class Liveness:
    """The reconciler's verdicts on workers' heartbeats (see the module docstring). ``patient``: the
    in-worker reconciler's rules; not patient: ``wfcelery sweep``'s."""

    def __init__(self, interval: float, patient: bool = True) -> None:
        self.interval = interval
        self.patient = patient
        self._up_since: float | None = None
        self._missing_since: dict[str, float] = {}

    def reached(self) -> None:
        """A call of this reconciler reached Redis."""
        if self._up_since is None:
            self._up_since = time.monotonic()

    def lost(self) -> None:
        """A call of this reconciler failed: what it saw of heartbeats proves nothing for a while."""
        self._up_since = None
        self._missing_since.clear()

    def unwatched(self) -> None:
        """This reconciler stopped checking heartbeats (it lost the lease): its sightings of missing keys
        are no longer consecutive."""
        self._missing_since.clear()

    @property
    def steady(self) -> bool:
        """Redis has answered this reconciler for a beat and a second without a failure: every live
        worker has beaten since (always True when not patient)."""
        if not self.patient:
            return True
        return self._up_since is not None and time.monotonic() - self._up_since >= self.interval + 1

    def silent(self, host: str, beat: WorkerBeat | None, now_ms: int) -> str | None:
        """Why ``host`` is gone, judged from its heartbeat ``beat`` (None: no key) read at ``now_ms``
        (Redis's clock), or None while it may live."""
        if beat is not None:
            self._missing_since.pop(host, None)
            if beat.beat_ms is None:  # a value without its time: alive while its key lives
                return None
            age_s = (now_ms - beat.beat_ms) / 1000
            limit = (GONE_BEATS if self.patient else HEARTBEAT_BEATS) * self.interval
            if age_s <= limit or not self.steady:
                return None
            return f"worker {host} is gone (no heartbeat for {age_s:.0f} s)"
        if self.patient:
            if not self.steady:
                return None
            first = self._missing_since.setdefault(host, time.monotonic())
            if time.monotonic() - first < self.interval * HEARTBEAT_BEATS:
                return None
        return f"worker {host or '?'} is gone (no heartbeat)"

    @staticmethod
    def restarted(host: str, beat: WorkerBeat | None, started_ms: int) -> str | None:
        """Why a node started at ``started_ms`` on ``host`` no longer runs there: the worker of that name
        booted since (it was restarted; its heartbeat never lapsed), or None."""
        if beat is not None and beat.boot_ms > started_ms:
            return f"worker {host} restarted since the node started"
        return None
