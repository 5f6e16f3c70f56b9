"""The worker side: what a Celery worker does for wfcelery, called by the thin adapters in ``hooks.py``.

A node's task reports here: the start gate before its body, success (count it into its children and
publish those released), failure (a tracker-level retry with backoff, or the run's failure policy), a
revoke. The worker side owns the worker's in-memory message filter and its plan cache. It sits on the tracker
beside the client API (``engine.py``); neither imports the other (both send through ``dispatch.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from functools import cached_property
from typing import Any

from celery import Celery
from celery.utils.time import get_exponential_backoff_interval

from .compiler import Plan, PlanCache
from .dispatch import Dispatcher
from .errors import RunNotFound, TrackerError
from .message_filter import MessageFilter
from .outage import Outage
from .states import RunStatus
from .tracker import StartOutcome, Tracker

Parsed = tuple[str, int, int]  # (run id, node index, epoch) from a wfcelery task id


class WorkerSide:
    """wfcelery inside one worker process (one per Celery app; see :func:`worker_of`)."""

    def __init__(self, app: Celery, tracker: Callable[[], Tracker]) -> None:
        self.app = app
        self._tracker = tracker  # lazy: settings are read on first use, after the app is configured

    @cached_property
    def tracker(self) -> Tracker:
        return self._tracker()

    @cached_property
    def outage(self) -> Outage:
        """The tracker outage, if any: one WARNING/INFO pair, node reports deferred meanwhile."""
        return Outage()

    @cached_property
    def message_filter(self) -> MessageFilter:
        return MessageFilter(self.tracker, self.outage)

    @cached_property
    def plans(self) -> PlanCache:
        return PlanCache(self.tracker.plan_blob)

    @cached_property
    def dispatch(self) -> Dispatcher:
        return Dispatcher(self.app, celery_results=self.tracker.settings.celery_results)

    def plan_for(self, run_id: str, digest: str | None) -> Plan:
        """The run's plan: ``digest`` comes from the message's ``wf_plan`` header when the hook has it
        (in the pool), else from the run record (main process, e.g. a lost worker process)."""
        try:
            return self.plans.get(digest or self.tracker.run_record(run_id).plan)
        except TrackerError:
            self.tracker.run_record(run_id)  # plans outlive their runs: a missing one means the run is gone
            raise

    def start(self, parsed: Parsed, worker: str) -> StartOutcome:
        """The authoritative start gate: whether the body may run, and its attempt number."""
        return self.tracker.start(parsed[0], parsed[1], parsed[2], worker)

    def node_succeeded(self, parsed: Parsed, digest: str | None, result: Any, result_json: str) -> None:
        """Record a success and publish the children it releases (deferred while the tracker is down)."""
        self.outage.report(functools.partial(self._succeeded, parsed, digest, result, result_json))

    def node_failed(
        self,
        parsed: Parsed,
        digest: str | None,
        error: dict[str, Any],
        mode: str,
        attempt: int = 0,
    ) -> None:
        """Record a failure: a tracker-level retry, or the run's failure policy (deferred while the
        tracker is down)."""
        self.outage.report(functools.partial(self._failed, parsed, digest, error, mode, attempt))

    def _succeeded(self, parsed: Parsed, digest: str | None, result: Any, result_json: str) -> None:
        run_id, index, epoch = parsed
        plan = self.plan_for(run_id, digest)
        out = self.tracker.succeed(run_id, index, epoch, result_json, plan.releases[index])
        if out.gone:
            raise RunNotFound(run_id)
        if out.released:
            fan_in = sorted(
                {p for c in out.released if len(plan.nodes[c].parents) > 1 for p in plan.nodes[c].parents}
            )
            stored = {**self.tracker.results(run_id, fan_in), index: result}
            self.dispatch.publish(
                plan,
                run_id,
                [(c, out.epoch, [stored.get(p) for p in plan.nodes[c].parents]) for c in out.released],
                out.params or {},
            )
        if out.finish:
            self.tracker.refresh_plan(plan.digest)  # the plan must outlive the run's keys
            self.dispatch.callback(run_id, out.finish.status, out.finish.callback)

    def _failed(
        self,
        parsed: Parsed,
        digest: str | None,
        error: dict[str, Any],
        mode: str,
        attempt: int = 0,
    ) -> None:
        run_id, index, epoch = parsed
        plan = self.plan_for(run_id, digest)
        node = plan.nodes[index]
        descendants = plan.descendants([index]) if plan.on_failure == "continue" else []
        out = self.tracker.fail(run_id, index, epoch, error, mode, node.retries, descendants, attempt)
        if out.action == "gone":
            raise RunNotFound(run_id)
        if out.action == "retry":
            record = self.tracker.run_record(run_id)
            results = self.tracker.results(run_id, node.parents)
            self.dispatch.publish(
                plan,
                run_id,
                [(index, out.epoch, [results.get(p) for p in node.parents])],
                record.params,
                countdown=retry_countdown(out.attempts, self.tracker.settings.retry_backoff_max),
            )
        elif out.action == "failed":
            self.dispatch.revoke(run_id, out.revoke)
            if out.finish:
                self.tracker.refresh_plan(plan.digest)
                self.tracker.set_gate(run_id, RunStatus.FAILED, out.finish.epoch)
                self.dispatch.callback(run_id, out.finish.status, out.finish.callback)


def retry_countdown(attempts: int, maximum: int) -> int:
    """Celery's exponential backoff with full jitter (as ``retry_backoff=True``)."""
    return int(
        get_exponential_backoff_interval(factor=1, retries=attempts - 1, maximum=maximum, full_jitter=True)
    )


def worker_of(app: Any) -> WorkerSide | None:
    """The worker side :func:`wfcelery.install` attached to this app, if any."""
    return getattr(app, "_wfcelery_worker", None)
