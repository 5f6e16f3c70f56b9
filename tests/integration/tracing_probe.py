"""Runs workflows on an in-thread worker in a process of its own and prints what it saw, as JSON.

``python -m tests.integration.tracing_probe MODE REDIS_URL PREFIX``:
  * ``traced``: an OpenTelemetry SDK tracer provider with an in-memory exporter, and
    opentelemetry-instrumentation-celery (the task's own ``run/<task>`` spans): prints the runs and spans;
  * ``plain``: OpenTelemetry's API installed but no SDK and no tracer provider (redis-py 8 loads the API's
    metrics part by itself when it finds it): prints the opentelemetry modules redis, kombu and celery
    loaded (``baseline``) and those loaded once the runs are over;
  * ``absent``: OpenTelemetry cannot be imported at all: the runs still succeed.
The tracer provider is process-wide (set once), so this runs apart from the test process.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import json
import sys
from typing import Any


class _Hidden(importlib.abc.MetaPathFinder):
    def __init__(self, top: str) -> None:
        self.top = top

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == self.top or name.startswith(self.top + "."):
            raise ImportError(f"{name} is not installed (tracing_probe)")


def _otel() -> list[str]:
    return sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")


def main(mode: str, redis_url: str, prefix: str) -> None:
    exporter = None
    if mode == "absent":
        sys.meta_path.insert(0, _Hidden("opentelemetry"))
    if mode == "plain":
        sys.meta_path.insert(0, _Hidden("opentelemetry.sdk"))
    import celery.worker  # noqa: F401
    import kombu.transport.redis  # noqa: F401
    import redis.event  # noqa: F401

    baseline = _otel()

    from tests.helpers import diamond, in_thread_worker
    from tests.proj import make_app
    from wfcelery import Workflow

    if mode == "traced":
        from opentelemetry import trace
        from opentelemetry.instrumentation.celery import CeleryInstrumentor
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        CeleryInstrumentor().instrument()
    app = make_app(redis_url, redis_url, prefix, f"q{prefix}")
    engine = app._wfcelery_engine
    bad = Workflow("traced-bad")
    bad.add("first", "proj.add", args=[1, 2])
    bad.add("boom", "proj.fail", after=["first"], retries=1)
    with in_thread_worker(app):
        runs = [engine.submit(diamond("traced-ok")), engine.submit(bad)]
        states = []
        for run in runs:
            with contextlib.suppress(Exception):
                run.wait(timeout=60)
            states.append(run.state().to_dict())
    out: dict[str, Any] = {"runs": states}
    if exporter is not None:
        out["spans"] = [_span(s) for s in exporter.get_finished_spans()]
    out["otel_modules"], out["baseline"] = _otel(), baseline
    print(json.dumps(out))


def _span(s: Any) -> dict[str, Any]:
    return {
        "name": s.name,
        "trace_id": f"{s.context.trace_id:032x}",
        "span_id": f"{s.context.span_id:016x}",
        "parent": f"{s.parent.span_id:016x}" if s.parent else None,
        "attributes": dict(s.attributes or {}),
        "status": s.status.status_code.name,
        "events": [e.name for e in s.events],
        "start": s.start_time,
        "end": s.end_time,
    }


if __name__ == "__main__":
    main(*sys.argv[1:4])
