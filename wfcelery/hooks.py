"""Worker-side hooks: Celery signal receivers (and one loader hook) that report to the tracker.

Where each runs (CELERY-NOTES "Hooks"):
  * main process: ``task_received`` (the in-memory gate), ``task_revoked``, ``task_failure`` for a lost
    worker process;
  * pool child / thread, around the task body: ``on_task_init`` (the loader hook Celery calls after
    ``task_prerun``, just before the body; wfcelery records RUNNING there and may refuse the task),
    ``task_success``, ``task_failure``, ``task_retry``.

Rules: tasks without a wfcelery run are untouched (their ids do not parse); a tracker error never fails
the user's task (it is logged); every receiver is module-level, ``weak=False`` with a ``dispatch_uid``.
Ordering between hooks does not matter: the Lua scripts are forward-only and idempotent.
"""

from __future__ import annotations

import logging
import traceback as tb
from typing import TYPE_CHECKING, Any

from billiard.einfo import ExceptionInfo
from celery import bootsteps, signals
from celery.exceptions import Reject
from celery.utils.time import get_exponential_backoff_interval
from celery.worker import state as worker_state
from kombu.utils.json import dumps as json_dumps

from .keys import parse_task_id

if TYPE_CHECKING:
    from celery import Celery

    from .engine import Engine

logger = logging.getLogger("wfcelery.hooks")

#: Ids our gate dropped, so task_revoked does not report them again (cleared past _GATED_MAX).
_gated: set[str] = set()
_GATED_MAX = 50_000


class GateClosed(Reject):
    """Raised before a task body when its run is paused, cancelled or failed, or the message is stale.

    Celery rejects the message (no requeue) and the task body never runs.
    """

    def __init__(self, reason: str, requeue: bool = False) -> None:  # 2 args: must survive pickling
        super().__init__(reason, requeue=False)


def engine_of(app: Any) -> Engine | None:
    return getattr(app, "_wfcelery_engine", None)


def _parsed(task_id: str | None) -> tuple[str, int, int] | None:
    return parse_task_id(task_id) if task_id else None


# -- pool side -----------------------------------------------------------------------------------------


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
        parsed = _parsed(task_id)
        engine = engine_of(task.app)
        if parsed is None or engine is None:
            return
        try:
            verdict = engine.tracker.start(parsed[0], parsed[1], parsed[2], task.request.hostname or "")
        except Exception:
            logger.exception("wfcelery: could not record start of %s", task_id)
            return
        verdict, _, attempt = verdict.partition(":")
        if verdict != "ok":
            raise GateClosed(f"wfcelery: task {task_id} not run ({verdict})")
        task.request.wf_attempt = int(attempt)  # lets a late retry/failure report be told apart

    on_task_init._wfcelery = True  # type: ignore[attr-defined]
    loader.on_task_init = on_task_init


def guard_pool(app: Celery) -> None:
    """Add a worker bootstep so that a ``Reject`` raised before the body ends the request in every pool
    (idempotent).

    Prefork sends a child's exception back to the parent, where Celery rejects the message. The solo,
    threads, gevent and eventlet pools run the tracer through ``apply_target``, which re-raises: the
    threads pool loses the exception in a Future (the request hangs, active and unacked, until the broker
    redelivers it, to hang again) and solo lets it into the consumer. For those pools the step turns the
    Reject into the failed-trace result that Celery's own Reject handling expects (the message is
    rejected, requeued only if the Reject says so).
    """
    steps = app.steps["worker"]
    if not any(getattr(step, "_wfcelery", False) for step in steps):
        steps.add(_PoolGuard)


class _PoolGuard(bootsteps.Step):
    name = "wfcelery.PoolGuard"
    requires = ("celery.worker.components:Pool",)
    _wfcelery = True

    def create(self, w: Any) -> None:
        pool = getattr(w, "pool", None)
        if pool is None or type(pool).__module__ == "celery.concurrency.prefork":
            return  # prefork handles it already (and its targets must pickle: no closures)
        on_apply = pool.on_apply

        def on_apply_guarded(target: Any, *args: Any, **kwargs: Any) -> Any:
            return on_apply(_reject_as_result(target), *args, **kwargs)

        pool.on_apply = on_apply_guarded


def _reject_as_result(target: Any) -> Any:
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return target(*args, **kwargs)
        except Reject:
            return 1, ExceptionInfo(internal=True), 0.0  # (failed, retval, runtime) like trace_task_ret

    return run


@signals.task_success.connect(weak=False, dispatch_uid="wfcelery.task_success")
def _on_success(sender: Any = None, result: Any = None, **_: Any) -> None:
    request = sender.request
    parsed, engine = _parsed(request.id), engine_of(sender.app)
    if parsed is None or engine is None:
        return
    try:
        engine.node_succeeded(parsed, getattr(request, "wf_plan", None), result, json_dumps(result))
    except Exception:
        logger.exception("wfcelery: could not record success of %s", request.id)


@signals.task_failure.connect(weak=False, dispatch_uid="wfcelery.task_failure")
def _on_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    parsed, engine = _parsed(task_id), engine_of(getattr(sender, "app", None))
    if parsed is None or engine is None or isinstance(exception, GateClosed):
        return
    try:
        engine.node_failed(
            parsed,
            _plan_header(sender, task_id),
            error_of(exception, einfo),
            "failed",
            _attempt(sender, task_id),
        )
    except Exception:
        logger.exception("wfcelery: could not record failure of %s", task_id)


@signals.task_retry.connect(weak=False, dispatch_uid="wfcelery.task_retry")
def _on_retry(
    sender: Any = None, request: Any = None, reason: Any = None, einfo: Any = None, **_: Any
) -> None:
    task_id = getattr(request, "id", None)
    parsed, engine = _parsed(task_id), engine_of(getattr(sender, "app", None))
    if parsed is None or engine is None:
        return
    try:
        exc = reason if isinstance(reason, BaseException) else None
        engine.node_failed(
            parsed,
            getattr(request, "wf_plan", None),
            error_of(exc, einfo, reason),
            "retrying",
            getattr(request, "wf_attempt", 0) or 0,
        )
    except Exception:
        logger.exception("wfcelery: could not record retry of %s", task_id)


def _attempt(task: Any, task_id: str | None) -> int:
    request = getattr(task, "request", None)
    if request is not None and getattr(request, "id", None) == task_id:
        return int(getattr(request, "wf_attempt", 0) or 0)
    return 0


def _plan_header(task: Any, task_id: str | None) -> str | None:
    request = getattr(task, "request", None)
    if request is not None and getattr(request, "id", None) == task_id:
        return getattr(request, "wf_plan", None)
    return None  # main process (lost worker): the engine reads the plan digest from the run record


def error_of(exc: BaseException | None, einfo: Any = None, fallback: Any = None) -> dict[str, Any]:
    if exc is None:
        return {"type": "Retry", "message": str(fallback or ""), "traceback": str(einfo or "")}
    trace = getattr(einfo, "traceback", None) or "".join(tb.format_exception(exc))
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": trace[-8000:]}


def retry_countdown(attempts: int, maximum: int) -> int:
    """Celery's exponential backoff with full jitter (as ``retry_backoff=True``)."""
    return int(
        get_exponential_backoff_interval(factor=1, retries=attempts - 1, maximum=maximum, full_jitter=True)
    )


# -- main process --------------------------------------------------------------------------------------


@signals.task_received.connect(weak=False, dispatch_uid="wfcelery.task_received")
def _on_received(sender: Any = None, request: Any = None, **_: Any) -> None:
    """The in-memory gate: drop messages of paused / cancelled / failed runs without a Redis call."""
    parsed = _parsed(getattr(request, "id", None))
    if parsed is None:
        return
    engine = engine_of(getattr(request.task, "app", None))
    if engine is None:
        return
    try:
        # A redelivered message may belong to a node the tracker has as RUNNING (its worker process died
        # while the run was paused): let the start script settle that node instead of dropping it unseen.
        redelivered = (getattr(request, "delivery_info", None) or {}).get("redelivered")
        if engine.gate.closed(parsed[0], parsed[2]) and not redelivered:
            if len(_gated) > _GATED_MAX:
                _gated.clear()
            _gated.add(request.id)
            worker_state.revoked.add(request.id)
    except Exception:
        logger.exception("wfcelery: gate check failed for %s", request.id)


@signals.task_revoked.connect(weak=False, dispatch_uid="wfcelery.task_revoked")
def _on_revoked(
    sender: Any = None, request: Any = None, terminated: bool = False, expired: bool = False, **_: Any
) -> None:
    task_id = getattr(request, "id", None)
    parsed, engine = _parsed(task_id), engine_of(getattr(sender, "app", None))
    if parsed is None or engine is None:
        return
    if not terminated and (task_id in _gated or engine.gate.closed(parsed[0], parsed[2])):
        _gated.discard(task_id)
        return  # a message that never started: pause/cancel/fail already decided its node
    # A terminated task was RUNNING (cancel(terminate=True)): record it, or it stays RUNNING for good.
    try:
        reason = "expired" if expired else "terminated" if terminated else "revoked"
        engine.node_failed(parsed, None, {"type": "Revoked", "message": reason, "traceback": ""}, "revoked")
    except Exception:
        logger.exception("wfcelery: could not record revoke of %s", task_id)
