"""The worker side: what a Celery worker does for wfcelery, called by the thin adapters in ``hooks.py``.

A node's task reports here: the start gate before its body, success (count it into its children and
publish those released), failure (a tracker-level retry with backoff, or the run's failure policy), a
revoke. The worker side owns the worker's in-memory message filter, its plan cache, its outbox of
reports the tracker could not take (outbox.py), and, in the main process, the heartbeat, the elected
reconciler (reconciler.py) and the outbox replay. It sits on the tracker beside the client API
(``engine.py``); neither imports the other (both send through ``dispatch.py``).

A tracker outage: the start gate waits ``wfcelery_gate_wait`` then gives the message back to the broker
(no body runs unchecked); reports are retried ``wfcelery_report_retry`` seconds, then kept in the outbox
and replayed in order. Each process logs one WARNING when the outage starts and one INFO when it ends
(outage.py), not a line per retry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from celery.utils.time import get_exponential_backoff_interval
from kombu.exceptions import OperationalError
from kombu.utils.json import dumps as json_dumps
from kombu.utils.json import loads as json_loads

from wfcelery.definition.limits import Limits, depth
from wfcelery.errors import RunNotFound, TrackerUnavailable
from wfcelery.messaging.release import publish_released, revoke_canvas
from wfcelery.ops.pool_flow import PoolLoop, node_ended, publish_granted
from wfcelery.ops.pools import Granted, member, pools_of
from wfcelery.ops.scheduler import Scheduler
from wfcelery.ops.subruns import Settled
from wfcelery.ops.timers import TimerLoop
from wfcelery.plan.compiler import Plan
from wfcelery.tracker.keys import Slot, parse_task_id, split_slot, task_id
from wfcelery.tracker.outcomes import FailAction, FailMode, RepairAction
from wfcelery.tracker.records import DroppedMark, NodeRecord
from wfcelery.tracker.states import NodeStatus, RunStatus
from wfcelery.worker.base import Failed, Parsed
from wfcelery.worker.heartbeat import Heartbeat
from wfcelery.worker.inline import Inline, InlineChild
from wfcelery.worker.outbox import Report, ReportKind, with_retry
from wfcelery.worker.reconciler import Reconciler

logger = logging.getLogger("wfcelery.worker")

#: Errors of the broker a publish may raise while it is away (kombu wraps connection errors in these;
#: dispatch's BrokerUnavailable is a ConnectionError, so an OSError too).
_BROKER_ERRORS: tuple[type[BaseException], ...] = (OperationalError, OSError)
_AFTER_ERRORS: tuple[type[BaseException], ...] = (TrackerUnavailable, *_BROKER_ERRORS)
_UNSET: Any = object()


class WorkerSide(Inline):
    """wfcelery inside one worker process (one per Celery app; see :func:`worker_of`)."""

    # -- reports: retried, then kept in the outbox ----------------------------------------------------

    def report(self, kind: ReportKind, payload: dict[str, Any]) -> Any:
        """Deliver a hook's report: retried for ``wfcelery_report_retry`` seconds while the task's message
        stays unacknowledged, then kept in the worker's outbox (see outbox.py), replayed in order.
        Returns what :meth:`deliver` returned (None when the report was kept)."""
        tries = 0

        def attempt() -> Any:
            nonlocal tries
            tries += 1
            # After a lost reply the script may have run: say so, so that what it released is found again.
            try:
                return self.deliver(kind, {**payload, "again": tries > 1})
            except TrackerUnavailable as e:
                if tries == 1:
                    self.outage.down(e)
                    self.outage.deferred()
                raise

        try:
            delivered = with_retry(attempt, (TrackerUnavailable,), self.settings.report_retry)
        except TrackerUnavailable as e:
            self._keep(kind, payload, str(e))
            return None
        self.outage.up()
        return delivered

    def _keep(self, kind: ReportKind, payload: dict[str, Any], why: str) -> None:
        self.outbox.put(kind, {**payload, "again": True})
        logger.debug(
            "wfcelery: %s report of %s kept in %s (%s)", kind, payload.get("task_id"), self.outbox.path, why
        )

    def deliver(self, kind: ReportKind, payload: dict[str, Any]) -> Failed | None:
        """Act on one report (from a hook, or replayed from the outbox); a failure's returns what
        :meth:`node_failed` decided."""
        parsed = parse_task_id(payload["task_id"])
        assert parsed is not None
        if kind is ReportKind.SUCCEEDED:
            released = self.node_succeeded(
                parsed,
                payload.get("digest"),
                json_loads(payload["result"]),
                payload["result"],
                int(payload.get("started_ago") or 0),
            )
            if payload.get("again") and not released:
                with self.dispatch.maybe_copies():
                    self._release_again(parsed, payload)
        elif kind is ReportKind.FAILED:
            failed = self.node_failed(
                parsed,
                payload.get("digest"),
                payload["error"],
                FailMode(payload["mode"]),
                int(payload.get("attempt") or 0),
            )
            again = payload.get("again") and payload["mode"] == FailMode.FAILED.value
            if again and failed.action is FailAction.IGNORED:
                self._retry_again(parsed)
            return failed
        elif kind is ReportKind.RELEASED:  # replayed from the outbox: the first try may have sent some
            with self.dispatch.maybe_copies():
                self._release(parsed, payload)
        elif kind is ReportKind.REPUBLISH:
            self.republish(
                parsed[0], parsed[1], parsed[2], payload.get("countdown"), int(payload.get("retries") or 0)
            )
        else:
            logger.error("wfcelery: unknown report kind %r dropped", kind)
        return None

    def replay(self) -> int:
        """Deliver what the outbox kept (in order; stops at the first report the tracker refuses)."""

        def deliver(report: Report) -> None:
            try:
                self.deliver(report.kind, report.payload)
            except RunNotFound as e:  # cleaned up or expired meanwhile: nothing to record
                logger.debug("wfcelery outbox: report %s dropped: %s", report.payload.get("task_id"), e)
            except TrackerUnavailable as e:
                self.outage.down(e)
                raise

        delivered = self.outbox.replay(deliver)
        if delivered:
            self.outage.deferred(delivered)
            self.outage.up()
        return delivered

    def _after(self, kind: ReportKind, payload: dict[str, Any], step: Callable[[], None]) -> None:
        """A step after a transition was recorded (publishing released children, a retry): retried, then
        kept in the outbox -- the transition itself will not return them a second time."""
        tries = 0

        def attempt() -> None:
            nonlocal tries
            tries += 1
            if tries == 1:
                return step()
            with self.dispatch.maybe_copies():  # the try before may have sent some of its messages
                return step()

        try:
            with_retry(attempt, _AFTER_ERRORS, self.settings.report_retry)
        except _AFTER_ERRORS as e:
            self.outbox.put(kind, payload)
            if isinstance(e, TrackerUnavailable):  # the outage's one WARNING says it
                self.outage.down(e)
                self.outage.deferred()
                logger.debug("wfcelery: %s of %s kept in the outbox (%s)", kind, payload["task_id"], e)
            else:
                logger.warning("wfcelery: %s of %s kept in the outbox (%s)", kind, payload["task_id"], e)

    # -- transitions ---------------------------------------------------------------------------------

    def node_succeeded(
        self, parsed: Parsed, digest: str | None, result: Any, result_json: str, started_ago: int = 0
    ) -> bool:
        """Record a success and publish the children it released; True when this call recorded it.
        ``started_ago``: ms since the body started, for a start the report records (gate.py)."""
        run_id, slot, epoch = parsed
        plan = self.plan_for(run_id, digest)
        index, instance = split_slot(slot)
        candidate = self._inline_candidate(plan, index, instance)
        pool = plan.nodes[index].pool
        step = pools_of(self.tracker).release_step(pool, member(run_id, slot)) if pool is not None else None
        out = self.tracker.succeed(
            run_id,
            slot,
            epoch,
            result_json,
            plan.releases[index],
            plan.rule_spec,
            plan.fetch[index],
            candidate,
            self.hostname,
            started_ago,
            step,
        )
        if out.gone:
            raise RunNotFound(run_id)
        if out.started is not None:  # for the hook that reported it (hooks._on_success)
            if len(self.starts_reported) > 10_000:  # replayed reports have no hook to read theirs
                self.starts_reported.clear()
            self.starts_reported[task_id(*parsed)] = out.started
        if out.pool is not None and pool is not None:  # its slot went back in the same step
            self._pool_granted(Granted(pool, out.pool.granted, out.pool.next_token_ms, out.pool.released))
        elif out.recorded:
            self._pool_ended(plan, run_id, slot)
        if out.inline and candidate is not None:  # started by the script: this worker runs it next
            self.inline.pending = InlineChild(
                plan, run_id, candidate, out.epoch, out.inline, result, out.params or {}, task_id(*parsed)
            )
        elif out.released:
            payload = {
                "task_id": task_id(run_id, slot, epoch),
                "digest": plan.digest,
                "result": result_json if instance is None else None,  # a map's result is its list
                "epoch": out.epoch,
                "released": list(out.released),
                "params": out.params or {},
                "inputs": {str(i): v for i, v in out.inputs.items()},  # fan-in children's other parents
            }
            self._after(ReportKind.RELEASED, payload, lambda: self._release(parsed, payload, plan, result))
        if out.finish:
            self.ended(plan, run_id, out.finish)
        return bool(out.released or out.finish)

    def settled(self, settled: Settled) -> None:
        """A timer settled a waiting node (timer loop): publish what it released as a success's release
        is -- retried, then kept in the outbox -- and handle the run's end."""
        s = settled
        if s.released:
            parsed = (s.run_id, s.index, s.epoch)
            payload = {
                "task_id": task_id(*parsed),
                "digest": s.plan.digest,
                "result": None,  # read from the tracker: a sleep's is null, a timeout has none
                "epoch": s.released[0][1],
                "released": [i for i, _ in s.released],
                "params": dict(s.params),
            }
            self._after(ReportKind.RELEASED, payload, lambda: self._release(parsed, payload, s.plan))
        for finish in s.finishes:
            self.ended(s.plan, s.run_id, finish)

    def _release_again(self, parsed: Parsed, payload: dict[str, Any]) -> None:
        """A success report whose first try reached Redis but lost its reply: the script released the
        children then, and will not again. Publish the children of this node that are still QUEUED at the
        run's epoch with every parent settled (a copy of a message already sent is dropped by the start
        gate; a missing one would leave the run stuck)."""
        run_id, slot, _ = parsed
        index = split_slot(slot)[0]
        record, nodes, _ = self.tracker.read_run(run_id)
        if (
            record.status is not RunStatus.RUNNING
            or nodes.get(index, NodeRecord()).status is not NodeStatus.SUCCEEDED
        ):
            return
        plan = self.plans.get(payload.get("digest") or record.plan)
        mine = {number for number, host in record.workers.items() if host == self.hostname}
        released = [
            c
            for c in plan.nodes[index].children
            if (n := nodes.get(c)) is not None
            # QUEUED, or RUNNING on this worker: an inline start whose reply was lost (a copy of a request
            # this worker runs is dropped by its main process; start.lua lets this worker start it again)
            and (
                n.status is NodeStatus.QUEUED
                or (n.status is NodeStatus.RUNNING and n.worker in mine and self.settings.inline_depth > 0)
            )
            and n.epoch == record.epoch
            and all(nodes.get(p, NodeRecord()).status.terminal for p in plan.nodes[c].parents)
        ]
        if released:
            again = {**payload, "epoch": record.epoch, "released": released, "params": record.params}
            self._release(parsed, again, plan)

    def _release(
        self, parsed: Parsed, payload: dict[str, Any], plan: Plan | None = None, result: Any = _UNSET
    ) -> None:
        """Publish the nodes a transition released (conditions and maps first, see release.py)."""
        run_id, slot, _ = parsed
        plan = plan or self.plans.get(payload["digest"])
        index, instance = split_slot(slot)
        known: dict[Slot, Any] = {}
        if instance is None and payload.get("result") is not None:  # a success: its result is in hand
            known[index] = json_loads(payload["result"]) if result is _UNSET else result
        for i, value in (payload.get("inputs") or {}).items():  # what the succeed script read for us
            known.setdefault(int(i), None if value is None else json_loads(value))
        epoch = int(payload["epoch"])
        released = [(int(c), epoch) for c in payload["released"]]
        finishes = publish_released(
            self.tracker, self.dispatch, plan, run_id, released, payload["params"], known
        )
        for finish in finishes:
            self.ended(plan, run_id, finish)

    # -- inline continuation ---------------------------------------------------------------------------

    def node_failed(
        self,
        parsed: Parsed,
        digest: str | None,
        error: dict[str, Any],
        mode: FailMode,
        attempt: int = 0,
    ) -> Failed:
        """Record a failure: a tracker-level retry, or the run's failure policy. Returns fail.lua's
        action (and a retry's countdown)."""
        run_id, slot, epoch = parsed
        plan = self.plan_for(run_id, digest)
        index = split_slot(slot)[0]
        node = plan.nodes[index]
        plain_continue = plan.on_failure == "continue" and not plan.rule_spec
        descendants = plan.descendants([index]) if plain_continue else []
        if mode is FailMode.FAILED and plan.on_failure != "continue":
            # It may end the run and revoke its queued nodes: no worker starts one on its own from here
            # (worker/gate.py); the run's later starts ask the tracker.
            self.tracker.fence_gate(run_id)
        out = self.tracker.fail(
            run_id, slot, epoch, error, mode, node.retries, descendants, attempt, plan.rule_spec
        )
        if out.action is FailAction.GONE:
            raise RunNotFound(run_id)
        if out.action is FailAction.FAILED:
            self._pool_ended(plan, run_id, slot)
        if out.action is FailAction.RETRY:
            countdown = retry_countdown(out.attempts, self.settings.retry_backoff_max)
            payload = {
                "task_id": task_id(run_id, slot, out.epoch),
                "countdown": countdown,
                "retries": out.attempts,
            }
            self._after(
                ReportKind.REPUBLISH,
                payload,
                lambda: self.republish(run_id, slot, out.epoch, countdown, out.attempts),
            )
            return Failed(out.action, countdown, out.attempts)
        elif out.action is FailAction.FAILED:
            self.dispatch.revoke(run_id, out.revoke)
            if plan.on_failure == "fail_fast":
                revoke_canvas(self.tracker, self.dispatch, plan, run_id)  # no-op for counters runs
            if out.released:  # trigger rules that run after a failure (all_done, one_failed...)
                payload = {
                    "task_id": task_id(run_id, slot, epoch),
                    "digest": plan.digest,
                    "result": None,
                    "epoch": out.epoch,
                    "released": list(out.released),
                    "params": out.params or {},
                }
                self._after(ReportKind.RELEASED, payload, lambda: self._release(parsed, payload, plan))
            if out.finish:
                self.ended(plan, run_id, out.finish)
        return Failed(out.action, None, out.attempts)

    def _pool_ended(self, plan: Plan, run_id: str, slot: Slot) -> None:
        """A pooled node ended, as this worker recorded: its slot goes back (the pool loop's audit
        gives back what this misses)."""
        if not plan.pools:
            return
        try:
            node_ended(self.tracker, self.dispatch, plan, run_id, slot)
        except Exception as e:
            logger.warning("wfcelery: could not give back the pool slot of %s %s: %s", run_id, slot, e)

    def _pool_granted(self, granted: Granted) -> None:
        """Wake and publish what a slot given back by a success granted (the pool loop's audit wakes what
        this misses)."""
        if not granted.members:
            return
        try:
            publish_granted(self.tracker, self.dispatch, granted)
        except Exception as e:
            logger.warning("wfcelery: could not wake the nodes pool %r granted: %s", granted.pool, e)

    def _retry_again(self, parsed: Parsed) -> None:
        """A failure report whose first try reached Redis but lost its reply: if the script chose a
        tracker-level retry then (the node is RETRYING at this epoch), the retry was never published."""
        run_id, slot, epoch = parsed
        _, nodes, _ = self.tracker.read_run(run_id)
        node = nodes.get(slot)
        if node is not None and node.status is NodeStatus.RETRYING and node.epoch == epoch:
            self.republish(run_id, slot, epoch)

    def quarantine(self, run_id: str, slot: Slot, epoch: int, lost: int, attempt: int = 0) -> None:
        """Fail a node whose deliveries kept dying with their worker (``wfcelery_quarantine_after``)."""
        message = (
            f"killed {lost} workers: {lost} deliveries of this node never finished (the worker died each "
            f"time); quarantined after wfcelery_quarantine_after = {self.settings.quarantine_after}"
        )
        error = {"type": "Quarantined", "message": message, "traceback": ""}
        self.node_failed((run_id, slot, epoch), None, error, FailMode.QUARANTINED, attempt)

    # -- the worker's main process ---------------------------------------------------------------------

    def received(self, parsed: Parsed) -> bool:
        """A redelivered message arrived (main process): count it; True when its node was quarantined
        now and the message must be dropped before it reaches the pool."""
        out = self.tracker.repair(parsed[0], "received", parsed[1], parsed[2], self.settings.quarantine_after)
        if out.action is not RepairAction.QUARANTINE:
            return False
        self.quarantine(parsed[0], parsed[1], out.epoch, out.lost)
        return True

    def dropped(self, parsed: Parsed, hostname: str, why: str) -> None:
        """A worker dropped a node's message (unregistered task, malformed message): the reconciler fails
        the node after ``wfcelery_unknown_grace`` unless another worker took it."""
        mark = DroppedMark(parsed[2], self.tracker.server_ms(), hostname, why)
        self.tracker.mark_dropped(parsed[0], parsed[1], mark.encode())

    def start_services(self, hostname: str) -> None:
        """Heartbeat, reconciler (when ``wfcelery_sweep_interval`` > 0), scheduler (unless
        ``wfcelery_scheduler`` is False), the timer loop (sleeps and wait timeouts: ``ops/timers.py``) and
        outbox replay, in threads of the worker's main process."""
        self.hostname = hostname
        self._services: list[Any] = [
            Heartbeat(self.tracker, hostname, self.settings.heartbeat, self.outage),
            _Replayer(self),
        ]
        if self.settings.sweep_interval > 0:
            self._services.append(Reconciler(self, hostname))
        if self.settings.scheduler:
            self._services.append(Scheduler(self.tracker, self.dispatch, hostname, self.outage))
        self._services.append(TimerLoop(self.tracker, self.dispatch, hostname, self.outage, self.settled))
        self._services.append(PoolLoop(self.tracker, self.dispatch, hostname, self.outage))
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
