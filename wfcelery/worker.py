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
from .keys import Slot, split_slot
from .message_filter import MessageFilter
from .outage import Outage
from .release import map_elements, publish_released
from .states import RunStatus
from .tracker import Finish, StartOutcome, Tracker

Parsed = tuple[str, Slot, int]  # (run id, node index or instance slot, epoch) from a wfcelery task id


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
        run_id, slot, epoch = parsed
        plan = self.plan_for(run_id, digest)
        index, instance = split_slot(slot)
        releases = plan.releases[index]
        out = self.tracker.succeed(run_id, slot, epoch, result_json, releases, plan.rule_spec)
        if out.gone:
            raise RunNotFound(run_id)
        finishes = [out.finish] if out.finish else []
        if out.released:
            released = [(c, out.epoch) for c in out.released]
            known: dict[Slot, Any] = {index: result} if instance is None else {}  # a map: its list
            finishes += publish_released(
                self.tracker, self.dispatch, plan, run_id, released, out.params or {}, known
            )
        for finish in finishes:
            self.ended(plan, run_id, finish)

    def _failed(
        self,
        parsed: Parsed,
        digest: str | None,
        error: dict[str, Any],
        mode: str,
        attempt: int = 0,
    ) -> None:
        run_id, slot, epoch = parsed
        plan = self.plan_for(run_id, digest)
        index, instance = split_slot(slot)
        node = plan.nodes[index]
        plain_continue = plan.on_failure == "continue" and not plan.rule_spec
        descendants = plan.descendants([index]) if plain_continue else []
        out = self.tracker.fail(
            run_id, slot, epoch, error, mode, node.retries, descendants, attempt, plan.rule_spec
        )
        if out.action == "gone":
            raise RunNotFound(run_id)
        if out.action == "retry":
            record = self.tracker.run_record(run_id)
            if instance is None:
                results = self.tracker.results(run_id, node.parents)
                inputs = [results.get(p) for p in node.parents]
            else:
                inputs = [map_elements(self.tracker, plan, run_id, index)[instance]]
            self.dispatch.publish(
                plan,
                run_id,
                [(slot, out.epoch, inputs)],
                record.params,
                countdown=retry_countdown(out.attempts, self.tracker.settings.retry_backoff_max),
            )
        elif out.action == "failed":
            self.dispatch.revoke(run_id, out.revoke)
            finishes = [out.finish] if out.finish else []
            if out.released:  # trigger rules that run after a failure (all_done, one_failed...)
                released = [(c, out.epoch) for c in out.released]
                finishes += publish_released(
                    self.tracker, self.dispatch, plan, run_id, released, out.params or {}
                )
            for finish in finishes:
                self.ended(plan, run_id, finish)

    def ended(self, plan: Plan, run_id: str, finish: Finish) -> None:
        """A transition this worker reported ended the run: keep the plan, close the gate, call back."""
        self.tracker.refresh_plan(plan.digest)  # the plan must outlive the run's keys
        if finish.status != RunStatus.SUCCEEDED.value:
            self.tracker.set_gate(run_id, RunStatus(finish.status), finish.epoch)
        self.dispatch.callback(run_id, finish.status, finish.callback)


def retry_countdown(attempts: int, maximum: int) -> int:
    """Celery's exponential backoff with full jitter (as ``retry_backoff=True``)."""
    return int(
        get_exponential_backoff_interval(factor=1, retries=attempts - 1, maximum=maximum, full_jitter=True)
    )


def worker_of(app: Any) -> WorkerSide | None:
    """The worker side :func:`wfcelery.install` attached to this app, if any."""
    return getattr(app, "_wfcelery_worker", None)
