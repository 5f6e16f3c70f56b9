"""The local start gate: a worker process decides a node's start from its own copy of the gate table while
it holds a fresh **gate lease**, so the hot path costs one tracker call per node (the success report).

Why it stays strict (docs: architecture, "The start gate"):

* A process holds a lease in the tracker (``<prefix>:gate:leases``: its expiry by Redis's clock and the
  number of the last gate change it applied), renewed every quarter of ``wfcelery_gate_lease``. Its own
  idea of the lease ends earlier than Redis's (it counts from before the renewal was sent, less a margin).
* Pause, cancel and a deadline first write a *halting* entry for the run (``records.HALTING``) and wait
  until every live lease has applied it or lapsed (``Fleet.fence_gate``); only then does the run's own
  transition run. A process applies a change and, before acknowledging it, writes the RUNNING record of
  every body it let start: so when the transition runs, every body that started is RUNNING in the
  tracker, and no body of the run starts without asking the tracker (start.lua) again.
* Without a fresh lease (the tracker away, the listener behind, a new process), or for any message that
  might be a copy -- one the broker redelivers, a wfcelery re-send, a Celery retry -- or of a run the
  table names, the process asks start.lua, exactly as before.

The RUNNING record of a locally started body waits ``wfcelery_running_delay``: a body that ends sooner
has its start recorded by its success report (succeed.lua, one call for both); a longer one is written by
this module's writer thread, several in one pipeline.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wfcelery.errors import TrackerError
from wfcelery.tracker.keys import Slot
from wfcelery.tracker.outcomes import StartOutcome, StartReason

if TYPE_CHECKING:
    from wfcelery.tracker.store import Tracker
    from wfcelery.worker.message_filter import MessageFilter

logger = logging.getLogger("wfcelery.gate")

#: The share of the lease a process trusts, counted from before the renewal was sent: the rest covers a
#: slow reply and clocks that run at slightly different rates.
TRUSTED_SHARE = 0.75
#: Seconds between tries to take the lease while the tracker does not answer (each start asks start.lua).
TAKE_RETRY = 5.0


@dataclass
class _Started:
    run_id: str
    slot: Slot
    epoch: int
    worker: str
    at: float  # time.monotonic() when the body started
    request: Any = None  # the task's request: its attempt number and wait are set once recorded


class LocalGate:
    """One per worker process that runs task bodies (``WorkerSide.gate``)."""

    def __init__(self, tracker: Tracker, message_filter: MessageFilter) -> None:
        self.tracker = tracker
        self.filter = message_filter
        self.pid = os.getpid()
        settings = tracker.settings
        self.lease = settings.gate_lease
        self.delay = settings.running_delay
        self.lease_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.enabled = self.lease > 0
        self._trusted_until = 0.0  # time.monotonic(): this process's own end of its lease
        self._acked = -1  # the gate change number the tracker has as this process's
        self._pending: dict[str, _Started] = {}  # task id -> a start not recorded yet
        self._reporting: dict[str, _Started] = {}  # task id -> a start its report is recording now
        self._taken = False  # registered: acknowledgements may go out (set midway through _take)
        self._ready = False  # taken, table loaded and acknowledged: admit may trust the lease
        self._next_take = 0.0  # time.monotonic(): no new try to take the lease before (the tracker away)
        self._take_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()

    # -- the hot path ---------------------------------------------------------------------------------------

    def admit(
        self, task_id: str, run_id: str, slot: Slot, epoch: int, worker: str, request: Any = None
    ) -> bool:
        """True when the body may start now without asking the tracker: the lease is fresh and the table
        says nothing of the run (or that it runs again from an epoch at most ``epoch``). Its RUNNING
        record is then owed (:meth:`take` or the writer). False: ask start.lua."""
        if not self.enabled:
            return False
        if not self._ready and (time.monotonic() < self._next_take or not self._take()):
            return False
        with self.filter.lock:
            if time.monotonic() >= self._trusted_until:
                return False
            entry = self.filter.entries.get(run_id)
            if entry is not None and (entry[0] != "R" or epoch < entry[1]):
                return False
            self._pending[task_id] = _Started(run_id, slot, epoch, worker, time.monotonic(), request)
        return True

    def recorded(self, request: Any, verdict: StartOutcome) -> None:
        """The node's start was recorded (by the writer, or with its report): its attempt number and wait
        go on its request (a late report of an older attempt is told apart by it; tracing reads both)."""
        if request is not None and verdict.run:
            request.wf_attempt = verdict.attempt
            request.wf_waited_ms = verdict.waited_ms

    def take(self, task_id: str) -> float | None:
        """The report of ``task_id`` records its start itself: returns when its body started (monotonic)
        if its RUNNING record was still owed, else None (written already, or never owed). Until
        :meth:`reported`, an acknowledgement still writes it (the report may not have landed yet)."""
        with self.filter.lock:
            started = self._pending.pop(task_id, None)
            if started is not None:
                self._reporting[task_id] = started
        return None if started is None else started.at

    def reported(self, task_id: str) -> None:
        """The report that took ``task_id``'s start has returned (recorded, or kept in the outbox)."""
        with self.filter.lock:
            self._reporting.pop(task_id, None)

    # -- acknowledgement and lease -------------------------------------------------------------------------

    def acknowledge(self) -> None:
        """Tell the tracker this process applied every gate change up to the filter's, after writing the
        RUNNING record of every body it let start under the table before them; renews the lease. Called
        by the filter's listener after it applied changes, and every quarter of the lease."""
        if not self._taken or self._stop.is_set():  # not taken yet, or given back (close)
            return
        while True:
            with self.filter.lock:
                applied = self.filter.applied
                owed = [*self._pending.items(), *self._reporting.items()] if applied != self._acked else []
            if owed:
                self._write(owed)
            sent = time.monotonic()
            latest = self.tracker.renew_gate_lease(self.lease_id, self.lease, applied)
            if latest <= applied:
                break
            self.filter.resync()  # a change this process has not seen (a lost message): apply it first
        with self.filter.lock:
            self._acked = applied
            self._trusted_until = sent + self.lease * TRUSTED_SHARE

    def _take(self) -> bool:
        """Take the lease (first use in this process): register it, load the table, acknowledge."""
        with self._take_lock:  # a second start meanwhile waits here for the first one's take
            if self._ready:
                return True
            if time.monotonic() < self._next_take:  # the take before this one failed just now
                return False
            try:
                # Registered before the table is read: a fence from here on waits for this process.
                self.tracker.renew_gate_lease(self.lease_id, self.lease, 0)
                self.filter.start()
                self.filter.resync()
                self._taken = True
                self.filter.gate = self
                self.acknowledge()
            except (TrackerError, OSError) as e:
                self._taken = False
                self._next_take = time.monotonic() + TAKE_RETRY
                logger.debug("wfcelery: no gate lease yet (%s): starts ask the tracker", e)
                return False
            threading.Thread(target=self._write_loop, name="wfcelery-running", daemon=True).start()
            atexit.register(self.close)
            self._ready = True
            return True

    def close(self) -> None:
        """Write the owed RUNNING records and give the lease back (worker shutdown)."""
        if not self._taken or self._stop.is_set():
            return
        self._stop.set()
        try:
            self.flush()
            self.tracker.drop_gate_lease(self.lease_id)
        except (TrackerError, OSError) as e:
            logger.debug("wfcelery: gate lease not given back (%s): it lapses", e)

    # -- the RUNNING records owed --------------------------------------------------------------------------

    def flush(self) -> None:
        """Write every owed RUNNING record now (a failure report, a shutdown)."""
        with self.filter.lock:
            owed = list(self._pending.items())
        if owed:
            self._write(owed)

    def _write(self, owed: list[tuple[str, _Started]]) -> None:
        with self._flush_lock:
            with self.filter.lock:  # another writer or a report may have taken some meanwhile
                owed = [(t, s) for t, s in owed if self._pending.get(t) is s or self._reporting.get(t) is s]
            if not owed:
                return
            now = time.monotonic()
            rows = [(s.run_id, s.slot, s.epoch, s.worker, int((now - s.at) * 1000)) for _, s in owed]
            verdicts = self.tracker.record_starts(rows)
            with self.filter.lock:
                for task_id, started in owed:
                    if self._pending.get(task_id) is started:
                        del self._pending[task_id]
            for (task_id, started), verdict in zip(owed, verdicts, strict=True):
                self.recorded(started.request, verdict)
                if verdict.reason is StartReason.RUNNING:
                    logger.warning(
                        "wfcelery: %s started here while another worker runs it (a duplicate message): "
                        "only the first outcome is recorded",
                        task_id,
                    )

    def _write_loop(self) -> None:
        """Every ``wfcelery_running_delay``, write the records owed longer than that. A tick, not a wake-up
        per start: the hot path only adds to a dict (a wake-up would cost a thread switch per node)."""
        while not self._stop.wait(max(self.delay, 0.01)):
            cutoff = time.monotonic() - self.delay
            with self.filter.lock:
                owed = [(t, s) for t, s in self._pending.items() if s.at <= cutoff]
            if not owed:
                continue
            try:
                self._write(owed)
            except (TrackerError, OSError) as e:
                logger.debug("wfcelery: RUNNING records not written yet (%s)", e)
