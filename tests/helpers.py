"""Helpers shared by the tests: real workers, waiting on conditions, and reading what the probe tasks
of ``tests/proj.py`` recorded (``proj.record``: start/end times on Redis's clock and a runs counter per
node; ``proj.count``: a counter per node)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.worker import state as worker_state

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI") == "true"


@contextmanager
def in_thread_worker(
    app: Celery, queues: list[str] | None = None, concurrency: int = 4, pool: str = "threads"
) -> Iterator[Any]:
    """A real Celery worker in this process (threads pool), consuming ``queues``."""
    qs = queues or [app.conf.task_default_queue]
    with start_worker(
        app,
        pool=pool,
        concurrency=concurrency,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=qs,
        shutdown_timeout=10,
    ) as worker:
        yield worker


def wait_for(
    predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02, message: str = "condition"
) -> Any:
    """Poll ``predicate`` until truthy; fail the test with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def rabbitmq_url() -> str | None:
    """The local RabbitMQ, or None (skip) -- in CI a missing RabbitMQ fails instead."""
    url = os.environ.get("WFCELERY_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return url
    except OSError:
        if IN_CI:
            pytest.fail("RabbitMQ is required in CI (127.0.0.1:5672) but is not reachable")
        return None


# -- what the probe tasks recorded ----------------------------------------------------------------------


def prefix(app: Celery | str) -> str:
    """The app's key prefix (a prefix given as such is returned as it is)."""
    return app if isinstance(app, str) else str(app.conf.wfcelery_key_prefix)


def counts(r: Any, app: Celery | str, run_id: str) -> dict[str, int]:
    """How many times each proj.count node ran (``app``: the app, or its key prefix, e.g. a worker
    subprocess's)."""
    return {k: int(v) for k, v in r.hgetall(f"{prefix(app)}:count:{run_id}").items()}


def probe(r: Any, app: Celery, run_id: str) -> dict[str, str]:
    """proj.record's hash: ``<node>:start|end`` (us, Redis clock), ``<node>:runs``, ``<node>:host``."""
    return dict(r.hgetall(f"{prefix(app)}:probe:{run_id}"))


def probe_times(r: Any, app: Celery, run_id: str) -> dict[str, dict[str, Any]]:
    """{node: {start, end, host, runs}} from proj.record's probe hash."""
    out: dict[str, dict[str, Any]] = {}
    for field, value in probe(r, app, run_id).items():
        node, _, what = field.rpartition(":")
        out.setdefault(node, {})[what] = value if what == "host" else int(value)
    return out


# -- the tracker and the in-thread worker ---------------------------------------------------------------


def run_keys(r: Any, engine: Any, run_id: str) -> list[str]:
    """Every tracker key of one run that exists."""
    return sorted(r.scan_iter(match=engine.tracker.keys.run_pattern(run_id), count=1000))


def after_created(engine: Any, run_id: str) -> None:
    """Wait until the clock has passed the millisecond ``run_id`` was created in: run lists sort by creation
    time in ms, so a run submitted next is then listed after it, never tied with it."""
    last = engine.tracker.run_record(run_id).created_ms
    wait_for(lambda: int(time.time() * 1000) > last, message="the clock to move past a run's creation")


def status_of(run: Any, node: str) -> Any:
    """A node's current status (a NodeStatus)."""
    return run.state().nodes[node].status


def worker_idle(r: Any, app: Celery) -> bool:
    """The in-thread worker has nothing running or reserved and its queue is empty: no hook can still be
    about to publish anything (hooks publish from inside the task that triggers them)."""
    return (
        not worker_state.active_requests
        and not worker_state.reserved_requests
        and r.llen(app.conf.task_default_queue) == 0
    )


@contextmanager
def released(r: Any, *keys: str) -> Iterator[None]:
    """Make sure proj.block tasks are let go even when the test fails (the worker must shut down)."""
    try:
        yield
    finally:
        for key in keys:
            r.rpush(key, "finally")


#: What :func:`diamond` returns when it runs.
DIAMOND_RESULTS = {"a": 3, "b": 13, "c": 103, "d": 116}


def diamond(name: str) -> Any:
    """``a -> [b, c] -> d`` over tests.proj's add/total: results :data:`DIAMOND_RESULTS`."""
    from wfcelery import Workflow

    wf = Workflow(name)
    a = wf.add("a", "proj.add", args=[1, 2])
    b = wf.add("b", "proj.add", kwargs={"y": 10})
    c = wf.add("c", "proj.add", kwargs={"y": 100})
    d = wf.add("d", "proj.total")
    a >> [b, c] >> d
    return wf
