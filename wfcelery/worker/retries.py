"""Expected retries as Celery's own: a node attempt that raises while it has tracker-level ``retries`` left
ends the way ``Task.retry`` ends one.

Celery logs a task that raised at ERROR with its traceback ("raised unexpected") and marks it FAILURE, which
fires every alert on ERROR logs although the retry was asked for. A task that raises Celery's
:class:`~celery.exceptions.Retry` is logged at INFO ("Task ...[id] retry: Retry in 2s: ValueError(...)"),
stored as RETRY and announced with a ``task-retried`` event, so Flower shows it as a retry.

How: every task of a wfcelery app gets its ``run`` wrapped when a worker starts (``worker_init``, before
the worker builds its tracers; a pool child started as a fresh interpreter wraps and rebuilds its own in
``worker_process_init``), as Celery's ``autoretry_for`` wraps it. The wrapper lets everything through
except an exception raised by a node of a run: it records the failure in the tracker at once (fail.lua
decides, as for any failure); when that is a retry, it raises ``Retry`` from the exception, naming when
(``in <countdown>s``, or ``at resume`` for a run that is paused); otherwise the exception goes on as raised
(a failure for good stays an ERROR). Either way the failure hooks know it was recorded and do not record it
again. Tasks without a run are untouched: their ids do not parse.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from celery import signals
from celery.exceptions import Ignore, Reject, Retry

from wfcelery.tracker.keys import parse_task_id
from wfcelery.tracker.outcomes import FailAction, FailMode
from wfcelery.worker.base import Failed
from wfcelery.worker.outbox import ReportKind
from wfcelery.worker.side import worker_of

logger = logging.getLogger("wfcelery.hooks")

#: Set on a task request once its failure was recorded from inside the task (the hooks skip it).
REPORTED = "wf_reported"


def error_of(exc: BaseException | None, einfo: Any = None, fallback: Any = None) -> dict[str, Any]:
    """The error a failure report carries: type, message (2,000 characters) and traceback (8,000)."""
    import traceback as tb

    if exc is None:
        return {"type": "Retry", "message": str(fallback or ""), "traceback": str(einfo or "")}
    trace = getattr(einfo, "traceback", None) or "".join(tb.format_exception(exc))
    return {"type": type(exc).__name__, "message": str(exc)[:2000], "traceback": trace[-8000:]}


def report_failure(
    side: Any,
    task_id: str,
    digest: str | None,
    error: dict[str, Any],
    attempt: int,
    mode: FailMode = FailMode.FAILED,
) -> Failed | None:
    """Record a node's failure (retried, then kept in the outbox while the tracker is away). Returns what
    the tracker decided, None when the report was kept for later."""
    side.write_owed_starts()  # a body the local gate let start is RUNNING before it fails (gate.py)
    payload = {"task_id": task_id, "digest": digest, "error": error, "mode": mode.value, "attempt": attempt}
    failed: Failed | None = side.report(ReportKind.FAILED, payload)
    return failed


def wrap_tasks(app: Any) -> list[Any]:
    """Wrap the ``run`` of every task of ``app`` (idempotent); returns the tasks wrapped now."""
    if worker_of(app) is None:
        return []
    wrapped = []
    for task in list(app.tasks.values()):
        if _wrap(task):
            wrapped.append(task)
    return wrapped


def _wrap(task: Any) -> bool:
    original = task.run
    if getattr(original, "_wfcelery", False):
        return False

    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return original(*args, **kwargs)
        except (Retry, Ignore, Reject):  # Celery's own control flow
            raise
        except Exception as exc:
            retry = _expected_retry(task, exc)
            if retry is None:
                raise
            raise retry from exc

    run._wfcelery = True  # type: ignore[attr-defined]
    task.run = run
    return True


def _expected_retry(task: Any, exc: Exception) -> Retry | None:
    """Record the failure of a node's attempt; the Retry to raise when the tracker retries it."""
    request = task.request
    parsed = parse_task_id(request.id) if request.id else None
    side = worker_of(task.app)
    if parsed is None or side is None or request.is_eager or request.called_directly:
        return None
    digest = getattr(request, "wf_plan", None)
    attempt = int(getattr(request, "wf_attempt", 0) or 0)
    try:
        failed = report_failure(side, request.id, digest, error_of(exc), attempt)
    except Exception:  # never break a task: its failure hook reports it as usual
        logger.exception("wfcelery: could not record failure of %s", request.id)
        return None
    setattr(request, REPORTED, True)
    if failed is None:
        return None  # kept in the outbox: the tracker decides when it is back
    if failed.action is FailAction.RETRY:
        when: Any = failed.countdown or 0  # "Retry in 2s: ValueError(...)", as Task.retry says it
        return Retry(exc=exc, when=when)
    if failed.action is FailAction.DEFERRED:
        return Retry(f"Retry at resume (the run is paused): {exc!r}", exc=exc)
    return None


@signals.worker_init.connect(weak=False, dispatch_uid="wfcelery.worker_init")
def _on_worker_init(sender: Any = None, **_: Any) -> None:
    """The worker imported its task modules and has not built its tracers yet."""
    app = getattr(sender, "app", None)
    if app is not None:
        wrap_tasks(app)


@signals.worker_process_init.connect(weak=False, dispatch_uid="wfcelery.worker_process_init")
def _on_worker_process_init(sender: Any = None, **_: Any) -> None:
    """A pool child: tasks forked from a wrapped parent are wrapped already; a child started as a fresh
    interpreter wraps its own and rebuilds their tracers (Celery built them just before this signal)."""
    from celery import current_app
    from celery.app.trace import build_tracer

    proxy: Any = current_app
    app = proxy._get_current_object()
    for task in wrap_tasks(app):
        task.__trace__ = build_tracer(task.name, task, app.loader, sender, app=app)
