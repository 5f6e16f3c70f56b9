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
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from celery import Celery, signature

from .compiler import Plan, PlanCache, compile_workflow
from .dispatch import Dispatcher
from .errors import ControlError, RunFailed, TrackerUnavailable, WaitTimeout
from .keys import task_id
from .loader import load
from .model import Workflow
from .records import NodeRecord, RunRecord, new_run
from .settings import Settings
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

    def to_dict(self) -> dict[str, Any]:
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

    # Settings are read on first use, not at install(): install() usually runs at import time, before
    # the project has called app.config_from_object().
    @cached_property
    def settings(self) -> Settings:
        return Settings.from_app(self.app, **self._overrides)

    @cached_property
    def tracker(self) -> Tracker:
        return Tracker(self.settings)

    @cached_property
    def dispatch(self) -> Dispatcher:
        return Dispatcher(self.app, celery_results=self.settings.celery_results)

    @cached_property
    def plans(self) -> PlanCache:
        return PlanCache(self.tracker.plan_blob)

    # -- submitting -------------------------------------------------------------------------------------

    def submit(
        self,
        workflow: Workflow | str | Path | Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        *,
        on_success: Any = None,
        on_failure: Any = None,
    ) -> Run:
        """Validate, compile and start a run. Returns at once with a :class:`Run`.

        Args:
            workflow: a Workflow, a path to a YAML/JSON definition, or a definition dict.
            params: values for ``${name}`` placeholders.
            on_success / on_failure: Celery signatures sent once when the run ends, with the run id as
                first argument. ``on_failure`` also fires for a cancelled run.
        """
        wf = self._workflow(workflow)
        limits = self.settings.limits
        wf.validate(self.app if self.settings.check_tasks else None, limits)
        resolved = wf.resolve_params(params, limits)
        plan = self.plans.remember(compile_workflow(wf, self.settings.routes, limits))
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
        )
        self.tracker.create_run(run_id, record, plan.roots, plan.digest, plan.blob)
        try:
            self.dispatch.publish(plan, run_id, [(i, 0, ()) for i in plan.roots], resolved)
        except Exception:
            self.tracker.delete_run(run_id)  # nothing ran: leave no trace
            raise
        return Run(self, run_id)

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
                    found.append(
                        RunSummary(
                            run_id,
                            r.name,
                            r.status,
                            r.created_ms / 1000,
                            _seconds(r.finished_ms),
                            r.total,
                            r.done,
                        )
                    )
        return found[:limit]

    # -- control ----------------------------------------------------------------------------------------

    def pause(self, run_id: str) -> RunState:
        out = self.tracker.control(run_id, "pause")
        if out.after != RunStatus.PAUSED.value:
            raise ControlError(f"cannot pause run {run_id}: it is {out.before}")
        if out.changed:
            self.tracker.set_gate(run_id, RunStatus.PAUSED, out.epoch)
            self.dispatch.revoke(run_id, out.queued)
        return self.state(run_id)

    def cancel(self, run_id: str, terminate: bool = False) -> RunState:
        out = self.tracker.control(run_id, "cancel")
        if out.after != RunStatus.CANCELLED.value:
            raise ControlError(f"cannot cancel run {run_id}: it is {out.before}")
        if out.changed:
            self.tracker.set_gate(run_id, RunStatus.CANCELLED, out.epoch)
            self.dispatch.revoke(run_id, out.queued)
            if terminate and out.running:
                self.dispatch.revoke(run_id, out.running, terminate=True)
            self._ended(run_id, out.finish)
        return self.state(run_id)

    def resume(self, run_id: str) -> RunState:
        return self._replan(run_id, "resume")

    def retry(self, run_id: str) -> RunState:
        return self._replan(run_id, "retry")

    def _replan(self, run_id: str, op: str) -> RunState:
        record = self.tracker.run_record(run_id)
        plan = self.plans.get(record.plan)
        out = self.tracker.replan(run_id, op, plan.parents)
        if not out.replanned:
            if op == "resume" and out.before == RunStatus.RUNNING.value:
                return self.state(run_id)  # already running: nothing to do
            wanted = "PAUSED" if op == "resume" else "FAILED or CANCELLED"
            raise ControlError(f"cannot {op} run {run_id}: it is {out.before}, not {wanted}")
        self.tracker.refresh_plan(plan.digest)
        self.tracker.set_gate(run_id, RunStatus.RUNNING, out.epoch)
        self._ended(run_id, out.finish)  # every node finished meanwhile: the run ends here
        parents = sorted({p for i in out.queued for p in plan.nodes[i].parents})
        results = self.tracker.results(run_id, parents)
        self.dispatch.publish(
            plan,
            run_id,
            [(i, out.epoch, [results.get(p) for p in plan.nodes[i].parents]) for i in out.queued],
            record.params,
        )
        return self.state(run_id)

    def state(self, run_id: str) -> RunState:
        """The whole run (status, counts, every node) in one round trip. Raises :class:`RunNotFound`."""
        record, nodes, errors = self.tracker.read_run(run_id)
        return build_state(run_id, record, nodes, errors, self.plans.get(record.plan))

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
        self._forget_results(ids)
        self.tracker.delete_run(run_id)

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

    def __repr__(self) -> str:
        return f"<Run {self.id}>"

    def state(self) -> RunState:
        """The whole run (status, counts, every node) in one round trip."""
        return self.engine.state(self.id)

    def results(self) -> dict[str, Any]:
        """Results of the nodes that succeeded so far, by node name."""
        state = self.state()
        raw = self.engine.tracker.results(self.id)  # a None result is not stored
        return {name: raw.get(n.index) for name, n in state.nodes.items() if n.status is NodeStatus.SUCCEEDED}

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
        state = self.state()
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
        return self.engine.pause(self.id)

    def resume(self) -> RunState:
        return self.engine.resume(self.id)

    def cancel(self, terminate: bool = False) -> RunState:
        return self.engine.cancel(self.id, terminate=terminate)

    def retry(self) -> RunState:
        return self.engine.retry(self.id)

    def cleanup(self, force: bool = False) -> None:
        self.engine.cleanup(self.id, force=force)


def _sig_dict(sig: Any) -> dict[str, Any] | None:
    if sig is None:
        return None
    return dict(signature(sig))


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def build_state(
    run_id: str,
    record: RunRecord,
    nodes: dict[int, NodeRecord],
    errors: dict[int, dict[str, Any]],
    plan: Plan,
) -> RunState:
    """A run's state from what the tracker stores and the run's plan (node names and queues)."""
    created = record.created_ms
    states: dict[str, NodeState] = {}
    for node in plan.nodes:
        n = nodes.get(node.index) or NodeRecord()
        states[node.name] = NodeState(
            name=node.name,
            status=NodeStatus.from_code(n.code),
            attempts=n.attempts,
            task_id=task_id(run_id, node.index, n.epoch),
            queue=node.queue,
            worker=record.workers.get(n.worker),
            started_at=None if n.started_ms is None else (created + n.started_ms) / 1000,
            finished_at=None if n.finished_ms is None else (created + n.finished_ms) / 1000,
            error=errors.get(node.index),
            epoch=n.epoch,
            index=node.index,
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
    )
