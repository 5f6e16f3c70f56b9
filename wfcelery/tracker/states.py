"""Node and run states, and the one transition table (mirrored in lua/*.lua).

Nodes move forward only::

    PENDING -> QUEUED -> RUNNING -> SUCCEEDED
                  ^         |  \\-> FAILED
                  |         v
                  +---- RETRYING
    PENDING/QUEUED/RETRYING -> SKIPPED (a parent failed, policy "continue")
    PENDING/QUEUED/RETRYING/RUNNING -> REVOKED (pause, cancel, fail_fast)

A node with no task -- a wait for a signal, a durable sleep, a child workflow -- is QUEUED when released
like any node, then WAITING (it holds no worker and no message) until its signal, its timer or its child
run settles it::

    QUEUED -> WAITING -> SUCCEEDED | FAILED (timeout, child run failed) | REVOKED (cancel, fail_fast)

A task node in a pool whose slots or rate are used up is WAITING too (no message is out), until the pool
releases it: then QUEUED and published (ops/pools.py)::

    QUEUED -> WAITING (for pool db) -> QUEUED -> RUNNING ...

Only control operations (resume, retry) move a REVOKED/FAILED/SKIPPED node back to QUEUED, and they
do it under a new run *epoch* so that no message of the old epoch can run again.

In Redis a node's status is one character (the ``code``), to keep the tracker small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from wfcelery.definition.executor import Executor
from wfcelery.definition.waits import NodeKind


class NodeStatus(str, Enum):
    """Where one node (or instance of a mapped node) is; the module docstring draws the moves."""

    PENDING = "PENDING"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    REVOKED = "REVOKED"
    WAITING = "WAITING"  # a node with no task: for a signal, a timer or a child run (docs: waiting)

    @property
    def code(self) -> str:
        """The one-letter form stored in Redis."""
        return _NODE_CODES[self]

    @classmethod
    def from_code(cls, code: str) -> NodeStatus:
        """The status whose one-letter Redis form is ``code`` (the inverse of :attr:`code`)."""
        return _NODE_BY_CODE[code]

    @property
    def terminal(self) -> bool:
        """True for statuses a node never leaves on its own."""
        return self in (NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.REVOKED)

    def __str__(self) -> str:
        return self.value


class RunStatus(str, Enum):
    """Where a whole run is: QUEUED while its workflow's ``max_active_runs`` is reached (ops/admission.py),
    then RUNNING or PAUSED until it ends SUCCEEDED, FAILED or CANCELLED (:data:`RUN_TRANSITIONS`)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        """True for SUCCEEDED, FAILED and CANCELLED."""
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)

    @property
    def code(self) -> str:
        """The one-letter form of gate entries (the first letters differ)."""
        return self.value[0]

    @classmethod
    def from_code(cls, code: str) -> RunStatus:
        """The status whose one-letter form is ``code`` (the inverse of :attr:`code`)."""
        return _RUN_BY_CODE[code]

    def __str__(self) -> str:
        return self.value


_NODE_CODES = {
    NodeStatus.PENDING: "P",
    NodeStatus.QUEUED: "Q",
    NodeStatus.RUNNING: "R",
    NodeStatus.RETRYING: "Y",
    NodeStatus.SUCCEEDED: "S",
    NodeStatus.FAILED: "F",
    NodeStatus.SKIPPED: "K",
    NodeStatus.REVOKED: "X",
    NodeStatus.WAITING: "W",
}
_NODE_BY_CODE = {code: status for status, code in _NODE_CODES.items()}
_RUN_BY_CODE = {status.code: status for status in RunStatus}

#: Allowed worker-driven transitions. The Lua scripts implement them; the test suite checks every
#: transition logged by every run it makes against this table (tests/conftest.py).
TRANSITIONS: dict[NodeStatus, frozenset[NodeStatus]] = {
    NodeStatus.PENDING: frozenset(
        # RUNNING: under the canvas executor Celery publishes a chain's next step before the step that
        # ran reports its success, so the next node can start before the tracker released it
        {NodeStatus.QUEUED, NodeStatus.SKIPPED, NodeStatus.REVOKED, NodeStatus.RUNNING}
    ),
    NodeStatus.QUEUED: frozenset(
        {
            NodeStatus.RUNNING,
            NodeStatus.SKIPPED,
            NodeStatus.REVOKED,
            NodeStatus.FAILED,
            NodeStatus.QUEUED,  # the reconciler re-publishes a node QUEUED past wfcelery_queued_timeout
            NodeStatus.WAITING,  # a node with no task, armed by the release path (ops/lua/arm.lua)
        }
    ),
    NodeStatus.RUNNING: frozenset(
        {
            NodeStatus.RUNNING,
            NodeStatus.RETRYING,
            NodeStatus.SUCCEEDED,
            NodeStatus.FAILED,
            NodeStatus.REVOKED,
            NodeStatus.QUEUED,  # the reconciler re-publishes a node whose worker is gone, under a new epoch
        }
    ),
    NodeStatus.RETRYING: frozenset(
        {NodeStatus.RUNNING, NodeStatus.SKIPPED, NodeStatus.REVOKED, NodeStatus.FAILED}
    ),
    # signalled, its timer fired, its child run ended; a timeout fails it; cancel and fail_fast revoke it
    # QUEUED: a node waiting for a pool got its slot and its token (ops/lua/pool_wake.lua)
    NodeStatus.WAITING: frozenset(
        {NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.REVOKED, NodeStatus.QUEUED}
    ),
    NodeStatus.SUCCEEDED: frozenset(),
    NodeStatus.FAILED: frozenset(),
    NodeStatus.SKIPPED: frozenset(),
    NodeStatus.REVOKED: frozenset(),
}


#: Allowed moves of a run's status, logged as the event log's ``run`` lines and checked against this table
#: by the test suite like :data:`TRANSITIONS`. A run starts RUNNING, or QUEUED when its workflow's
#: ``max_active_runs`` is reached (admit_run.lua starts it, halt.lua cancels it or fails it at its
#: deadline). RUNNING again after an end is a retry (replan.lua).
RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.PAUSED, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.RUNNING}
    ),
    RunStatus.PAUSED: frozenset(
        {RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED}
    ),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset({RunStatus.RUNNING}),
    RunStatus.CANCELLED: frozenset({RunStatus.RUNNING}),
}


class WaitKind(str, Enum):
    """What a WAITING node waits for."""

    SIGNAL = "signal"  # run.signal(): a wait node (wf.wait)
    TIME = "time"  # its timer: a durable sleep (wf.sleep)
    RUN = "run"  # its child run to end: a sub-workflow node (wf.add(..., workflow=...))
    POOL = "pool"  # a slot or a start of its pool (a task node with pool=...: ops/pools.py)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Waiting:
    """What a WAITING node waits for: a signal (until its timeout's deadline, if any), a time (when the
    sleep ends), or a child run. Times are Unix timestamps (seconds, Redis's clock)."""

    kind: WaitKind
    until: float | None = None
    run: str | None = None
    pool: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"for": "signal" | "time" | "run" | "pool", "until": <unix time | null>, "run": <child id |
        null>}``, and ``"pool": <name>`` for a pool."""
        d: dict[str, Any] = {"for": self.kind.value, "until": self.until, "run": self.run}
        if self.pool is not None:
            d["pool"] = self.pool
        return d


@dataclass(frozen=True)
class NodeState:
    """Where one node of a run stands. Times are Unix timestamps (seconds, Redis's clock)."""

    name: str
    status: NodeStatus
    attempts: int
    task_id: str
    queue: str | None
    worker: str | None
    started_at: float | None
    finished_at: float | None
    error: dict[str, Any] | None
    epoch: int
    index: int
    instance: int | None = None  # i for instance ``node[i]`` of a mapped node (``index`` is the node's)
    #: Every attempt's error, oldest first: ``{attempt, at, type, message}`` (``at``: a Unix timestamp, as
    #: ``started_at``). Kept after a later attempt succeeds; ``error`` is the current attempt's only.
    errors: tuple[dict[str, Any], ...] = ()
    #: While WAITING: what the node waits for (a signal, a time, its child run); else None.
    waiting: Waiting | None = None
    #: A sub-workflow node's child run, once it was started (kept after the node settled).
    child_run: str | None = None
    #: A task, or a node with no task: a wait, a sleep, a sub-workflow.
    kind: NodeKind = NodeKind.TASK

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one node in ``wfcelery status --json``."""
        return {
            "name": self.name,
            "status": self.status.value,
            "attempts": self.attempts,
            "task_id": self.task_id,
            "queue": self.queue,
            "worker": self.worker,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "error": self.error,
            "errors": [dict(e) for e in self.errors],
            "kind": self.kind.value,
            "waiting": None if self.waiting is None else self.waiting.to_dict(),
            "child_run": self.child_run,
        }


@dataclass(frozen=True)
class RunState:
    """A snapshot of a whole run, read in one round trip by :meth:`wfcelery.Run.state`."""

    id: str
    name: str
    status: RunStatus
    epoch: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    paused_at: float | None
    policy: str
    params: dict[str, Any]
    nodes: dict[str, NodeState] = field(default_factory=dict)
    #: Queues where nodes of this run wait that no live worker consumes (see :meth:`wfcelery.Run.state`).
    idle_queues: tuple[str, ...] = ()
    #: How the run is executed (see :class:`~wfcelery.definition.executor.Executor`).
    executor: Executor = Executor.COUNTERS
    #: The run's key (``submit(run_key=...)``; a schedule's runs: ``schedule:<name>:<slot>``), if any.
    run_key: str | None = None

    # How a run is counted, everywhere (status, list, watch, the REST API, the dashboard): its *nodes* are
    # the definition's nodes -- a mapped node is one node, with the status of its map as a whole -- and the
    # *instances* of its mapped nodes (``resize[0]``, ``resize[1]``...) are counted apart. ``nodes`` holds
    # both, by name.
    #: A child run (a sub-workflow node's): ``(parent run id, node name)``; None for a top-level run.
    parent: tuple[str, str] | None = None
    #: Why the run failed as a whole, when no node's error says it: ``{"type": "DeadlineExceeded",
    #: "message": "deadline exceeded"}``; else None.
    error: dict[str, Any] | None = None
    #: When the run fails if it has not ended (Unix time; its ``deadline``), else None.
    deadline_at: float | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Number of nodes in each node status (every status present, zeros included); instances of
        mapped nodes are in :attr:`instance_counts`."""
        return _count(n for n in self.nodes.values() if n.instance is None)

    @property
    def instance_counts(self) -> dict[str, int]:
        """Number of instances of mapped nodes in each node status (zeros included)."""
        return _count(n for n in self.nodes.values() if n.instance is not None)

    @property
    def total(self) -> int:
        """Number of nodes (the definition's; a mapped node counts once)."""
        return sum(1 for n in self.nodes.values() if n.instance is None)

    @property
    def done(self) -> int:
        """Nodes that ended (SUCCEEDED, FAILED, SKIPPED or REVOKED)."""
        return sum(1 for n in self.nodes.values() if n.instance is None and n.status.terminal)

    @property
    def instances(self) -> int:
        """Number of instances the run's mapped nodes expanded to so far."""
        return sum(1 for n in self.nodes.values() if n.instance is not None)

    @property
    def finished(self) -> bool:
        """True once the run ended (SUCCEEDED, FAILED or CANCELLED)."""
        return self.status.finished

    def to_dict(self) -> dict[str, Any]:
        """The stable JSON shape of ``wfcelery status --json`` (docs: running and control)."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "policy": self.policy,
            "executor": self.executor.value,
            "run_key": self.run_key,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "paused_at": self.paused_at,
            "params": self.params,
            "total": self.total,
            "done": self.done,
            "counts": self.counts,
            "instances": self.instances,
            "instance_counts": self.instance_counts,
            "nodes": {name: n.to_dict() for name, n in self.nodes.items()},
            "idle_queues": list(self.idle_queues),
            "parent": None if self.parent is None else {"run": self.parent[0], "node": self.parent[1]},
            "error": self.error,
            "deadline_at": self.deadline_at,
        }


def _count(nodes: Any) -> dict[str, int]:
    counts = {status.value: 0 for status in NodeStatus}
    for node in nodes:
        counts[node.status.value] += 1
    return counts
