"""A tracker outage, as one worker process lives it: one WARNING when it starts, one INFO when it ends.

While the tracker's Redis does not answer, every part of the worker side notices (the gate's resync, the
start script, each node's success or failure report): they all tell this one :class:`Outage`, which
logs the first failure as a WARNING and the rest at DEBUG. A node's report that cannot be recorded is
*deferred*: kept in order in memory (at most :data:`MAX_DEFERRED`) and replayed by one daemon thread as
soon as Redis answers, so the run goes on instead of waiting for good. When the outage ends, one INFO
line says how long it lasted and how many transitions were deferred.

Deferred reports live in the worker process: a process that exits during the outage loses them (its
nodes stay RUNNING until retried by hand, as before this module); the Lua scripts ignore a replayed
report that is stale or a duplicate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from .errors import RunNotFound, TrackerUnavailable

logger = logging.getLogger("wfcelery.outage")

#: Node reports kept while the tracker is unreachable; past it the oldest are dropped (and logged).
MAX_DEFERRED = 100_000
#: Seconds between attempts to replay deferred reports.
REPLAY_INTERVAL = 1.0


class Outage:
    """Thread-safe; one per worker side (so one per worker process)."""

    def __init__(self, interval: float = REPLAY_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._since: float | None = None
        self._deferred: deque[Callable[[], None]] = deque()
        self._count = 0
        self._replayer: threading.Thread | None = None
        self._closed = False

    @property
    def active(self) -> bool:
        return self._since is not None

    def down(self, error: BaseException) -> None:
        """Redis did not answer: WARNING the first time, DEBUG while the outage lasts."""
        with self._lock:
            first = self._since is None
            if first:
                self._since = time.monotonic()
        if first:
            logger.warning(
                "wfcelery: the tracker's Redis is unreachable (%s); node transitions are deferred until it "
                "answers",
                error,
            )
        else:
            logger.debug("wfcelery: tracker Redis still unreachable: %s", error)

    def up(self) -> None:
        """Redis answered: ends the outage (one INFO line) unless deferred reports still wait."""
        if self._since is None:  # the common case: no lock, no log
            return
        with self._lock:
            if self._since is None or self._deferred:
                return
            lasted, count = time.monotonic() - self._since, self._count
            self._since, self._count = None, 0
        logger.info(
            "wfcelery: the tracker's Redis answers again after %.1f s; %d deferred transitions recorded",
            lasted,
            count,
        )

    def kept(self, error: BaseException | None = None) -> None:
        """A report waited for the tracker (retried, or kept in the worker's outbox, outbox.py): counted in
        the outage's closing INFO line."""
        if error is not None:
            self.down(error)
        with self._lock:
            self._count += 1

    def report(self, call: Callable[[], None]) -> None:
        """Record a node transition now, or defer it when the tracker is unreachable."""
        if self._since is None:
            try:
                call()
            except TrackerUnavailable as e:
                self.down(e)
                self._defer(call)
            return
        self._defer(call)  # keep the order: never overtake reports that wait

    def close(self) -> int:
        """Stop replaying (worker shutdown): drops what is still deferred, logs and returns how many."""
        with self._lock:
            self._closed = True
            lost = len(self._deferred)
            self._deferred.clear()
        if lost:
            logger.error("wfcelery: %d deferred transitions lost: the tracker's Redis never came back", lost)
        return lost

    def _defer(self, call: Callable[[], None]) -> None:
        with self._lock:
            if self._closed:
                logger.error("wfcelery: a node transition could not be recorded (worker shutting down)")
                return
            if len(self._deferred) >= MAX_DEFERRED:
                self._deferred.popleft()
                logger.error("wfcelery: more than %d deferred transitions: dropped the oldest", MAX_DEFERRED)
            self._deferred.append(call)
            self._count += 1
            if self._replayer is None or not self._replayer.is_alive():
                self._replayer = threading.Thread(target=self._replay, name="wfcelery-outage", daemon=True)
                self._replayer.start()

    def _replay(self) -> None:
        while True:
            with self._lock:
                if self._closed:
                    return  # shut down: close() already said what was lost
                if not self._deferred:
                    self._replayer = None
                    break
                call = self._deferred[0]
            try:
                call()
            except TrackerUnavailable as e:
                self.down(e)
                time.sleep(self.interval)
                continue
            except RunNotFound as e:  # cleaned up or expired meanwhile: nothing to record
                logger.debug("wfcelery: deferred transition dropped: %s", e)
            except Exception:
                logger.exception("wfcelery: a deferred transition failed when replayed")
            with self._lock:
                if self._deferred:
                    self._deferred.popleft()
        self.up()
