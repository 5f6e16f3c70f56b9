"""The worker's in-memory message filter: which runs' messages to drop before they reach the pool.

Two mechanisms keep a paused, cancelled or failed run's nodes from starting:

* the **start gate** (``lua/start.lua``, called by ``hooks.on_task_init`` in the pool just before a task
  body) is authoritative: atomic with pause/cancel, per node and epoch;
* this **message filter**, in the worker's main process (``task_received``), answers from memory and
  drops queued messages without handing them to the pool. It spares most start-gate round trips and
  covers workers that missed a revoke broadcast (revokes are an optimisation: a worker that is down
  misses them).

The filter reads the tracker's **gate table** (``<prefix>:gate`` HASH, run id -> ``records.GateEntry``),
which control operations write: a thread keeps it fresh from Redis pub/sub and resyncs the whole table
every ``wfcelery_gate_resync`` seconds. Entries: letter
P (paused), C (cancelled), F (failed), R (running again after resume/retry: open; stale messages of
older epochs are refused by the start script, which alone knows each node's epoch), H (halting: the
filter drops nothing for it; the local gate sends the run's starts to the start script), an epoch, and
when the entry expires. Every change is numbered (gate.lua): the filter applies them in order and
resyncs when it sees a gap, and in a process with a local start gate (``gate.py``) the same thread
acknowledges what it applied and renews the gate lease.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import TYPE_CHECKING

import redis

from wfcelery.errors import TrackerError
from wfcelery.tracker.records import HALTING, GateEntry
from wfcelery.tracker.states import RunStatus
from wfcelery.worker.outage import Outage

if TYPE_CHECKING:
    from wfcelery.tracker.store import Tracker
    from wfcelery.worker.gate import LocalGate

logger = logging.getLogger("wfcelery.message_filter")

#: Dropped task ids remembered (so ``task_revoked`` does not report them); cleared past this many.
DROPPED_MAX = 50_000


class MessageFilter:
    """One per worker process (``WorkerSide.message_filter``)."""

    def __init__(self, tracker: Tracker, outage: Outage | None = None) -> None:
        self.tracker = tracker
        self.pid = os.getpid()
        self.outage = outage or Outage()  # one WARNING per tracker outage, not one per retry
        self.entries: dict[str, tuple[str, int]] = {}  # run id -> (gate letter, epoch)
        self.applied = 0  # the number of the last gate change applied
        self.lock = threading.RLock()  # entries and applied (the local gate decides under it)
        self.gate: LocalGate | None = None  # this process's local start gate, once it holds a lease
        self._started = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dropped: set[str] = set()

    def dropped(self, task_id: str) -> None:
        """Remember a message this filter dropped: its ``task_revoked`` must not be reported as a revoke."""
        if len(self._dropped) > DROPPED_MAX:
            self._dropped.clear()
        self._dropped.add(task_id)

    def take_dropped(self, task_id: str) -> bool:
        """True (once) if this filter dropped the message."""
        if task_id in self._dropped:
            self._dropped.discard(task_id)
            return True
        return False

    def blocks(self, run_id: str, epoch: int) -> bool:
        """True when a message of this run and epoch must not run."""
        if not self._started:
            self.start()
        entry = self.entries.get(run_id)
        if entry is None:
            return False
        letter, gate_epoch = entry
        if letter == HALTING:
            return False  # not decided yet: the start script decides
        if letter == RunStatus.RUNNING.code:
            # Not "epoch < gate_epoch": a node that ran across a resume keeps its old epoch, and Celery's
            # own re-sends of it (Task.retry, requeue after a lost worker process) must get through. The
            # start script tells those from truly stale messages, per node.
            return False
        return epoch <= gate_epoch

    def start(self) -> None:
        """Load the table once, synchronously, then keep it fresh in a daemon thread."""
        with self._lock:
            if self._started:
                return
            try:
                self.resync()
            except Exception as e:  # the listener thread retries
                self.outage.down(e)
            self._thread = threading.Thread(target=self._listen, name="wfcelery-message-filter", daemon=True)
            self._thread.start()
            self._started = True

    def stop(self) -> None:
        self._stop.set()

    def apply(self, run_id: str, entry: GateEntry, seq: int) -> None:
        """Apply gate change ``seq`` (in order; after a gap, the whole table is read again)."""
        with self.lock:
            if seq <= self.applied:
                return  # in the table already when it was last read
            if seq == self.applied + 1:
                self.entries[run_id] = (entry.letter, entry.epoch)
                self.applied = seq
                return
        self.resync()

    def resync(self) -> None:
        now = int(time.time())
        table, seq = self.tracker.gate_snapshot()
        fresh: dict[str, tuple[str, int]] = {}
        expired = []
        for run_id, entry in table.items():
            if entry.expires and entry.expires < now:
                expired.append(run_id)
            else:
                fresh[run_id] = (entry.letter, entry.epoch)
        with self.lock:
            self.entries = fresh
            self.applied = max(self.applied, seq)
        self.tracker.drop_gate_entries(expired)

    def _listen(self) -> None:
        interval = self.tracker.settings.gate_resync
        lease = self.tracker.settings.gate_lease
        renew_every = lease / 4 if lease > 0 else interval  # a gate may take its lease at any time
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.tracker.subscribe_gate()
                self.resync()  # anything published before we subscribed
                self._acknowledge()
                self.outage.up()
                next_sync = time.monotonic() + interval
                next_renew = time.monotonic() + renew_every
                while not self._stop.is_set():
                    wake = min(next_sync, next_renew)
                    message = pubsub.get_message(timeout=max(0.0, wake - time.monotonic()))
                    changed = False
                    while message:  # every change already here, then one acknowledgement
                        if message.get("type") == "message":
                            self.apply(*GateEntry.from_message(str(message["data"])))
                            changed = True
                        message = pubsub.get_message(timeout=0)
                    if time.monotonic() >= next_sync:
                        self.resync()
                        next_sync = time.monotonic() + interval
                    if changed or time.monotonic() >= next_renew:
                        self._acknowledge()
                        next_renew = time.monotonic() + renew_every
            except (redis.RedisError, OSError, TrackerError) as e:  # TrackerUnavailable is an OSError
                self.outage.down(e)
                self._stop.wait(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection
                        pubsub.close()

    def _acknowledge(self) -> None:
        if self.gate is not None:
            self.gate.acknowledge()
