"""A run as the client sees it: :class:`Run` (state, results, events, wait, control) and
:class:`RunSummary` (one line of a listing), and how a run's state is built from its records."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wfcelery.errors import (
    RunFailed,
    TrackerUnavailable,
    WaitTimeout,
)
from wfcelery.plan.compiler import Plan
from wfcelery.tracker.base import converted_errors
from wfcelery.tracker.keys import Slot, instance_name, instance_slot, parse_instance, split_slot, task_id
from wfcelery.tracker.records import Event, NodeErrors, NodeRecord, RunRecord, WaitMark
from wfcelery.tracker.states import NodeState, NodeStatus, RunState, RunStatus, Waiting, WaitKind

if TYPE_CHECKING:
    from wfcelery.client.engine import Engine


@dataclass(frozen=True)
class RunSummary:
    """One line of ``engine.runs()``."""

    id: str
    name: str
    status: RunStatus
    created_at: float
    finished_at: float | None
    total: int  # nodes (a mapped node counts once), as RunState.total
    done: int  # nodes that ended, as RunState.done
    instances: int = 0  # instances of mapped nodes so far, as RunState.instances
    run_key: str | None = None

    @classmethod
    def of(cls, run_id: str, r: RunRecord) -> RunSummary:
        """The summary of a stored run record (times in seconds, as ``time.time()``)."""
        return cls(
            run_id,
            r.name,
            r.status,
            r.created_ms / 1000,
            _seconds(r.finished_ms),
            r.total,
            r.done,
            r.instances,
            r.run_key,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one ``wfcelery list --json`` entry."""
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "total": self.total,
            "done": self.done,
            "instances": self.instances,
            "run_key": self.run_key,
        }


class Run:
    """A handle on one workflow run. Cheap to create; every method asks Redis."""

    def __init__(self, engine: Engine, run_id: str, created: bool = True) -> None:
        self.engine = engine
        self.id = run_id
        #: False when ``submit(run_key=...)`` returned the run that already held the key.
        self.created = created
        #: Warnings from submit: nodes whose queue no live worker consumed at that moment.
        self.warnings: list[str] = []

    def __repr__(self) -> str:
        return f"<Run {self.id}>"

    def state(self, check_workers: bool = True) -> RunState:
        """The whole run (status, counts, every node) in one round trip; see :meth:`Engine.state`."""
        return self.engine.state(self.id, check_workers)

    def results(self) -> dict[str, Any]:
        """Results of the nodes that succeeded so far, by node name."""
        state = self.state(check_workers=False)
        raw = self.engine.tracker.results(self.id)  # a None result is not stored
        return {
            name: raw.get(n.index)
            for name, n in state.nodes.items()
            if n.status is NodeStatus.SUCCEEDED and n.instance is None
        }

    def events(self, after: int = 0, block: float | None = None) -> tuple[int, list[Event]]:
        """The run's transitions logged after offset ``after``: returns (next offset, events).

        With ``block`` (seconds), waits that long at most for at least one new event. Offsets stay valid
        when the log is trimmed: pass the returned offset to the next call.
        """
        block_ms = None if block is None else max(1, int(block * 1000))
        return self.engine.tracker.events(self.id, after=after, block_ms=block_ms)

    def follow(self, timeout: float | None = None, tick: float = 0.25) -> Iterator[RunState]:
        """Yield the run's state now and after each transition (at least every ``tick`` seconds) until it
        ends: the last state yielded is the final one.

        A tracker outage is waited out (the run goes on meanwhile) for ``wfcelery_follow_patience``
        seconds, retrying every second; past it the outage's :class:`TrackerUnavailable` is raised.

        Raises:
            WaitTimeout: ``timeout`` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        patience = self.engine.settings.follow_patience
        offset, down_since = 0, None
        while True:
            try:
                state = self.state()
            except TrackerUnavailable as e:
                down_since = self._wait_out_outage(e, down_since, patience, deadline, timeout)
                continue
            down_since = None
            yield state
            if state.finished:
                return
            block = tick if deadline is None else min(tick, deadline - time.monotonic())
            if block <= 0:
                raise WaitTimeout(f"run {self.id} is still {state.status.value} after {timeout} s")
            try:
                offset, _ = self.events(after=offset, block=block)
            except TrackerUnavailable as e:
                down_since = self._wait_out_outage(e, down_since, patience, deadline, timeout)

    def _wait_out_outage(
        self,
        error: TrackerUnavailable,
        down_since: float | None,
        patience: float,
        deadline: float | None,
        timeout: float | None,
    ) -> float:
        """One second of a tracker outage waited out; raises ``error`` past ``patience``, WaitTimeout past
        the deadline. Returns when the outage began."""
        now = time.monotonic()
        down_since = now if down_since is None else down_since
        if now - down_since >= patience:
            raise error
        if deadline is not None and now >= deadline:
            raise WaitTimeout(f"run {self.id} did not finish within {timeout} s (tracker unreachable)")
        time.sleep(1.0 if deadline is None else max(0.0, min(1.0, deadline - now)))
        return down_since

    def summary(self) -> RunSummary:
        """Status, times and progress (nodes finished / all) from the run record alone: cheap on any run."""
        return RunSummary.of(self.id, self.engine.tracker.run_record(self.id))

    def node(self, name: str) -> NodeState:
        """One node's state, or one instance's of a mapped node (``resize[3]``), read without the rest of
        the run (cheap on large runs; an instance reads the run's state). KeyError if unknown."""
        plan = self.plan()
        if name not in plan.by_name and self.decode_slot(plan, name) is not None:
            return self.state(check_workers=False).nodes[name]  # KeyError for an instance not (yet) made
        index = plan.by_name[name].index
        record, nodes, errors = self.engine.tracker.read_run(self.id, only=[index])
        state = build_state(self.id, record, nodes, errors, plan, self.engine.queue_of, only=[index])
        return state.nodes[name]

    def result(self, node: str) -> Any:
        """The stored result of one node or instance (None until it succeeded). KeyError for an unknown
        node."""
        slot = self.decode_slot(self.plan(), node)
        if slot is None:
            raise KeyError(node)
        found = self.engine.tracker.results(self.id, [slot])
        if slot in found or isinstance(slot, int):
            return found.get(slot)
        index, instance = split_slot(slot)  # an instance: gathered into its node's list when the map ended
        gathered = self.engine.tracker.results(self.id, [index]).get(index)
        if instance is None or not isinstance(gathered, list) or instance >= len(gathered):
            return None
        return gathered[instance]

    @staticmethod
    def decode_slot(plan: Plan, name: str) -> Slot | None:
        """Where ``name`` -- a node, or an instance ``node[i]`` of a mapped node -- is recorded."""
        if name in plan.by_name:
            return plan.by_name[name].index
        parsed = parse_instance(name)
        if parsed is None or parsed[0] not in plan.by_name or plan.by_name[parsed[0]].map is None:
            return None
        return instance_slot(plan.by_name[parsed[0]].index, parsed[1])

    def plan(self) -> Plan:
        """The compiled plan the run executes: its nodes, their parents, tasks and queues."""
        return self.engine.plans.get(self.engine.tracker.run_record(self.id).plan)

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the run ends; return ``{node: result}``.

        Wakes on the run's completion message (Redis pub/sub), not by polling nodes.

        Raises:
            RunFailed: the run ended FAILED or CANCELLED (names the failed nodes and their errors).
            WaitTimeout: ``timeout`` seconds passed first (also a ``TimeoutError``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                self._wait_until(deadline, timeout)
                return self._outcome()
            except TrackerUnavailable:
                # A tracker outage (restart, failover) is waited out, like any other delay: the run goes
                # on and its transitions are delivered once Redis is back.
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                time.sleep(0.5)

    def _wait_until(self, deadline: float | None, timeout: float | None) -> None:
        tracker = self.engine.tracker
        with converted_errors(f"wait for run {self.id}"):
            pubsub = tracker.subscribe_done(self.id)
            try:
                while not tracker.run_record(self.id).status.finished:
                    left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                    if left <= 0:
                        raise WaitTimeout(f"run {self.id} did not finish within {timeout} s")
                    pubsub.get_message(timeout=left)  # the 1 s cap re-checks if a message was missed
            finally:
                with contextlib.suppress(Exception):  # closing a connection to a Redis that went away
                    pubsub.close()

    def _outcome(self) -> dict[str, Any]:
        state = self.state(check_workers=False)
        results = self.results()
        if state.status is RunStatus.SUCCEEDED:
            return results
        failed = {
            name: f"{n.error['type']}: {n.error['message']}" if n.error else n.status.value
            for name, n in state.nodes.items()
            if n.status in (NodeStatus.FAILED, NodeStatus.REVOKED) and n.error
        }
        raise RunFailed(self.id, state.status.value, failed, results)

    def signal(self, node: str, payload: Any = None) -> RunState:
        """Signal the wait node ``node`` (``wf.wait``): ``payload`` (JSON data) becomes its result, which
        its children get as any result, and the node SUCCEEDS. Atomic: of two signals, one wins.

        Raises:
            SignalRefused: (a ``ControlError``) the node is no wait node, not reached yet or done (a second
                signal), or the run is paused or finished; nothing changed.
            DefinitionError: the payload is no JSON, or over ``wfcelery_max_result_bytes`` /
                ``wfcelery_max_depth``.
            KeyError: the run has no such node. RunNotFound: no such run.
        """
        return self.engine.signal(self.id, node, payload)

    def pause(self) -> RunState:
        """Pause this run (see :meth:`Engine.pause`)."""
        return self.engine.pause(self.id)

    def resume(self) -> RunState:
        """Resume this run (see :meth:`Engine.resume`)."""
        return self.engine.resume(self.id)

    def cancel(self, terminate: bool = False) -> RunState:
        """Cancel this run (see :meth:`Engine.cancel`)."""
        return self.engine.cancel(self.id, terminate=terminate)

    def retry(self) -> RunState:
        """Retry this run (see :meth:`Engine.retry`)."""
        return self.engine.retry(self.id)

    def cleanup(self, force: bool = False) -> None:
        """Delete every key of this run (see :meth:`Engine.cleanup`)."""
        self.engine.cleanup(self.id, force=force)


# SKIPPED: the reason of the skip (a false condition, an unmet trigger rule, a failure upstream)
_SHOWS_ERROR = frozenset({NodeStatus.RETRYING, NodeStatus.FAILED, NodeStatus.REVOKED, NodeStatus.SKIPPED})


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def _waiting(record: RunRecord, slot: Slot, mark: WaitMark | None) -> Waiting | None:
    """What a WAITING node waits for: its pool (a task node), else its wait mark."""
    pool = record.pool_waits.get(str(slot))
    if pool is not None:
        return Waiting(WaitKind.POOL, pool=pool)
    return mark.waiting() if mark is not None else None


def build_state(
    run_id: str,
    record: RunRecord,
    nodes: dict[Slot, NodeRecord],
    errors: NodeErrors,
    plan: Plan,
    queue_of: Callable[[str, str | None], str] | None = None,
    only: Sequence[int] | None = None,
) -> RunState:
    """A run's state from what the tracker stores and the run's plan (node names and queues); with
    ``only``, just those nodes. ``queue_of(task, queue)`` names each node's real queue (the app's router
    for nodes without one). Instances of a mapped node follow it, as ``node[0]``, ``node[1]``..."""
    created = record.created_ms
    instances: dict[int, list[tuple[int, str]]] = {}
    for slot in nodes:
        if isinstance(slot, str):
            index, i = split_slot(slot)
            instances.setdefault(index, []).append((i or 0, slot))
    states: dict[str, NodeState] = {}
    for node in plan.nodes if only is None else [plan.nodes[i] for i in only]:
        slots: list[tuple[Slot, int | None]] = [(node.index, None)]
        slots += [(slot, i) for i, slot in sorted(instances.get(node.index, ()))]
        mark = record.waits.get(node.index)
        for slot, i in slots:
            n = nodes.get(slot) or NodeRecord()
            status = NodeStatus.from_code(n.code)
            name = node.name if i is None else instance_name(node.name, i)
            queue = None if not node.has_task else queue_of(node.task, node.queue) if queue_of else node.queue
            states[name] = NodeState(
                name=name,
                status=status,
                attempts=n.attempts,
                task_id=task_id(run_id, slot, n.epoch),
                queue=queue,
                worker=record.workers.get(n.worker),
                started_at=None if n.started_ms is None else (created + n.started_ms) / 1000,
                finished_at=None if n.finished_ms is None else (created + n.finished_ms) / 1000,
                # the error of the current attempt only: a node running again after a retry shows none
                error=errors.last.get(slot) if status in _SHOWS_ERROR else None,
                errors=tuple(
                    {**e, "at": (created + int(e.get("at") or 0)) / 1000}
                    for e in errors.history.get(slot, ())
                ),
                epoch=n.epoch,
                index=node.index,
                instance=i,
                waiting=_waiting(record, slot, mark) if status is NodeStatus.WAITING else None,
                child_run=mark.run if mark is not None and mark.kind is WaitKind.RUN else None,
                kind=node.kind,
            )
    return RunState(
        id=run_id,
        name=record.name,
        status=record.status,
        epoch=record.epoch,
        created_at=created / 1000,
        started_at=_seconds(record.started_ms),
        finished_at=_seconds(record.finished_ms),
        paused_at=_seconds(record.paused_at_ms),
        policy=record.policy,
        params=record.params,
        nodes=states,
        executor=record.executor,
        parent=None if record.parent is None else (record.parent.run_id, record.parent.node),
        run_key=record.run_key,
        error=record.error,
        deadline_at=_seconds(record.deadline_ms),
    )
