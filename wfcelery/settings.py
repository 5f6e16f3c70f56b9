"""wfcelery settings, read once from the Celery app's configuration (lowercase ``wfcelery_*`` keys).

Constructor arguments of :class:`~wfcelery.engine.Engine` override app.conf; app.conf overrides the
defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ConfigurationError
from .limits import Limits

#: Prefix of every Redis key wfcelery writes.
DEFAULT_KEY_PREFIX = "wfcelery"
#: Seconds a finished run (and every key of it) is kept: 7 days.
DEFAULT_RUN_TTL = 7 * 24 * 3600
#: Bytes kept of a run's event log (~15 bytes a transition); past it the older half is dropped.
DEFAULT_EVENTS_MAXLEN = 256 * 1024
#: Seconds between full resyncs of a worker's in-memory gate (pub/sub keeps it fresh in between).
DEFAULT_GATE_RESYNC = 5.0
#: Whether Celery's result backend also stores each node's result. Off: the tracker already keeps every
#: node's result and error (run.wait(), run.results(), children, resume), and Celery's copy (~380 B a task,
#: kept result_expires) doubled Redis memory and cost ~15% throughput (benchmarks/results).
DEFAULT_CELERY_RESULTS = False
#: Upper bound of the exponential backoff (seconds) between tracker-level retries of a node.
DEFAULT_RETRY_BACKOFF_MAX = 600


@dataclass(frozen=True)
class Settings:
    redis_url: str
    key_prefix: str = DEFAULT_KEY_PREFIX
    run_ttl: int = DEFAULT_RUN_TTL
    routes: dict[str, str] = field(default_factory=dict)
    events_maxlen: int = DEFAULT_EVENTS_MAXLEN
    gate_resync: float = DEFAULT_GATE_RESYNC
    retry_backoff_max: int = DEFAULT_RETRY_BACKOFF_MAX
    check_tasks: bool = True
    celery_results: bool = DEFAULT_CELERY_RESULTS
    #: Bounds on definitions, params and results (``wfcelery_max_depth``, ``wfcelery_max_*_bytes``).
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_app(cls, app: Any, **overrides: Any) -> Settings:
        conf = app.conf
        for key in ("task_serializer", "result_serializer"):
            if conf.get(key) == "pickle":
                raise ConfigurationError(f"wfcelery needs JSON messages, but {key} is 'pickle'")
        redis_url = overrides.pop("redis_url", None) or conf.get("wfcelery_redis_url") or _backend_url(app)
        settings = cls(
            redis_url=redis_url,
            key_prefix=conf.get("wfcelery_key_prefix") or DEFAULT_KEY_PREFIX,
            run_ttl=int(conf.get("wfcelery_run_ttl") or DEFAULT_RUN_TTL),
            routes=dict(conf.get("wfcelery_routes") or {}),
            events_maxlen=int(conf.get("wfcelery_events_maxlen") or DEFAULT_EVENTS_MAXLEN),
            gate_resync=float(conf.get("wfcelery_gate_resync") or DEFAULT_GATE_RESYNC),
            retry_backoff_max=int(conf.get("wfcelery_retry_backoff_max") or DEFAULT_RETRY_BACKOFF_MAX),
            check_tasks=bool(conf.get("wfcelery_check_tasks", True)),
            celery_results=bool(conf.get("wfcelery_celery_results", DEFAULT_CELERY_RESULTS)),
            limits=Limits.from_conf(conf),
        )
        return replace(settings, **overrides) if overrides else settings


def _backend_url(app: Any) -> str:
    url = app.conf.result_backend
    if isinstance(url, str) and url.startswith(("redis://", "rediss://", "unix://")):
        return url
    raise ConfigurationError(
        "wfcelery needs a Redis for its tracker: set app.conf.wfcelery_redis_url = 'redis://host:6379/0' "
        f"(the result backend {url!r} is not a redis:// URL)"
    )
