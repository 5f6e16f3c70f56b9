"""Engine (one per Celery app) and Run: submit, state, wait, pause/resume/cancel/retry/cleanup.

Control operations act on the tracker first (one atomic Lua call decides), then on Celery (revoke
broadcasts, the workers' gate, publishing re-planned nodes). Each returns the run's new state and is
idempotent; a refusal raises :class:`ControlError` saying why.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from celery import Celery, signature

from .compiler import Plan, PlanCache, compile_workflow
from .consumers import ConsumerCheck, describe, node_queue, unconsumed
from .dispatch import Dispatcher, broker_errors, ensure_connected
from .errors import (
    ConfigurationError,
    ControlError,
    NoWorkerError,
    RunFailed,
    RunNotFound,
    TrackerUnavailable,
    WaitTimeout,
    WfCeleryError,
)
from .keys import Slot, instance_slot, split_slot, task_id
from .loader import load
from .model import Workflow, check_executor
from .records import Event, NodeRecord, RunRecord, new_run
from .release import publish_instances, publish_released, revoke_canvas
from .rules import instance_name, parse_instance
from .segments import CANVAS, has_chord
from .settings import Settings, check_not_eager
from .states import NodeState, NodeStatus, RunState, RunStatus
from .tracker import Finish, Tracker, converted_errors

logger = logging.getLogger("wfcelery.engine")


@dataclass(frozen=True)
class RunSummary:
    """One line of ``engine.runs()``."""

    id: str
    name: str
    status: RunStatus
    created_at: float
    finished_at: float | None
    total: int
    done: int

    @classmethod
    def of(cls, run_id: str, r: RunRecord) -> RunSummary:
        """The summary of a stored run record (times in seconds, as ``time.time()``)."""
        return cls(run_id, r.name, r.status, r.created_ms / 1000, _seconds(r.finished_ms), r.total, r.done)

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
        }


class Engine:
    """wfcelery for one Celery app. Get it from :func:`wfcelery.install`."""

    def __init__(self, app: Celery, **overrides: Any) -> None:
        self.app = app
        self._overrides = overrides
        self._routed: dict[str, str] = {}  # task name -> the queue the app's router picks
        self._registered: dict[str, Workflow] = {}

    # Settings are read on first use, not at install(): install() usually runs at import time, before
    # the project has called app.config_from_object().
    @cached_property
    def settings(self) -> Settings:
        """The ``wfcelery_*`` settings, read from app.conf on first use (constructor overrides win)."""
        return Settings.from_app(self.app, **self._overrides)

    @cached_property
    def tracker(self) -> Tracker:
        """The tracker on the settings' Redis (one connection pool per engine)."""
        return Tracker(self.settings)

    @cached_property
    def dispatch(self) -> Dispatcher:
        """What the engine sends to Celery: node messages, revokes, callbacks."""
        return Dispatcher(self.app, celery_results=self.settings.celery_results)

    @cached_property
    def plans(self) -> PlanCache:
        """Compiled plans by digest, loaded from the tracker once."""
        return PlanCache(self.tracker.plan_blob)

    @cached_property
    def consumers(self) -> ConsumerCheck:
        """The live workers' queues (``inspect().active_queues()``, cached briefly)."""
        return ConsumerCheck(self.app, self.settings.inspect_timeout)

    # -- routing ----------------------------------------------------------------------------------------

    def queue_of(self, task: str, queue: str | None) -> str:
        """The queue a node's message goes to: its own ``queue``/``type``, else the app's router."""
        if queue:
            return queue
        cache = self._routed
        if task not in cache:
            cache[task] = node_queue(self.app, task, None)
        return cache[task]

    def node_queues(self, plan: Plan, indexes: Iterable[int] | None = None) -> dict[str, str]:
        """``{node: queue}``: the queue each node's message goes to, as the app's router picks it."""
        nodes = plan.nodes if indexes is None else [plan.nodes[i] for i in indexes]
        return {n.name: self.queue_of(n.task, n.queue) for n in nodes}

    def unconsumed(self, plan: Plan, indexes: Iterable[int] | None = None) -> dict[str, list[str]]:
        """``{queue: [node, ...]}`` for the nodes whose queue no live worker consumes right now."""
        return unconsumed(self.consumers.get(), self.node_queues(plan, indexes))

    # -- submitting -------------------------------------------------------------------------------------

    def submit(
        self,
        workflow: Workflow | str | Path | Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        *,
        on_success: Any = None,
        on_failure: Any = None,
        require_workers: bool = False,
        executor: str | None = None,
    ) -> Run:
        """Validate, compile and start a run. Returns at once with a :class:`Run`.

        Before anything is written, the live workers are asked which queues they consume (cached
        briefly): each node whose queue nobody reads is named in a warning (logged, and kept in
        ``run.warnings``), or, with ``require_workers=True``, the run is refused.

        Args:
            workflow: a Workflow, a path to a YAML/JSON definition, or a definition dict.
            params: values for ``${name}`` placeholders.
            on_success / on_failure: Celery signatures sent once when the run ends, with the run id as
                first argument. ``on_failure`` also fires for a cancelled run.
            require_workers: refuse (:class:`NoWorkerError`) when a node's queue has no live consumer,
                or when the workers cannot be asked.
            executor: ``"counters"`` (one message per node) or ``"canvas"`` (native Celery canvas per
                segment); default: the definition's ``executor``, else the ``wfcelery_executor`` setting.

        Raises:
            DefinitionError: the definition or the params are wrong (nothing was written).
            ConfigurationError: the app cannot run workflows (``task_always_eager``, no JSON accepted).
            NoWorkerError: ``require_workers=True`` and a queue has no consumer.
            BrokerUnavailable / TrackerUnavailable: the broker or the tracker's Redis cannot be reached
                (nothing was written).
        """
        check_not_eager(self.app)
        wf = self._workflow(workflow)
        limits = self.settings.limits
        wf.validate(self.app if self.settings.check_tasks else None, limits)
        resolved = wf.resolve_params(params, limits)
        executor = check_executor(executor, "submit") or wf.executor or self.settings.executor
        plan = self.plans.remember(compile_workflow(wf, self.settings.routes, limits, executor))
        if executor == CANVAS:
            check_canvas_app(self.app, plan)
        warnings = self._check_workers(plan, require_workers)
        run_id = uuid.uuid4().hex
        record = new_run(
            name=plan.name,
            plan_digest=plan.digest,
            total=len(plan.nodes),
            created_ms=int(time.time() * 1000),
            params=resolved,
            policy=plan.on_failure,
            ttl=self.settings.run_ttl,
            events_maxlen=self.settings.events_maxlen,
            done_channel=self.tracker.keys.done_channel(run_id),
            on_success=_sig_dict(on_success),
            on_failure=_sig_dict(on_failure),
            executor=executor,
        )
        with broker_errors(self.app, "submit a run"), self.app.producer_or_acquire() as producer:
            # connect before writing anything: a broker that is down or refuses us leaves no key behind
            ensure_connected(self.app, producer.connection)
            created_plan = self.tracker.create_run(run_id, record, plan.roots, plan.digest, plan.blob)
            try:
                roots = [(i, 0) for i in plan.roots]
                finishes = publish_released(
                    self.tracker, self.dispatch, plan, run_id, roots, resolved, producer=producer
                )
            except Exception:
                self._discard(run_id, plan.digest if created_plan else None, int(record["created"]))
                raise
        for finish in finishes:  # every root skipped by its condition, and nothing else to run
            self._ended(run_id, finish)
        run = Run(self, run_id)
        run.warnings = warnings
        return run

    def _discard(self, run_id: str, plan_digest: str | None, created_ms: int) -> None:
        """Delete a run whose first messages could not be sent: nothing ran, so leave no trace. The plan
        goes too when this submit created it (``plan_digest``) and no run submitted since uses it (runs
        of one definition share the key; a minute of margin covers clients whose clocks differ). A failed
        cleanup is logged: the caller re-raises the publish error, which says what went wrong."""
        try:
            if plan_digest is not None and self.tracker.plan_in_use(plan_digest, created_ms - 60_000, run_id):
                plan_digest = None
            self.tracker.delete_run(run_id, plan_digest)
        except WfCeleryError as e:
            logger.warning("wfcelery: could not delete run %s after its publish failed: %s", run_id, e)

    def _check_workers(self, plan: Plan, require: bool) -> list[str]:
        consumers = self.consumers.get()
        if require and (not consumers.known or unconsumed(consumers, self.node_queues(plan))):
            consumers = self.consumers.get(refresh=True)  # refuse on a fresh answer only
        if require and not consumers.known:
            raise NoWorkerError(f"cannot check which queues the workers consume: {consumers.reason}")
        warnings = describe(unconsumed(consumers, self.node_queues(plan)))
        if warnings and require:
            raise NoWorkerError("; ".join(warnings) + " (require_workers: nothing was submitted)")
        for warning in warnings:
            logger.warning("wfcelery: workflow %r: %s", plan.name, warning)
        return warnings

    def _workflow(self, workflow: Workflow | str | Path | Mapping[str, Any]) -> Workflow:
        if isinstance(workflow, Workflow):
            return workflow
        if isinstance(workflow, str | Path):
            return load(workflow, self.settings.limits.max_plan_bytes)
        return Workflow.from_dict(workflow)

    # -- reading ----------------------------------------------------------------------------------------

    def run(self, run_id: str) -> Run:
        """The run with this id. Raises :class:`RunNotFound`."""
        self.tracker.run_record(run_id)
        return Run(self, run_id)

    def runs(self, status: str | None = None, name: str | None = None, limit: int = 50) -> list[RunSummary]:
        """Runs newest first, optionally filtered by run status and workflow name."""
        wanted = RunStatus(status.upper()) if status else None
        found: list[RunSummary] = []
        offset, page = 0, max(limit, 100)
        while len(found) < limit:
            ids = self.tracker.run_ids(page, offset)
            if not ids:
                break
            offset += page
            records = self.tracker.records(ids)
            self.tracker.forget([i for i, r in zip(ids, records, strict=True) if not r])
            for run_id, r in zip(ids, records, strict=True):
                if r and (wanted is None or r.status is wanted) and (name is None or r.name == name):
                    found.append(RunSummary.of(run_id, r))
        return found[:limit]

    # -- definitions known by name (the web dashboard's and REST API's catalogue) -----------------------

    def register(self, workflow: Workflow | str | Path | Mapping[str, Any]) -> Workflow:
        """Make a definition known by its name (``engine.definitions()``); validated first.

        A registered definition wins over a file of the same name in the ``wfcelery_definitions`` folder.
        """
        wf = self._workflow(workflow)
        wf.validate(self.app if self.settings.check_tasks else None)
        self._registered[wf.name] = wf
        return wf

    def definitions(self) -> dict[str, Workflow]:
        """Definitions by name: those registered, and every valid ``*.yaml|*.yml|*.json`` file of the
        ``wfcelery_definitions`` folder (read on each call, so new files show up; an invalid file, and
        anything but a regular file inside the folder -- a link out of it, a FIFO, a device -- is logged
        and left out)."""
        found: dict[str, Workflow] = {}
        folder = self.settings.definitions
        for path in sorted(Path(folder).glob("*")) if folder else []:
            if path.suffix.lower() not in (".yaml", ".yml", ".json"):
                continue
            try:
                limits = self.settings.limits
                wf = load(path, limits.max_plan_bytes, folder=folder).validate(
                    self.app if self.settings.check_tasks else None, limits
                )
            except WfCeleryError as e:
                logger.warning("wfcelery: skipping definition %s: %s", path, e)
                continue
            found.setdefault(wf.name, wf)
        return {**found, **self._registered}

    # -- control ----------------------------------------------------------------------------------------

    def pause(self, run_id: str) -> RunState:
        """Pause a run: queued nodes wait (revoked and gated), running nodes finish. Raises ControlError
        when the run is finished, RunNotFound for an unknown id."""
        out = self.tracker.halt(run_id, "pause")
        if out.after != RunStatus.PAUSED.value:
            raise ControlError(f"cannot pause run {run_id}: it is {out.before}")
        if out.changed:
            self.tracker.set_gate(run_id, RunStatus.PAUSED, out.epoch)
            self.dispatch.revoke(run_id, out.queued)
            revoke_canvas(
                self.tracker, self.dispatch, self.plans.get(self.tracker.run_record(run_id).plan), run_id
            )
        return self.state(run_id, check_workers=False)

    def cancel(self, run_id: str, terminate: bool = False) -> RunState:
        """Cancel a run for good: queued nodes are revoked; ``terminate=True`` also stops running tasks
        (prefork/gevent pools). Calls the run's ``on_failure`` callback once."""
        out = self.tracker.halt(run_id, "cancel")
        if out.after != RunStatus.CANCELLED.value:
            raise ControlError(f"cannot cancel run {run_id}: it is {out.before}")
        if out.changed:
            self.tracker.set_gate(run_id, RunStatus.CANCELLED, out.epoch)
            self.dispatch.revoke(run_id, out.queued)
            revoke_canvas(
                self.tracker, self.dispatch, self.plans.get(self.tracker.run_record(run_id).plan), run_id
            )
            if terminate and out.running:
                self.dispatch.revoke(run_id, out.running, terminate=True)
            self._ended(run_id, out.finish)
        return self.state(run_id, check_workers=False)

    def resume(self, run_id: str) -> RunState:
        """Resume a paused run: what did not succeed is queued again under a new epoch (fresh task ids)."""
        return self._replan(run_id, "resume")

    def retry(self, run_id: str) -> RunState:
        """Retry a FAILED or CANCELLED run: re-runs what did not succeed, reusing the results that did."""
        return self._replan(run_id, "retry")

    def _replan(self, run_id: str, op: str) -> RunState:
        record = self.tracker.run_record(run_id)
        plan = self.plans.get(record.plan)
        out = self.tracker.replan(run_id, op, plan.parents, plan.rule_spec, plan.executor)
        if not out.replanned:
            if op == "resume" and out.before == RunStatus.RUNNING.value:
                return self.state(run_id, check_workers=False)  # already running: nothing to do
            wanted = "PAUSED" if op == "resume" else "FAILED or CANCELLED"
            raise ControlError(f"cannot {op} run {run_id}: it is {out.before}, not {wanted}")
        self.tracker.refresh_plan(plan.digest)
        self.tracker.set_gate(run_id, RunStatus.RUNNING, out.epoch)
        self._ended(run_id, out.finish)  # every node finished meanwhile: the run ends here
        queued = [(i, out.epoch) for i in out.queued]
        for finish in publish_released(self.tracker, self.dispatch, plan, run_id, queued, record.params):
            self._ended(run_id, finish)
        if out.instances:  # instances of mapped nodes that did not succeed
            publish_instances(
                self.tracker, self.dispatch, plan, run_id, out.instances, out.epoch, record.params
            )
        return self.state(run_id, check_workers=False)

    def state(self, run_id: str, check_workers: bool = True) -> RunState:
        """The whole run (status, counts, every node) in one round trip. Raises :class:`RunNotFound`.

        Each node's ``queue`` is the queue its message goes to, as the app's ``task_routes`` pick it for
        a node without ``type``/``queue``. While nodes wait in a queue, ``idle_queues`` names those no
        live worker consumes (``inspect().active_queues()``, cached briefly; skipped with
        ``check_workers=False``).
        """
        record, nodes, errors = self.tracker.read_run(run_id)
        state = build_state(run_id, record, nodes, errors, self.plans.get(record.plan), self.queue_of)
        if not check_workers or state.finished:
            return state
        waiting = {n.queue for n in state.nodes.values() if n.status is NodeStatus.QUEUED and n.queue}
        idle = self.consumers.get().missing(waiting) if waiting else []
        return replace(state, idle_queues=tuple(idle)) if idle else state

    def _ended(self, run_id: str, finish: Finish | None) -> None:
        if finish is not None:
            self.dispatch.callback(run_id, finish.status, finish.callback)

    def cleanup(self, run_id: str, force: bool = False) -> None:
        """Delete every key of the run, Celery's result keys included."""
        record = self.tracker.run_record(run_id)
        if not record.status.finished:
            if not force:
                raise ControlError(
                    f"run {run_id} is {record.status.value}: cancel it first or use force=True"
                )
            self.cancel(run_id, terminate=False)
            record = self.tracker.run_record(run_id)
        ids = [task_id(run_id, i, e) for i in range(record.total) for e in range(record.epoch + 1)]
        self._forget_results(ids + self.tracker.canvas_ids(run_id))
        self.tracker.delete_run(run_id)

    def cleanup_finished(self, status: str | None = None, older_than: float = 0.0) -> list[str]:
        """Delete every finished run (only those in ``status``, if given) that ended at least
        ``older_than`` seconds ago. Returns the ids deleted; live runs are never touched."""
        wanted = RunStatus(status.upper()) if status else None
        if wanted is not None and not wanted.finished:
            raise ControlError(f"cleanup deletes finished runs only, not {wanted.value} ones")
        cutoff = time.time() - older_than
        deleted = []
        for summary in self.runs(status=status, limit=10**9):
            if summary.status.finished and (summary.finished_at or 0) <= cutoff:
                try:
                    self.cleanup(summary.id)
                except RunNotFound:
                    continue  # expired or cleaned up meanwhile
                deleted.append(summary.id)
        return deleted

    def _forget_results(self, ids: list[str]) -> None:
        backend = self.app.backend
        client, key_for = getattr(backend, "client", None), getattr(backend, "get_key_for_task", None)
        if client is None or key_for is None:
            for tid in ids:
                backend.forget(tid)
            return
        with converted_errors("delete Celery result keys"):
            for start in range(0, len(ids), 1000):
                client.delete(*[key_for(t) for t in ids[start : start + 1000]])


class Run:
    """A handle on one workflow run. Cheap to create; every method asks Redis."""

    def __init__(self, engine: Engine, run_id: str) -> None:
        self.engine = engine
        self.id = run_id
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

        Raises:
            WaitTimeout: ``timeout`` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        offset = 0
        while True:
            state = self.state()
            yield state
            if state.finished:
                return
            block = tick if deadline is None else min(tick, deadline - time.monotonic())
            if block <= 0:
                raise WaitTimeout(f"run {self.id} is still {state.status.value} after {timeout} s")
            offset, _ = self.events(after=offset, block=block)

    def summary(self) -> RunSummary:
        """Status, times and progress (nodes finished / all) from the run record alone: cheap on any run."""
        return RunSummary.of(self.id, self.engine.tracker.run_record(self.id))

    def node(self, name: str) -> NodeState:
        """One node's state, or one instance's of a mapped node (``resize[3]``), read without the rest of
        the run (cheap on large runs; an instance reads the run's state). KeyError if unknown."""
        plan = self.plan()
        if name not in plan.by_name and self._slot(plan, name) is not None:
            return self.state(check_workers=False).nodes[name]  # KeyError for an instance not (yet) made
        index = plan.by_name[name].index
        record, nodes, errors = self.engine.tracker.read_run(self.id, only=[index])
        state = build_state(self.id, record, nodes, errors, plan, self.engine.queue_of, only=[index])
        return state.nodes[name]

    def result(self, node: str) -> Any:
        """The stored result of one node or instance (None until it succeeded). KeyError for an unknown
        node."""
        slot = self._slot(self.plan(), node)
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
    def _slot(plan: Plan, name: str) -> Slot | None:
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


def check_canvas_app(app: Celery, plan: Plan) -> None:
    """The canvas executor publishes chords where the plan has joins: Celery needs a result backend
    for them. Raises :class:`ConfigurationError` naming the setting."""
    from celery.backends.base import DisabledBackend

    if isinstance(app.backend, DisabledBackend) and has_chord(plan):
        raise ConfigurationError(
            f"workflow {plan.name!r} runs chords under the canvas executor, and Celery needs a result "
            "backend for chords: set result_backend (or submit with executor='counters')"
        )


def _sig_dict(sig: Any) -> dict[str, Any] | None:
    if sig is None:
        return None
    return dict(signature(sig))


# SKIPPED: the reason of the skip (a false condition, an unmet trigger rule, a failure upstream)
_SHOWS_ERROR = frozenset({NodeStatus.RETRYING, NodeStatus.FAILED, NodeStatus.REVOKED, NodeStatus.SKIPPED})


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def build_state(
    run_id: str,
    record: RunRecord,
    nodes: dict[Slot, NodeRecord],
    errors: dict[Slot, dict[str, Any]],
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
        for slot, i in slots:
            n = nodes.get(slot) or NodeRecord()
            status = NodeStatus.from_code(n.code)
            name = node.name if i is None else instance_name(node.name, i)
            states[name] = NodeState(
                name=name,
                status=status,
                attempts=n.attempts,
                task_id=task_id(run_id, slot, n.epoch),
                queue=queue_of(node.task, node.queue) if queue_of else node.queue,
                worker=record.workers.get(n.worker),
                started_at=None if n.started_ms is None else (created + n.started_ms) / 1000,
                finished_at=None if n.finished_ms is None else (created + n.finished_ms) / 1000,
                # the error of the current attempt only: a node running again after a retry shows none
                error=errors.get(slot) if status in _SHOWS_ERROR else None,
                epoch=n.epoch,
                index=node.index,
                instance=i,
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
    )
