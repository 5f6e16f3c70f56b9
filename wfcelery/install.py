"""``install(app)``: the one line a Celery project adds."""

from __future__ import annotations

import time
from typing import Any

import celery
from celery import Celery
from celery.worker.control import inspect_command
from packaging.version import Version

from wfcelery.client.engine import Engine
from wfcelery.errors import ConfigurationError
from wfcelery.settings import DEFAULT_RUN_TTL
from wfcelery.worker import held  # noqa: F401  (registers the wfcelery_held remote-control command)
from wfcelery.worker.hooks import add_worker_step, wrap_task_init
from wfcelery.worker.side import WorkerSide

#: Oldest Celery whose chord/redelivery behaviour wfcelery relies on.
MIN_CELERY = Version("5.7.0")


def install(app: Celery, **overrides: Any) -> Engine:
    """Attach wfcelery to a Celery app and return its :class:`Engine` (idempotent: cached on the app).

    Connects the worker side (hooks, a worker bootstep), reads ``wfcelery_*`` settings once, and adds
    defaults the tracker relies on (your own configuration always wins): late acks, requeue on a lost
    worker process, prefetch 1, task events for Flower, result expiry no shorter than the run TTL.
    ``overrides`` (``redis_url``, ``key_prefix``, ``run_ttl``, ``routes``, ...) win over app.conf.
    """
    existing = engine_of(app)
    if existing is not None and not overrides:
        return existing
    if Version(celery.__version__) < MIN_CELERY:
        raise ConfigurationError(f"wfcelery needs celery >= {MIN_CELERY}, found {celery.__version__}")
    engine = Engine(app, **overrides)
    app.add_defaults(lambda: _defaults(app))  # a promise: evaluated when the configuration loads
    app._wfcelery_engine = engine  # type: ignore[attr-defined]
    # The worker side shares the engine's tracker (one connection pool per process) without importing it.
    app._wfcelery_worker = WorkerSide(app, lambda: engine.tracker)  # type: ignore[attr-defined]
    wrap_task_init(app)
    add_worker_step(app)
    return engine


@inspect_command()
def wfcelery_clock(state: Any, **_: Any) -> dict[str, float]:
    """Control command: this worker's wall clock, which ``wfcelery doctor`` compares with Redis's."""
    return {"time": time.time()}


def engine_of(app: Any) -> Engine | None:
    """The engine :func:`install` attached to this app, if any."""
    return getattr(app, "_wfcelery_engine", None)


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
