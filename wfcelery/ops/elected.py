"""What every elected loop inside the workers shares: a daemon thread, a lease, riding out outages.

Every worker runs the scheduler, the timer loop and the pool loop; only the one holding each loop's lease
(a key in the tracker, taken and renewed with ``Tracker.elect``) works. The lease is renewed once per
``lease_tick`` and lives three, so when its holder dies another worker takes it over within about three
ticks. A tracker outage drops the lease (the holder may lose it meanwhile) and is reported once through the
worker's :class:`~wfcelery.worker.outage.Outage` when one is given, else logged.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from wfcelery.errors import TrackerUnavailable

if TYPE_CHECKING:
    from wfcelery.tracker.store import Tracker

logger = logging.getLogger("wfcelery.ops")


class ElectedLoop:
    """A loop whose :meth:`step` runs while this process holds ``lease_key``. ``start()`` runs it in a
    daemon thread; ``step()`` is one pass (tests and benchmarks call it), returning the seconds to sleep."""

    #: The thread's name, and the loop's name in log lines.
    name = "wfcelery-loop"

    def __init__(
        self,
        tracker: Tracker,
        hostname: str,
        lease_key: str,
        lease_tick: float,
        outage: Any = None,
        retry_after: float | None = None,
    ) -> None:
        self.tracker = tracker
        self.hostname = hostname
        self.lease_key = lease_key
        self.lease_tick = lease_tick
        self.outage = outage
        self.retry_after = lease_tick if retry_after is None else retry_after  # after a failed pass
        self._leader_until = 0.0
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self.run, name=self.name, daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Until :meth:`stop`: a pass, then sleep what it asked for (a failed pass: ``retry_after``)."""
        while not self._stop.is_set():
            try:
                wait = self.step()
                if self.outage is not None:
                    self.outage.up()
            except TrackerUnavailable as e:
                self._leader_until = 0.0
                if self.outage is not None:
                    self.outage.down(e)
                else:
                    logger.warning("%s: %s", self.name, e)
                wait = self.retry_after
            except Exception as e:
                logger.warning("%s: %s", self.name, e)
                wait = self.retry_after
            self._stop.wait(wait)

    def step(self) -> float:
        """One pass: seconds to sleep before the next."""
        raise NotImplementedError

    def lead(self) -> bool:
        """Hold the lease: renewed once per lease tick (it lives three)."""
        now = time.monotonic()
        if now < self._leader_until:
            return True
        if self.tracker.elect(self.hostname, self.lease_tick * 3, self.lease_key):
            self._leader_until = now + self.lease_tick
            return True
        self._leader_until = 0.0
        return False
