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
older epochs are refused by the start script, which alone knows each node's epoch), an epoch, and when
the entry expires.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

import redis

from wfcelery.errors import TrackerError
from wfcelery.tracker.records import GateEntry
from wfcelery.tracker.states import RunStatus
from wfcelery.worker.outage import Outage

if TYPE_CHECKING:
    from wfcelery.tracker.store import Tracker

logger = logging.getLogger("wfcelery.message_filter")

#: Dropped task ids remembered (so ``task_revoked`` does not report them); cleared past this many.
DROPPED_MAX = 50_000


class MessageFilter:
    """One per worker process (``WorkerSide.message_filter``)."""

    def __init__(self, tracker: Tracker, outage: Outage | None = None) -> None:
        self.tracker = tracker
        self.outage = outage or Outage()  # one WARNING per tracker outage, not one per retry
        self.entries: dict[str, tuple[RunStatus, int]] = {}
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
        status, gate_epoch = entry
        if status is RunStatus.RUNNING:
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

    def apply(self, run_id: str, entry: GateEntry) -> None:
        self.entries[run_id] = (entry.status, entry.epoch)

    def resync(self) -> None:
        now = int(time.time())
        fresh: dict[str, tuple[RunStatus, int]] = {}
        expired = []
        for run_id, entry in self.tracker.gate_entries().items():
            if entry.expires and entry.expires < now:
                expired.append(run_id)
            else:
                fresh[run_id] = (entry.status, entry.epoch)
        self.entries = fresh
        self.tracker.drop_gate_entries(expired)

    def _listen(self) -> None:
        interval = self.tracker.settings.gate_resync
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.tracker.subscribe_gate()
                self.resync()  # anything published before we subscribed
                self.outage.up()
                next_sync = time.monotonic() + interval
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=max(0.0, next_sync - time.monotonic()))
                    if message and message.get("type") == "message":
                        self.apply(*GateEntry.from_message(str(message["data"])))
                    if time.monotonic() >= next_sync:
                        self.resync()
                        next_sync = time.monotonic() + interval
            except (redis.RedisError, OSError, TrackerError) as e:  # TrackerUnavailable is an OSError
                self.outage.down(e)
                self._stop.wait(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection
                        pubsub.close()
