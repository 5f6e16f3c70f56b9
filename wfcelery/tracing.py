"""OpenTelemetry traces (extra ``wfcelery[otel]``): one trace per run, whose trace id is the run id.

* **When.** Only where the process already uses OpenTelemetry: ``opentelemetry.trace`` imported by someone
  else (``opentelemetry-instrument``, the app's own setup) and a tracer provider set. wfcelery never imports
  OpenTelemetry itself: without it (or without a provider) every function here returns at its first test,
  and no ``opentelemetry`` module is loaded (``tests/integration/test_tracing.py`` checks both).
* **Ids.** A run id is 32 hex digits, 128 bits: it is the trace id. The run's span has the span id of the
  run id's low 64 bits, so every process can name it as a parent without asking anyone.
* **Spans.** ``wfcelery.run`` (the run: from its creation to its end, error status unless it succeeded)
  is emitted by the process that ends the run. ``wfcelery.node <name>``: one span per node attempt, child
  of the run span, from the time the node was QUEUED to the attempt's report, with a ``started`` event at
  its start gate, a ``retry`` event when it is retried, and error status when it fails (retried or not).
  Attributes ``wfcelery.run_id``, ``wfcelery.workflow``, ``wfcelery.node``, ``wfcelery.attempt``.
* **The task's own spans.** The worker's main process gives each node message it receives a fresh span id
  and writes it as the message's ``traceparent`` (``stamp``) before the pool runs it, so the
  ``run/<task>`` span of opentelemetry-instrumentation-celery (and anything the task traces) nests under the
  node attempt's span, which is then emitted with that span id. An SDK tracer picks span ids itself: the
  span ids chosen here are handed to it through the tracer's id generator (``_ChosenIds``), on the
  ``wfcelery`` tracer only.
"""

from __future__ import annotations

import logging
import random
import sys
import threading
import time
from typing import Any

logger = logging.getLogger("wfcelery.tracing")

#: Message header (and request attribute) holding the node attempt's span id, 16 hex digits.
SPAN_HEADER = "wf_span"
TRACEPARENT = "traceparent"


def active() -> bool:
    """True when this process traces: OpenTelemetry is loaded already and a tracer provider is set."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return False
    try:
        provider = trace.get_tracer_provider()
    except Exception:  # never break a task for a trace
        return False
    return not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider)


def trace_id(run_id: str) -> int:
    return int(run_id, 16)


def run_span_id(run_id: str) -> int:
    return int(run_id[16:], 16) or 1


def traceparent(run_id: str, span_id: int) -> str:
    return f"00-{run_id}-{span_id:016x}-01"


def stamp(headers: dict[str, Any], run_id: str) -> None:
    """Give a node message about to run a fresh span id (see the module docstring)."""
    if not active():
        return
    span_id = random.getrandbits(64) or 1
    headers[SPAN_HEADER] = f"{span_id:016x}"
    headers[TRACEPARENT] = traceparent(run_id, span_id)


class _ChosenIds:
    """An id generator that hands out the ids a thread chose (``chosen``), else the SDK's own."""

    def __init__(self, original: Any) -> None:
        self.original = original
        self.local = threading.local()

    def generate_span_id(self) -> int:
        chosen = getattr(self.local, "span_id", None)
        return int(chosen) if chosen else int(self.original.generate_span_id())

    def generate_trace_id(self) -> int:
        chosen = getattr(self.local, "trace_id", None)
        return int(chosen) if chosen else int(self.original.generate_trace_id())

    def is_trace_id_random(self) -> bool:
        """A run id is a uuid4 (not 128 random bits: the W3C "random" flag stays off for it)."""
        if getattr(self.local, "trace_id", None):
            return False
        return bool(getattr(self.original, "is_trace_id_random", lambda: True)())

    def __getattr__(self, name: str) -> Any:
        return getattr(self.original, name)


_TRACER: Any = None
_LOCK = threading.Lock()


def _tracer() -> Any:
    global _TRACER
    trace = sys.modules["opentelemetry.trace"]
    with _LOCK:
        provider = trace.get_tracer_provider()
        if _TRACER is None or _TRACER[0] is not provider:
            tracer = provider.get_tracer("wfcelery")
            if hasattr(tracer, "id_generator") and not isinstance(tracer.id_generator, _ChosenIds):
                tracer.id_generator = _ChosenIds(tracer.id_generator)
            _TRACER = (provider, tracer)
        return _TRACER[1]


def _emit(
    name: str,
    run_id: str,
    span_id: int,
    parent: int | None,
    start_ns: int,
    end_ns: int,
    attributes: dict[str, Any],
    events: list[tuple[str, int, dict[str, Any]]],
    error: str | None,
) -> None:
    trace = sys.modules["opentelemetry.trace"]
    tracer = _tracer()
    context = sys.modules["opentelemetry.context"].Context()  # a root: never the current span's child
    if parent is not None:
        flags = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        ctx = trace.SpanContext(trace_id(run_id), parent, is_remote=True, trace_flags=flags)
        context = trace.set_span_in_context(trace.NonRecordingSpan(ctx))
    ids = getattr(tracer, "id_generator", None)
    chosen = ids.local if isinstance(ids, _ChosenIds) else threading.local()
    chosen.trace_id, chosen.span_id = trace_id(run_id), span_id
    try:
        span = tracer.start_span(name, context=context, attributes=attributes, start_time=start_ns)
    finally:
        chosen.trace_id = chosen.span_id = None
    for event, at, attrs in events:
        span.add_event(event, attributes=attrs, timestamp=at)
    if error is not None:
        span.set_status(trace.Status(trace.StatusCode.ERROR, error))
    span.end(end_time=end_ns)


def run_ended(run_id: str, workflow: str, status: str, created_ms: int) -> None:
    """Emit the run's span (the process that ended the run calls this)."""
    if not active():
        return
    try:
        attrs = {"wfcelery.run_id": run_id, "wfcelery.workflow": workflow, "wfcelery.status": status}
        error = None if status == "SUCCEEDED" else f"run {status}"
        _emit(
            "wfcelery.run",
            run_id,
            run_span_id(run_id),
            None,
            created_ms * 1_000_000,
            time.time_ns(),
            attrs,
            [],
            error,
        )
    except Exception:
        logger.exception("wfcelery: could not emit the span of run %s", run_id)


def attempt_ended(
    request: Any,
    run_id: str,
    workflow: str,
    node: str,
    outcome: str,
    error: dict[str, Any] | None = None,
    ended_ns: int | None = None,
) -> None:
    """Emit a node attempt's span from the request that ran it (``outcome``: SUCCEEDED, FAILED, RETRYING,
    REVOKED). Needs the start gate's stamps on the request (``wf_started_ns``, ``wf_waited_ms``)."""
    if not active():
        return
    try:
        started = getattr(request, "wf_started_ns", None)
        if started is None:
            return  # the attempt never passed the start gate here
        span_hex = getattr(request, SPAN_HEADER, None)
        span_id = int(span_hex, 16) if span_hex else random.getrandbits(64) or 1
        waited = getattr(request, "wf_waited_ms", None)
        queued = started - int(waited or 0) * 1_000_000
        attempt = int(getattr(request, "wf_attempt", 0) or 0)
        attrs = {
            "wfcelery.run_id": run_id,
            "wfcelery.workflow": workflow,
            "wfcelery.node": node,
            "wfcelery.attempt": attempt,
            "wfcelery.outcome": outcome,
        }
        events: list[tuple[str, int, dict[str, Any]]] = [("started", started, {})]
        end = ended_ns or time.time_ns()
        message = None
        if error is not None:
            message = f"{error.get('type')}: {error.get('message')}"
            kind = "retry" if outcome == "RETRYING" else "exception"
            events.append(
                (
                    kind,
                    end,
                    {
                        "exception.type": str(error.get("type")),
                        "exception.message": str(error.get("message")),
                    },
                )
            )
        failed = outcome in ("FAILED", "REVOKED", "RETRYING")  # the attempt ended in an error
        _emit(
            f"wfcelery.node {node}",
            run_id,
            span_id,
            run_span_id(run_id),
            queued,
            end,
            attrs,
            events,
            message if failed else None,
        )
    except Exception:
        logger.exception("wfcelery: could not emit the span of %s of run %s", node, run_id)
