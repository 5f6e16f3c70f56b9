"""wfcelery settings, read once from the Celery app's configuration (lowercase ``wfcelery_*`` keys).

Constructor arguments of :class:`~wfcelery.client.engine.Engine` override app.conf; app.conf overrides the
defaults below.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from wfcelery.definition.executor import DEFAULT_EXECUTOR, Executor
from wfcelery.definition.limits import Limits
from wfcelery.definition.pools import PoolSpec, parse_pools
from wfcelery.definition.waits import DEFAULT_MAX_NESTING
from wfcelery.errors import ConfigurationError, PoolError

#: Prefix of every Redis key wfcelery writes.
DEFAULT_KEY_PREFIX = "wfcelery"
#: Seconds a finished run (and every key of it) is kept: 7 days.
DEFAULT_RUN_TTL = 7 * 24 * 3600
#: Bytes kept of a run's event log (~15 bytes a transition); past it the older half is dropped.
DEFAULT_EVENTS_MAXLEN = 256 * 1024
#: Seconds between full resyncs of a worker's in-memory message filter (pub/sub keeps it fresh in between).
DEFAULT_GATE_RESYNC = 5.0
#: Seconds a worker process's gate lease lasts (renewed every quarter of it). With a lease a process decides
#: a node's start from its own copy of the gate table, without a tracker round trip, and every pause/cancel
#: waits for its acknowledgement (or for the lease to lapse). 0: no lease, every start asks the tracker
#: (start.lua, a second tracker call per node). Docs: design, "Why the start gate".
DEFAULT_GATE_LEASE = 4.0
#: Seconds a locally started node's RUNNING record waits to be written: a body that ends sooner has its
#: start recorded by its own success or failure report (one tracker call per node); a longer one shows
#: RUNNING within twice this delay (the writer's tick; 0: within 10 ms). A pause, cancel or worker
#: shutdown writes the waiting records at once.
DEFAULT_RUNNING_DELAY = 0.1
#: Whether Celery's result backend also stores each node's result. Off: the tracker already keeps every
#: node's result and error (run.wait(), run.results(), children, resume), and Celery's copy (~380 B a task,
#: kept result_expires) doubled Redis memory and cost ~15% throughput (benchmarks/results).
DEFAULT_CELERY_RESULTS = False
#: Upper bound of the exponential backoff (seconds) between tracker-level retries of a node.
DEFAULT_RETRY_BACKOFF_MAX = 600
#: Most instances one mapped node may fan out to: a node's ``max_map`` (default this) is capped by the
#: setting ``wfcelery_max_map`` (default this too), so a runaway list fails its node instead of the broker.
DEFAULT_MAX_MAP = 10_000
#: Socket timeout (seconds) of every tracker Redis call: a hung Redis fails fast, it does not stall a
#: CLI command or a worker. Blocking reads (pub/sub waits) use their own, shorter waits.
DEFAULT_REDIS_TIMEOUT = 5.0
#: How long a submit whose write got no answer (a timeout, a lost connection: the write may still land)
#: keeps asking the tracker what became of it before it gives up, in multiples of wfcelery_redis_timeout
#: (``wfcelery_submit_settle`` sets it in seconds). See :attr:`Settings.settle_seconds`.
DEFAULT_SUBMIT_SETTLE_TIMEOUTS = 3
#: Seconds to wait for live workers to say which queues they consume (submit, validate, status); 0 skips.
DEFAULT_INSPECT_TIMEOUT = 1.0
#: Seconds ``watch``, ``submit --wait`` and :meth:`Run.follow` wait out a tracker outage (its Redis
#: unreachable or refusing writes for now) before they give up; the run itself goes on meanwhile.
DEFAULT_FOLLOW_PATIENCE = 300.0
#: Entries the audit trail keeps (a Redis stream trimmed approximately to this length).
DEFAULT_AUDIT_MAXLEN = 100_000
#: Seconds a hook retries a report the tracker did not take (the message stays unacknowledged meanwhile);
#: past it the report goes to the worker's outbox on disk, replayed in order once the tracker is back.
DEFAULT_REPORT_RETRY = 10.0
#: Directory of the workers' outboxes (one SQLite file per worker node name).
DEFAULT_OUTBOX_DIR = "~/.local/state/wfcelery/outbox"
#: Seconds the start gate waits for the tracker before it gives the message back to the broker.
DEFAULT_GATE_WAIT = 5.0
#: Seconds between a worker's heartbeats (each stamped with Redis's clock); a worker whose last beat is 6
#: beats old is gone. Also the pace of the elected reconciler's lease (it lives 3 beats) and of its check of
#: every worker's heartbeat (docs: reliability): a worker SIGKILLed mid-run has its RUNNING nodes
#: re-published within ~14 s, whoever holds the lease. Every worker of a fleet should use the same value.
DEFAULT_HEARTBEAT = 2.0
#: Seconds between two full sweeps (every live run read) of the reconciler elected among the workers
#: (0: no reconciler in workers). A dead worker's nodes do not wait for it: see DEFAULT_HEARTBEAT.
DEFAULT_SWEEP_INTERVAL = 15.0
#: Seconds past its time limit before a RUNNING node nobody reported is failed by the reconciler.
DEFAULT_TIME_LIMIT_GRACE = 60.0
#: Seconds a node whose message a worker dropped as unregistered waits for another worker before failing.
DEFAULT_UNKNOWN_GRACE = 30.0
#: Deliveries of a node that never finished (its worker died each time) before the node is quarantined.
DEFAULT_QUARANTINE_AFTER = 3
#: Seconds a node may stay QUEUED (same epoch, seen by the reconciler) before it is re-published under a new
#: epoch, in case its message was lost (0: never); never again at the epoch the reconciler gave it, so a
#: node legitimately waiting longer in a backlog costs one extra message and goes to the back of the queue
#: once (no livelock). 30 minutes: a lost message (a worker died between recording a release and publishing
#: it) stalls its run for at most that long.
DEFAULT_QUEUED_TIMEOUT = 1800.0
#: Seconds a node stays QUEUED before the reconciler looks for its message in the broker (queue contents on
#: a Redis broker, ready counts and the workers' reserved tasks on RabbitMQ) and re-sends it, under a new
#: epoch, once two checks found it nowhere (docs: reliability); ``0`` turns the check off.
DEFAULT_LOST_MESSAGE_AFTER = 20.0

# -- the web server (docs: web security) --------------------------------------------------------------------

#: Host names a request to the web server may name in its ``Host`` header (any port; ``*.example.com`` for
#: subdomains, ``*`` for any): the loopback names. A server reached under another name (bound to another
#: interface, behind a proxy that passes the public ``Host``) needs it added (``web --allowed-host``).
DEFAULT_WEB_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: Bytes of a request body the web server reads at most (a submitted definition with its params): 1 MiB.
DEFAULT_WEB_MAX_BODY_BYTES = 1024 * 1024
#: Failed logins one client address may make within ``wfcelery_web_auth_window`` seconds before every
#: request from it is answered 429 (with ``Retry-After``) until the window has passed.
DEFAULT_WEB_AUTH_FAILURES = 10
#: Seconds over which the web server counts a client address's failed logins.
DEFAULT_WEB_AUTH_WINDOW = 60.0
#: Seconds a client has to send a whole request (headers and body) to the web server once it connected or
#: its previous response ended; a connection still sending then is closed (slowloris). Responses are not
#: bounded by it: an event stream stays open as long as it is read.
DEFAULT_WEB_REQUEST_TIMEOUT = 10.0
#: Most missed slots a ``catchup=True`` schedule fires after downtime (the latest ones); ``catchup=False``
#: fires the latest missed slot only.
DEFAULT_SCHEDULE_CATCHUP = 100
#: Seconds between two scans of the ``wfcelery_definitions`` folder for files with a ``schedule:``: an
#: edited or deleted file changes or removes its schedule within this delay.
DEFAULT_SCHEDULE_SCAN = 30.0
#: Most slots one backfill may fire.
DEFAULT_BACKFILL_MAX = 10_000
#: Whether the Lua scripts keep the fleet-wide counters behind ``wfcelery metrics`` and ``GET /metrics``
#: (tracker/counters.py; docs: observability, where its measured cost is).
DEFAULT_METRICS = True
#: Distinct values per metric label (workflow, task, queue) before new ones count as "other".
DEFAULT_METRICS_MAX_VALUES = 200


@dataclass(frozen=True)
class Settings:
    #: The tracker's Redis (``redis://``, ``rediss://``, ``unix://`` or ``sentinel://``). When unset: the
    #: app's result backend if it is one of those, else a ``ConfigurationError`` saying so.
    redis_url: str
    key_prefix: str = DEFAULT_KEY_PREFIX
    run_ttl: int = DEFAULT_RUN_TTL
    #: Renames of node types to queues (``{"cpu": "cpu-large"}``); otherwise a node's ``type`` is its queue.
    routes: dict[str, str] = field(default_factory=dict)
    events_maxlen: int = DEFAULT_EVENTS_MAXLEN
    gate_resync: float = DEFAULT_GATE_RESYNC
    gate_lease: float = DEFAULT_GATE_LEASE
    running_delay: float = DEFAULT_RUNNING_DELAY
    retry_backoff_max: int = DEFAULT_RETRY_BACKOFF_MAX
    #: Refuse definitions that name tasks not registered in the app.
    check_tasks: bool = True
    celery_results: bool = DEFAULT_CELERY_RESULTS
    max_map: int = DEFAULT_MAX_MAP
    #: A folder of YAML/JSON definitions the engine knows by name (``engine.definitions()``).
    definitions: str | None = None
    #: ``user:password`` that puts the web dashboard and REST API behind HTTP Basic auth.
    web_auth: str | None = None
    #: Flower's base URL: the dashboard links each node to its task there.
    flower_url: str | None = None
    #: Origins (``https://shop.example``) whose pages may read the web API and embed ``<wf-run-progress>``
    #: (CORS, GET only, no credentials); none by default, and never ``*``. ``wfcelery web --cors-origin``.
    web_cors_origins: tuple[str, ...] = ()
    web_allowed_hosts: tuple[str, ...] = DEFAULT_WEB_ALLOWED_HOSTS
    web_max_body_bytes: int = DEFAULT_WEB_MAX_BODY_BYTES
    web_auth_failures: int = DEFAULT_WEB_AUTH_FAILURES
    web_auth_window: float = DEFAULT_WEB_AUTH_WINDOW
    web_request_timeout: float = DEFAULT_WEB_REQUEST_TIMEOUT
    redis_timeout: float = DEFAULT_REDIS_TIMEOUT
    inspect_timeout: float = DEFAULT_INSPECT_TIMEOUT
    follow_patience: float = DEFAULT_FOLLOW_PATIENCE
    audit_maxlen: int = DEFAULT_AUDIT_MAXLEN
    #: Bounds on definitions, params and results (``wfcelery_max_depth``, ``wfcelery_max_*_bytes``).
    limits: Limits = field(default_factory=Limits)
    report_retry: float = DEFAULT_REPORT_RETRY
    outbox_dir: str = DEFAULT_OUTBOX_DIR
    gate_wait: float = DEFAULT_GATE_WAIT
    heartbeat: float = DEFAULT_HEARTBEAT
    sweep_interval: float = DEFAULT_SWEEP_INTERVAL
    time_limit_grace: float = DEFAULT_TIME_LIMIT_GRACE
    unknown_grace: float = DEFAULT_UNKNOWN_GRACE
    quarantine_after: int = DEFAULT_QUARANTINE_AFTER
    queued_timeout: float = DEFAULT_QUEUED_TIMEOUT
    lost_message_after: float = DEFAULT_LOST_MESSAGE_AFTER
    #: How runs are executed unless the definition or ``submit(executor=)`` says: counters or canvas.
    executor: Executor = DEFAULT_EXECUTOR
    #: ``wfcelery_redis_cluster``: the tracker's Redis is a Redis Cluster (``redis_url`` names one of its
    #: nodes); every run's keys share one hash slot, so its Lua scripts run on one master.
    redis_cluster: bool = False
    #: ``wfcelery_redis_transport_options``: for a ``sentinel://`` URL, ``master_name`` (required),
    #: ``sentinel_kwargs`` and ``min_other_sentinels``, as Celery's broker and result backend take them.
    redis_transport_options: dict[str, Any] = field(default_factory=dict)
    #: Inline continuation: how many released single children in a row a worker may run itself, right
    #: after their parent, without a broker round trip (0: off; docs: running and control).
    inline_depth: int = 0
    #: ``wfcelery_max_nesting``: levels of sub-workflows a run may nest (a child run of a child run is
    #: two); deeper definitions are refused at submit (docs: waiting for the world).
    max_nesting: int = DEFAULT_MAX_NESTING
    #: Seconds a submit whose write got no answer (a hung Redis may still execute it) keeps asking the
    #: tracker what became of it: written -> the run starts and is returned; not -> a tombstone keeps it
    #: from landing and the submit says nothing was submitted (docs: Reliability). None: three
    #: ``wfcelery_redis_timeout``.
    submit_settle: float | None = None

    @property
    def settle_seconds(self) -> float:
        """How long a submit whose create got no answer keeps asking the tracker whether the run was
        written: found -> its messages are sent and the run returned; not found -> a tombstone makes sure
        it never will be, and the submit raises :class:`~wfcelery.errors.TrackerUnavailable` saying
        nothing was submitted."""
        if self.submit_settle is not None:
            return self.submit_settle
        return DEFAULT_SUBMIT_SETTLE_TIMEOUTS * self.redis_timeout

    @property
    def unconfirmed_bound(self) -> float:
        """Seconds after its creation at which a run whose submit never confirmed it, and which never
        started, is cancelled by the reconciler: twice the longest a submit can take to confirm (its
        create and its last settle call, each a connect plus a reply, and the settle time between)."""
        return 2 * (4 * self.redis_timeout + self.settle_seconds)

    #: ``wfcelery_scheduler``: the elected scheduler loop runs inside the workers (False: only
    #: ``wfcelery scheduler`` fires schedules).
    scheduler: bool = True
    schedule_catchup: int = DEFAULT_SCHEDULE_CATCHUP
    schedule_scan: float = DEFAULT_SCHEDULE_SCAN
    backfill_max: int = DEFAULT_BACKFILL_MAX
    metrics: bool = DEFAULT_METRICS
    metrics_max_values: int = DEFAULT_METRICS_MAX_VALUES
    #: ``wfcelery_pools``: pool name -> its limits (``{"db": 5, "llm": {"slots": 20, "rate": "60/m"}}``);
    #: ``engine.set_pool`` changes them at run time (docs: pools and rate limits).
    pools: dict[str, PoolSpec] = field(default_factory=dict)

    @classmethod
    def from_app(cls, app: Any, **overrides: Any) -> Settings:
        conf = app.conf
        check_json_accepted(app)
        redis_url = overrides.pop("redis_url", None) or conf.get("wfcelery_redis_url") or _backend_url(app)
        options = conf.get("wfcelery_redis_transport_options")
        if options is None and not conf.get("wfcelery_redis_url") and redis_url.startswith("sentinel://"):
            options = conf.get("result_backend_transport_options")  # the tracker follows the backend
        settings = cls(
            redis_url=redis_url,
            redis_transport_options=dict(options or {}),
            key_prefix=conf.get("wfcelery_key_prefix") or DEFAULT_KEY_PREFIX,
            run_ttl=int(conf.get("wfcelery_run_ttl") or DEFAULT_RUN_TTL),
            routes=dict(conf.get("wfcelery_routes") or {}),
            events_maxlen=int(conf.get("wfcelery_events_maxlen") or DEFAULT_EVENTS_MAXLEN),
            gate_resync=float(conf.get("wfcelery_gate_resync") or DEFAULT_GATE_RESYNC),
            gate_lease=_number(conf, "wfcelery_gate_lease", DEFAULT_GATE_LEASE),
            running_delay=_number(conf, "wfcelery_running_delay", DEFAULT_RUNNING_DELAY),
            retry_backoff_max=int(conf.get("wfcelery_retry_backoff_max") or DEFAULT_RETRY_BACKOFF_MAX),
            check_tasks=bool(conf.get("wfcelery_check_tasks", True)),
            celery_results=bool(conf.get("wfcelery_celery_results", DEFAULT_CELERY_RESULTS)),
            max_map=int(conf.get("wfcelery_max_map") or DEFAULT_MAX_MAP),
            definitions=conf.get("wfcelery_definitions") or None,
            web_auth=conf.get("wfcelery_web_auth") or None,
            flower_url=conf.get("wfcelery_flower_url") or None,
            web_cors_origins=web_origins(conf.get("wfcelery_web_cors_origins")),
            web_allowed_hosts=_names(conf, "wfcelery_web_allowed_hosts", DEFAULT_WEB_ALLOWED_HOSTS),
            web_max_body_bytes=_positive(conf, "wfcelery_web_max_body_bytes", DEFAULT_WEB_MAX_BODY_BYTES),
            web_auth_failures=_positive(conf, "wfcelery_web_auth_failures", DEFAULT_WEB_AUTH_FAILURES),
            web_auth_window=_seconds(conf, "wfcelery_web_auth_window", DEFAULT_WEB_AUTH_WINDOW),
            web_request_timeout=_seconds(conf, "wfcelery_web_request_timeout", DEFAULT_WEB_REQUEST_TIMEOUT),
            redis_timeout=_number(conf, "wfcelery_redis_timeout", DEFAULT_REDIS_TIMEOUT),
            inspect_timeout=_number(conf, "wfcelery_inspect_timeout", DEFAULT_INSPECT_TIMEOUT),
            follow_patience=_number(conf, "wfcelery_follow_patience", DEFAULT_FOLLOW_PATIENCE),
            audit_maxlen=int(conf.get("wfcelery_audit_maxlen") or DEFAULT_AUDIT_MAXLEN),
            limits=Limits.from_conf(conf),
            report_retry=_number(conf, "wfcelery_report_retry", DEFAULT_REPORT_RETRY),
            outbox_dir=str(conf.get("wfcelery_outbox_dir") or DEFAULT_OUTBOX_DIR),
            gate_wait=_number(conf, "wfcelery_gate_wait", DEFAULT_GATE_WAIT),
            heartbeat=_number(conf, "wfcelery_heartbeat", DEFAULT_HEARTBEAT),
            sweep_interval=_number(conf, "wfcelery_sweep_interval", DEFAULT_SWEEP_INTERVAL),
            time_limit_grace=_number(conf, "wfcelery_time_limit_grace", DEFAULT_TIME_LIMIT_GRACE),
            unknown_grace=_number(conf, "wfcelery_unknown_grace", DEFAULT_UNKNOWN_GRACE),
            quarantine_after=int(_number(conf, "wfcelery_quarantine_after", DEFAULT_QUARANTINE_AFTER)),
            queued_timeout=_number(conf, "wfcelery_queued_timeout", DEFAULT_QUEUED_TIMEOUT),
            lost_message_after=_number(conf, "wfcelery_lost_message_after", DEFAULT_LOST_MESSAGE_AFTER),
            executor=_executor(conf.get("wfcelery_executor") or DEFAULT_EXECUTOR),
            redis_cluster=bool(conf.get("wfcelery_redis_cluster", False)),
            inline_depth=_count(conf, "wfcelery_inline_depth"),
            max_nesting=_count(conf, "wfcelery_max_nesting", DEFAULT_MAX_NESTING),
            submit_settle=_optional_number(conf, "wfcelery_submit_settle"),
            scheduler=bool(conf.get("wfcelery_scheduler", True)),
            schedule_catchup=_count(conf, "wfcelery_schedule_catchup", DEFAULT_SCHEDULE_CATCHUP),
            schedule_scan=_number(conf, "wfcelery_schedule_scan", DEFAULT_SCHEDULE_SCAN),
            backfill_max=_count(conf, "wfcelery_backfill_max", DEFAULT_BACKFILL_MAX),
            metrics=bool(conf.get("wfcelery_metrics", DEFAULT_METRICS)),
            metrics_max_values=_count(conf, "wfcelery_metrics_max_values") or DEFAULT_METRICS_MAX_VALUES,
            pools=_pools(conf.get("wfcelery_pools")),
        )
        return replace(settings, **overrides) if overrides else settings


def _executor(value: Any) -> Executor:
    try:
        return Executor(value)
    except ValueError:
        choices = ", ".join(e.value for e in Executor)
        raise ConfigurationError(f"wfcelery_executor: unknown executor {value!r}; choose {choices}") from None


def _number(conf: Any, key: str, default: float) -> float:
    value = conf.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigurationError(f"{key} must be a number of seconds >= 0, got {value!r}")
    return float(value)


def _seconds(conf: Any, key: str, default: float) -> float:
    value = _number(conf, key, default)
    if value == 0:
        raise ConfigurationError(f"{key} must be a number of seconds > 0, got 0")
    return value


def _positive(conf: Any, key: str, default: int) -> int:
    value = conf.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"{key} must be a whole number >= 1, got {value!r}")
    return value


def _names(conf: Any, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    """A list of names (or one comma-separated string), each stripped; None: the default."""
    value = conf.get(key)
    if value is None:
        return default
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple | set | frozenset):
        raise ConfigurationError(f"{key} must be a list of names, got {value!r}")
    return tuple(str(i).strip() for i in items if str(i).strip())


def web_origins(value: Any, key: str = "wfcelery_web_cors_origins") -> tuple[str, ...]:
    """Origins whose pages may read the web API: ``scheme://host[:port]`` each; ``*`` is refused."""
    origins = _names({key: value}, key, ())
    for origin in origins:
        scheme, sep, rest = origin.partition("://")
        if origin == "*" or not sep or scheme not in ("http", "https") or not rest or "/" in rest.rstrip("/"):
            raise ConfigurationError(
                f"{key}: {origin!r} is not an origin (http[s]://host[:port]); '*' is refused: name each "
                "site whose pages embed the dashboard's element"
            )
    return tuple(o.rstrip("/") for o in origins)


def _optional_number(conf: Any, key: str) -> float | None:
    return None if conf.get(key) is None else _number(conf, key, 0.0)


def _count(conf: Any, key: str, default: int = 0) -> int:
    value = conf.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigurationError(f"{key} must be a whole number >= 0, got {value!r}")
    return value


#: Content types under which Celery accepts JSON messages.
JSON_CONTENT = frozenset({"json", "application/json"})


def check_not_eager(app: Any) -> None:
    """Workflows need real workers (the tracker releases each node when its parents succeed): refuse an app
    with ``task_always_eager``, pointing to the testing plugin."""
    if app.conf.task_always_eager:
        raise ConfigurationError(
            "task_always_eager=True: Celery would run tasks inside apply_async, but a workflow needs "
            "real workers (its tracker releases each node when its parents succeed). To run workflows "
            "in tests, use the wfcelery.testing pytest plugin (docs: testing your workflows)"
        )


def check_json_accepted(app: Any) -> None:
    """Node messages are JSON whatever the app's serializer (pickle apps included): refuse, naming the
    setting, an app whose workers would reject them."""
    accepted = app.conf.get("accept_content") or ["json"]
    if isinstance(accepted, str):
        accepted = [accepted]
    if not JSON_CONTENT & set(accepted):
        fixed = [*accepted, "json"]
        raise ConfigurationError(
            f"workers do not accept JSON messages (accept_content = {list(accepted)!r}); wfcelery sends node "
            f"messages as JSON: set accept_content = {fixed!r} in the app's configuration"
        )


def _backend_url(app: Any) -> str:
    url = app.conf.result_backend
    if isinstance(url, str) and url.startswith(("redis://", "rediss://", "unix://", "sentinel://")):
        return url
    raise ConfigurationError(
        "wfcelery needs a Redis for its tracker: set app.conf.wfcelery_redis_url = 'redis://host:6379/0' "
        f"(the result backend {url!r} is not a redis:// or sentinel:// URL)"
    )


def _pools(value: Any) -> dict[str, PoolSpec]:
    try:
        return parse_pools(value)
    except PoolError as e:
        raise ConfigurationError(str(e)) from None
