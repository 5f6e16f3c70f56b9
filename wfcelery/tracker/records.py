"""What wfcelery stores, and how: one encoder and one decoder per format, next to ``keys.py`` (where).

The key layout on the design page of the docs lists every key and points here for the
values; ``lua/_common.lua`` reads and writes the same node records, event lines and run-record fields.

* **run record** (``:run`` HASH): :class:`RunRecord` (the fields Python reads) and :func:`new_run`
  (the fields written at submit; create.lua adds :data:`UNCONFIRMED_FIELD`); Lua adds the counters and
  times it keeps. A field at its value in :data:`RUN_DEFAULTS` is not stored (readers default it).
* **node record** (``:nodes`` HASH value): ``status|epoch|attempts|started_ms|finished_ms|worker no.``
  and, once a retry of the run gave the node its retries again, ``|<attempts before it>`` --
  :class:`NodeRecord` (``queued_ms`` in the 5th field while QUEUED).
* **errors** (``:errors`` HASH): ``<slot>`` -> the latest error JSON (or a skip's reason), ``h:<slot>`` ->
  every attempt's error, oldest first -- :class:`NodeErrors`.
* **metrics** (``metrics`` HASH fields, the run-record fields ``ml``, ``mn``, ``mw``): ``counters.py``.
* **event line** (``:events`` STRING): ``<ms since created> <node index | run> <status>[ <epoch>]`` --
  :class:`Event`.
* **gate entry** (``gate`` HASH value, and ``<run id> <entry>`` on the gate channel):
  ``<status letter><epoch>:<expires unix time>`` -- :class:`GateEntry`.
* **dropped mark** (run record field ``u:<node>``): ``<epoch>|<ms>|<hostname>|<why>`` -- :class:`DroppedMark`.
* **heartbeat** (``worker:<hostname>`` STRING, written by ``lua/beat.lua``):
  ``<boot ms> @<beat ms>[,<task id>,...]`` -- :class:`WorkerBeat`.
* **canvas ids** (``x:<epoch>:<node>``) and **re-planned nodes** (``r:<epoch>``) of canvas-executor runs:
  :func:`canvas_field` / :func:`canvas_value` / :func:`canvas_ids`, :func:`remaining_field` /
  :func:`remaining_nodes`.
* **message headers** of every node's task message: ``wf_run``, ``wf_node``, ``wf_plan``.
* **wait mark** (run record field ``wt:<node>``) of a node with no task, written when it was armed:
  ``<s|t|r>|<ms, Redis clock, or empty>|<child run id or empty>`` -- :class:`WaitMark`; **parent link**
  of a child run (run record field ``parent``): ``<parent run>|<node index>|<node name>`` --
  :class:`ParentLink`.
* **timer** (``timers`` ZSET member, scored by its due time in ms): ``<run id>|<node>|<epoch>`` --
  :class:`TimerEntry`; **signal wait** (``signals`` ZSET member): ``<run id>|<node>`` -- the same, epoch 0.
* **run key claim** (``runkey:<key>`` STRING): ``<run id>|<claimed at, ms>`` -- :class:`RunKeyClaim`; the run
  record's ``key`` field names the key back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wfcelery.definition.executor import Executor
from wfcelery.definition.params import RUN_KEY_PARAM
from wfcelery.settings import DEFAULT_EVENTS_MAXLEN, DEFAULT_RUN_TTL
from wfcelery.tracker.keys import Slot
from wfcelery.tracker.runlimits import (
    ADMISSION_FIELD,
    DEADLINE_FIELD,
    DEADLINE_FIRED_FIELD,
    RUN_ERROR_FIELD,
    Admission,
    RunLimitFields,
)
from wfcelery.tracker.states import NodeStatus, RunStatus, Waiting, WaitKind

# -- message headers ----------------------------------------------------------------------------------------

#: Header with the run id (also shown in Flower through kwargsrepr).
RUN_HEADER = "wf_run"
#: Header with the node's name.
NODE_HEADER = "wf_node"
#: Header with the digest of the run's plan (spares the worker a read of the run record).
PLAN_HEADER = "wf_plan"


#: Shown in Flower's kwargs (kwargsrepr) with the run's key, so Flower's search finds a keyed run's tasks.
KEY_REPR = "wf_key"

#: Header of a message sent again under the same task id on purpose (a tracker-level retry).
RESEND_HEADER = "wf_resend"
#: Header of a message that may copy one already sent (a release published again after a lost reply or from
#: the outbox): its start asks the tracker (start.lua), never the worker's local gate (worker/gate.py).
COPY_HEADER = "wf_copy"


def message_headers(run_id: str, node: str, plan_digest: str) -> dict[str, str]:
    return {RUN_HEADER: run_id, NODE_HEADER: node, PLAN_HEADER: plan_digest}


def kwargs_repr(kwargs: Mapping[str, Any], run_id: str, node: str, params: Mapping[str, Any]) -> str:
    """What Flower shows (and searches) as a node task's kwargs: its own, the run id, the node's name and
    the run's key, if it has one (``kwargs:wf_run=<id>``, or the key, finds every task of a run)."""
    shown = {**kwargs, RUN_HEADER: run_id, NODE_HEADER: node}
    key = params.get(RUN_KEY_PARAM)
    if key is not None:
        shown[KEY_REPR] = key
    return repr(shown)


def plan_header(request: Any) -> str | None:
    """The plan digest a task request carries, if any."""
    return getattr(request, PLAN_HEADER, None)


# -- run record ---------------------------------------------------------------------------------------------

#: Prefix of the run-record fields that number the run's workers: ``w:<hostname>`` -> worker number.
WORKER_FIELD_PREFIX = "w:"
#: Prefix of the run-record fields that list the ids of a published canvas segment that are no node's
#: (``celery.accumulate`` barriers and pass-throughs): ``x:<epoch>:<first node>`` -> ids, space-separated.
CANVAS_FIELD_PREFIX = "x:"
#: Prefix of the run-record fields that count a mapped node's instances: ``m:<node>`` -> instances.
MAP_FIELD_PREFIX = "m:"
#: Prefix of the run-record fields where a worker marks a node's message it dropped: ``u:<node>`` ->
#: :class:`DroppedMark`.
DROPPED_FIELD_PREFIX = "u:"
#: Prefix of the run-record fields that say what a node with no task waits for: ``wt:<node>`` ->
#: :class:`WaitMark`.
WAIT_FIELD_PREFIX = "wt:"
#: Prefix of the run-record fields that name the pool a WAITING task node (or instance) waits for:
#: ``wp:<slot>`` -> pool name (ops/lua/pool_park.lua).
POOL_WAIT_PREFIX = "wp:"
#: Run-record field of a child run naming its parent run and node (:class:`ParentLink`).
PARENT_FIELD = "parent"
#: Run-record field of the run key a run holds (runs submitted or fired with one).
RUN_KEY_FIELD = "key"
#: Run-record field of a run its submit has not confirmed yet (create.lua writes it, the client deletes it
#: once the roots' messages are out): the Redis time (ms) after which the reconciler cancels the run if it
#: never started.
UNCONFIRMED_FIELD = "unconfirmed"


def unconfirmed_error() -> dict[str, str]:
    """The error every node of a run cancelled as unconfirmed carries (repair.lua 'void')."""
    message = (
        "cancelled unrun: its submit never completed (the client gave up waiting for the tracker's Redis "
        "and said nothing was submitted, or could not confirm that the run's first messages were sent)"
    )
    return {"type": "SubmitNotConfirmed", "message": message, "traceback": ""}


def remaining_field(epoch: int) -> str:
    """Run-record field: the nodes resume / retry planned again at ``epoch`` (comma-separated indexes),
    whose segments the canvas executor publishes in that epoch."""
    return f"r:{epoch}"


def remaining_nodes(raw: str | None) -> frozenset[int] | None:
    """A :func:`remaining_field` value as replan.lua writes it (None: no such field)."""
    return None if raw is None else frozenset(int(i) for i in raw.split(",") if i)


def canvas_field(epoch: int, first_node: int) -> str:
    return f"{CANVAS_FIELD_PREFIX}{epoch}:{first_node}"


def canvas_value(ids: Sequence[str]) -> str:
    """What a :func:`canvas_field` field holds: the ids, space-separated."""
    return " ".join(ids)


def canvas_ids(record: Mapping[str, str], epoch: int | None = None) -> list[str]:
    """The ids kept by :func:`canvas_field` fields of a raw run record (of one epoch, or all)."""
    head = CANVAS_FIELD_PREFIX if epoch is None else f"{CANVAS_FIELD_PREFIX}{epoch}:"
    return [i for f, v in record.items() if f.startswith(head) for i in v.split()]


#: Run-record fields new_run leaves out when they hold these values (every reader, Python and Lua, falls
#: back to them: ``_common.lua`` gets them prepended as ``RUN_DEFAULTS``). A finished run is kept for
#: ``wfcelery_run_ttl``, so its record's bytes count once per run kept: ~80 bytes of defaults each.
RUN_DEFAULTS: dict[str, str] = {
    "policy": "fail_fast",
    "ttl": str(DEFAULT_RUN_TTL),
    "maxlen": str(DEFAULT_EVENTS_MAXLEN),
    "executor": Executor.COUNTERS.value,
    "params": "{}",
}


def new_run(
    *,
    name: str,
    plan_digest: str,
    total: int,
    created_ms: int,
    params: Mapping[str, Any],
    policy: str,
    ttl: int,
    events_maxlen: int,
    on_success: Mapping[str, Any] | None = None,
    on_failure: Mapping[str, Any] | None = None,
    executor: Executor = Executor.COUNTERS,
    parent: ParentLink | None = None,
    run_key: str | None = None,
    limits: RunLimitFields | None = None,
) -> dict[str, str | int]:
    """The run record written at submit. ``ttl`` and ``maxlen`` are for the Lua scripts; ``limits``: its
    admission group and deadline (ops/admission.py, ops/deadlines.py). Fields at their
    :data:`RUN_DEFAULTS` value are left out."""
    record: dict[str, str | int] = {
        "name": name,
        "status": RunStatus.RUNNING.value,
        "epoch": 0,
        "total": total,
        "created": created_ms,
        "plan": plan_digest,
        "done": 0,
    }
    given = {
        "params": json.dumps(params),
        "policy": policy,
        "ttl": str(ttl),
        "maxlen": str(events_maxlen),
        "executor": executor.value,
    }
    record.update({f: v for f, v in given.items() if v != RUN_DEFAULTS[f]})
    if parent is not None:
        record[PARENT_FIELD] = parent.encode()
    if run_key is not None:
        record[RUN_KEY_FIELD] = run_key
    if limits is not None:
        record.update(limits.fields())
    if on_success:
        record["on_success"] = json.dumps(on_success)
    if on_failure:
        record["on_failure"] = json.dumps(on_failure)
    return record


def _ms(value: str | None) -> int | None:
    return int(value) if value else None


@dataclass(frozen=True)
class RunRecord:
    """A run record as read back (times in ms since the epoch)."""

    name: str
    status: RunStatus
    epoch: int
    total: int
    done: int
    created_ms: int
    plan: str
    params: dict[str, Any]
    policy: str
    started_ms: int | None = None
    finished_ms: int | None = None
    paused_at_ms: int | None = None
    workers: dict[str, str] = field(default_factory=dict)  # worker number -> hostname
    executor: Executor = Executor.COUNTERS
    #: What each armed node with no task waits (or waited) for, by node index.
    waits: dict[int, WaitMark] = field(default_factory=dict)
    #: The pool each task node (or instance, ``'<node>:<i>'``) WAITING for a pool waits for, by slot.
    pool_waits: dict[str, str] = field(default_factory=dict)
    #: A child run's parent run and node.
    parent: ParentLink | None = None
    #: Instances the run's mapped nodes expanded to so far (run-record fields ``m:<node>``; not in ``total``).
    instances: int = 0
    #: Set while the submit has not confirmed the run (:data:`UNCONFIRMED_FIELD`): the Redis time (ms)
    #: after which the reconciler cancels it if it never started.
    unconfirmed_ms: int | None = None
    run_key: str | None = None
    admission: Admission | None = None
    deadline_ms: int | None = None
    #: The deadline fired (the run failed at it): a retry of the run runs without one.
    deadline_fired: bool = False
    #: The run's own error (a deadline that failed it), as stored.
    error: dict[str, Any] | None = None

    @classmethod
    def decode(cls, h: Mapping[str, str]) -> RunRecord:
        return cls(
            name=h["name"],
            status=RunStatus(h["status"]),
            epoch=int(h["epoch"]),
            total=int(h["total"]),
            done=int(h.get("done") or 0),
            created_ms=int(h["created"]),
            plan=h["plan"],
            params=json.loads(h.get("params") or "{}"),
            policy=h.get("policy") or RUN_DEFAULTS["policy"],
            started_ms=_ms(h.get("started")),
            finished_ms=_ms(h.get("finished")),
            paused_at_ms=_ms(h.get("paused_at")),
            workers={
                number: f[len(WORKER_FIELD_PREFIX) :]
                for f, number in h.items()
                if f.startswith(WORKER_FIELD_PREFIX)
            },
            executor=Executor(h.get("executor") or Executor.COUNTERS.value),
            instances=sum(int(v) for f, v in h.items() if f.startswith(MAP_FIELD_PREFIX)),
            unconfirmed_ms=_ms(h.get(UNCONFIRMED_FIELD)),
            run_key=h.get(RUN_KEY_FIELD),
            admission=Admission.decode(h[ADMISSION_FIELD]) if h.get(ADMISSION_FIELD) else None,
            deadline_ms=_ms(h.get(DEADLINE_FIELD)),
            deadline_fired=bool(h.get(DEADLINE_FIRED_FIELD)),
            error=json.loads(h[RUN_ERROR_FIELD]) if h.get(RUN_ERROR_FIELD) else None,
            waits={
                int(f[len(WAIT_FIELD_PREFIX) :]): WaitMark.decode(v)
                for f, v in h.items()
                if f.startswith(WAIT_FIELD_PREFIX)
            },
            parent=ParentLink.decode(h[PARENT_FIELD]) if h.get(PARENT_FIELD) else None,
            pool_waits={
                f[len(POOL_WAIT_PREFIX) :]: v for f, v in h.items() if f.startswith(POOL_WAIT_PREFIX)
            },
        )


# -- run keys -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunKeyClaim:
    """What a run key's index key holds: the run that holds the key and when it was claimed (ms, the
    claimer's clock). The time tells a claim whose run is being created (young) from one whose creator
    died before creating it (old: taken over, ``ops.runkeys``)."""

    run_id: str
    at_ms: int

    def encode(self) -> str:
        return f"{self.run_id}|{self.at_ms}"

    @classmethod
    def decode(cls, raw: str) -> RunKeyClaim:
        run_id, _, at = raw.partition("|")
        return cls(run_id, int(at or 0))


def wait_field(index: int) -> str:
    return f"{WAIT_FIELD_PREFIX}{index}"


@dataclass(frozen=True)
class ParentLink:
    """A child run's ``parent`` field: the parent run, and the index and name of its sub-workflow node."""

    run_id: str
    index: int
    node: str

    def encode(self) -> str:
        return f"{self.run_id}|{self.index}|{self.node}"

    @classmethod
    def decode(cls, raw: str) -> ParentLink:
        run_id, index, node = raw.split("|", 2)
        return cls(run_id, int(index), node)


_WAIT_LETTERS = {WaitKind.SIGNAL: "s", WaitKind.TIME: "t", WaitKind.RUN: "r"}
_WAIT_BY_LETTER = {letter: kind for kind, letter in _WAIT_LETTERS.items()}


@dataclass(frozen=True)
class WaitMark:
    """What an armed node with no task waits for (``ops/lua/arm.lua`` writes it): ``kind``; ``at_ms`` (Redis
    clock) is a wait's timeout deadline (None: no timeout) or a sleep's end; ``run`` a child run's id."""

    kind: WaitKind
    at_ms: int | None = None
    run: str | None = None

    def encode(self) -> str:
        at = "" if self.at_ms is None else str(self.at_ms)
        return f"{_WAIT_LETTERS[self.kind]}|{at}|{self.run or ''}"

    @classmethod
    def decode(cls, raw: str) -> WaitMark:
        letter, at, run = raw.split("|", 2)
        return cls(_WAIT_BY_LETTER[letter], int(at) if at else None, run or None)

    def waiting(self) -> Waiting:
        """The public form (:class:`~wfcelery.tracker.states.Waiting`), times in seconds."""
        return Waiting(self.kind, None if self.at_ms is None else self.at_ms / 1000, self.run)


@dataclass(frozen=True)
class TimerEntry:
    """A timer of the ``timers`` ZSET (a sleep's end or a wait's timeout, node ``index`` at ``epoch``), or,
    with epoch 0, a member of the ``signals`` ZSET (:meth:`signal_member`)."""

    run_id: str
    index: int
    epoch: int

    def encode(self) -> str:
        return f"{self.run_id}|{self.index}|{self.epoch}"

    def signal_member(self) -> str:
        return f"{self.run_id}|{self.index}"

    @classmethod
    def decode(cls, raw: str) -> TimerEntry:
        run_id, index, *epoch = raw.split("|")
        return cls(run_id, int(index), int(epoch[0]) if epoch else 0)


# -- node record --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeRecord:
    """One node's record: status letter (``states.NodeStatus.code``), epoch, attempts started, times in ms
    since the run's creation, the number of the worker that ran it last (see :class:`RunRecord`), and
    ``base``: the attempts it had when a retry of the run gave it its retries again (its retries count
    from there; written only when not 0).

    The 5th field is the time the node finished once it is terminal, and the time it was queued while it
    is QUEUED (``queued_ms``: the start gate measures the node's wait from it, for the metrics)."""

    code: str = NodeStatus.PENDING.code
    epoch: int = 0
    attempts: int = 0
    started_ms: int | None = None
    finished_ms: int | None = None
    worker: str = ""
    base: int = 0
    queued_ms: int | None = None

    @property
    def status(self) -> NodeStatus:
        return NodeStatus.from_code(self.code)

    def encode(self) -> str:
        started = "" if self.started_ms is None else self.started_ms
        fifth = self.queued_ms if self.code == "Q" else self.finished_ms
        fifth_text = "" if fifth is None else fifth
        line = f"{self.code}|{self.epoch}|{self.attempts}|{started}|{fifth_text}|{self.worker}"
        return f"{line}|{self.base}" if self.base else line

    @classmethod
    def decode(cls, raw: str | None) -> NodeRecord:
        """``None`` (no field) is a node still PENDING at epoch 0."""
        if not raw:
            return cls()
        code, epoch, attempts, started, fifth, worker, *base = raw.split("|", 6)
        queued = code == "Q"
        return cls(
            code,
            int(epoch),
            int(attempts),
            _ms(started),
            None if queued else _ms(fifth),
            worker,
            int(base[0] or 0) if base else 0,
            _ms(fifth) if queued else None,
        )


#: Prefix of the errors-hash fields that keep every attempt's error of a node: ``h:<slot>``.
HISTORY_FIELD_PREFIX = "h:"


@dataclass(frozen=True)
class NodeErrors:
    """A run's ``:errors`` hash, decoded: ``last`` -- per slot, the latest error (``{type, message,
    traceback}``) or the reason of a skip; ``history`` -- per slot, every attempt's error, oldest first, as
    ``{attempt, at, type, message}`` (``at``: ms since the run's creation, the time of the transition's
    event line; the last 10 kept, each message cut to 500 characters: ``lua/_common.lua`` record_error)."""

    last: dict[Slot, dict[str, Any]] = field(default_factory=dict)
    history: dict[Slot, list[dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def decode(cls, raw: Mapping[Any, str | None]) -> NodeErrors:
        last: dict[Slot, dict[str, Any]] = {}
        history: dict[Slot, list[dict[str, Any]]] = {}
        for key, value in raw.items():
            if value is None:
                continue
            name = str(key)
            if name.startswith(HISTORY_FIELD_PREFIX):
                history[_slot(name[len(HISTORY_FIELD_PREFIX) :])] = json.loads(value)
            else:
                last[_slot(name)] = json.loads(value)
        return cls(last, history)


def history_field(slot: Slot) -> str:
    return f"{HISTORY_FIELD_PREFIX}{slot}"


def _slot(text: str) -> Slot:
    return int(text) if text.isdigit() else text


# -- event lines --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One line of a run's event log: ``node`` is a node index (``"<node>:<i>"`` for an instance of a
    mapped node), or None for the run itself."""

    at_ms: int  # ms since the run was created
    node: int | str | None
    status: str  # a node status letter (states.NodeStatus.code) or a run status name
    epoch: int

    @property
    def node_status(self) -> NodeStatus | None:
        """The node status this line records (None for a run's line)."""
        return None if self.node is None else NodeStatus.from_code(self.status)

    def encode(self) -> str:
        line = f"{self.at_ms} {'run' if self.node is None else self.node} {self.status}"
        return f"{line} {self.epoch}\n" if self.epoch else line + "\n"

    @classmethod
    def parse(cls, line: str) -> Event:
        at, node, status, *epoch = line.split(" ")
        slot = None if node == "run" else int(node) if node.isdigit() else node
        return cls(int(at), slot, status, int(epoch[0]) if epoch else 0)


def first_events(record: Mapping[str, str | int], roots: Sequence[int]) -> str:
    """A new run's first event lines: its roots QUEUED, or the run QUEUED (max_active_runs reached: its
    roots are queued when it is admitted, ops/lua/admit_run.lua)."""
    if record.get("status") == RunStatus.QUEUED.value:
        return Event(0, None, RunStatus.QUEUED.value, 0).encode()
    return "".join(Event(0, i, NodeStatus.QUEUED.code, 0).encode() for i in roots)


# -- gate entries -------------------------------------------------------------------------------------------


#: The gate table's field counting its changes (gate.lua): not a run.
GATE_SEQ_FIELD = "~seq"
#: Gate letter of a run being paused, cancelled or failed by a control operation (ops/subruns.halt_run):
#: written, and acknowledged by every leased worker process, before the run's own transition, so that from
#: then on every start of the run asks the tracker (start.lua); the message filter does not drop on it.
HALTING = "H"
#: The epoch a halting entry covers: every message of the run, whatever its epoch.
HALTING_EPOCH = 2**31


@dataclass(frozen=True)
class GateEntry:
    """What workers' message filters know of a run: its status letter (P paused, C cancelled, F failed,
    R running again after resume/retry, H halting: see :data:`HALTING`) from ``epoch`` on, kept until
    ``expires`` (unix time, 0: never)."""

    letter: str
    epoch: int
    expires: int = 0

    @classmethod
    def of(cls, status: RunStatus, epoch: int, expires: int) -> GateEntry:
        return cls(status.code, epoch, expires)

    @property
    def status(self) -> RunStatus | None:
        """The run's status, None while it is halting."""
        return None if self.letter == HALTING else RunStatus.from_code(self.letter)

    def encode(self) -> str:
        return f"{self.letter}{self.epoch}:{self.expires}"

    @classmethod
    def decode(cls, entry: str) -> GateEntry:
        head, _, expires = entry.partition(":")
        return cls(head[0], int(head[1:]), int(expires or 0))

    @classmethod
    def from_message(cls, data: str) -> tuple[str, GateEntry, int]:
        """What the gate channel carries: ``<run id> <entry> <change number>`` (gate.lua)."""
        run_id, entry, seq = data.split(" ")
        return run_id, cls.decode(entry), int(seq)


# -- worker side: dropped messages and heartbeats ----------------------------------------------------------


def dropped_field(index: Slot) -> str:
    return f"{DROPPED_FIELD_PREFIX}{index}"


@dataclass(frozen=True)
class DroppedMark:
    """A worker dropped a node's message: run record field ``u:<node index>``,
    ``<epoch>|<ms (Redis clock)>|<hostname>|<why>`` (why: ``unknown:<task name>`` or ``rejected``)."""

    epoch: int
    at_ms: int
    hostname: str
    why: str

    def encode(self) -> str:
        return f"{self.epoch}|{self.at_ms}|{self.hostname}|{self.why}"

    @classmethod
    def decode(cls, raw: str) -> DroppedMark:
        epoch, at_ms, hostname, why = raw.split("|", 3)
        return cls(int(epoch), int(at_ms), hostname, why)

    def error(self) -> dict[str, Any]:
        if self.why.startswith("unknown:"):
            task = self.why.partition(":")[2]
            message = (
                f"task {task!r} is not registered on worker {self.hostname} (task_unknown): the worker "
                "dropped its message and no other worker took it"
            )
            return {"type": "NotRegistered", "message": message, "traceback": ""}
        message = f"worker {self.hostname} rejected the message as malformed (task_rejected)"
        return {"type": "MessageRejected", "message": message, "traceback": ""}


@dataclass(frozen=True)
class WorkerBeat:
    """A heartbeat's value: ``<boot ms> @<beat ms>[,<task id>,...]`` -- when the worker booted, when it
    beat (both on Redis's clock: ``lua/beat.lua`` writes the value) and the wfcelery tasks its pool is
    running now. The beat's time is marked ``@`` and listed before the ids, so a reader that knows only
    ``<boot ms> <task id>,...`` sees every id intact and one entry that is no task's. ``beat_ms`` is
    None for a value without it (:meth:`decode` accepts both)."""

    boot_ms: int
    active: frozenset[str]
    beat_ms: int | None = None

    def encode(self) -> str:
        ids = ",".join(sorted(self.active))
        if self.beat_ms is None:
            return f"{self.boot_ms} {ids}".rstrip()
        return f"{self.boot_ms} @{self.beat_ms}" + (f",{ids}" if ids else "")

    @classmethod
    def decode(cls, raw: str) -> WorkerBeat:
        boot, _, rest = raw.partition(" ")
        beat_ms, active = None, set()
        for entry in filter(None, rest.split(",")):
            if entry.startswith("@"):
                beat_ms = int(entry[1:])
            else:
                active.add(entry)
        return cls(int(boot), frozenset(active), beat_ms)
