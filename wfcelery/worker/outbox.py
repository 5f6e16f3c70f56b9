"""Transitions a worker could not report: kept on local disk, delivered in order when the tracker is back.

A hook that cannot reach the tracker first retries with backoff for a bounded time (``wfcelery_report_retry``
seconds, the message still unacknowledged: with acks_late a worker that dies meanwhile gets the message
redelivered). Past that, the report goes to this outbox -- a SQLite file per worker node name, written
with ``synchronous=FULL`` before the hook returns -- and the task's message is acknowledged as usual. The
worker's main process replays the outbox in order (oldest first; a report is deleted only once the
tracker took it) every second (``worker._Replayer``) and at startup, so a worker restarted under
the same name delivers what its predecessor kept.

Why this is safe: every report is an idempotent, fenced Lua call (node index, epoch, attempt), so a
report delivered twice -- once by a slow first try that did reach Redis, once from the outbox -- is
ignored the second time; releases happen in the same call, so no child is released twice. Why SQLite:
stdlib, one file, transactional across the prefork pool's processes (WAL), no server.

Where it cannot help: a worker whose disk is gone with it. The reconciler covers that case (a node
RUNNING on a dead worker is re-published).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

logger = logging.getLogger("wfcelery.outbox")

#: Seconds SQLite waits for another process's write lock.
LOCK_TIMEOUT = 30.0


class ReportKind(str, Enum):
    """What a kept report records: a node's success or failure, children released, a node re-sent."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RELEASED = "released"
    REPUBLISH = "republish"


@dataclass(frozen=True)
class Report:
    """One kept transition: its ``kind`` and the hook's arguments (JSON data)."""

    id: int
    kind: ReportKind
    payload: dict[str, Any]
    created: float


class Outbox:
    """A durable FIFO of reports in one SQLite file; safe to share between the processes of one worker."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._pid = os.getpid()

    @classmethod
    def for_worker(cls, directory: str | Path, hostname: str) -> Outbox:
        """The outbox of worker ``hostname`` (``celery@host``) in ``directory``."""
        safe = re.sub(r"[^A-Za-z0-9_.@-]", "_", hostname or "worker")
        return cls(Path(directory).expanduser() / f"{safe}.sqlite")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # One connection per thread and process: prefork children must not use the parent's connection.
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS reports ("
                "id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, payload TEXT NOT NULL, "
                "created REAL NOT NULL)"
            )
            self._local.conn = conn
        yield conn

    def put(self, kind: ReportKind, payload: dict[str, Any]) -> None:
        """Keep one report; it is on disk when this returns."""
        with self._db() as db:
            db.execute(
                "INSERT INTO reports (kind, payload, created) VALUES (?, ?, ?)",
                (kind, json.dumps(payload), time.time()),
            )

    def pending(self) -> list[Report]:
        """Every kept report, oldest first."""
        if not self.path.exists():
            return []
        with self._db() as db:
            rows = db.execute("SELECT id, kind, payload, created FROM reports ORDER BY id").fetchall()
        return [
            Report(i, ReportKind(kind), json.loads(payload), created) for i, kind, payload, created in rows
        ]

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        with self._db() as db:
            return int(db.execute("SELECT COUNT(*) FROM reports").fetchone()[0])

    def replay(self, deliver: Callable[[Report], None]) -> int:
        """Deliver kept reports in order, deleting each once ``deliver`` returned. Stops at the first
        report that raises (the tracker is still away) and keeps it and those after it. Returns how many
        were delivered."""
        delivered = 0
        for report in self.pending():
            try:
                deliver(report)
            except Exception as e:
                logger.debug("wfcelery outbox: %d report(s) still kept (%s)", len(self), e)
                break
            with self._db() as db:
                db.execute("DELETE FROM reports WHERE id = ?", (report.id,))
            delivered += 1
        if delivered:
            logger.info("wfcelery outbox: delivered %d kept report(s)", delivered)
        return delivered


def with_retry(
    call: Callable[[], Any],
    retryable: tuple[type[BaseException], ...],
    budget: float,
    first_delay: float = 0.1,
    max_delay: float = 2.0,
) -> Any:
    """Run ``call``; on a ``retryable`` error retry with exponential backoff until ``budget`` seconds have
    passed, then raise the last error."""
    deadline = time.monotonic() + budget
    delay = first_delay
    while True:
        try:
            return call()
        except retryable:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, max_delay)
