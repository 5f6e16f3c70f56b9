"""The worker's in-memory gate: which runs' messages to drop before they reach the pool.

Revoke broadcasts are an optimisation (a worker that is down misses them); this gate is the cheap first
line of the guarantee. It lives in the worker's main process and answers from memory: the set of runs
that are paused, cancelled or failed (up to which epoch). A
thread keeps it fresh from Redis pub/sub and resyncs the whole table every ``wfcelery_gate_resync``
seconds. The authoritative check is the ``start`` Lua script run just before a task body (see hooks.py),
which is atomic with pause/cancel; this gate only spares most of those round trips and drops queued
messages without handing them to the pool.

Gate entries (``<prefix>:gate`` HASH, run id -> entry): ``<letter><epoch>:<expires unix time>``, letter
P (paused), C (cancelled), F (failed), R (running again after resume/retry: open; stale messages of
older epochs are refused by the start script, which alone knows each node's epoch).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from .tracker import Tracker

logger = logging.getLogger("wfcelery.gate")


def parse_entry(entry: str) -> tuple[str, int, int]:
    head, _, expires = entry.partition(":")
    return head[0], int(head[1:]), int(expires or 0)


class Gate:
    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.entries: dict[str, tuple[str, int]] = {}
        self._started = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def closed(self, run_id: str, epoch: int) -> bool:
        """True when a message of this run and epoch must not run."""
        if not self._started:
            self.start()
        entry = self.entries.get(run_id)
        if entry is None:
            return False
        letter, gate_epoch = entry
        if letter == "R":
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
            except Exception as e:
                logger.warning("wfcelery gate: initial sync failed, will retry: %s", e)
            self._thread = threading.Thread(target=self._listen, name="wfcelery-gate", daemon=True)
            self._thread.start()
            self._started = True

    def stop(self) -> None:
        self._stop.set()

    def apply(self, run_id: str, entry: str) -> None:
        letter, epoch, _ = parse_entry(entry)
        self.entries[run_id] = (letter, epoch)

    def resync(self) -> None:
        now = int(time.time())
        fresh: dict[str, tuple[str, int]] = {}
        expired = []
        for run_id, entry in self.tracker.gate_entries().items():
            letter, epoch, expires = parse_entry(entry)
            if expires and expires < now:
                expired.append(run_id)
            else:
                fresh[run_id] = (letter, epoch)
        self.entries = fresh
        if expired:
            self.tracker.client.hdel(self.tracker.keys.gate, *expired)

    def _listen(self) -> None:
        interval = self.tracker.settings.gate_resync
        channel = self.tracker.keys.gate_channel
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self.tracker.client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(channel)
                self.resync()  # anything published before we subscribed
                next_sync = time.monotonic() + interval
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=max(0.0, next_sync - time.monotonic()))
                    if message and message.get("type") == "message":
                        run_id, _, entry = str(message["data"]).partition(" ")
                        self.apply(run_id, entry)
                    if time.monotonic() >= next_sync:
                        self.resync()
                        next_sync = time.monotonic() + interval
            except (redis.RedisError, OSError) as e:
                logger.warning("wfcelery gate: lost Redis (%s); retrying", e)
                self._stop.wait(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):  # closing a broken connection
                        pubsub.close()
