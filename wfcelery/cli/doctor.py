"""``wfcelery doctor``: check that a Celery app can run workflows, and say how to fix what is wrong.

Each check gives one :class:`Finding`: healthy (``ok=True``), a problem with its fix (``ok=False``), or
could not be checked (``ok=None``: the tracker or broker is unreachable, so what depends on it is
unknown). :func:`exit_code` maps them to the CLI's exit codes: 0 healthy, 1 findings, 2 cannot check.

The checks: the app's task modules (imported as its workers import them) and the tasks the definitions
given name; the tracker's Redis (reachable, ``maxmemory-policy``; its role, replicas and their lag --
behind Sentinel, no replica or a lagging one is a problem); the broker (reachable, login, vhost);
``task_always_eager``; JSON in ``accept_content`` (node messages are JSON, even in pickle apps); the
queues of the definitions given (and of live runs) against the queues live workers consume; Redis
broker ``visibility_timeout`` against the longest time limit; ``acks_late`` and
``reject_on_worker_lost``; clock skew between the workers and the tracker's Redis (workers answer the
``wfcelery_clock`` control command that :mod:`wfcelery.install` registers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wfcelery.client.engine import Engine
from wfcelery.definition.model import Workflow
from wfcelery.definition.registry import did_you_mean, task_names
from wfcelery.errors import ConfigurationError, RunNotFound, TaskImportError, WfCeleryError
from wfcelery.messaging.consumers import describe_shared
from wfcelery.plan.compiler import Plan, compile_workflow
from wfcelery.settings import check_json_accepted, check_not_eager
from wfcelery.tracker.connection import is_sentinel, topology

#: Seconds of clock difference between a worker and the tracker's Redis that doctor reports.
MAX_CLOCK_SKEW = 2.0
#: Kombu's Redis transport default ``visibility_timeout`` (seconds).
REDIS_VISIBILITY_TIMEOUT = 3600
#: Live runs whose plans doctor checks besides the definitions it is given.
LIVE_RUNS_CHECKED = 50
#: Seconds since a replica's last acknowledgement (``INFO replication`` ``lag``; replicas acknowledge
#: every second) from which doctor reports it as lagging: a failover now would lose that much.
MAX_REPLICA_LAG = 5


@dataclass(frozen=True)
class Finding:
    """One check's outcome. ``ok``: True healthy, False a problem (``fix`` says what to do), None unknown."""

    check: str
    ok: bool | None
    message: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "message": self.message, "fix": self.fix}


def exit_code(findings: Iterable[Finding]) -> int:
    """0 all healthy, 1 at least one problem, 2 something could not be checked."""
    oks = [f.ok for f in findings]
    return 2 if None in oks else 1 if False in oks else 0


def diagnose(engine: Engine, definitions: Sequence[Workflow] = ()) -> list[Finding]:
    """Run every check against ``engine``'s app; ``definitions`` add their queues and time limits."""
    app = engine.app
    try:
        settings = engine.settings
    except ConfigurationError as e:
        return [Finding("configuration", False, str(e), _config_fix(str(e)))]
    findings = [_eager(app), _serializer(app), _tracker(engine), _broker(app), _tasks(app, definitions)]
    reachable = findings[2].ok is not None and findings[3].ok is not None
    if findings[2].ok is not None:
        findings.append(replication_finding(engine))
    plans = [compile_workflow(wf, settings.routes) for wf in definitions]
    if findings[2].ok is not None:
        plans += _live_plans(engine)
    findings += [_acks(app, plans), _visibility(app, plans)]
    if reachable:
        findings += [_queues(engine, plans), _clock(engine)]
    return findings


def _config_fix(message: str) -> str:
    if "accept_content" in message:
        return message.split(": ", 1)[-1]
    return "set the wfcelery_* setting the message names (docs: settings reference)"


def _eager(app: Any) -> Finding:
    try:
        check_not_eager(app)
    except ConfigurationError as e:
        return Finding(
            "eager", False, str(e), "remove task_always_eager; to test workflows use wfcelery.testing"
        )
    return Finding("eager", True, "task_always_eager is off")


def _serializer(app: Any) -> Finding:
    try:
        check_json_accepted(app)
    except ConfigurationError:
        accepted = list(app.conf.accept_content or [])
        return Finding(
            "serializer",
            False,
            f"workers do not accept JSON (accept_content = {accepted!r}); wfcelery's node messages are JSON",
            f"set accept_content = {[*accepted, 'json']!r} (and restart the workers)",
        )
    serializer = app.conf.task_serializer
    note = " (node messages are JSON per message; your own tasks keep it)" if serializer != "json" else ""
    return Finding("serializer", True, f"task_serializer {serializer!r}, workers accept JSON{note}")


def _tasks(app: Any, definitions: Sequence[Workflow]) -> Finding:
    """The app's task modules import (as its workers import them) and register every task the
    definitions name."""
    try:
        registered = task_names(app)
    except TaskImportError as e:
        return Finding(
            "tasks",
            False,
            str(e),
            "fix that module (or the imports/include setting naming it): workers fail to start on it too",
        )
    missing = [
        f"{wf.name}.{node.name}: {node.task!r}{did_you_mean(node.task, registered)}"
        for wf in definitions
        for node in wf.nodes.values()
        if node.task not in registered and node.task not in app.tasks
    ]
    if missing:
        return Finding(
            "tasks",
            False,
            f"tasks not registered in app {app.main!r}: " + "; ".join(missing),
            "define them in a module the app imports (include=[...], imports=[...] or "
            "app.autodiscover_tasks()), or fix the task names in the definitions",
        )
    scope = f"; every task of {len(definitions)} definitions registered" if definitions else ""
    return Finding("tasks", True, f"app {app.main!r} registers {len(registered)} tasks{scope}")


def _tracker(engine: Engine) -> Finding:
    url = engine.settings.redis_url
    try:
        engine.tracker.client.ping()
        warning = engine.tracker.check_eviction()
    except Exception as e:
        return Finding(
            "tracker",
            None,
            f"tracker Redis {_safe_url(url)} unreachable: {type(e).__name__}: {e}",
            "start Redis there, or point wfcelery_redis_url at a Redis the workers and clients reach",
        )
    if warning:
        return Finding(
            "tracker",
            False,
            f"tracker Redis {_safe_url(url)}: {warning}",
            "CONFIG SET maxmemory-policy noeviction (or volatile-*) on the tracker's Redis, "
            "or give wfcelery its own Redis with wfcelery_redis_url",
        )
    return Finding("tracker", True, f"tracker Redis {_safe_url(url)} reachable, eviction policy safe")


def replication_finding(engine: Engine) -> Finding:
    """The tracker's Redis topology (``INFO replication``), judged by :func:`judge_replication`."""
    settings = engine.settings
    if settings.redis_cluster:
        return Finding("replication", True, "Redis Cluster: each master's replicas are the cluster's own")
    try:
        topo = topology(engine.tracker.client)
    except Exception as e:
        return Finding("replication", None, f"cannot read INFO replication: {type(e).__name__}: {e}")
    return judge_replication(topo, is_sentinel(settings.redis_url))


def judge_replication(topo: Mapping[str, Any], sentinel: bool) -> Finding:
    """Judge a :func:`~wfcelery.tracker.connection.topology`: a replica as the tracker, a replica offline or
    :data:`MAX_REPLICA_LAG` seconds behind, and (behind Sentinel) a master with no replica to fail over to
    are problems; a single Redis with no replica is reported as such."""
    replicas = topo["replicas"]
    listed = ", ".join(f"{r['address']} {r['state']} lag {r['lag']} s" for r in replicas) or "none"
    summary = f"tracker Redis role {topo['role']}, replicas: {listed}"
    if topo["role"] != "master":
        fix = "point wfcelery_redis_url at the master (or at the sentinels, sentinel://...)"
        return Finding("replication", False, f"{summary}: a replica refuses the tracker's writes", fix)
    if sentinel and not replicas:
        fix = "add a replica (replicaof) the sentinels can promote (docs: Reliability, Redis Sentinel)"
        return Finding("replication", False, f"{summary}: behind Sentinel with nothing to fail over to", fix)
    lagging = [r for r in replicas if r["state"] != "online" or int(r["lag"] or 0) >= MAX_REPLICA_LAG]
    if lagging:
        fix = "check the replicas' links and load: a failover now loses the writes they have not received"
        return Finding("replication", False, f"{summary}: {len(lagging)} replica(s) behind", fix)
    if not replicas:
        summary += " (a single Redis: fine for development; for failover, docs: Reliability, Redis Sentinel)"
    return Finding("replication", True, summary)


def _broker(app: Any) -> Finding:
    conn = app.connection_for_write()
    uri = conn.as_uri()
    try:
        conn.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=app.conf.broker_connection_timeout
        )
    except Exception as e:
        return Finding("broker", None, f"broker {uri} unreachable: {broker_problem(e)}", broker_fix(e, conn))
    finally:
        conn.release()
    return Finding("broker", True, f"broker {uri} reachable")


def broker_problem(error: BaseException) -> str:
    """One line for a broker connection error (the cause of kombu's OperationalError included)."""
    cause = error.__cause__ or error.__context__ or error
    text = f"{type(cause).__name__}: {cause}"
    return text if cause is error else f"{type(error).__name__}: {error} ({text})"


def broker_fix(error: BaseException, conn: Any) -> str:
    text = broker_problem(error)
    vhost = conn.virtual_host
    if "ACCESS_REFUSED" in text or "AccessRefused" in text or "auth" in text.lower():
        return "check the user and password in broker_url (RabbitMQ: rabbitmqctl list_users)"
    if "NOT_ALLOWED" in text or "vhost" in text.lower():
        return (
            f"create the virtual host or grant access: rabbitmqctl add_vhost {vhost} && "
            f"rabbitmqctl set_permissions -p {vhost} {conn.userid} '.*' '.*' '.*'"
        )
    return "start the broker, or fix the host/port in broker_url"


def _live_plans(engine: Engine) -> list[Plan]:
    plans: dict[str, Plan] = {}
    try:
        for run in engine.runs(limit=LIVE_RUNS_CHECKED):
            if not run.status.finished:  # QUEUED runs too: their nodes will need queues
                digest = engine.tracker.run_record(run.id).plan
                plans.setdefault(digest, engine.plans.get(digest))
    except (WfCeleryError, RunNotFound):
        pass  # the tracker check already reports an unreachable Redis
    return list(plans.values())


def _queues(engine: Engine, plans: Sequence[Plan]) -> Finding:
    engine.consumers.get(refresh=True)
    wanted = {q for plan in plans for q in engine.node_queues(plan).values()}
    consumers = engine.consumers.confirm(wanted or [engine.app.conf.task_default_queue])
    if not consumers.known:
        return Finding("queues", None, f"cannot ask the workers for their queues: {consumers.reason}")
    if not consumers.workers:
        return Finding(
            "queues",
            False,
            "no live worker answered: runs would wait in their queues",
            "start a worker: celery -A <your app> worker -Q "
            + ",".join(
                sorted({q for p in plans for q in engine.node_queues(p).values()})
                or [engine.app.conf.task_default_queue]
            ),
        )
    needed: dict[str, set[str]] = {}
    for plan in plans:
        for node, queue in engine.node_queues(plan).items():
            needed.setdefault(queue, set()).add(f"{plan.name}.{node}")
    missing = consumers.missing(needed)
    workers = ", ".join(f"{w} ({', '.join(sorted(q))})" for w, q in sorted(consumers.workers.items()))
    if consumers.shared:
        return Finding(
            "queues",
            False,
            "; ".join(describe_shared(consumers)) + f"; live workers: {workers}",
            "restart those workers with distinct node names: celery -A <your app> worker -Q io -n io@%h",
        )
    if missing:
        detail = "; ".join(f"{q!r} (nodes {', '.join(sorted(needed[q]))})" for q in missing)
        return Finding(
            "queues",
            False,
            f"no live worker consumes {detail}; live workers: {workers}",
            "start a worker for "
            + ", ".join(f"-Q {q}" for q in missing)
            + ", add the queue to an existing worker's -Q, or route the node elsewhere (type/queue, "
            "task_routes, wfcelery_routes)",
        )
    if not plans:
        return Finding("queues", True, f"live workers: {workers}; no definitions given to check against")
    return Finding(
        "queues",
        True,
        f"live workers: {workers}; the {len(needed)} queues of {len(plans)} definitions consumed",
    )


def _acks(app: Any, plans: Sequence[Plan]) -> Finding:
    conf = app.conf
    problems = []
    if not conf.task_acks_late:
        problems.append("task_acks_late is False")
    if not conf.task_reject_on_worker_lost:
        problems.append("task_reject_on_worker_lost is False")
    for task in sorted({n.task for p in plans for n in p.nodes if n.has_task}):
        obj = app.tasks.get(task)
        if obj is not None and obj.acks_late is False and conf.task_acks_late:
            problems.append(f"task {task} sets acks_late=False")
    if problems:
        return Finding(
            "acks",
            False,
            "; ".join(problems) + ": a node whose worker dies mid-task is lost instead of redelivered",
            "remove these overrides (wfcelery.install sets task_acks_late and task_reject_on_worker_lost)",
        )
    return Finding("acks", True, "acks_late and reject_on_worker_lost are on")


def _visibility(app: Any, plans: Sequence[Plan]) -> Finding:
    transport = app.connection_for_write().transport_cls
    if not str(transport).startswith(("redis", "rediss")):
        return Finding("visibility", True, f"broker transport {transport!r}: no visibility timeout")
    options = app.conf.broker_transport_options or {}
    timeout = float(options.get("visibility_timeout", REDIS_VISIBILITY_TIMEOUT))
    limits = [float(app.conf.task_time_limit)] if app.conf.task_time_limit else []
    limits += [float(n.options["time_limit"]) for p in plans for n in p.nodes if "time_limit" in n.options]
    longest = max(limits, default=None)
    if longest is not None and longest >= timeout:
        return Finding(
            "visibility",
            False,
            f"a task may run {longest:g} s but the Redis broker's visibility_timeout is {timeout:g} s: "
            "it would be delivered again to another worker while it still runs",
            f"set broker_transport_options = {{'visibility_timeout': {int(longest * 2)}}} "
            "(longer than the longest time limit)",
        )
    detail = f"longest time limit {longest:g} s" if longest else "no time limit set"
    return Finding("visibility", True, f"Redis broker visibility_timeout {timeout:g} s; {detail}")


def _clock(engine: Engine) -> Finding:
    app = engine.app
    timeout = max(engine.settings.inspect_timeout, 1.0)  # a command-line check: worth a full second
    try:
        before = _redis_time(engine)
        raw: Any = app.control.inspect(timeout=timeout)._request("wfcelery_clock") or {}
        replies: dict[str, Any] = raw if isinstance(raw, dict) else {}
        after = _redis_time(engine)
    except Exception as e:
        return Finding("clock", None, f"cannot compare clocks: {type(e).__name__}: {e}")
    return clock_finding(replies, before, after)


def clock_finding(replies: Mapping[str, Any], before: float, after: float) -> Finding:
    """Judge the workers' ``wfcelery_clock`` replies (``{worker: {"time": seconds}}``), asked between the
    Redis times ``before`` and ``after``: a worker more than :data:`MAX_CLOCK_SKEW` outside that window
    is a finding."""
    times = {w: float(r["time"]) for w, r in replies.items() if isinstance(r, dict) and r.get("time")}
    if not times:
        return Finding("clock", True, "no worker answered wfcelery_clock (workers without wfcelery?)")
    # a worker read its clock between `before` and the moment its reply left: allow that window
    skews = {w: t - before if t < before else (t - after if t > after else 0.0) for w, t in times.items()}
    bad = {w: s for w, s in skews.items() if abs(s) > MAX_CLOCK_SKEW}
    if bad:
        detail = ", ".join(f"{w} {s:+.1f} s" for w, s in sorted(bad.items()))
        return Finding(
            "clock",
            False,
            f"worker clocks differ from the tracker's Redis: {detail} (run times and timelines skew)",
            "run NTP (chrony/systemd-timesyncd) on the worker hosts and the Redis host",
        )
    return Finding("clock", True, f"{len(times)} worker clocks within {MAX_CLOCK_SKEW:g} s of Redis")


def _redis_time(engine: Engine) -> float:
    seconds, micros = engine.tracker.client.time()
    return float(seconds) + float(micros) / 1e6


def _safe_url(url: str) -> str:
    from kombu.utils.url import maybe_sanitize_url

    return str(maybe_sanitize_url(url))


def report_lines(findings: Sequence[Finding]) -> list[str]:
    """The human form: one line a check, its fix indented under it."""
    marks = {True: "ok     ", False: "PROBLEM", None: "UNKNOWN"}
    lines = []
    for f in findings:
        lines.append(f"{marks[f.ok]}  {f.check}: {f.message}")
        if f.fix and f.ok is not True:
            lines.append(f"         fix: {f.fix}")
    return lines
