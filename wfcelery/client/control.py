"""Control of runs: pause, resume, cancel, retry, cleanup, and signals to wait nodes.

Each acts on the tracker first (one atomic Lua call decides), then on Celery (revoke broadcasts, the
workers' gate, publishing re-planned nodes). Each returns the run's new state and is idempotent; a
refusal raises :class:`~wfcelery.errors.ControlError` saying why. Each reaches the run's child runs (its
sub-workflow nodes'): pause and cancel halt them, resume resumes them, retry retries a failed child when
its node runs again, cleanup deletes them (``ops.subruns``).
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
from wfcelery.ops.pool_flow import forget_pool_waits
from wfcelery.ops.signals import SignalWait, send_signal, signal_waits
from wfcelery.ops.subruns import children, halt_run, replan_run
from wfcelery.ops.waits import waits_of
from wfcelery.tracker.base import converted_errors
from wfcelery.tracker.keys import task_id
from wfcelery.tracker.states import RunState, RunStatus


def _run(engine: Any, run_id: str, *args: Any, result: Any = None, **kwargs: Any) -> str:
    return f"run {run_id}"


def _node(engine: Any, run_id: str, node: str, *args: Any, result: Any = None, **kwargs: Any) -> str:
    return f"run {run_id} node {node}"


class Control(EngineBase):
    """pause / resume / cancel / retry / cleanup of runs by id (:class:`~wfcelery.client.run.Run` delegates
    here)."""

    @audited("pause", _run)
    def pause(self, run_id: str) -> RunState:
        """Pause a run: queued nodes wait (revoked and gated), running nodes finish. Raises ControlError
        when the run is finished, RunNotFound for an unknown id."""
        out = halt_run(self.tracker, self.dispatch, run_id, "pause")
        if out.after != RunStatus.PAUSED.value:
            raise ControlError(f"cannot pause run {run_id}: it is {out.before}")
        return self.state(run_id, check_workers=False)

    @audited("cancel", _run)
    def cancel(self, run_id: str, terminate: bool = False) -> RunState:
        """Cancel a run for good: queued nodes are revoked; ``terminate=True`` also stops running tasks
        (prefork/gevent pools). Calls the run's ``on_failure`` callback once."""
        out = halt_run(self.tracker, self.dispatch, run_id, "cancel", terminate)
        if out.after != RunStatus.CANCELLED.value:
            raise ControlError(f"cannot cancel run {run_id}: it is {out.before}")
        record = self.tracker.run_record(run_id)
        if record.pool_waits:  # its nodes that waited for a pool are REVOKED now: out of the line
            forget_pool_waits(self.tracker, record, run_id)
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
        out = replan_run(self.tracker, self.dispatch, run_id, op)
        if not out.replanned:
            if op == "resume" and out.before == RunStatus.RUNNING.value:
                return self.state(run_id, check_workers=False)  # already running: nothing to do
            wanted = "PAUSED" if op == "resume" else "FAILED or CANCELLED"
            raise ControlError(f"cannot {op} run {run_id}: it is {out.before}, not {wanted}")
        return self.state(run_id, check_workers=False)

    @audited("signal", _node)
    def signal(self, run_id: str, node: str, payload: Any = None) -> RunState:
        """Signal a wait node (see :meth:`Run.signal <wfcelery.client.run.Run.signal>`)."""
        send_signal(self.tracker, self.dispatch, run_id, node, payload)
        return self.state(run_id, check_workers=False)

    def waiting(self, limit: int = 50) -> list[SignalWait]:
        """Nodes waiting for a signal now, across every run, longest waiting first ("Waiting for you")."""
        return signal_waits(self.tracker, limit)

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
        for child in children(record):  # a child run goes with its parent
            try:
                self.cleanup(child, force=True)
            except RunNotFound:
                continue
        ids = [task_id(run_id, i, e) for i in range(record.total) for e in range(record.epoch + 1)]
        self._forget_results(ids + self.tracker.canvas_ids(run_id))
        if record.waits:
            waits_of(self.tracker).forget(run_id)
        if record.pool_waits:
            forget_pool_waits(self.tracker, record, run_id)
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
