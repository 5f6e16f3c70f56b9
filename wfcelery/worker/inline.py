"""Inline continuation: a worker that finishes a node runs the one child it released itself, through
Celery's own tracer (same task id, signals and events), instead of publishing it
(``wfcelery_inline_depth``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Celery

from wfcelery import tracing
from wfcelery.definition.executor import Executor
from wfcelery.plan.compiler import Plan
from wfcelery.tracker.keys import task_id
from wfcelery.tracker.store import Tracker
from wfcelery.worker.base import WorkerBase

logger = logging.getLogger("wfcelery.worker")


class Inline(WorkerBase):
    """Running released children inline (see the module docstring)."""

    def __init__(self, app: Celery, tracker: Callable[[], Tracker]) -> None:
        super().__init__(app, tracker)
        self.inline = InlineState()  # per thread

    def _inline_candidate(self, plan: Plan, index: int, instance: int | None) -> int | None:
        """The one child of node ``index`` this worker may run itself right after it, if any: inline
        continuation is on and allowed here (see :meth:`inline_scope`), the plan is plain (no trigger rule,
        condition or map), the node has exactly one child, the child has no time limit (nor its task, nor
        the app) and its queue is one this worker consumes, and the chain is shorter than
        ``wfcelery_inline_depth``."""
        state = self.inline
        if (
            not state.allowed
            or instance is not None
            or plan.rule_spec
            or plan.executor is not Executor.COUNTERS
        ):
            return None  # (under the canvas executor, the segment's canvas carries the child)
        if state.depth >= self.settings.inline_depth:
            return None
        children = plan.nodes[index].children
        if len(children) != 1:
            return None
        child = plan.nodes[children[0]]
        if len(child.parents) != 1:  # its arguments are this node's result alone
            return None
        if child.pool is not None:  # its start waits for its pool's slot (ops/pool_flow.py)
            return None
        if child.options.get("time_limit") is not None or child.options.get("soft_time_limit") is not None:
            return None
        conf = self.app.conf
        if conf.task_time_limit is not None or conf.task_soft_time_limit is not None:
            return None
        task = self.app.tasks.get(child.task)
        if task is None or task.time_limit is not None or task.soft_time_limit is not None:
            return None
        if self._queue_of(child.task, child.queue) not in self._consumed():
            return None
        return child.index

    def _queue_of(self, task: str, queue: str | None) -> str | None:
        if queue:
            return queue
        route = self.app.amqp.router.route({}, task)
        q = route.get("queue")
        return getattr(q, "name", q)

    def _consumed(self) -> set[str]:
        consume_from = getattr(self.app.amqp.queues, "consume_from", None) or self.app.amqp.queues
        return set(consume_from)

    def inline_scope(self, allowed: bool) -> InlineScope:
        """While a hook reports a success: whether its released child may run inline (the parent task has
        no time limit: the child runs inside the parent's execution)."""
        return InlineScope(self.inline, allowed and self.settings.inline_depth > 0)

    def run_inline(self, hostname: str) -> None:
        """Run the inline children a success released, one after the other (each one's success may
        release the next), up to ``wfcelery_inline_depth``. Only the outermost call runs them."""
        state = self.inline
        if state.running:
            return
        state.running = True
        try:
            while state.pending is not None:
                child, state.pending = state.pending, None
                state.depth += 1
                try:
                    self._run_child(child, hostname)
                except Exception:  # it never ran (its task ran through Celery's tracer, which keeps errors)
                    logger.exception("wfcelery: inline run of %s failed: publishing it", child.task_id)
                    self.republish(child.run_id, child.index, child.epoch)
        finally:
            state.running = False
            state.depth = 0
            state.pending = None

    def _run_child(self, child: InlineChild, hostname: str) -> None:
        """Run one inline child through Celery's own tracer (its signals, so wfcelery's hooks record it),
        as the worker would run its message: same task id, args, kwargs and headers."""
        from celery.app.trace import build_tracer

        plan, node = child.plan, child.plan.nodes[child.index]
        msg = plan.message(child.run_id, child.index, child.epoch, child.params, [child.parent_result])
        tid = msg["task_id"]
        task = self.app.tasks[node.task]
        queue = self._queue_of(node.task, node.queue)
        request: dict[str, Any] = {
            **msg["headers"],
            "id": tid,
            "task": node.task,
            "parent_id": child.parent_task_id,
            "root_id": child.parent_task_id,
            "retries": 0,
            "is_eager": False,
            "hostname": hostname,
            "delivery_info": {"exchange": "", "routing_key": queue, "priority": node.options.get("priority")},
            "ignore_result": self.dispatch.ignore_result,
            "kwargsrepr": msg["kwargsrepr"],
            "timelimit": [None, None],
        }
        tracing.stamp(request, child.run_id)
        self.inline.started[tid] = child.attempt
        events = self._events(hostname)
        fields = {"uuid": tid, "name": node.task, "args": repr(msg["args"]), "kwargs": msg["kwargsrepr"]}
        events.send("task-received", **fields, root_id=child.parent_task_id, parent_id=child.parent_task_id)
        events.send("task-started", uuid=tid)
        started = time.monotonic()
        try:
            tracer = build_tracer(node.task, task, app=self.app, hostname=hostname)
            info = tracer(tid, msg["args"], msg["kwargs"], request)
        finally:
            self.inline.started.pop(tid, None)
        runtime = time.monotonic() - started
        if info.info is None or info.info.state == "SUCCESS":
            events.send("task-succeeded", uuid=tid, result=repr(info.retval), runtime=runtime)
        elif info.info.state == "RETRY":  # a tracker-level retry (retries.py): Flower shows a retry
            events.send(
                "task-retried", uuid=tid, exception=repr(getattr(info.retval, "exc", None)), traceback=""
            )
        else:
            events.send("task-failed", uuid=tid, exception=repr(info.retval), traceback="")

    def _events(self, hostname: str) -> Any:
        """This process's dispatcher of the inline children's task events (Flower sees them as tasks this
        worker received, started and finished)."""
        dispatcher = getattr(self, "_inline_events", None)
        if dispatcher is None or dispatcher.hostname != hostname:
            enabled = bool(self.app.conf.worker_send_task_events)
            dispatcher = self.app.events.Dispatcher(
                self.app.connection_for_write(), hostname=hostname, enabled=enabled
            )
            self._inline_events = dispatcher
        return dispatcher


@dataclass
class InlineChild:
    """A child the succeed script started for this worker to run inline (see WorkerSide.run_inline)."""

    plan: Plan
    run_id: str
    index: int
    epoch: int
    attempt: int
    parent_result: Any
    params: dict[str, Any]
    parent_task_id: str

    @property
    def task_id(self) -> str:
        return task_id(self.run_id, self.index, self.epoch)


class InlineState(threading.local):
    def __init__(self) -> None:
        self.allowed = False  # a hook's success report may start the released child here
        self.running = False  # run_inline's loop is on (a child's own success only sets ``pending``)
        self.depth = 0  # inline children run in this loop so far
        self.pending: InlineChild | None = None
        self.started: dict[str, int] = {}  # task id -> attempt: the start gate already ran (succeed.lua)


class InlineScope:
    def __init__(self, state: InlineState, allowed: bool) -> None:
        self.state, self.allowed, self.before = state, allowed, False

    def __enter__(self) -> None:
        self.before, self.state.allowed = self.state.allowed, self.allowed

    def __exit__(self, *exc: object) -> None:
        self.state.allowed = self.before
