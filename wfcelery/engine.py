"""Engine (one per Celery app) and Run: submit, state, wait, pause/resume/cancel/retry/cleanup.

Control operations act on the tracker first (one atomic Lua call decides), then on Celery (revoke
broadcasts, the workers' gate, publishing re-planned nodes). Each returns the run's new state and is
idempotent; a refusal raises :class:`ControlError` saying why.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from celery import Celery, signature

from .compiler import Plan, compile_workflow
from .consumers import ConsumerCheck, describe, node_queue, unconsumed
from .errors import (
    BrokerUnavailable,
    ConfigurationError,
    ControlError,
    NoWorkerError,
    RunFailed,
    RunNotFound,
    WaitTimeout,
    WfCeleryError,
)
from .gate import Gate
from .hooks import retry_countdown
from .keys import task_id
from .loader import load
from .model import Workflow
from .settings import Settings
from .states import NodeStatus, RunState, RunStatus
from .tracker import Tracker, converted_errors

logger = logging.getLogger("wfcelery.engine")

#: Ids per revoke broadcast message.
REVOKE_CHUNK = 5_000


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
        self._routed: dict[str, str] = {}  # task name -> the queue the app's router picks

    # Settings are read on first use, not at install(): install() usually runs at import time, before
    # the project has called app.config_from_object().
    @cached_property
    def settings(self) -> Settings:
        return Settings.from_app(self.app, **self._overrides)

    @cached_property
    def tracker(self) -> Tracker:
        return Tracker(self.settings)

    @cached_property
    def gate(self) -> Gate:
        return Gate(self.tracker)

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

        Raises:
            DefinitionError: the definition or the params are wrong (nothing was written).
            ConfigurationError: the app cannot run workflows (``task_always_eager``, no JSON accepted).
            NoWorkerError: ``require_workers=True`` and a queue has no consumer.
            BrokerUnavailable / TrackerUnavailable: the broker or the tracker's Redis cannot be reached.
        """
        if self.app.conf.task_always_eager:
            raise ConfigurationError(
                "task_always_eager=True: Celery would run tasks inside apply_async, but a workflow needs "
                "real workers (its tracker releases each node when its parents succeed). To run workflows "
                "in tests, use the wfcelery.testing pytest plugin (README: 'Testing your workflows')"
            )
        wf = self._workflow(workflow)
        wf.validate(self.app if self.settings.check_tasks else None)
        resolved = wf.resolve_params(params)
        plan = self.tracker.remember(compile_workflow(wf, self.settings.routes))
        warnings = self._check_workers(plan, require_workers)
        run_id = uuid.uuid4().hex
        with broker_errors(self.app, "submit a run"), self.app.producer_or_acquire() as producer:
            # connect before writing anything: a broker that is down or refuses us leaves no key behind
            _ensure_connected(self.app, producer.connection)
            self.tracker.create_run(
                run_id, plan, resolved, on_success=_sig_dict(on_success), on_failure=_sig_dict(on_failure)
            )
            try:
                self.publish(plan, run_id, [(i, 0, ()) for i in plan.roots], resolved, producer=producer)
            except Exception:
                self.tracker.delete_run(run_id)  # nothing ran: leave no trace
                raise
        run = Run(self, run_id)
        run.warnings = warnings
        return run

    def _check_workers(self, plan: Plan, require: bool) -> list[str]:
        consumers = self.consumers.get()
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
            return load(workflow)
        return Workflow.from_dict(workflow)

    def publish(
        self,
        plan: Plan,
        run_id: str,
        items: Iterable[tuple[int, int, Sequence[Any]]],
        params: Mapping[str, Any],
        countdown: float | None = None,
        producer: Any = None,
    ) -> None:
        """Send node messages: ``items`` are (node index, epoch, parent results)."""
        app = self.app
        ignore_result = not self.settings.celery_results  # the tracker keeps every result anyway
        with (
            broker_errors(app, f"send the tasks of run {run_id}"),
            app.producer_or_acquire(producer) as producer,
        ):
            for index, epoch, parent_results in items:
                msg = plan.message(run_id, index, epoch, params, parent_results)
                if countdown:
                    msg["countdown"] = countdown
                if ignore_result:
                    msg["ignore_result"] = True
                # JSON per message, whatever the app's task_serializer: pickle apps can run workflows
                app.send_task(
                    plan.nodes[index].task, producer=producer, add_to_parent=False, serializer="json", **msg
                )

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
                if (
                    r
                    and (wanted is None or r["status"] == wanted.value)
                    and (name is None or r["name"] == name)
                ):
                    found.append(
                        RunSummary(
                            run_id,
                            r["name"],
                            RunStatus(r["status"]),
                            int(r["created"]) / 1000,
                            int(r["finished"]) / 1000 if r.get("finished") else None,
                            int(r["total"]),
                            int(r.get("done", 0)),
                        )
                    )
        return found[:limit]

    # -- worker side (called by hooks) ------------------------------------------------------------------

    def _plan_for(self, run_id: str, digest: str | None) -> Plan:
        return self.tracker.plan(digest or self.tracker.run_record(run_id)["plan"])

    def node_succeeded(
        self, parsed: tuple[str, int, int], digest: str | None, result: Any, result_json: str
    ) -> None:
        run_id, index, epoch = parsed
        plan = self._plan_for(run_id, digest)
        finish, *rest = self.tracker.succeed(run_id, index, epoch, result_json, plan.releases[index])
        if len(rest) > 2:
            run_epoch, params, released = int(rest[0]), json.loads(rest[1]), [int(c) for c in rest[2:]]
            fan_in = sorted(
                {p for c in released if len(plan.nodes[c].parents) > 1 for p in plan.nodes[c].parents}
            )
            stored = {**self.tracker.results(run_id, fan_in), index: result}
            self.publish(
                plan,
                run_id,
                [(c, run_epoch, [stored.get(p) for p in plan.nodes[c].parents]) for c in released],
                params,
            )
        if finish:
            self.tracker.refresh_plan(plan.digest)  # the plan must outlive the run's keys
        self._finished(run_id, finish)

    def node_failed(
        self,
        parsed: tuple[str, int, int],
        digest: str | None,
        error: dict[str, Any],
        mode: str,
        attempt: int = 0,
    ) -> None:
        run_id, index, epoch = parsed
        plan = self._plan_for(run_id, digest)
        node = plan.nodes[index]
        descendants = plan.descendants([index]) if plan.on_failure == "continue" else []
        out = self.tracker.fail(run_id, index, epoch, error, mode, node.retries, descendants, attempt)
        if out[0] == "retry":
            record = self.tracker.run_record(run_id)
            results = self.tracker.results(run_id, node.parents)
            self.publish(
                plan,
                run_id,
                [(index, int(out[1]), [results.get(p) for p in node.parents])],
                json.loads(record["params"]),
                countdown=retry_countdown(int(out[2]), self.settings.retry_backoff_max),
            )
        elif out[0] == "failed":
            self._revoke_pairs(run_id, out[2:])
            if out[1]:
                self.tracker.refresh_plan(plan.digest)
                self.tracker.set_gate(run_id, "F", int(out[1][2]))
                self._finished(run_id, out[1])

    def _finished(self, run_id: str, finish: Any) -> None:
        """Send the run's callback (the Lua script that ended the run returned it exactly once)."""
        if not finish or not finish[1]:
            return
        try:
            signature(json.loads(finish[1]), app=self.app).apply_async((run_id,))
        except Exception:
            logger.exception("wfcelery: could not send the %s callback of run %s", finish[0], run_id)

    def _revoke_pairs(self, run_id: str, pairs: Sequence[Any], terminate: bool = False) -> list[str]:
        ids = [task_id(run_id, int(pairs[i]), int(pairs[i + 1])) for i in range(0, len(pairs) - 1, 2)]
        for start in range(0, len(ids), REVOKE_CHUNK):
            self.app.control.revoke(ids[start : start + REVOKE_CHUNK], terminate=terminate)
        return ids

    # -- control ----------------------------------------------------------------------------------------

    def pause(self, run_id: str) -> RunState:
        before, after, _, epoch, *rest = self._control(run_id, "pause")
        if after != RunStatus.PAUSED.value:
            raise ControlError(f"cannot pause run {run_id}: it is {before}")
        if before != after:
            queued, _ = _split_running(rest)
            self.tracker.set_gate(run_id, "P", int(epoch))
            self._revoke_pairs(run_id, queued)
        return self.tracker.read_state(run_id)

    def cancel(self, run_id: str, terminate: bool = False) -> RunState:
        before, after, finish, epoch, *rest = self._control(run_id, "cancel")
        if after != RunStatus.CANCELLED.value:
            raise ControlError(f"cannot cancel run {run_id}: it is {before}")
        if before != after:
            queued, running = _split_running(rest)
            self.tracker.set_gate(run_id, "C", int(epoch))
            self._revoke_pairs(run_id, queued)
            if terminate and running:
                self._revoke_pairs(run_id, running, terminate=True)
            self._finished(run_id, finish)
        return self.tracker.read_state(run_id)

    def resume(self, run_id: str) -> RunState:
        return self._replan(run_id, "resume")

    def retry(self, run_id: str) -> RunState:
        return self._replan(run_id, "retry")

    def _control(self, run_id: str, op: str) -> list[Any]:
        out = self.tracker.control(run_id, op)
        if not out[0]:
            raise RunNotFound(run_id)
        return out

    def _replan(self, run_id: str, op: str) -> RunState:
        record = self.tracker.run_record(run_id)
        plan = self.tracker.plan(record["plan"])
        out = self.tracker.replan(run_id, op, plan)
        if not out[0]:
            raise RunNotFound(run_id)
        if len(out) == 1:
            status = out[0]
            if op == "resume" and status == RunStatus.RUNNING.value:
                return self.tracker.read_state(run_id)  # already running: nothing to do
            wanted = "PAUSED" if op == "resume" else "FAILED or CANCELLED"
            raise ControlError(f"cannot {op} run {run_id}: it is {status}, not {wanted}")
        epoch, finish, queued = int(out[1]), out[2], [int(i) for i in out[3:]]
        self.tracker.refresh_plan(plan.digest)
        self.tracker.set_gate(run_id, "R", epoch)
        self._finished(run_id, finish)  # every node finished meanwhile: the run ends here
        parents = sorted({p for i in queued for p in plan.nodes[i].parents})
        results = self.tracker.results(run_id, parents)
        self.publish(
            plan,
            run_id,
            [(i, epoch, [results.get(p) for p in plan.nodes[i].parents]) for i in queued],
            json.loads(record["params"]),
        )
        return self.tracker.read_state(run_id)

    def cleanup(self, run_id: str, force: bool = False) -> None:
        """Delete every key of the run, Celery's result keys included."""
        record = self.tracker.run_record(run_id)
        if not RunStatus(record["status"]).finished:
            if not force:
                raise ControlError(f"run {run_id} is {record['status']}: cancel it first or use force=True")
            self.cancel(run_id, terminate=False)
            record = self.tracker.run_record(run_id)
        epoch = int(record["epoch"])
        ids = [task_id(run_id, i, e) for i in range(int(record["total"])) for e in range(epoch + 1)]
        self._forget_results(ids)
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
        """The whole run (status, counts, every node) in one round trip.

        Each node's ``queue`` is the queue its message goes to, as the app's ``task_routes`` pick it for
        a node without ``type``/``queue``. While nodes wait in a queue, ``idle_queues`` names those no
        live worker consumes (asked with ``inspect().active_queues()``, cached briefly; skipped with
        ``check_workers=False``).
        """
        engine = self.engine
        state = engine.tracker.read_state(self.id, engine.queue_of)
        if not check_workers or state.finished:
            return state
        waiting = {n.queue for n in state.nodes.values() if n.status is NodeStatus.QUEUED and n.queue}
        idle = engine.consumers.get().missing(waiting) if waiting else []
        return replace(state, idle_queues=tuple(idle)) if idle else state

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
        tracker = self.engine.tracker
        deadline = None if timeout is None else time.monotonic() + timeout
        with converted_errors(f"wait for run {self.id}"):
            pubsub = tracker.client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(tracker.keys.done_channel(self.id))
                while not RunStatus(tracker.run_record(self.id)["status"]).finished:
                    left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
                    if left <= 0:
                        raise WaitTimeout(f"run {self.id} did not finish within {timeout} s")
                    pubsub.get_message(timeout=left)  # the 1 s cap re-checks if a message was missed
            finally:
                pubsub.close()
        return self._outcome()

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


@contextmanager
def broker_errors(app: Celery, what: str) -> Iterator[None]:
    """Turn the broker's connection errors (refused login, unknown vhost, down, timed out) into
    :class:`BrokerUnavailable`, naming the broker without its password."""
    from kombu.exceptions import OperationalError

    conn = app.connection_for_write()
    errors = (OperationalError, *conn.connection_errors, *conn.channel_errors)
    try:
        yield
    except errors as e:
        if isinstance(e, WfCeleryError):  # TrackerUnavailable is an OSError too: not the broker's
            raise
        raise BrokerUnavailable(
            f"cannot reach the Celery broker {conn.as_uri()} to {what}: {type(e).__name__}: {e}"
        ) from e
    finally:
        conn.release()


def _ensure_connected(app: Celery, connection: Any) -> None:
    """Connect (retrying as Celery's publish policy says, no longer), or raise the broker's error."""
    policy = app.conf.task_publish_retry_policy or {}
    connection.ensure_connection(
        max_retries=policy.get("max_retries", 3),
        interval_start=policy.get("interval_start", 0),
        interval_step=policy.get("interval_step", 0.2),
        interval_max=policy.get("interval_max", 0.2),
        timeout=app.conf.broker_connection_timeout,
    )


def _split_running(rest: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    marker = rest.index("R")
    return list(rest[:marker]), list(rest[marker + 1 :])


def _sig_dict(sig: Any) -> dict[str, Any] | None:
    if sig is None:
        return None
    return dict(signature(sig))
