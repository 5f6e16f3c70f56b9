"""Which queue a node's message goes to, and which queues live workers consume.

A node's queue is its ``queue`` / ``type`` when it has one; otherwise the app's own router decides, as for
any Celery task (``task_routes``, then ``task_default_queue``). :func:`node_queue` asks that router, so
``graph``, ``status`` and :class:`~wfcelery.RunState` show the queue Celery really picks.

Live consumers come from Celery's ``active_queues`` broadcast (what ``inspect().active_queues()`` sends):
one round trip that waits ``timeout`` seconds for the workers' replies, so the answer is cached for
:data:`CACHE_SECONDS`. A broker that cannot broadcast, or a check that fails, gives an *unknown* answer
(``Consumers.known`` is False): nothing is then reported as unconsumed -- a warning must never be a guess.

Replies are read one by one, not merged by node name as ``inspect()`` merges them: two workers started
without their own ``-n`` share ``celery@<host>``, and a merge would keep one of their queue lists and
report the other's queues as unconsumed. Their queues are joined instead, and the shared name is reported
(``Consumers.shared``) with the fix: ``-n io@%h``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger("wfcelery.consumers")

#: Seconds to wait for the workers' replies to ``active_queues`` (Celery's ``inspect`` default).
DEFAULT_INSPECT_TIMEOUT = 1.0
#: Seconds an ``active_queues`` answer is used before it is refreshed (in the background).
CACHE_SECONDS = 10.0
#: An answer that leaves a queue unconsumed is asked again, waiting this many times longer, before it is
#: reported: a busy worker's reply can miss the first window, and a warning must not be a guess.
CONFIRM_FACTOR = 4.0


def node_queue(app: Any, task: str, queue: str | None) -> str:
    """The queue a node's message is sent to: ``queue`` if set, else what the app's router picks."""
    if queue:
        return queue
    try:
        routed = app.amqp.router.route({}, task, (), {})
    except Exception:  # a router function that fails on empty args: Celery would fail at send, not us
        return str(app.conf.task_default_queue)
    target = routed.get("queue")
    return str(getattr(target, "name", target) or app.conf.task_default_queue)


@dataclass(frozen=True)
class Consumers:
    """Queues the live workers consume, by worker. ``known`` is False when the check could not run."""

    known: bool
    workers: Mapping[str, frozenset[str]] = field(default_factory=dict)
    checked_at: float = 0.0
    reason: str = ""
    #: Node names more than one worker answered under (workers started without their own ``-n``).
    shared: tuple[str, ...] = ()
    #: True when the answer came from the longer, confirming wait (:meth:`ConsumerCheck.confirm`).
    confirmed: bool = False

    @property
    def queues(self) -> frozenset[str]:
        """Every queue at least one live worker consumes."""
        return frozenset().union(*self.workers.values()) if self.workers else frozenset()

    def missing(self, queues: Iterable[str]) -> list[str]:
        """The queues of ``queues`` that no live worker consumes (none when the answer is unknown)."""
        if not self.known:
            return []
        consumed = self.queues
        return sorted({q for q in queues if q not in consumed})


_DISABLED = Consumers(known=False, reason="the check is disabled (wfcelery_inspect_timeout = 0)")


class ConsumerCheck:
    """``inspect().active_queues()`` for one app; thread-safe.

    The first call waits for the workers' replies (at most ``timeout`` seconds). Later calls answer from
    memory: an answer older than ``ttl`` is refreshed in a background thread while the old one is still
    returned, so a busy submit loop never stalls on the broadcast.
    """

    def __init__(self, app: Any, timeout: float = DEFAULT_INSPECT_TIMEOUT, ttl: float = CACHE_SECONDS):
        self.app = app
        self.timeout = timeout
        self.ttl = ttl
        self._lock = threading.Lock()
        self._cached: Consumers | None = None
        self._refreshing = False

    def get(self, refresh: bool = False) -> Consumers:
        """The live workers' queues; ``refresh=True`` waits for a fresh answer."""
        if self.timeout <= 0:
            return _DISABLED
        cached = self._cached
        if refresh or cached is None:
            with self._lock:
                if refresh or self._cached is None:
                    self._cached = self._ask()
                return self._cached
        if time.monotonic() - cached.checked_at >= self.ttl and not self._refreshing:
            self._refreshing = True
            threading.Thread(target=self._refresh, name="wfcelery-consumers", daemon=True).start()
        return cached

    def confirm(self, queues: Iterable[str]) -> Consumers:
        """The live workers' queues, asked again with a longer wait when ``queues`` look unconsumed.

        Called before a warning or a refusal is given: the first answer waited ``timeout`` seconds, and a
        worker busy with work (or a loaded machine) may answer later than that. An answer that was itself
        confirmed is not asked again, so a queue that really has no worker costs one longer wait per ``ttl``.
        """
        cached = self.get()
        if self.timeout <= 0 or cached.confirmed or not cached.missing(queues):
            return cached
        with self._lock:
            if self._cached is cached:
                self._cached = self._ask(self.timeout * CONFIRM_FACTOR, confirmed=True)
            return self._cached if self._cached is not None else cached

    def _refresh(self) -> None:
        try:
            fresh = self._ask()
            with self._lock:
                self._cached = fresh
        finally:
            self._refreshing = False

    def _ask(self, timeout: float | None = None, confirmed: bool = False) -> Consumers:
        now = time.monotonic()
        try:
            replies = (
                self.app.control.broadcast("active_queues", reply=True, timeout=timeout or self.timeout) or []
            )
        except NotImplementedError:  # a transport without broadcast (SQS, ...)
            return Consumers(known=False, checked_at=now, reason="the broker cannot broadcast")
        except Exception as e:  # the broker is down: submit's publish reports that, clearly
            logger.debug("wfcelery: active_queues failed: %r", e)
            return Consumers(known=False, checked_at=now, reason=f"{type(e).__name__}: {e}")
        workers: dict[str, set[str]] = {}
        shared: set[str] = set()
        for reply in replies:
            for name, queues in (reply or {}).items() if isinstance(reply, dict) else ():
                if name in workers:
                    shared.add(name)
                found = workers.setdefault(name, set())
                found.update(q["name"] for q in queues or () if isinstance(q, dict) and q.get("name"))
        return Consumers(
            known=True,
            workers={name: frozenset(queues) for name, queues in workers.items()},
            checked_at=now,
            shared=tuple(sorted(shared)),
            confirmed=confirmed,
        )


def unconsumed(consumers: Consumers, node_queues: Mapping[str, str]) -> dict[str, list[str]]:
    """``{queue: [node, ...]}`` for the nodes (``{node: queue}``) whose queue no live worker consumes."""
    missing = set(consumers.missing(node_queues.values()))
    out: dict[str, list[str]] = {}
    for node, queue in node_queues.items():
        if queue in missing:
            out.setdefault(queue, []).append(node)
    return out


#: Nodes named per queue in a warning; the rest are counted ("and 9,990 more").
NAMED_NODES = 10


def describe(missing: Mapping[str, list[str]]) -> list[str]:
    """One warning line per queue nobody reads, naming its nodes (the first few: a 10,000-node fan-out
    stays one readable line) and the worker option that fixes it."""
    return [
        f"no live worker consumes queue {queue!r} (node{'s' if len(nodes) > 1 else ''} "
        f"{_names(nodes)}): they will wait until a worker runs with -Q {queue}"
        for queue, nodes in missing.items()
    ]


def _names(nodes: list[str]) -> str:
    named = ", ".join(nodes[:NAMED_NODES])
    return named if len(nodes) <= NAMED_NODES else f"{named} and {len(nodes) - NAMED_NODES:,} more"


def describe_shared(consumers: Consumers) -> list[str]:
    """One warning line per node name several workers answered under, with the fix."""
    return [
        f"several workers run under one node name {name!r}: start each with its own -n (for example "
        "-n io@%h and -n cpu@%h); Celery's remote control, revokes and Flower tell workers apart by it"
        for name in consumers.shared
    ]
