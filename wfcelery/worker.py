"""The worker side: what a Celery worker does for wfcelery, called by the thin adapters in ``hooks.py``.

A node's task reports here: the start gate before its body, success (count it into its children and
publish those released), failure (a tracker-level retry with backoff, or the run's failure policy), a
revoke. The worker side owns the worker's in-memory message filter and its plan cache. It sits on the tracker
beside the client API (``engine.py``); neither imports the other (both send through ``dispatch.py``).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from functools import cached_property
from typing import Any

from celery import Celery
from celery.utils.time import get_exponential_backoff_interval
from kombu.exceptions import OperationalError
from kombu.utils.json import dumps as json_dumps
from kombu.utils.json import loads as json_loads

from .compiler import Plan, PlanCache
from .dispatch import Dispatcher
from .errors import RunNotFound, TrackerError, TrackerUnavailable
from .keys import parse_task_id, task_id
from .limits import Limits, depth
from .message_filter import MessageFilter
from .outage import Outage
from .outbox import Outbox, with_retry
from .reconciler import DroppedMark, Heartbeat, Reconciler
from .records import NodeRecord
from .settings import Settings
from .states import RunStatus
from .tracker import Finish, StartOutcome, Tracker

logger = logging.getLogger("wfcelery.worker")

#: Errors of the broker a publish may raise while it is away (kombu wraps connection errors in these).
_BROKER_ERRORS: tuple[type[BaseException], ...] = (OperationalError, OSError)
_AFTER_ERRORS: tuple[type[BaseException], ...] = (TrackerUnavailable, *_BROKER_ERRORS)
_UNSET: Any = object()

Parsed = tuple[str, int, int]  # (run id, node index, epoch) from a wfcelery task id


class WorkerSide:
    """wfcelery inside one worker process (one per Celery app; see :func:`worker_of`)."""

    def __init__(self, app: Celery, tracker: Callable[[], Tracker]) -> None:
        self.app = app
        self._tracker = tracker  # lazy: settings are read on first use, after the app is configured
        self.hostname = ""  # the worker's node name (set by hooks and the bootstep; names the outbox)

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
        """The authoritative start gate: whether the body may run, and its attempt number.

        Strict: when the tracker cannot be reached it retries for ``wfcelery_gate_wait`` seconds, then
        raises :class:`TrackerUnavailable` (the hook gives the message back to the broker; no body runs
        unchecked, so pause holds during an outage and a later resume does not run it twice)."""
        return with_retry(  # type: ignore[no-any-return]
            lambda: self.tracker.start(parsed[0], parsed[1], parsed[2], worker),
            (TrackerUnavailable,),
            self.settings.gate_wait,
        )

    @property
    def settings(self) -> Settings:
        return self.tracker.settings

    # -- reports: retried, then kept in the outbox ----------------------------------------------------

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox.for_worker(self.settings.outbox_dir, self.hostname or socket.gethostname())

    def report(self, kind: str, payload: dict[str, Any]) -> None:
        """Deliver a hook's report: retried for ``wfcelery_report_retry`` seconds while the task's message
        stays unacknowledged, then kept in the worker's outbox (see outbox.py), replayed in order."""
        tries = 0
        if self.outage.active:  # reported while the tracker is known away: counted in the outage's INFO line
            self.outage.kept()

        def attempt() -> None:
            nonlocal tries
            tries += 1
            # After a lost reply the script may have run: say so, so that what it released is found again.
            try:
                self.deliver(kind, {**payload, "again": tries > 1})
            except TrackerUnavailable as e:
                # one WARNING per outage; the report counts in its closing INFO line
                self.outage.kept(e) if tries == 1 and not self.outage.active else self.outage.down(e)
                raise

        try:
            with_retry(attempt, (TrackerUnavailable,), self.settings.report_retry)
            if tries > 1:
                self.outage.up()
        except TrackerUnavailable:
            self.outbox.put(kind, {**payload, "again": True})
            logger.debug(
                "wfcelery: %s report of %s kept in %s", kind, payload.get("task_id"), self.outbox.path
            )

    def deliver(self, kind: str, payload: dict[str, Any]) -> None:
        """Act on one report (from a hook, or replayed from the outbox)."""
        parsed = parse_task_id(payload["task_id"])
        assert parsed is not None
        try:
            self._deliver(kind, parsed, payload)
        except RunNotFound:
            logger.debug(
                "wfcelery: %s report of %s dropped: its run no longer exists", kind, payload["task_id"]
            )

    def _deliver(self, kind: str, parsed: Parsed, payload: dict[str, Any]) -> None:
        if kind == "succeeded":
            released = self.node_succeeded(
                parsed, payload.get("digest"), json_loads(payload["result"]), payload["result"]
            )
            if payload.get("again") and not released:
                self._release_again(parsed, payload)
        elif kind == "failed":
            action = self.node_failed(
                parsed,
                payload.get("digest"),
                payload["error"],
                payload["mode"],
                int(payload.get("attempt") or 0),
            )
            if payload.get("again") and action == "ignored" and payload["mode"] == "failed":
                self._retry_again(parsed)
        elif kind == "released":
            self._release(parsed, payload)
        elif kind == "republish":
            self.republish(parsed[0], parsed[1], parsed[2], payload.get("countdown"))
        else:
            logger.error("wfcelery: unknown report kind %r dropped", kind)

    def replay(self) -> int:
        """Deliver what the outbox kept (in order; stops at the first report the tracker refuses)."""
        delivered = self.outbox.replay(lambda report: self.deliver(report.kind, report.payload))
        if not len(self.outbox):
            self.outage.up()
        return delivered

    def _after(self, kind: str, payload: dict[str, Any], step: Callable[[], None]) -> None:
        """A step after a transition was recorded (publishing released children, a retry): retried, then
        kept in the outbox -- the transition itself will not return them a second time."""
        try:
            with_retry(step, _AFTER_ERRORS, self.settings.report_retry)
        except _AFTER_ERRORS as e:
            self.outbox.put(kind, payload)
            logger.warning("wfcelery: %s of %s kept in the outbox (%s)", kind, payload["task_id"], e)

    # -- transitions ---------------------------------------------------------------------------------

    def node_succeeded(self, parsed: Parsed, digest: str | None, result: Any, result_json: str) -> bool:
        """Record a success and publish the children it released; True when this call recorded it."""
        run_id, index, epoch = parsed
        plan = self.plan_for(run_id, digest)
        out = self.tracker.succeed(run_id, index, epoch, result_json, plan.releases[index])
        if out.gone:
            raise RunNotFound(run_id)
        if out.released:
            payload = {
                "task_id": task_id(run_id, index, epoch),
                "digest": plan.digest,
                "result": result_json,
                "epoch": out.epoch,
                "released": list(out.released),
                "params": out.params or {},
            }
            self._after("released", payload, lambda: self._release(parsed, payload, plan, result))
        if out.finish:
            self.run_ended(run_id, plan, out.finish)
        return bool(out.released or out.finish)

    def _release_again(self, parsed: Parsed, payload: dict[str, Any]) -> None:
        """A success report whose first try reached Redis but lost its reply: the script released the
        children then, and will not again. Publish the children of this node that are still QUEUED at the
        run's epoch with every parent succeeded (a copy of a message already sent is dropped by the start
        gate; a missing one would leave the run stuck)."""
        run_id, index, _ = parsed
        record, nodes, _ = self.tracker.read_run(run_id)
        if record.status is not RunStatus.RUNNING or nodes.get(index, NodeRecord()).code != "S":
            return
        plan = self.plans.get(payload.get("digest") or record.plan)
        released = [
            c
            for c in plan.nodes[index].children
            if (n := nodes.get(c)) is not None
            and n.code == "Q"
            and n.epoch == record.epoch
            and all(nodes.get(p, NodeRecord()).code == "S" for p in plan.nodes[c].parents)
        ]
        if released:
            again = {**payload, "epoch": record.epoch, "released": released, "params": record.params}
            self._release(parsed, again, plan)

    def _release(
        self, parsed: Parsed, payload: dict[str, Any], plan: Plan | None = None, result: Any = _UNSET
    ) -> None:
        run_id, index, _ = parsed
        plan = plan or self.plans.get(payload["digest"])
        released = [int(c) for c in payload["released"]]
        fan_in = sorted(
            {p for c in released if len(plan.nodes[c].parents) > 1 for p in plan.nodes[c].parents}
        )
        own = json_loads(payload["result"]) if result is _UNSET else result
        stored = {**self.tracker.results(run_id, fan_in), index: own}
        self.dispatch.publish(
            plan,
            run_id,
            [(c, int(payload["epoch"]), [stored.get(p) for p in plan.nodes[c].parents]) for c in released],
            payload["params"],
        )

    def node_failed(
        self,
        parsed: Parsed,
        digest: str | None,
        error: dict[str, Any],
        mode: str,
        attempt: int = 0,
    ) -> str:
        """Record a failure: a tracker-level retry, or the run's failure policy; returns fail.lua's action."""
        run_id, index, epoch = parsed
        plan = self.plan_for(run_id, digest)
        node = plan.nodes[index]
        descendants = plan.descendants([index]) if plan.on_failure == "continue" else []
        out = self.tracker.fail(run_id, index, epoch, error, mode, node.retries, descendants, attempt)
        if out.action == "gone":
            raise RunNotFound(run_id)
        if out.action == "retry":
            countdown = retry_countdown(out.attempts, self.settings.retry_backoff_max)
            payload = {"task_id": task_id(run_id, index, out.epoch), "countdown": countdown}
            self._after("republish", payload, lambda: self.republish(run_id, index, out.epoch, countdown))
        elif out.action == "failed":
            self.dispatch.revoke(run_id, out.revoke)
            if out.finish:
                self.run_ended(run_id, plan, out.finish)
        return out.action

    def _retry_again(self, parsed: Parsed) -> None:
        """A failure report whose first try reached Redis but lost its reply: if the script chose a
        tracker-level retry then (the node is RETRYING at this epoch), the retry was never published."""
        run_id, index, epoch = parsed
        _, nodes, _ = self.tracker.read_run(run_id)
        node = nodes.get(index)
        if node is not None and node.code == "Y" and node.epoch == epoch:
            self.republish(run_id, index, epoch)

    def run_ended(self, run_id: str, plan: Plan, finish: Finish) -> None:
        self.tracker.refresh_plan(plan.digest)  # the plan must outlive the run's keys
        if finish.status != RunStatus.SUCCEEDED.value:
            self.tracker.set_gate(run_id, RunStatus(finish.status), finish.epoch)
        self.dispatch.callback(run_id, finish.status, finish.callback)

    def republish(self, run_id: str, index: int, epoch: int, countdown: float | None = None) -> None:
        """Publish node ``index`` again at ``epoch`` with its stored parent results and the run's params."""
        record = self.tracker.run_record(run_id)
        plan = self.plans.get(record.plan)
        parents = plan.nodes[index].parents
        results = self.tracker.results(run_id, parents)
        items = [(index, epoch, [results.get(p) for p in parents])]
        self.dispatch.publish(plan, run_id, items, record.params, countdown=countdown, resend=True)

    def quarantine(self, run_id: str, index: int, epoch: int, lost: int, attempt: int = 0) -> None:
        """Fail a node whose deliveries kept dying with their worker (``wfcelery_quarantine_after``)."""
        message = (
            f"killed {lost} workers: {lost} deliveries of this node never finished (the worker died each "
            f"time); quarantined after wfcelery_quarantine_after = {self.settings.quarantine_after}"
        )
        error = {"type": "Quarantined", "message": message, "traceback": ""}
        self.node_failed((run_id, index, epoch), None, error, "quarantined", attempt)

    # -- the worker's main process ---------------------------------------------------------------------

    def received(self, parsed: Parsed) -> bool:
        """A redelivered message arrived (main process): count it; True when its node was quarantined
        now and the message must be dropped before it reaches the pool."""
        out = self.tracker.repair(parsed[0], "received", parsed[1], parsed[2], self.settings.quarantine_after)
        if out.action != "quarantine":
            return False
        self.quarantine(parsed[0], parsed[1], out.epoch, out.lost)
        return True

    def dropped(self, parsed: Parsed, hostname: str, why: str) -> None:
        """A worker dropped a node's message (unregistered task, malformed message): the reconciler fails
        the node after ``wfcelery_unknown_grace`` unless another worker took it."""
        mark = DroppedMark(parsed[2], self.tracker.server_ms(), hostname, why)
        self.tracker.mark_dropped(parsed[0], parsed[1], mark.encode())

    def start_services(self, hostname: str) -> None:
        """Heartbeat, reconciler (when ``wfcelery_sweep_interval`` > 0) and outbox replay, in threads of
        the worker's main process."""
        self.hostname = hostname
        self._services: list[Any] = [
            Heartbeat(self.tracker, hostname, self.settings.heartbeat),
            _Replayer(self),
        ]
        if self.settings.sweep_interval > 0:
            self._services.append(Reconciler(self, hostname))
        for service in self._services:
            service.start()

    def stop_services(self) -> None:
        for service in getattr(self, "_services", ()):
            service.stop()


class _Replayer:
    """Replays the outbox every second while it holds reports (and once at worker start)."""

    def __init__(self, side: WorkerSide) -> None:
        self.side = side
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="wfcelery-outbox", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if len(self.side.outbox):
                    self.side.replay()
            except Exception:
                logger.exception("wfcelery outbox: replay failed")
            self._stop.wait(1.0)


def check_result(result: Any, limits: Limits) -> tuple[str | None, dict[str, Any] | None]:
    """``(json, None)`` for a result the tracker can store, else ``(None, error)``: a value JSON cannot
    encode (a set), nested deeper than ``max_depth`` or larger than ``max_result_bytes``."""
    if depth(result, stop=limits.max_depth) > limits.max_depth:
        message = f"the result is nested more than {limits.max_depth} levels deep (wfcelery_max_depth)"
        return None, {"type": "ResultError", "message": message, "traceback": ""}
    try:
        encoded = json_dumps(result)
    except (TypeError, ValueError) as e:
        message = f"the result cannot be stored as JSON ({type(result).__name__}): {e}"
        return None, {"type": "ResultError", "message": message, "traceback": ""}
    if len(encoded) > limits.max_result_bytes:
        message = (
            f"the result is {len(encoded):,} bytes as JSON, over the limit of {limits.max_result_bytes:,} "
            "(wfcelery_max_result_bytes)"
        )
        return None, {"type": "ResultError", "message": message, "traceback": ""}
    return encoded, None


def retry_countdown(attempts: int, maximum: int) -> int:
    """Celery's exponential backoff with full jitter (as ``retry_backoff=True``)."""
    return int(
        get_exponential_backoff_interval(factor=1, retries=attempts - 1, maximum=maximum, full_jitter=True)
    )


def worker_of(app: Any) -> WorkerSide | None:
    """The worker side :func:`wfcelery.install` attached to this app, if any."""
    return getattr(app, "_wfcelery_worker", None)
