"""The Celery project both sides of every benchmark run on: one app, one queue, the same worker.

The benchmark process builds its app with :func:`make_app`; the worker subprocesses
(``celery -A benchmarks.tasks worker``) get the module-level ``app``, configured from the ``WFBENCH_*``
environment variables the runner sets. ``wfcelery.install`` is applied to the one app, so its defaults
(late acks, prefetch 1, started state, task events) hold for the plain Celery canvas side too.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from celery import Celery, chord

import wfcelery

#: The queue every benchmark task goes to (the worker consumes it).
QUEUE = "bench"
#: A queue no worker consumes: the control benchmark parks its nodes there.
IDLE_QUEUE = "bench-idle"
#: wfcelery's key prefix in the benchmark Redis.
PREFIX = "wfb"


def make_app(broker: str, backend: str, prefix: str = PREFIX, conf: dict[str, Any] | None = None) -> Celery:
    """``conf``: extra configuration (``--conf`` of the runner), the same in the benchmark and its workers."""
    app = Celery("bench", broker=broker, backend=backend, set_as_current=False)
    app.conf.update(
        {
            "task_default_queue": QUEUE,
            "wfcelery_key_prefix": prefix,
            "wfcelery_redis_url": backend,
            "broker_connection_retry_on_startup": True,
            "worker_hijack_root_logger": False,
            **(conf or {}),
        }
    )

    @app.task(name="bench.noop")
    def noop(*args: Any, **kwargs: Any) -> None:
        return None

    @app.task(name="bench.stamp")
    def stamp(prev: Any = None) -> list[float | None]:
        """Returns ``[end time, start - parent's end]`` (seconds); the parent's result is its first
        argument."""
        start = time.time()
        latency = start - float(prev[0]) if prev else None
        return [time.time(), latency]

    @app.task(name="bench.span")
    def span(*args: Any, sleep: float = 0.0) -> list[float]:
        """Returns ``[start, end]`` of its body (Unix seconds): bodies measure pools' release latency."""
        start = time.time()
        if sleep:
            time.sleep(sleep)
        return [start, time.time()]

    @app.task(name="bench.hop", ignore_result=True)
    def hop(left: int, final_id: str) -> None:
        """The fastest chain Celery can run: a no-op that publishes its own successor (no result, no chain
        payload). ``left`` hops remain including this one; the last hop gets ``final_id`` as its task id
        and stores its result, so the benchmark has one key to wait for."""
        if left > 1:
            last = left == 2
            hop.apply_async((left - 1, final_id), task_id=final_id if last else None, ignore_result=not last)

    @app.task(name="bench.sleep")
    def sleep(*args: Any, seconds: float | None = None) -> None:
        """A node that takes ``seconds`` (or its first argument): a long body (benchmarks.deadlines: what a
        deadline terminates), and runs that keep logging transitions for as long as the web benchmark
        follows them (``kwargs={"seconds": s}``, the parent's result as the first argument)."""
        time.sleep(seconds if seconds is not None else float(args[0]))

    @app.task(name="bench.listing")
    def listing(n: int) -> list[int]:
        """A dynamic list: what a mapped node fans out over."""
        return list(range(n))

    @app.task(name="bench.dynamic_chord")
    def dynamic_chord(n: int, body_id: str) -> None:
        """What users write today for a fan-out sized at run time: a task that builds a chord of ``n``
        and publishes it (its body gets ``body_id``, which the benchmark waits for)."""
        chord([noop.s(i) for i in listing(n)], noop.s().set(task_id=body_id)).apply_async()

    wfcelery.install(app)
    return app


def __getattr__(name: str) -> Celery:
    """``app`` for ``celery -A benchmarks.tasks worker``, built on first use from the runner's environment
    (lazily, so importing this module never points anything at a Redis the runner did not start)."""
    if name != "app":
        raise AttributeError(name)
    broker = os.environ.get("WFBENCH_BROKER")
    if not broker:
        raise RuntimeError(
            "benchmarks.tasks.app is for worker subprocesses started by benchmarks.run "
            "(WFBENCH_BROKER is not set)"
        )
    app = make_app(
        broker,
        os.environ.get("WFBENCH_BACKEND", broker),
        os.environ.get("WFBENCH_PREFIX", PREFIX),
        json.loads(os.environ.get("WFBENCH_CONF") or "{}"),
    )
    globals()["app"] = app
    return app
