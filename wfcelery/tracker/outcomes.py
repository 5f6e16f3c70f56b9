"""What the Lua scripts answer, decoded once: a small typed result per script, closed sets as enums.

Callers compare members (``out.action is FailAction.RETRY``), never strings, and never index a reply.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from wfcelery.tracker.keys import Slot
from wfcelery.tracker.records import ParentLink
from wfcelery.tracker.runlimits import Admission


class StartReason(str, Enum):
    """start.lua's verdict: ``OK`` runs the body; the others say why it does not."""

    OK = "ok"
    GONE = "gone"  # the run was cleaned up or expired
    STALE = "stale"  # a message of an earlier epoch
    DONE = "done"  # the node already settled
    GATED = "gated"  # the run is paused or ended
    RUNNING = "running"  # a duplicate delivery of a node running elsewhere


class RepairAction(str, Enum):
    """repair.lua's answer (see its header)."""

    IGNORED = "ignored"
    REQUEUE = "requeue"
    REVOKED = "revoked"
    QUARANTINE = "quarantine"
    OK = "ok"
    FINISHED = "finished"
    VOIDED = "voided"


class CreateResult(str, Enum):
    """create.lua's and settle.lua's answer: whether the run is written (see their headers)."""

    CREATED = "created"  # create.lua wrote it
    EXISTS = "exists"  # it was there already: an earlier delivery of the same create wrote it
    VOID = "void"  # its tombstone is there: it is not, and never will be, written


class FailMode(str, Enum):
    """How a node's attempt ended, as fail.lua is told (ARGV[4])."""

    FAILED = "failed"  # the task raised
    RETRYING = "retrying"  # Celery itself retries it (Task.retry)
    REVOKED = "revoked"  # revoked by hand or expired
    QUARANTINED = "quarantined"  # the reconciler gave up on it


class FailAction(str, Enum):
    """fail.lua's answer (see its header)."""

    IGNORED = "ignored"
    GONE = "gone"
    RETRYING = "retrying"
    RETRY = "retry"
    DEFERRED = "deferred"  # a retry while the run is paused: resume queues it
    FAILED = "failed"


def decode_slot(field: Any) -> Slot:
    """A hash field or reply item: a node index, or an instance's ``"<node>:<i>"``."""
    text = str(field)
    return int(text) if text.isdigit() else text


def decode_pairs(flat: Sequence[Any]) -> tuple[tuple[Slot, int], ...]:
    return tuple((decode_slot(flat[i]), int(flat[i + 1])) for i in range(0, len(flat) - 1, 2))


@dataclass(frozen=True)
class Finish:
    """A run just ended (returned exactly once, by the script that ended it)."""

    status: str
    callback: str | None  # the on_success / on_failure signature as JSON, if the run has one
    epoch: int
    run_key: str | None = None  # the run's key, if it has one: it gets the run's TTL
    created_ms: int = 0  # when the run was created (its key in the history index)
    parent: ParentLink | None = None  # a child run's parent run and node (ops.subruns.after_end)
    admission: Admission | None = None  # its admission group: the end admits the next (ops.admission)

    @classmethod
    def from_reply(cls, reply: Any) -> Finish | None:
        if not reply:
            return None
        run_key = (reply[3] or None) if len(reply) > 3 else None
        created = int(reply[4]) if len(reply) > 4 and reply[4] else 0
        parent = ParentLink.decode(reply[5]) if len(reply) > 5 and reply[5] else None
        admission = Admission.decode(reply[6]) if len(reply) > 6 and reply[6] else None
        return cls(str(reply[0]), reply[1] or None, int(reply[2]), run_key, created, parent, admission)


@dataclass(frozen=True)
class RepairOutcome:
    """repair.lua: ``action`` (:class:`RepairAction`), the epoch
    to publish or fail the node at, deliveries that never finished, and the run's end if this ended it."""

    action: RepairAction
    epoch: int
    lost: int
    finish: Finish | None

    @classmethod
    def from_reply(cls, reply: Any) -> RepairOutcome:
        action, epoch, lost, finish = reply
        return cls(RepairAction(action), int(epoch), int(lost), Finish.from_reply(finish))


@dataclass(frozen=True)
class CreateOutcome:
    """create.lua: ``result``, and whether this call wrote the shared plan key (``plan_created``: only its
    creator may delete it again)."""

    result: CreateResult
    plan_created: bool = False

    @classmethod
    def from_reply(cls, reply: Any) -> CreateOutcome:
        result, plan = reply
        return cls(CreateResult(result), bool(int(plan)))


@dataclass(frozen=True)
class StartOutcome:
    """start.lua: run the body (``run`` and its attempt number), or why not (``reason``)."""

    run: bool
    reason: StartReason
    attempt: int = 0
    waited_ms: int | None = None  # how long the node waited QUEUED (None: not known, e.g. a retry)

    @classmethod
    def from_reply(cls, reply: Any) -> StartOutcome:
        verdict, _, rest = str(reply).partition(":")
        attempt, _, waited = rest.partition(":")
        reason = StartReason(verdict)
        return cls(reason is StartReason.OK, reason, int(attempt or 0), int(waited) if waited else None)


@dataclass(frozen=True)
class SucceedOutcome:
    """succeed.lua: the children this success released (with the run's epoch and params for them);
    ``gone`` when the run no longer exists (cleaned up or expired)."""

    finish: Finish | None
    epoch: int
    params: dict[str, Any] | None  # only when children were released
    released: tuple[int, ...]
    #: succeed.lua only: stored results (JSON, None for none) of the nodes asked for with ``fetch``
    inputs: dict[int, str | None] = field(default_factory=dict)
    #: succeed.lua only: the attempt number of the inline child it started (0: none)
    inline: int = 0
    #: succeed.lua only: this report was recorded (False: a stale or duplicate one, or a deleted run)
    recorded: bool = False
    #: succeed.lua only: the node's start, when this report recorded it too (a local gate's start)
    started: StartOutcome | None = None
    #: succeed.lua only, with a pool step: the node's slot given back in the same step
    pool: PoolReturn | None = None

    @property
    def gone(self) -> bool:
        return self.epoch < 0

    @classmethod
    def from_reply(cls, reply: Any) -> SucceedOutcome:
        finish, epoch, params, released, *rest = reply
        pairs = rest[0] if rest else []
        inline = int(rest[1] or 0) if len(rest) > 1 else 0
        started = StartOutcome.from_reply(f"ok:{rest[2]}") if len(rest) > 2 and rest[2] else None
        pool = PoolReturn.from_reply(rest[3]) if len(rest) > 3 and rest[3] else None
        return cls(
            Finish.from_reply(finish),
            int(epoch),
            json.loads(params) if params else None,
            tuple(int(c) for c in released),
            {int(pairs[i]): pairs[i + 1] or None for i in range(0, len(pairs), 2)},
            inline,
            bool(rest),  # succeed.lua returns its extra items only when it recorded the success
            started,
            pool,
        )


@dataclass(frozen=True)
class PoolReturn:
    """A pooled node's slot given back by its success's own script (one Redis server: succeed.lua with a
    pool step): whether it held one, the ms until the pool's next token (0: none owed), and the waiting
    members the freed slot was granted to (the caller wakes and publishes them)."""

    released: int
    next_token_ms: int
    granted: tuple[str, ...]

    @classmethod
    def from_reply(cls, reply: Any) -> PoolReturn:
        return cls(int(reply[0]), int(reply[1]), tuple(reply[2:]))


@dataclass(frozen=True)
class FailOutcome:
    """fail.lua: ``action`` is 'ignored', 'gone' (no such run), 'retrying' (Celery retries), 'retry'
    (re-publish at ``epoch`` after a backoff for ``attempts``, counted since the node's retries were last
    given), 'deferred' (a retry the paused run's resume queues) or 'failed' (for good; ``revoke`` the
    queued nodes fail_fast ended; ``released``: nodes a trigger rule queued at ``epoch``, to publish with
    ``params``)."""

    action: FailAction
    epoch: int
    attempts: int
    finish: Finish | None
    revoke: tuple[tuple[Slot, int], ...]
    released: tuple[int, ...] = ()
    params: dict[str, Any] | None = None

    @classmethod
    def from_reply(cls, reply: Any) -> FailOutcome:
        action, epoch, attempts, finish, revoke, released, params = reply
        return cls(
            FailAction(action),
            int(epoch),
            int(attempts),
            Finish.from_reply(finish),
            decode_pairs(revoke),
            tuple(int(i) for i in released),
            json.loads(params) if params else None,
        )


@dataclass(frozen=True)
class HaltOutcome:
    """halt.lua: the run's status before and after; (index, epoch) of its queued and running nodes."""

    before: str
    after: str
    finish: Finish | None
    epoch: int
    queued: tuple[tuple[Slot, int], ...]
    running: tuple[tuple[Slot, int], ...]

    @property
    def changed(self) -> bool:
        return self.before != self.after

    @classmethod
    def from_reply(cls, reply: Any) -> HaltOutcome:
        before, after, finish, epoch, queued, running = reply
        return cls(
            str(before),
            str(after),
            Finish.from_reply(finish),
            int(epoch),
            decode_pairs(queued),
            decode_pairs(running),
        )


@dataclass(frozen=True)
class ReplanOutcome:
    """replan.lua: ``replanned`` is False when refused or a no-op (``before`` says why); else the new
    ``epoch`` and the nodes queued under it."""

    before: str
    replanned: bool
    epoch: int = 0
    finish: Finish | None = None
    queued: tuple[int, ...] = ()
    instances: tuple[str, ...] = ()  # instance slots of mapped nodes queued again

    @classmethod
    def from_reply(cls, reply: Any) -> ReplanOutcome:
        if len(reply) == 1:
            return cls(str(reply[0]), False)
        before, epoch, finish, queued, instances = reply
        return cls(
            str(before),
            True,
            int(epoch),
            Finish.from_reply(finish),
            tuple(int(i) for i in queued),
            tuple(str(i) for i in instances),
        )
