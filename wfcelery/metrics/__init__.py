"""Prometheus metrics (extra ``wfcelery[metrics]``): ``wfcelery metrics --port 9808`` and ``GET /metrics``
on ``wfcelery web``.

Every figure is read from the tracker at scrape time (``tracker/counters.py``: the Lua scripts count as the
transitions happen), so any number of exporters show the same numbers and a restarted one loses nothing.
The families and their labels (DESIGN section 11):

=========================================  =========  ===================================================
``wfcelery_runs_total``                    counter    {workflow, status}: runs that ended (SUCCEEDED,
                                                      FAILED, CANCELLED); a retried run counts each end
``wfcelery_runs_active``                   gauge      {workflow}: runs RUNNING or PAUSED
``wfcelery_nodes_total``                   counter    {task, queue, status}: SUCCEEDED, FAILED, SKIPPED,
                                                      REVOKED per node or map instance that settled,
                                                      RETRYING per attempt retried
``wfcelery_node_duration_seconds``         histogram  {task, queue}: one attempt, start gate to report
``wfcelery_node_wait_seconds``             histogram  {queue}: QUEUED until the start gate
``wfcelery_pool_slots_used``               gauge      {pool}: slots held (nodes published or running)
``wfcelery_pool_waiting``                  gauge      {pool}: nodes WAITING for a slot or a token
``wfcelery_reconciler_repairs_total``      counter    {kind}: requeued, revoked, quarantined, finished
``wfcelery_tracker_up``                    gauge      1 when the tracker's Redis answered this scrape
=========================================  =========  ===================================================

Histogram buckets (both): 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
1800, 3600 seconds and +Inf (``counters.BUCKETS_MS``); sums are exact to the millisecond.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

try:
    from prometheus_client import CollectorRegistry, generate_latest, start_http_server
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError("wfcelery's metrics need their extra: pip install 'wfcelery[metrics]'") from e

from wfcelery.errors import WfCeleryError
from wfcelery.tracker.counters import Histogram, Snapshot

#: What a collector reads on every scrape: ``Engine.metrics`` (raises a WfCeleryError when Redis is away).
Read = Callable[[], Snapshot]

__all__ = ["CONTENT_TYPE_LATEST", "TrackerCollector", "exposition", "registry_for", "serve"]

logger = logging.getLogger("wfcelery.metrics")


class TrackerCollector:
    """A prometheus-client collector that reads the tracker's counters on every scrape."""

    def __init__(self, read: Read) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        try:
            snap: Snapshot | None = self.read()
        except WfCeleryError as e:  # the tracker is away: say so, and answer
            logger.warning("wfcelery metrics: %s", e)
            snap = None
        yield GaugeMetricFamily(
            "wfcelery_tracker_up", "1 when the tracker's Redis answered this scrape", value=int(bool(snap))
        )
        if snap is not None:
            yield from families(snap)

    def describe(self) -> list[Metric]:
        return []  # no read at registration: families are known only once Redis answers


def families(snap: Snapshot) -> Iterator[Metric]:
    runs = CounterMetricFamily(
        "wfcelery_runs", "Runs that ended, by workflow and final status", labels=["workflow", "status"]
    )
    for (workflow, status), n in sorted(snap.runs.items()):
        runs.add_metric([workflow, status], n)
    yield runs
    active = GaugeMetricFamily("wfcelery_runs_active", "Runs RUNNING or PAUSED", labels=["workflow"])
    for workflow, n in sorted(snap.active.items()):
        active.add_metric([workflow], n)
    yield active
    nodes = CounterMetricFamily(
        "wfcelery_nodes",
        "Node outcomes (map instances count one by one; RETRYING: attempts retried)",
        labels=["task", "queue", "status"],
    )
    for key, n in sorted(snap.nodes.items()):
        nodes.add_metric(list(key), n)
    yield nodes
    duration = HistogramMetricFamily(
        "wfcelery_node_duration_seconds",
        "Run time of one node attempt, from its start gate to its report",
        labels=["task", "queue"],
    )
    for (task, queue), h in sorted(snap.duration.items()):
        duration.add_metric([task, queue], _buckets(h), h.sum_ms / 1000)
    yield duration
    wait = HistogramMetricFamily(
        "wfcelery_node_wait_seconds", "Time a node waited QUEUED before it started", labels=["queue"]
    )
    for queue, h in sorted(snap.wait.items()):
        wait.add_metric([queue], _buckets(h), h.sum_ms / 1000)
    yield wait
    used = GaugeMetricFamily(
        "wfcelery_pool_slots_used", "Slots of a pool held (nodes published or running in it)", labels=["pool"]
    )
    waiting = GaugeMetricFamily(
        "wfcelery_pool_waiting", "Nodes WAITING for a slot or a token of a pool", labels=["pool"]
    )
    for pool, (n_used, n_waiting) in sorted(snap.pools.items()):
        used.add_metric([pool], n_used)
        waiting.add_metric([pool], n_waiting)
    yield used
    yield waiting
    repairs = CounterMetricFamily(
        "wfcelery_reconciler_repairs", "Repairs made by the reconciler, by kind", labels=["kind"]
    )
    for kind, n in sorted(snap.repairs.items()):
        repairs.add_metric([kind], n)
    yield repairs


def _buckets(h: Histogram) -> list[tuple[str, float]]:
    return [("+Inf" if le == float("inf") else repr(le), n) for le, n in h.cumulative()]


def registry_for(read: Read) -> CollectorRegistry:
    """A registry holding only wfcelery's collector (no process metrics of the exporter itself)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TrackerCollector(read))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format."""
    return bytes(generate_latest(registry))


def serve(read: Read, port: int, host: str = "0.0.0.0") -> tuple[Any, threading.Thread]:
    """Serve ``/metrics`` (any path) on ``host:port`` in a daemon thread: (server, thread)."""
    server, thread = start_http_server(port, addr=host, registry=registry_for(read))
    return server, thread
