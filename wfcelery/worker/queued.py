"""The reconciler's checks of QUEUED nodes: is the message that should start them still there?

Two rules, each re-sending a node under a new epoch (its old message, if it ever arrives, is stale):

* **lost message** (``wfcelery_lost_message_after``, 20 s): a node QUEUED that long whose message the
  broker shows is nowhere -- in no queue, delivered to no worker (messaging/broker_scan.py) -- on two
  checks in a row, at least a second apart (a message moving from the queue to a worker is in neither
  for a moment). A Redis broker without persistence restarted, a queue purged: the run goes on within
  about half a minute. Runs of the counters executor only (a canvas run's messages carry its next
  nodes; they stay with the timeout), and only where the broker can tell (a short enough queue).
* **queued timeout** (``wfcelery_queued_timeout``, 30 min): a node QUEUED at the same epoch that long,
  whatever the broker says (a transport that cannot be read, a backlog too long to read); once per epoch,
  never again at an epoch this rule gave, so a node waiting in a long backlog is not sent to the back of
  it again and again.

A node's QUEUED age is counted from when this reconciler first saw it QUEUED at its epoch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from wfcelery.definition.executor import Executor
from wfcelery.messaging.broker_scan import find_missing
from wfcelery.messaging.consumers import node_queue
from wfcelery.settings import Settings
from wfcelery.tracker.keys import Slot, split_slot, task_id
from wfcelery.tracker.records import NodeRecord, RunRecord

logger = logging.getLogger("wfcelery.reconciler")

#: Seconds between the two checks that must both find a message missing.
CONFIRM_AFTER = 1.0
#: Entries kept at most in each memory (a sweep over more forgets and starts counting again).
MEMORY = 100_000

Seen = tuple[str, Slot, int]  # (run, node, epoch)


@dataclass(frozen=True)
class Waiting:
    """A node QUEUED long enough for its message to be looked for."""

    run_id: str
    slot: Slot
    name: str
    node: NodeRecord
    queue: str
    age: float


#: How a check re-sends a node (the reconciler's ``_requeue``): run, slot, name, the node record read (the
#: fence), why, and the set that records the new epoch once sent.
Requeue = Callable[[str, Slot, str, NodeRecord, str, set[Seen]], list[Any]]


def node_name(plan: Any, slot: Slot) -> str:
    """A node's name, or ``name[i]`` for instance i of a mapped node."""
    index, instance = split_slot(slot)
    name: str = plan.nodes[index].name
    return name if instance is None else f"{name}[{instance}]"


class QueuedChecks:
    """The memories both rules need (one per reconciler) and the rules themselves."""

    def __init__(self, app: Any, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._since: dict[Seen, float] = {}
        self._resent: set[Seen] = set()  # epochs these rules gave
        self._waiting: dict[str, Waiting] = {}  # task id -> node, collected during one sweep
        self._missing: dict[str, float] = {}  # task id -> when a check first found its message nowhere

    def run_queued(
        self, run_id: str, record: RunRecord, plan: Any, queued: dict[Slot, NodeRecord], requeue: Requeue
    ) -> list[Any]:
        """One RUNNING run's QUEUED nodes during a sweep: re-send those past the queued timeout now; keep
        those old enough for :meth:`lost_messages`, which runs once the sweep has read every run."""
        now, repairs = time.monotonic(), []
        lost_after, timeout = self.settings.lost_message_after, self.settings.queued_timeout
        for slot, node in queued.items():
            seen = (run_id, slot, node.epoch)
            age = now - self._since.setdefault(seen, now)
            if timeout > 0 and age >= timeout and seen not in self._resent:
                why = f"QUEUED {timeout:g} s (wfcelery_queued_timeout): its message may be lost"
                repairs += requeue(run_id, slot, node_name(plan, slot), node, why, self._resent)
            elif lost_after > 0 and age >= lost_after and record.executor is Executor.COUNTERS:
                spec = plan.nodes[split_slot(slot)[0]]
                queue = node_queue(self.app, spec.task, spec.queue)
                tid, name = task_id(run_id, slot, node.epoch), node_name(plan, slot)
                self._waiting[tid] = Waiting(run_id, slot, name, node, queue, age)
        for memory in (self._since, self._resent):
            if len(memory) > MEMORY:
                memory.clear()
        return repairs

    def lost_messages(self, live_workers: Callable[[], Iterable[str]], requeue: Requeue) -> list[Any]:
        """Look for the collected nodes' messages in the broker; re-send those found nowhere by this check
        and by an earlier one at least :data:`CONFIRM_AFTER` seconds before."""
        waiting, self._waiting = self._waiting, {}
        if not waiting:
            self._missing.clear()
            return []
        by_queue: dict[str, set[str]] = {}
        for tid, w in waiting.items():
            by_queue.setdefault(w.queue, set()).add(tid)
        try:
            missing = find_missing(self.app, by_queue, live_workers())
        except Exception as e:  # the broker cannot be read now: nothing is shown missing
            logger.debug("wfcelery reconciler: cannot look for messages in the broker: %s", e)
            missing = set()
        now, repairs = time.monotonic(), []
        self._missing = {tid: self._missing.get(tid, now) for tid in missing}
        for tid in missing:
            if now - self._missing[tid] < CONFIRM_AFTER:
                continue
            w = waiting[tid]
            why = (
                f"its message is in no queue and with no worker (queue {w.queue!r}, QUEUED {w.age:.0f} s): "
                "lost by the broker"
            )
            repairs += requeue(w.run_id, w.slot, w.name, w.node, why, self._resent)
            del self._missing[tid]
        return repairs
