"""Celery signal receivers, the loader hook and one worker bootstep: thin adapters onto ``worker.py``.

Where each runs (CELERY-NOTES "Hooks"):
  * main process: ``task_received`` (the in-memory message filter), ``task_revoked``, ``task_failure``
    for a lost worker process;
  * pool child / thread, around the task body: ``on_task_init`` (the loader hook Celery calls after
    ``task_prerun``, just before the body; wfcelery records RUNNING there and may refuse the task),
    ``task_success``, ``task_failure``, ``task_retry``.

Rules: tasks without a wfcelery run are untouched (their ids do not parse); a tracker error never fails
the user's task (it is logged); every receiver is module-level, ``weak=False`` with a ``dispatch_uid``.
Ordering between hooks does not matter: the Lua scripts are forward-only and idempotent.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from billiard.einfo import ExceptionInfo
from celery import bootsteps, signals
from celery.exceptions import Reject
from celery.utils.dispatch.signal import Signal
from celery.worker import state as worker_state

from wfcelery import tracing
from wfcelery.errors import ConfigurationError, RunNotFound, TrackerUnavailable
from wfcelery.messaging.dispatch import forget_continuation_results
from wfcelery.settings import check_json_accepted
from wfcelery.tracker.keys import parse_task_id, run_of
from wfcelery.tracker.outcomes import FailMode, StartReason
from wfcelery.tracker.records import COPY_HEADER, RESEND_HEADER, plan_header
from wfcelery.worker.base import Parsed
from wfcelery.worker.outbox import ReportKind
from wfcelery.worker.retries import REPORTED, error_of, report_failure
from wfcelery.worker.side import WorkerSide, check_result, worker_of

if TYPE_CHECKING:
    from celery import Celery

logger = logging.getLogger("wfcelery.hooks")


class GateClosed(Reject):
    """Raised before a task body when its run is paused, cancelled or failed, or the message is stale.

    Celery rejects the message (no requeue) and the task body never runs.
    """

    def __init__(self, reason: str, requeue: bool = False) -> None:  # 2 args: must survive pickling
        super().__init__(reason, requeue=False)


class GateUnavailable(Reject):
    """Raised before a task body when the start gate cannot be consulted (the tracker is away): the
    message goes back to the broker (requeued) and the body does not run unchecked."""

    def __init__(self, reason: str, requeue: bool = True) -> None:  # 2 args: must survive pickling
        super().__init__(reason, requeue=True)


def _parsed(task_id: str | None) -> Parsed | None:
    return parse_task_id(task_id) if task_id else None


# -- the worker bootstep ---------------------------------------------------------------------------------


def add_worker_step(app: Celery) -> None:
    """Add wfcelery's worker bootstep to the app (idempotent)."""
    steps = app.steps["worker"]
    if WfCeleryStep not in steps:
        steps.add(WfCeleryStep)


class WfCeleryStep(bootsteps.StartStopStep):
    """Everything wfcelery adds to a worker: the pool guard, the eviction warning and the in-memory
    message filter.

    Pool guard: a ``Reject`` raised before the body must end the request in every pool. Prefork sends a
    child's exception back to the parent, where Celery rejects the message. The solo, threads, gevent and
    eventlet pools run the tracer through ``apply_target``, which re-raises: the threads pool loses the
    exception in a Future (the request hangs, active and unacked, until the broker redelivers it, to hang
    again) and solo lets it into the consumer. For those pools the step turns the Reject into the
    failed-trace result that Celery's own Reject handling expects (the message is rejected, requeued only
    if the Reject says so).
    """

    name = "wfcelery.Worker"
    requires = ("celery.worker.components:Pool",)

    def create(self, w: Any) -> None:
        pool = getattr(w, "pool", None)
        if pool is None or type(pool).__module__ == "celery.concurrency.prefork":
            return  # prefork handles it already (and its targets must pickle: no closures)
        on_apply = pool.on_apply

        def on_apply_guarded(target: Any, *args: Any, **kwargs: Any) -> Any:
            return on_apply(_reject_as_result(target), *args, **kwargs)

        pool.on_apply = on_apply_guarded

    def start(self, w: Any) -> None:
        side = worker_of(w.app)
        if side is None:
            return
        side.start_services(w.hostname)  # heartbeat, reconciler, outbox replay: they wait for Redis
        try:
            check_json_accepted(w.app)
        except ConfigurationError as e:  # every node message would be rejected: say which setting to change
            logger.error("wfcelery: %s", e)
            return
        try:
            warning = side.tracker.check_eviction()
            side.message_filter.start()
        except TrackerUnavailable as e:
            side.outage.down(e)
            return
        except Exception as e:
            logger.warning("wfcelery: tracker Redis not reachable at worker start: %s", e)
            return
        if warning:
            logger.warning("wfcelery: %s", warning)

    def stop(self, w: Any) -> None:
        side = worker_of(w.app)
        if side is not None:
            side.stop_services()
            if "outage" in vars(side):
                side.outage.close()
        if side is not None:
            side.close_gate()  # never creates one just to stop it

    def terminate(self, w: Any) -> None:  # a cold shutdown (and in-thread test workers) calls this, not stop
        self.stop(w)


def _reject_as_result(target: Any) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return target(*args, **kwargs)
        except Reject:
            return 1, ExceptionInfo(internal=True), 0.0  # (failed, retval, runtime) like trace_task_ret

    return run


# -- pool side ---------------------------------------------------------------------------------------------


def wrap_task_init(app: Celery) -> None:
    """Install the start gate as ``app.loader.on_task_init`` (idempotent).

    Celery calls it in the process that runs the task, after ``task_prerun`` and before the body, and
    lets a ``Reject`` through: that is the one place a plugin can stop a task without touching it.
    """
    loader = app.loader
    if getattr(loader.on_task_init, "_wfcelery", False):
        return
    original = loader.on_task_init

    def on_task_init(task_id: str, task: Any) -> None:
        original(task_id, task)
        parsed, side = _parsed(task_id), worker_of(task.app)
        if parsed is None or side is None:
            return
        side.hostname = task.request.hostname or side.hostname
        attempt = side.inline.started.get(task_id)
        if attempt is not None:  # an inline child: succeed.lua ran its start gate (docs: running)
            task.request.wf_attempt = attempt
            task.request.wf_started_ns = time.time_ns()
            return
        if _first_copy(task.request) and side.gate.admit(
            task_id, parsed[0], parsed[1], parsed[2], task.request.hostname or side.hostname, task.request
        ):  # the leased local gate let it start: its RUNNING record is owed (gate.py)
            task.request.wf_started_ns = time.time_ns()
            task.request.wf_local_start = True
            return
        try:
            verdict = side.start(parsed, task.request.hostname or "")
        except TrackerUnavailable as e:
            # Strict: no body runs unchecked (pause must hold during an outage); the broker keeps it.
            # side.start() waited wfcelery_gate_wait and told the outage (its one WARNING) already.
            reason = f"wfcelery: task {task_id} requeued: start gate unreachable ({e})"
            logger.debug(reason)
            raise GateUnavailable(reason) from None
        if not verdict.run:
            if verdict.reason is StartReason.GONE:
                logger.debug(
                    "wfcelery: dropped %s: run %s no longer exists (cleaned up or expired)",
                    task_id,
                    parsed[0],
                )
            raise GateClosed(f"wfcelery: task {task_id} not run ({verdict.reason})")
        task.request.wf_attempt = verdict.attempt  # lets a late retry/failure report be told apart
        task.request.wf_started_ns = time.time_ns()  # the node attempt's span (tracing.py)
        task.request.wf_waited_ms = verdict.waited_ms

    on_task_init._wfcelery = True  # type: ignore[attr-defined]
    loader.on_task_init = on_task_init  # type: ignore[method-assign]  # the hook is meant to be replaced


def _first_copy(request: Any) -> bool:
    """True for a message that cannot be a copy of one already started: not redelivered by the broker,
    not a wfcelery re-send or possible copy (``COPY_HEADER``), not a Celery retry. Only those may start on
    the local gate; any other asks start.lua, which fences a copy of a node RUNNING elsewhere."""
    delivery = getattr(request, "delivery_info", None) or {}
    marked = getattr(request, RESEND_HEADER, None) or getattr(request, COPY_HEADER, None)
    return not (delivery.get("redelivered") or marked or request.retries)


Receiver = Callable[..., None]
Locate = Callable[[Any, dict[str, Any]], tuple[str | None, Any]]


def _receiver(signal: Signal, what: str, locate: Locate) -> Callable[[Receiver], Receiver]:
    """Connect ``fn(side, parsed, sender, task_id=..., **kwargs)`` to ``signal`` for wfcelery's tasks only.

    ``locate(sender, kwargs)`` gives the task id and the app. Tasks without a run, and apps without
    wfcelery, never reach ``fn``; an error in ``fn`` is logged as "could not <what> <task id>".
    """

    def decorate(fn: Receiver) -> Receiver:
        @functools.wraps(fn)
        def receiver(sender: Any = None, **kwargs: Any) -> None:
            task_id, app = locate(sender, kwargs)
            parsed, side = _parsed(task_id), worker_of(app)
            if parsed is None or side is None:
                return
            try:
                fn(side, parsed, sender, **{**kwargs, "task_id": task_id})
            except RunNotFound:  # a message of a cleaned-up or expired run: nothing to record, nothing wrong
                logger.debug(
                    "wfcelery: did not %s %s: run %s no longer exists (cleaned up or expired)",
                    what,
                    task_id,
                    parsed[0],
                )
            except Exception:
                logger.exception("wfcelery: could not %s %s", what, task_id)

        name = getattr(signal, "name", fn.__name__)  # Celery's Signal has a name; its stubs do not say so
        signal.connect(receiver, weak=False, dispatch_uid=f"wfcelery.{name}")
        return receiver

    return decorate


def _by_request(sender: Any, kwargs: dict[str, Any]) -> tuple[str | None, Any]:
    return getattr(kwargs.get("request"), "id", None), getattr(sender, "app", None)


@_receiver(signals.task_success, "record success of", lambda s, kw: (s.request.id, s.app))
def _on_success(
    side: WorkerSide, parsed: Parsed, sender: Any, task_id: str, result: Any = None, **_: Any
) -> None:
    request = sender.request
    encoded, error = check_result(result, side.settings.limits)
    if error is not None:  # a result the tracker cannot keep fails the node (after its retries)
        report_failure(
            side, task_id, plan_header(request), error, int(getattr(request, "wf_attempt", 0) or 0)
        )
        return
    ended_ns = time.time_ns()
    timelimit = getattr(request, "timelimit", None) or (None, None)
    payload: dict[str, Any] = {"task_id": task_id, "digest": plan_header(request), "result": encoded}
    if getattr(request, "wf_local_start", False):
        started = side.gate.take(task_id)
        if started is not None:  # its RUNNING record is still owed: this report writes it (succeed.lua)
            payload["started_ago"] = int((time.monotonic() - started) * 1000)
    try:
        with side.inline_scope(not any(timelimit)):  # an inline child runs inside this task's time
            side.report(ReportKind.SUCCEEDED, payload)
    finally:
        if "started_ago" in payload:
            side.gate.reported(task_id)
    if "started_ago" in payload and (verdict := side.starts_reported.pop(task_id, None)) is not None:
        side.gate.recorded(request, verdict)
    _attempt_span(side, parsed, request, "SUCCEEDED", ended_ns=ended_ns)
    side.run_inline(request.hostname or side.hostname)


@signals.worker_process_shutdown.connect(weak=False, dispatch_uid="wfcelery.worker_process_shutdown")
def _on_process_shutdown(**_: Any) -> None:
    """A pool child exits: write the RUNNING records it owes and give its gate lease back."""
    from celery import current_app

    proxy: Any = current_app
    side = worker_of(proxy._get_current_object())
    if side is not None:
        side.close_gate()


@signals.task_postrun.connect(weak=False, dispatch_uid="wfcelery.task_postrun")
def _forget_results(sender: Any = None, task_id: str | None = None, **_: Any) -> None:
    """A task of a canvas-executor run may have applied a chord (the next step of its chain) or a chord's
    body: Celery then subscribed this process to those results and keeps them forever (CELERY-NOTES).
    Drop them. A task with no continuation (every counters-executor node) returns at the first test."""
    request = getattr(sender, "request", None)
    if request is None or not (request.chain or request.chord or request.callbacks):
        return
    app = getattr(sender, "app", None)
    if not task_id or run_of(task_id) is None or app is None or worker_of(app) is None:
        return
    try:
        forget_continuation_results(app, request)
    except Exception:  # never break a task
        logger.exception("wfcelery: could not drop result subscriptions after %s", task_id)


@_receiver(
    signals.task_failure, "record failure of", lambda s, kw: (kw.get("task_id"), getattr(s, "app", None))
)
def _on_failure(
    side: WorkerSide,
    parsed: Parsed,
    sender: Any,
    task_id: str,
    exception: BaseException | None = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    if isinstance(exception, GateClosed | GateUnavailable):
        return
    request = getattr(sender, "request", None)
    own = request is not None and getattr(request, "id", None) == task_id
    if own:
        _attempt_span(side, parsed, request, "FAILED", error_of(exception, einfo))
    if own and getattr(request, REPORTED, False):
        return  # recorded from inside the task (retries.py): a failure for good after its last retry
    # In the main process (a lost worker process) the request is not ours: the plan digest comes from the
    # run record and the attempt is unknown.
    report_failure(
        side,
        task_id,
        plan_header(request) if own else None,
        error_of(exception, einfo),
        int(getattr(request, "wf_attempt", 0) or 0) if own else 0,
    )


@_receiver(signals.task_retry, "record retry of", _by_request)
def _on_retry(
    side: WorkerSide,
    parsed: Parsed,
    sender: Any,
    task_id: str,
    request: Any = None,
    reason: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    exc = reason if isinstance(reason, BaseException) else None
    _attempt_span(side, parsed, request, "RETRYING", error_of(exc, einfo, reason))
    if getattr(request, REPORTED, False):
        return  # a tracker-level retry, recorded from inside the task (retries.py)
    attempt = int(getattr(request, "wf_attempt", 0) or 0)
    report_failure(
        side, task_id, plan_header(request), error_of(exc, einfo, reason), attempt, FailMode.RETRYING
    )


def _attempt_span(
    side: WorkerSide,
    parsed: Parsed,
    request: Any,
    outcome: str,
    error: dict[str, Any] | None = None,
    ended_ns: int | None = None,
) -> None:
    """The node attempt's span, when this process traces (tracing.py)."""
    if not tracing.active():
        return
    digest = plan_header(request)
    workflow = side.plans.get(digest).name if digest else ""
    node = str(getattr(request, "wf_node", "") or parsed[1])
    tracing.attempt_ended(request, parsed[0], workflow, node, outcome, error, ended_ns)


# -- main process ------------------------------------------------------------------------------------------


def _by_request_task(sender: Any, kwargs: dict[str, Any]) -> tuple[str | None, Any]:
    request = kwargs.get("request")
    return getattr(request, "id", None), getattr(getattr(request, "task", None), "app", None)


@_receiver(signals.task_received, "filter", _by_request_task)
def _on_received(
    side: WorkerSide, parsed: Parsed, sender: Any, task_id: str, request: Any = None, **_: Any
) -> None:
    """The message filter: drop messages of paused / cancelled / failed runs without a Redis call."""
    # A redelivered message may belong to a node the tracker has as RUNNING (its worker process died
    # while the run was paused): let the start script settle that node instead of dropping it unseen.
    redelivered = (getattr(request, "delivery_info", None) or {}).get("redelivered")
    sent = getattr(request, "_request_dict", None)
    if isinstance(sent, dict):
        tracing.stamp(sent, parsed[0])  # the task's own spans nest under its node attempt's (tracing.py)
    if side.message_filter.blocks(parsed[0], parsed[2]) and not redelivered:
        _drop(side, task_id)
    elif _copy_of_active(request, task_id):
        # A copy of a request this worker is running (a broker redelivery past its visibility timeout, a
        # duplicate publish): never a second, concurrent body. (start.lua stops copies on other workers.)
        _drop(side, task_id)
    elif redelivered and _quarantined(side, parsed):
        # Delivered again and again without ever finishing (it kills the worker before the body even
        # starts, e.g. while pickling it for the pool): the node was quarantined; the message stops here.
        _drop(side, task_id)


def _copy_of_active(request: Any, task_id: str) -> bool:
    """True for a copy of a request this worker is running -- not a retry of it: a tracker-level retry
    (``wf_resend``) or Celery's own ``Task.retry`` (one more ``retries``) is sent while the failed
    attempt is still winding down."""
    sent = getattr(request, "request_dict", None) or {}
    if sent.get(RESEND_HEADER):
        return False
    retries = sent.get("retries") or 0
    return any(
        r.id == task_id and (getattr(r, "request_dict", None) or {}).get("retries", 0) == retries
        for r in worker_state.active_requests
        if r is not request
    )


def _quarantined(side: WorkerSide, parsed: Parsed) -> bool:
    try:
        return side.received(parsed)
    except TrackerUnavailable:
        return False  # the start gate decides (and requeues while the tracker is away)


def _drop(side: WorkerSide, task_id: str) -> None:
    side.message_filter.dropped(task_id)
    worker_state.revoked.add(task_id)


def _by_consumer(sender: Any, kwargs: dict[str, Any]) -> tuple[str | None, Any]:
    message = kwargs.get("message")
    headers = getattr(message, "headers", None) or {}
    return kwargs.get("id") or headers.get("id"), getattr(sender, "app", None)


@_receiver(signals.task_unknown, "record an unregistered task of", _by_consumer)
def _on_unknown(
    side: WorkerSide, parsed: Parsed, sender: Any, task_id: str, name: str = "", **_: Any
) -> None:
    """Celery dropped a message whose task this worker does not know: the reconciler fails the node
    after ``wfcelery_unknown_grace`` unless another worker takes it."""
    side.dropped(parsed, getattr(sender, "hostname", "") or "", f"unknown:{name}")


@_receiver(signals.task_rejected, "record a malformed message of", _by_consumer)
def _on_rejected(side: WorkerSide, parsed: Parsed, sender: Any, task_id: str, **_: Any) -> None:
    side.dropped(parsed, getattr(sender, "hostname", "") or "", "rejected")


@_receiver(signals.task_revoked, "record revoke of", _by_request)
def _on_revoked(
    side: WorkerSide,
    parsed: Parsed,
    sender: Any,
    task_id: str,
    terminated: bool = False,
    expired: bool = False,
    **_: Any,
) -> None:
    dropped = side.message_filter.take_dropped(task_id)
    if not terminated and (dropped or side.message_filter.blocks(parsed[0], parsed[2])):
        return  # a message that never started: pause/cancel/fail already decided its node
    # A terminated task was RUNNING (cancel(terminate=True)): record it, or it stays RUNNING for good.
    reason = "expired" if expired else "terminated" if terminated else "revoked"
    report_failure(
        side, task_id, None, {"type": "Revoked", "message": reason, "traceback": ""}, 0, FailMode.REVOKED
    )
