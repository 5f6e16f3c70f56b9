"""``install(app)``: the one line a Celery project adds."""

from __future__ import annotations

import logging
import time
from typing import Any

import celery
from celery import Celery, signals
from celery.worker.control import inspect_command
from packaging.version import Version

from .engine import Engine
from .errors import ConfigurationError
from .hooks import engine_of, guard_pool, wrap_task_init
from .settings import DEFAULT_RUN_TTL, check_json_accepted

logger = logging.getLogger("wfcelery")

#: Oldest Celery whose chord/redelivery behaviour wfcelery relies on.
MIN_CELERY = Version("5.7.0")


def install(app: Celery, **overrides: Any) -> Engine:
    """Attach wfcelery to a Celery app and return its :class:`Engine` (idempotent: cached on the app).

    Connects the worker hooks, reads ``wfcelery_*`` settings once, and adds defaults the tracker relies
    on (your own configuration always wins): late acks, requeue on a lost worker process, prefetch 1,
    task events for Flower, result expiry no shorter than the run TTL. ``overrides`` (``redis_url``,
    ``key_prefix``, ``run_ttl``, ``routes``, ...) win over app.conf.
    """
    existing = engine_of(app)
    if existing is not None and not overrides:
        return existing
    if Version(celery.__version__) < MIN_CELERY:
        raise ConfigurationError(f"wfcelery needs celery >= {MIN_CELERY}, found {celery.__version__}")
    engine = Engine(app, **overrides)
    app.add_defaults(lambda: _defaults(app))  # a promise: evaluated when the configuration loads
    app._wfcelery_engine = engine  # type: ignore[attr-defined]
    wrap_task_init(app)
    guard_pool(app)
    return engine


def _defaults(app: Celery) -> dict[str, Any]:
    run_ttl = int(app.conf.get("wfcelery_run_ttl") or DEFAULT_RUN_TTL)
    return {
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        "task_send_sent_event": True,
        "worker_send_task_events": True,
        "result_expires": run_ttl,
    }


@inspect_command()  # type: ignore[untyped-decorator]
def wfcelery_clock(state: Any, **_: Any) -> dict[str, float]:
    """Control command: this worker's wall clock, which ``wfcelery doctor`` compares with Redis's."""
    return {"time": time.time()}


@signals.worker_ready.connect(weak=False, dispatch_uid="wfcelery.worker_ready")
def _startup_checks(sender: Any = None, **_: Any) -> None:
    engine = engine_of(getattr(sender, "app", None))
    if engine is None:
        return
    try:
        check_json_accepted(engine.app)
    except ConfigurationError as e:  # every node message would be rejected: say which setting to change
        logger.error("wfcelery: %s", e)
        return
    try:
        warning = engine.tracker.check_eviction()
        engine.gate.start()
    except Exception as e:
        logger.warning("wfcelery: tracker Redis not reachable at worker start: %s", e)
        return
    if warning:
        logger.warning("wfcelery: %s", warning)
