"""The tracker on a real Redis Cluster (3 masters on loopback, created here): ``wfcelery_redis_cluster``."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator

import pytest
from celery import Celery

from tests.helpers import DIAMOND_RESULTS, diamond, in_thread_worker, wait_for
from wfcelery import Workflow
from wfcelery._redis_server import ClusterServer
from wfcelery.install import engine_of

pytestmark = pytest.mark.skipif(shutil.which("redis-cli") is None, reason="redis-cli creates the cluster")


@pytest.fixture
def cluster() -> Iterator[ClusterServer]:
    server = ClusterServer(3).start()
    yield server
    server.stop()


def test_runs_succeed_with_the_tracker_on_a_3_master_cluster(
    make_test_app: Callable[..., Celery], cluster: ClusterServer
) -> None:
    app = make_test_app(wfcelery_redis_cluster=True, wfcelery_redis_url=cluster.url)
    engine = engine_of(app)
    assert engine is not None
    wf = diamond("clustered")
    with in_thread_worker(app):
        runs = [engine.submit(wf) for _ in range(8)]
        results = [run.wait(timeout=30) for run in runs]
    assert results == [DIAMOND_RESULTS] * 8
    for run in runs:
        state = run.state()
        assert state.status.value == "SUCCEEDED"
        assert {n.attempts for n in state.nodes.values()} == {1}
    # a run's keys share one slot; the runs spread over the masters
    masters_with_runs = [n for n in cluster.nodes() if any(n.scan_iter(match="*}:run"))]
    assert len(masters_with_runs) >= 2
    # the counters: one shard per slot the runs used, on the runs' own masters, summed exactly
    snap = engine.metrics()
    assert snap.runs == {("clustered", "SUCCEEDED"): 8}
    assert snap.active == {"clustered": 0}
    assert sum(snap.nodes.values()) == 8 * 4
    assert sum(h.count for h in snap.duration.values()) == 8 * 4
    shards = [
        k for n in cluster.nodes() for k in n.scan_iter(match=f"{engine.settings.key_prefix}:metrics:{{*")
    ]
    assert 2 <= len(shards) <= 8
    # the history index: the workflow's runs, newest first
    page = engine.search_runs(workflow="clustered", status="SUCCEEDED")
    assert sorted(r.id for r in page.runs) == sorted(r.id for r in runs)


def test_max_active_runs_and_deadlines_on_a_cluster(
    make_test_app: Callable[..., Celery], cluster: ClusterServer
) -> None:
    """The admission group's keys and a run's keys live in different slots: separate scripts, no
    CROSSSLOT; runs of one key value one after another, a deadline fails its run."""
    app = make_test_app(wfcelery_redis_cluster=True, wfcelery_redis_url=cluster.url)
    engine = engine_of(app)
    assert engine is not None
    wf = Workflow("clustered-limit", max_active_runs=1, concurrency_key="params.c")
    wf.add("a", "proj.add", args=[1, 2])
    slow = Workflow("clustered-deadline", deadline="1s")
    slow.wait("never")  # waits for a signal that never comes: only the deadline ends the run
    runs = [engine.submit(wf, {"c": c}) for c in ("x", "x", "y", "x")]  # no worker yet: nothing ends
    assert [r.state().status.value for r in runs] == ["RUNNING", "QUEUED", "RUNNING", "QUEUED"]
    with in_thread_worker(app):
        assert [r.wait(timeout=60) for r in runs] == [{"a": 3}] * 4
        late = engine.submit(slow)
        state = wait_for(lambda: (s := late.state()).finished and s, timeout=30, message="the deadline")
    assert state.status.value == "FAILED"
    assert state.error == {"type": "DeadlineExceeded", "message": "deadline exceeded"}
    starts = [r.state().nodes["a"].started_at for r in runs]
    ends = [r.state().finished_at for r in runs]
    assert ends[0] <= starts[1]  # x's runs one after another, in submit order
    assert ends[1] <= starts[3]


def test_a_pool_bounds_its_nodes_with_the_tracker_on_a_cluster(
    make_test_app: Callable[..., Celery], cluster: ClusterServer
) -> None:
    """A pool's keys (its own hash tag) and the runs' keys live on different masters: each move is two
    scripts, and the bound holds."""
    app = make_test_app(wfcelery_redis_cluster=True, wfcelery_redis_url=cluster.url, wfcelery_pools={"db": 2})
    engine = engine_of(app)
    assert engine is not None
    wf = Workflow("pooled")
    for i in range(6):
        wf.add(f"n{i}", "proj.add", args=[i, 1], pool="db")
    with in_thread_worker(app, concurrency=6):
        runs = [engine.submit(wf) for _ in range(4)]
        results = [run.wait(timeout=60) for run in runs]
        assert results == [{f"n{i}": i + 1 for i in range(6)}] * 4
        deadline = time.monotonic() + 10
        while engine.pool("db").used and time.monotonic() < deadline:
            time.sleep(0.05)
    assert (engine.pool("db").used, engine.pool("db").waiting) == (0, 0)
    waited = [n for run in runs for n in run.state().nodes.values() if n.status.value != "SUCCEEDED"]
    assert waited == []
