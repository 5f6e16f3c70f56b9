"""Control of runs: pause, resume, cancel, retry and cleanup.

Each acts on the tracker first (one atomic Lua call decides), then on Celery (revoke broadcasts, the
workers' gate, publishing re-planned nodes). Each returns the run's new state and is idempotent; a
refusal raises :class:`~wfcelery.errors.ControlError` saying why.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from wfcelery.client.audit import audited
from wfcelery.client.base import EngineBase
from wfcelery.errors import (
    ControlError,
    RunNotFound,
)
from wfcelery.messaging.release import publish_instances, publish_released, revoke_canvas
from wfcelery.tracker.base import converted_errors
from wfcelery.tracker.keys import task_id
from wfcelery.tracker.states import RunState, RunStatus


def _run(engine: Any, run_id: str, *args: Any, result: Any = None, **kwargs: Any) -> str:
    return f"run {run_id}"


class Control(EngineBase):
    """pause / resume / cancel / retry / cleanup of runs by id (:class:`~wfcelery.client.run.Run` delegates
    here)."""

    @audited("pause", _run)
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

    @audited("cancel", _run)
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

    @audited("resume", _run)
    def resume(self, run_id: str) -> RunState:
        """Resume a paused run: what did not succeed is queued again under a new epoch (fresh task ids)."""
        return self._replan(run_id, "resume")

    @audited("retry", _run)
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
        if op == "retry":  # it is no longer a run that ended so
            self.tracker.unindex_ended(run_id, [out.before])
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

    @audited("cleanup", _run)
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
        self.tracker.delete_run(run_id, run_key=record.run_key, workflow=record.name)

    def cleanup_finished(
        self,
        status: str | None = None,
        older_than: float = 0.0,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[str]:
        """Delete every finished run (only those in ``status``, if given) that ended at least
        ``older_than`` seconds ago. Returns the ids deleted; live runs are never touched.
        ``progress(done, total)`` is told after each run looked at."""
        wanted = RunStatus(status.upper()) if status else None
        if wanted is not None and not wanted.finished:
            raise ControlError(f"cleanup deletes finished runs only, not {wanted.value} ones")
        cutoff = time.time() - older_than
        deleted = []
        runs = self.runs(status=status, limit=10**9)
        for done, summary in enumerate(runs, 1):
            if progress is not None:
                progress(done, len(runs))
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
