"""The tracker's side of nodes with no task: their Lua transitions (``ops/lua``: arm, signal, timer, child)
with typed replies, the timers (a sorted set of due times) and the index of nodes waiting for a signal.

The scripts run on the run's keys like the tracker's own (``tracker/lua/_common.lua`` is prepended, then
``_waiting.lua``), and keep the same transition table (``states.TRANSITIONS``). The ``timers`` and
``signals`` sorted sets index nodes of every run: they are written right after a transition, never inside
its script (a run's script touches that run's hash slot only, for Redis Cluster). A process that dies
between the two leaves a node waiting without its timer: the reconciler's sweep sets it again
(:func:`wfcelery.ops.sweep.sweep_waits`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from typing import TYPE_CHECKING, Any

from kombu.utils.json import dumps as json_dumps

from wfcelery.definition.limits import Limits, check_depth
from wfcelery.errors import LimitError, SchemaError
from wfcelery.plan.compiler import PlanCache
from wfcelery.tracker.base import common_source, converted_errors
from wfcelery.tracker.outcomes import SucceedOutcome
from wfcelery.tracker.records import TimerEntry, WaitMark
from wfcelery.tracker.states import NodeStatus, WaitKind

if TYPE_CHECKING:
    from wfcelery.plan.compiler import Plan
    from wfcelery.tracker.store import Tracker


def waits_of(tracker: Tracker) -> Waits:
    """The :class:`Waits` of this tracker (made once: its scripts are registered on the tracker's client)."""
    found: Waits | None = getattr(tracker, "_wfcelery_waits", None)
    if found is None:
        found = Waits(tracker)
        tracker._wfcelery_waits = found  # type: ignore[attr-defined]
    return found


_SCRIPTS = ("arm", "signal", "timer", "child")


def _sources() -> dict[str, str]:
    common = common_source()
    lua = resources.files("wfcelery.ops") / "lua"
    helpers = (lua / "_waiting.lua").read_text()
    return {name: "\n".join((common, helpers, (lua / f"{name}.lua").read_text())) for name in _SCRIPTS}


_SOURCES = _sources()


class ArmVerdict(str, Enum):
    """arm.lua's answer (see its header)."""

    ARMED = "armed"
    WAITING = "waiting"
    PAUSED = "paused"
    STALE = "stale"
    GONE = "gone"


class SignalVerdict(str, Enum):
    """signal.lua's answer: ``OK``, or why the signal was refused (see its header)."""

    OK = "ok"
    GONE = "gone"
    FINISHED = "finished"
    PAUSED = "paused"
    NOT_WAITING = "not_waiting"
    NOT_SIGNAL = "not_signal"
    NOT_A_WAIT = "not_a_wait"  # decided before Redis: the node is no wait node (the plan says so)


class TimerVerdict(str, Enum):
    """timer.lua's answer (see its header)."""

    SLEPT = "slept"
    TIMEOUT = "timeout"
    LATER = "later"
    STALE = "stale"
    GONE = "gone"


@dataclass(frozen=True)
class ArmOutcome:
    verdict: ArmVerdict
    mark: WaitMark | None

    @property
    def waiting(self) -> bool:
        """The node waits now (armed by this call or an earlier one)."""
        return self.verdict in (ArmVerdict.ARMED, ArmVerdict.WAITING)


@dataclass(frozen=True)
class SignalOutcome:
    """signal.lua: ``verdict``; the node's status and epoch as the script saw them; ``success`` when OK."""

    verdict: SignalVerdict
    detail: str
    epoch: int
    success: SucceedOutcome | None = None

    @property
    def status(self) -> NodeStatus | None:
        """The node's status when refused as not waiting."""
        return NodeStatus.from_code(self.detail) if len(self.detail) == 1 else None


@dataclass(frozen=True)
class TimerOutcome:
    verdict: TimerVerdict
    success: SucceedOutcome | None = None


def _success(reply: Sequence[Any]) -> SucceedOutcome:
    return SucceedOutcome.from_reply(list(reply))


def plain_children(plan: Plan, index: int) -> list[Any]:
    """The ARGV tail of a plain plan's release (child, number of its parents, ...); none with rules."""
    if plan.rule_spec:
        return []
    return [x for pair in plan.releases[index] for x in pair]


class Waits:
    """The scripts and sorted sets of waiting nodes, on one tracker's Redis client (get it with
    :func:`waits_of`), and the plans of the runs it settles."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.keys = tracker.keys
        self.settings = tracker.settings
        self.scripts = {name: tracker.client.register_script(src) for name, src in _SOURCES.items()}
        self.plans = PlanCache(tracker.plan_blob)

    def _run(self, name: str, run_id: str, args: Sequence[Any]) -> Any:
        with converted_errors(f"record {name} of run {run_id}"):
            return self.scripts[name](keys=self.tracker.script_keys(run_id), args=list(args))

    # -- transitions ------------------------------------------------------------------------------------

    def arm(
        self,
        run_id: str,
        index: int,
        epoch: int,
        kind: WaitKind,
        in_ms: int | None = None,
        at_ms: int | None = None,
        child: str = "",
    ) -> ArmOutcome:
        """Arm a released node: its timeout or sleep ends ``in_ms`` after now (Redis's clock: when it is
        reached), or at ``at_ms``; a sub-workflow node's new child run would be ``child``."""
        letter = WaitMark(kind).encode()[0]
        at = (
            f"in:{max(0, in_ms)}" if in_ms is not None else f"at:{max(0, at_ms)}" if at_ms is not None else ""
        )
        verdict, mark = self._run("arm", run_id, [index, epoch, letter, at, child])
        return ArmOutcome(ArmVerdict(verdict), WaitMark.decode(mark) if mark else None)

    def signal(self, run_id: str, plan: Plan, index: int, payload_json: str) -> SignalOutcome:
        args = [index, payload_json, plan.rule_spec, *plain_children(plan, index)]
        reply = self._run("signal", run_id, args)
        verdict, detail, epoch = SignalVerdict(reply[0]), str(reply[1]), int(reply[2])
        success = _success(reply[3:]) if verdict is SignalVerdict.OK else None
        return SignalOutcome(verdict, detail, epoch, success)

    def timer(self, entry: TimerEntry, due_ms: int, plan: Plan) -> TimerOutcome:
        args = [entry.index, entry.epoch, due_ms, plan.rule_spec, *plain_children(plan, entry.index)]
        reply = self._run("timer", entry.run_id, args)
        verdict = TimerVerdict(reply[0])
        return TimerOutcome(verdict, _success(reply[1:]) if verdict is TimerVerdict.SLEPT else None)

    def child_succeeded(
        self, run_id: str, plan: Plan, index: int, child: str, result_json: str
    ) -> SucceedOutcome | None:
        """Settle a sub-workflow node whose child run succeeded; None when it does not wait on ``child``."""
        args = [index, child, result_json, plan.rule_spec, *plain_children(plan, index)]
        reply = self._run("child", run_id, args)
        return _success(reply[1:]) if reply[0] == "ok" else None

    # -- timers -----------------------------------------------------------------------------------------

    def add_timer(self, entry: TimerEntry, due_ms: int) -> None:
        with converted_errors("add a timer"):
            self.tracker.client.zadd(self.keys.timers, {entry.encode(): due_ms})

    def ensure_timer(self, entry: TimerEntry, due_ms: int) -> bool:
        """Add a timer unless it is there (True: it was missing)."""
        with converted_errors("add a timer"):
            return bool(self.tracker.client.zadd(self.keys.timers, {entry.encode(): due_ms}, nx=True))

    def due_timers(self, now_ms: int, limit: int) -> list[tuple[TimerEntry, int]]:
        """Timers due by ``now_ms``, earliest first."""
        with converted_errors("read the due timers"):
            found = self.tracker.client.zrangebyscore(
                self.keys.timers, "-inf", now_ms, 0, limit, withscores=True
            )
        return [(TimerEntry.decode(member), int(score)) for member, score in found]

    def next_due(self) -> int | None:
        """The earliest timer's due time (ms), None when there is none."""
        with converted_errors("read the next timer"):
            first = self.tracker.client.zrange(self.keys.timers, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    def drop_timer(self, entry: TimerEntry, due_ms: int | None = None) -> None:
        """Remove a timer (only if still due at ``due_ms``, when given: a timer set again meanwhile stays)."""
        with converted_errors("drop a timer"):
            if due_ms is None:
                self.tracker.client.zrem(self.keys.timers, entry.encode())
            else:
                self.tracker.client.zrem(self.keys.timers, entry.encode()) if self._score(
                    entry
                ) == due_ms else None

    def postpone(self, entry: TimerEntry, due_ms: int, later_ms: int) -> None:
        """Look at a timer again at ``later_ms`` (its run is paused), unless it was set again meanwhile."""
        with converted_errors("postpone a timer"):
            if self._score(entry) == due_ms:
                self.tracker.client.zadd(self.keys.timers, {entry.encode(): later_ms}, xx=True)

    def _score(self, entry: TimerEntry) -> int | None:
        score = self.tracker.client.zscore(self.keys.timers, entry.encode())
        return None if score is None else int(score)

    def forget(self, run_id: str) -> None:
        """Drop a run's timers and index entries, of every epoch (cleanup: a cancelled run's waits would
        linger until due)."""
        record = self.tracker.run_record(run_id)
        entries = [TimerEntry(run_id, i, e) for i in record.waits for e in range(record.epoch + 1)]
        if entries:
            with converted_errors("drop the timers of a run"):
                pipe = self.tracker.client.pipeline(transaction=False)
                pipe.zrem(self.keys.timers, *(e.encode() for e in entries))
                pipe.zrem(self.keys.signals, *(e.signal_member() for e in entries))
                pipe.execute()

    # -- the index of nodes waiting for a signal --------------------------------------------------------

    def add_signal_wait(self, entry: TimerEntry, at_ms: int) -> None:
        with converted_errors("list a node waiting for a signal"):
            self.tracker.client.zadd(self.keys.signals, {entry.signal_member(): at_ms}, nx=True)

    def drop_signal_waits(self, entries: Sequence[TimerEntry]) -> None:
        if entries:
            with converted_errors("unlist nodes waiting for a signal"):
                self.tracker.client.zrem(self.keys.signals, *(e.signal_member() for e in entries))

    def signal_waits(self, limit: int) -> list[tuple[TimerEntry, int]]:
        """Nodes listed as waiting for a signal, oldest first (some may have settled since: the caller
        checks and drops those)."""
        with converted_errors("list the nodes waiting for a signal"):
            found = self.tracker.client.zrange(self.keys.signals, 0, limit - 1, withscores=True)
        return [(TimerEntry.decode(member), int(score)) for member, score in found]


def encode_result(value: Any, limits: Limits, what: str) -> str:
    """``value`` as the tracker stores a result (kombu's JSON, as a task's), or :class:`LimitError` /
    :class:`SchemaError` naming ``what`` when it is no JSON, nested too deep or too large (the bounds of a
    task's result: ``wfcelery_max_depth``, ``wfcelery_max_result_bytes``)."""
    check_depth(value, limits.max_depth, what, "the value")
    try:
        encoded: str = json_dumps(value)
    except (TypeError, ValueError) as e:
        raise SchemaError(f"{what}: the value must be JSON data: {e}") from e
    if len(encoded) > limits.max_result_bytes:
        raise LimitError(
            f"{what}: {len(encoded):,} bytes as JSON, over the limit of {limits.max_result_bytes:,} "
            "(wfcelery_max_result_bytes)"
        )
    return encoded
