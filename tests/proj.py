"""The Celery project the tests run: tasks a user would write, plus probes the tests read.

In-process tests build apps with :func:`make_app`; ``celery -A tests.proj worker`` subprocesses get the
module-level ``app``, configured from WFCELERY_TEST_* environment variables.
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

import redis
from celery import Celery, current_task

import wfcelery


def make_app(broker: str, backend: str, prefix: str, default_queue: str = "celery", **conf: Any) -> Celery:
    app = Celery("proj", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        {
            "task_default_queue": default_queue,
            "wfcelery_key_prefix": prefix,
            "wfcelery_redis_url": backend,
            "broker_connection_retry_on_startup": True,
            "worker_hijack_root_logger": False,
            # broadcasts and events of one test never reach another's workers on a shared RabbitMQ
            "control_exchange": f"celery-{prefix}",
            "event_exchange": f"celeryev-{prefix}",
            "wfcelery_inspect_timeout": 0.5,  # the submit-time queue check: local workers answer in ms
            **conf,  # a test's own configuration wins
        }
    )
    register_tasks(app)
    wfcelery.install(app)
    return app


def _probe(app: Celery, socket_timeout: float | None = None) -> redis.Redis:
    """Where probes write: the tracker's Redis, unless a fault test restarts that one (test_probe_url)."""
    url = app.conf.get("test_probe_url") or app.conf.wfcelery_redis_url
    # socket_timeout=None: redis-py 8 reads with a 5 s timeout by default, which cuts a longer BLPOP short
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=socket_timeout)


def register_tasks(app: Celery) -> None:
    prefix = app.conf.wfcelery_key_prefix

    @app.task(shared=False, name="proj.noop")
    def noop(*args: Any, **kwargs: Any) -> None:
        return None

    @app.task(shared=False, name="proj.add")
    def add(x: Any, y: Any = 0) -> Any:
        return x + y

    @app.task(shared=False, name="proj.total")
    def total(values: list[Any]) -> Any:
        return sum(values)

    @app.task(shared=False, name="proj.echo")
    def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"args": list(args), "kwargs": kwargs}

    @app.task(shared=False, name="proj.record", bind=True)
    def record(self: Any, *args: Any, sleep: float = 0.0, hold: str | None = None, **kwargs: Any) -> str:
        """Writes start/end (Redis TIME, us), worker hostname and a run counter, for edge checks.
        ``hold``: before ending, wait until the test pushes to this key (BLPOP), like proj.block."""
        r = _probe(app)
        node = self.request.wf_node if hasattr(self.request, "wf_node") else "?"
        key = f"{prefix}:probe:{self.request.wf_run}"
        start = _now_us(r)
        if sleep:
            time.sleep(sleep)
        if hold:
            r.blpop([hold], timeout=30)
        end = _now_us(r)
        pipe = r.pipeline()
        pipe.hset(key, f"{node}:start", start)
        pipe.hset(key, f"{node}:end", end)
        pipe.hset(key, f"{node}:host", self.request.hostname or socket.gethostname())
        pipe.hincrby(key, f"{node}:runs", 1)
        pipe.execute()
        return node

    @app.task(shared=False, name="proj.block", bind=True)
    def block(self: Any, key: str, timeout: float = 30.0) -> str:
        """Runs until the test pushes to ``key`` (BLPOP): lets tests observe RUNNING."""
        r = _probe(app, socket_timeout=timeout + 5)
        r.blpop([key], timeout=timeout)
        return "released"

    @app.task(shared=False, name="proj.fail")
    def fail(*args: Any, message: str = "boom") -> None:
        raise ValueError(message)

    @app.task(shared=False, name="proj.flaky", bind=True)
    def flaky(self: Any, failures: int, key: str) -> int:
        """Fails ``failures`` times (counted in Redis), then returns the attempt number."""
        n = _probe(app).incr(key)
        if n <= failures:
            raise RuntimeError(f"flaky attempt {n}")
        return n

    @app.task(shared=False, name="proj.block_flaky", bind=True)
    def block_flaky(
        self: Any, key: str, failures: int, counter: str, native: bool = False, timeout: float = 30.0
    ) -> int:
        """Runs until the test pushes to ``key`` (like proj.block), then fails like proj.flaky
        (``native``: by Celery's own ``Task.retry``, which re-sends the message under the same id)."""
        r = _probe(app, socket_timeout=timeout + 5)
        r.blpop([key], timeout=timeout)
        n = r.incr(counter)
        if n <= failures:
            if native:
                raise self.retry(countdown=0.1, max_retries=3, exc=RuntimeError(f"flaky attempt {n}"))
            raise RuntimeError(f"flaky attempt {n}")
        return n

    @app.task(shared=False, name="proj.native_retry", bind=True, max_retries=3)
    def native_retry(self: Any, failures: int) -> int:
        if self.request.retries < failures:
            raise self.retry(countdown=0.1, exc=RuntimeError("again"))
        return self.request.retries

    @app.task(shared=False, name="proj.count", bind=True)
    def count(self: Any, *args: Any, sleep: float = 0.0) -> str:
        """Counts executions per node in Redis (proves a node did or did not run again)."""
        if sleep:
            time.sleep(sleep)
        _probe(app).hincrby(f"{prefix}:count:{self.request.wf_run}", self.request.wf_node, 1)
        return self.request.wf_node

    @app.task(shared=False, name="proj.map_flaky", bind=True)
    def map_flaky(self: Any, x: int, key: str, failing: list[int] = (), times: int = 1) -> int:  # type: ignore[assignment]
        """Counts executions per element; an element listed in ``failing`` fails its first ``times``."""
        n = _probe(app).hincrby(f"{prefix}:{key}", str(x), 1)
        if x in failing and n <= times:
            raise RuntimeError(f"element {x} failed (attempt {n})")
        return x * 2

    @app.task(shared=False, name="proj.count_block", bind=True)
    def count_block(self: Any, key: str, timeout: float = 30.0) -> str:
        """Counts the body's start (like proj.count), then runs until the test pushes to ``key``."""
        r = _probe(app)
        r.hincrby(f"{prefix}:count:{self.request.wf_run}", self.request.wf_node, 1)
        r.blpop([key], timeout=timeout)
        return "released"

    @app.task(shared=False, name="proj.returns_set")
    def returns_set(*args: Any) -> set[int]:
        return {1, 2, 3}  # JSON cannot encode a set

    @app.task(shared=False, name="proj.big_result")
    def big_result(size: int) -> str:
        return "x" * size

    @app.task(shared=False, name="proj.whoami", bind=True)
    def whoami(self: Any, *args: Any) -> str:
        return str(self.request.hostname)

    @app.task(shared=False, name="proj.subscribe")
    def subscribe(task_id: str, undo: bool = False) -> None:
        """Subscribe this worker's result backend to a result's channel, as code waiting on it would (or
        drop that subscription again)."""
        if undo:
            app.backend.result_consumer.cancel_for(task_id)
        else:
            app.backend.add_pending_result(app.AsyncResult(task_id))

    @app.task(shared=False, name="proj.callback")
    def callback(run_id: str, tag: str = "") -> None:
        _probe(app).rpush(f"{prefix}:callbacks", f"{tag}:{run_id}")

    _ = current_task


def _now_us(r: redis.Redis) -> int:
    sec, usec = r.time()
    return int(sec) * 1_000_000 + int(usec)


def _env_app() -> Celery:
    broker = os.environ.get("WFCELERY_TEST_BROKER", "redis://127.0.0.1:6379/0")
    backend = os.environ.get("WFCELERY_TEST_BACKEND", broker)
    return make_app(
        broker,
        backend,
        os.environ.get("WFCELERY_TEST_PREFIX", "wfcelery-test"),
        os.environ.get("WFCELERY_TEST_QUEUE", "celery"),
        **json.loads(os.environ.get("WFCELERY_TEST_CONF") or "{}"),  # e.g. short fault-test timeouts
    )


app = _env_app()
