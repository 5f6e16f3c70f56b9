"""A tracker outage, as one worker process lives it: one WARNING when it starts, one INFO when it ends.

While the tracker's Redis does not answer, every part of the worker side notices (the message filter's
resync, the start gate, each node's report, the heartbeat, the outbox replay): they all tell this one
:class:`Outage`, which logs the first failure as a WARNING and the rest at DEBUG. When a tracker call
succeeds again (and the worker's outbox holds no kept report), one INFO line says how long the outage
lasted and how many transitions were deferred.

This module only keeps the log honest; it defers nothing itself. The one mechanism for transitions the
tracker could not take is the worker side's (worker/side.py, worker/outbox.py): the start gate waits
``wfcelery_gate_wait`` then gives the message back to the broker (no body runs unchecked), and a report
is retried ``wfcelery_report_retry`` seconds, then kept in the worker's durable outbox and replayed in
order. "Deferred transitions" counts both: starts that had to wait for Redis and reports that were
retried, kept or replayed. Each worker process logs its own pair (a prefork child for what its tasks
deferred, the main process for the filter, heartbeat and outbox replay).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("wfcelery.outage")


class Outage:
    """Thread-safe; one per worker side (so one per worker process). ``pending``: how many reports the
    worker still keeps for the tracker (the outage has not ended for them while they wait)."""

    def __init__(self, pending: Callable[[], int] | None = None) -> None:
        self._pending = pending or (lambda: 0)
        self._lock = threading.Lock()
        self._since: float | None = None
        self._count = 0

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
                "answers (starts wait, then go back to the broker; reports are kept in the worker's outbox)",
                error,
            )
        else:
            logger.debug("wfcelery: tracker Redis still unreachable: %s", error)

    def deferred(self, count: int = 1) -> None:
        """``count`` transitions could not be recorded when first tried (counted for the INFO line)."""
        with self._lock:
            self._count += count

    def up(self) -> None:
        """Redis answered: ends the outage (one INFO line) unless kept reports still wait."""
        if self._since is None:  # the common case: no lock, no log
            return
        try:
            if self._pending():
                return
        except Exception:  # the outbox cannot be read: the replay will end the outage later
            return
        with self._lock:
            if self._since is None:
                return
            lasted, count = time.monotonic() - self._since, self._count
            self._since, self._count = None, 0
        logger.info(
            "wfcelery: the tracker's Redis answers again after %.1f s; %d deferred transitions recorded",
            lasted,
            count,
        )

    def close(self) -> int:
        """Worker shutdown during an outage: says how many reports stay in the outbox (delivered by the
        next worker started under this name, or given up on by the reconciler). Returns that number."""
        if self._since is None:
            return 0
        try:
            kept = self._pending()
        except Exception:
            kept = 0
        if kept:
            logger.warning(
                "wfcelery: shutting down with %d transitions kept in the outbox: the tracker's Redis never "
                "came back (a worker started under the same name delivers them)",
                kept,
            )
        return kept
