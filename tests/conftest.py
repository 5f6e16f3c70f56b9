"""Fixtures: a real Redis (WFCELERY_TEST_REDIS_URL or a throwaway server) and real Celery workers."""

from __future__ import annotations

import gc
import itertools
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import celery.contrib.testing.tasks  # noqa: F401  (registers celery.ping for start_worker)
import kombu.exceptions
import pytest
import redis
from celery import Celery
from celery.worker import state as worker_state

from tests.helpers import ROOT, in_thread_worker
from tests.proj import make_app
from tests.redis_server import FaultyRedis, RedisServer
from wfcelery.tracker.keys import Keys
from wfcelery.tracker.records import Event
from wfcelery.tracker.states import RUN_TRANSITIONS, TRANSITIONS, NodeStatus, RunStatus

_dbs = itertools.count(1)


@pytest.fixture(scope="session")
def redis_base() -> Iterator[str]:
    """``redis://host:port`` of the test Redis. A server we start ourselves unless the env says one."""
    url = os.environ.get("WFCELERY_TEST_REDIS_URL")
    if url:
        yield url.rstrip("/").rsplit("/", 1)[0] if url.count("/") > 2 else url
        return
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        # Celery's AsyncResult.__del__ unsubscribes from Redis: finalize leftover ones while the server
        # still runs, or a later garbage collection retries the dead server for a minute (and, run inside
        # an import's ast.parse at session end, trips CPython 3.11's "AST recursion depth mismatch").
        gc.collect()
        server.stop()


@pytest.fixture
def redis_url(redis_base: str) -> str:
    """A Redis URL for one test. On our own throwaway server each test gets a fresh database."""
    if os.environ.get("WFCELERY_TEST_REDIS_URL"):
        return os.environ["WFCELERY_TEST_REDIS_URL"]  # shared server: isolation by key prefix and queue
    db = next(_dbs) % 63 + 1
    redis.Redis.from_url(f"{redis_base}/{db}").flushdb()
    return f"{redis_base}/{db}"


@pytest.fixture
def faulty_redis() -> Iterator[FaultyRedis]:
    """A redis-server of this test alone (AOF on) that the test may restart, stop or freeze."""
    server = FaultyRedis().start()
    try:
        yield server
    finally:
        gc.collect()  # as for redis_base: let Celery's result objects go while the server still runs
        server.stop()


@pytest.fixture
def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def make_test_app(redis_url: str, uid: str) -> Iterator[Callable[..., Celery]]:
    made: list[Celery] = []

    def factory(broker: str | None = None, **conf: Any) -> Celery:
        made.append(make_app(broker or redis_url, redis_url, f"t{uid}", f"q{uid}", **conf))
        return made[-1]

    yield factory
    for (
        app
    ) in made:  # an in-thread worker started the message filter, heartbeat, reconciler threads: let them go
        wfcelery_worker = app._wfcelery_worker
        wfcelery_worker.close_gate()  # its lease and filter thread, only if they were made
        wfcelery_worker.stop_services()


@pytest.fixture
def app(make_test_app: Callable[..., Celery], request: pytest.FixtureRequest) -> Celery:
    """The test's app; ``@pytest.mark.parametrize("app", [{conf...}], indirect=True)`` adds configuration."""
    return make_test_app(**getattr(request, "param", {}))


@pytest.fixture
def engine(app: Celery) -> Any:
    return app._wfcelery_engine


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


@pytest.fixture(autouse=True)
def _transitions_follow_the_table(request: pytest.FixtureRequest) -> Iterator[None]:
    """After every test that used Redis: each node transition any of its runs logged is one that
    ``wfcelery.tracker.states.TRANSITIONS`` allows (the Lua scripts must enforce the documented table).
    Re-plans (resume/retry, logged as a run going RUNNING again) are control operations, not transitions."""
    if not {"redis_url", "uid"} <= set(request.fixturenames):
        yield
        return
    keys = Keys(f"t{request.getfixturevalue('uid')}")
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"), decode_responses=True)
    yield
    for run_id in client.zrange(keys.index, 0, -1):
        trimmed = bool(client.hget(keys.run(run_id), "ev_base"))  # its first lines were dropped
        bad = illegal_transitions(client.get(keys.events(run_id)) or "", trimmed)
        assert not bad, f"run {run_id}: transitions outside states.TRANSITIONS: {bad}"


def illegal_transitions(log: str, trimmed: bool = False) -> list[str]:
    allowed = {(a.code, b.code) for a, targets in TRANSITIONS.items() for b in targets}
    run_allowed = {(a.value, b.value) for a, targets in RUN_TRANSITIONS.items() for b in targets}
    current: dict[int, str | None] = {}
    first = None if trimmed else NodeStatus.PENDING.code  # a node's first surviving line may be mid-way
    # a run is created RUNNING (no line) or QUEUED (its first line, under max_active_runs)
    run_status: str | None = None if trimmed else "created"
    run_allowed |= {("created", RunStatus.QUEUED.value)}
    run_allowed |= {("created", b) for a, b in run_allowed if a == RunStatus.RUNNING.value}
    bad = []
    for line in log.splitlines():
        event = Event.parse(line)
        if event.node is None:
            if run_status is not None and (run_status, event.status) not in run_allowed:
                bad.append(f"run: {run_status} -> {event.status}")
            run_status = event.status
            if event.status == "RUNNING":
                current = {n: None for n in current}  # a re-plan: every node may restart
            continue
        before = current.get(event.node, first)
        if before is not None and (before, event.status) not in allowed:
            bad.append(f"node {event.node}: {before} -> {event.status}")
        current[event.node] = event.status
    return bad


@pytest.fixture(autouse=True)
def _clear_revoked() -> Iterator[None]:
    worker_state.revoked.clear()
    yield
    worker_state.revoked.clear()


@pytest.fixture
def worker(app: Celery) -> Iterator[Any]:
    with in_thread_worker(app) as w:
        yield w


class WorkerProcess:
    """``celery -A tests.proj worker`` as a subprocess, configured through WFCELERY_TEST_* env."""

    def __init__(
        self,
        broker: str,
        backend: str,
        prefix: str,
        queues: list[str],
        name: str,
        pool: str = "prefork",
        concurrency: int = 2,
        default_queue: str = "celery",
        conf: dict[str, Any] | None = None,
    ) -> None:
        self.hostname = f"{name}@{socket.gethostname()}"
        env = {
            **os.environ,
            "WFCELERY_TEST_CONF": json.dumps(conf or {}),  # extra app.conf for this worker (tests.proj)
            "WFCELERY_TEST_BROKER": broker,
            "WFCELERY_TEST_BACKEND": backend,
            "WFCELERY_TEST_PREFIX": prefix,
            "WFCELERY_TEST_QUEUE": default_queue,
            "PYTHONPATH": str(ROOT),
        }
        self.cmd = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.proj",
            "worker",
            "-Q",
            ",".join(queues),
            "-n",
            self.hostname,
            "-P",
            pool,
            "-c",
            str(concurrency),
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ]
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, app: Celery, timeout: float = 30.0) -> WorkerProcess:
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + timeout
        wait = 0.5  # for a reply: doubled after each ping without one (a loaded machine answers slowly, and a
        # reply to an earlier ping is not counted)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.hostname} exited with {self.proc.returncode}")
            try:
                replies = app.control.ping(destination=[self.hostname], timeout=wait)
            except (OSError, kombu.exceptions.OperationalError) as e:
                # a pooled broker connection reset under load (seen with RabbitMQ): the next ping
                # reconnects; the worker's start is what this waits for, not the connection
                logging.getLogger("tests").warning("ping of %s failed: %r", self.hostname, e)
                replies = []
            if replies:
                return self
            wait = min(2 * wait, 4.0)
        raise RuntimeError(f"worker {self.hostname} did not answer ping within {timeout} s")

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def child_pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False)
        return [int(p) for p in out.stdout.split()]


@pytest.fixture
def worker_process(redis_url: str, uid: str) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def factory(
        app: Celery, queues: list[str], name: str, broker: str | None = None, **kw: Any
    ) -> WorkerProcess:
        w = WorkerProcess(
            broker or app.conf.broker_url,
            redis_url,
            f"t{uid}",
            queues,
            f"{name}-{uid}",
            default_queue=app.conf.task_default_queue,
            **kw,
        )
        started.append(w)
        return w.start(app)

    yield factory
    for w in started:
        w.stop()
