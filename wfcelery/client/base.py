"""What every part of the client API stands on: the app, its settings, tracker, dispatcher, plan cache,
routing, and reading a run's state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from functools import cached_property
from typing import Any

from celery import Celery

from wfcelery.client.run import RunSummary, build_state
from wfcelery.definition.model import Workflow
from wfcelery.messaging.consumers import ConsumerCheck, node_queue, unconsumed
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.ops.submit import ended
from wfcelery.ops.subruns import after_end
from wfcelery.plan.compiler import Plan, PlanCache
from wfcelery.settings import Settings
from wfcelery.tracker.outcomes import Finish
from wfcelery.tracker.states import NodeStatus, RunState, RunStatus
from wfcelery.tracker.store import Tracker


class EngineBase:
    """The connections and reads :class:`~wfcelery.client.engine.Engine` is built on."""

    def __init__(self, app: Celery, **overrides: Any) -> None:
        self.app = app
        self._overrides = overrides
        self._routed: dict[str, str] = {}  # task name -> the queue the app's router picks
        self._registered: dict[str, Workflow] = {}
        #: Definition files of the ``wfcelery_definitions`` folder left out by the last
        #: :meth:`~wfcelery.client.engine.Engine.definitions`: name (or file stem) -> why.
        self.skipped_definitions: dict[str, str] = {}

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
        return {n.name: self.queue_of(n.task, n.queue) for n in nodes if n.has_task}

    def unconsumed(self, plan: Plan, indexes: Iterable[int] | None = None) -> dict[str, list[str]]:
        """``{queue: [node, ...]}`` for the nodes whose queue no live worker consumes right now."""
        return unconsumed(self.consumers.get(), self.node_queues(plan, indexes))

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
        ended(self.tracker, self.dispatch, run_id, finish)
        if finish is not None:
            after_end(self.tracker, self.dispatch, run_id, finish)  # its parent run, its child runs
