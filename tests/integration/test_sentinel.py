"""The tracker behind a real Redis Sentinel (tests/sentinel.py: a master, a ``--replicaof`` replica and a
sentinel on loopback ports of their own): clients, workers, the reconciler, pub/sub followers
(``run.wait``) and the web server's event stream through ``sentinel://`` URLs; the tracker following a
``sentinel://`` result backend; ``doctor``'s view of the topology; and a failover mid-run -- the master
SIGKILLed after its replica fell 1.5 s behind, so the promoted replica lacks the old master's last writes
-- with either broker, on a server of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import WorkerProcess, illegal_transitions
from tests.helpers import DIAMOND_RESULTS, IN_CI, diamond, in_thread_worker, rabbitmq_url, wait_for
from tests.proj import make_app
from tests.sentinel import SentinelGroup
from wfcelery import NodeStatus, RunStatus, Workflow
from wfcelery.cli.doctor import diagnose, replication_finding
from wfcelery.tracker.connection import is_sentinel
from wfcelery.worker.reconciler import Reconciler

TRACKER_DB = 2


@pytest.fixture
def sentinel() -> Iterator[SentinelGroup]:
    try:
        group = SentinelGroup().start()
    except (OSError, RuntimeError) as e:  # no redis-server that runs a sentinel
        if IN_CI:
            pytest.fail(f"a Redis Sentinel is required in CI but cannot be started: {e}")
        pytest.skip(f"cannot start a Redis Sentinel: {e}")
    yield group
    group.stop()


def tracker_conf(group: SentinelGroup) -> dict[str, Any]:
    return {
        "wfcelery_redis_url": group.url(TRACKER_DB),
        "wfcelery_redis_transport_options": group.transport_options,
    }


def test_tracker_behind_sentinel_runs_workflows_for_every_part(
    make_test_app: Any, sentinel: SentinelGroup
) -> None:
    """A worker, the client, run.wait (pub/sub), the reconciler's sweep and the web server's event stream,
    all through the sentinel URL; the run's keys are on the master in the URL's database; doctor reports
    the master and its replica, then a problem once the replica is gone."""
    from tests.web.conftest import Server
    from tests.web.test_events import sse

    app = make_test_app(**tracker_conf(sentinel))
    engine = app._wfcelery_engine
    with in_thread_worker(app):
        run = engine.submit(diamond("behind-sentinel"))
        assert run.wait(timeout=30) == DIAMOND_RESULTS
    master = sentinel.node(sentinel.master_port(), TRACKER_DB)
    assert master.hget(engine.tracker.keys.run(run.id), "status") == "SUCCEEDED"
    assert Reconciler(app._wfcelery_worker, hostname="sweep", patient=False).sweep() == []
    server = Server(engine).start()
    try:
        with server.client() as http:
            messages = list(sse(http, f"/api/runs/{run.id}/events"))
    finally:
        server.stop()
    assert messages[-1]["data"] == {"status": "SUCCEEDED", "deleted": False}
    assert len(messages) == 14  # 4 nodes x QUEUED, RUNNING, SUCCEEDED; the run's end; the stream's end

    found = {f.check: f for f in diagnose(engine)}["replication"]
    assert found.ok is True, found
    assert "role master" in found.message
    assert "online" in found.message
    for port in sentinel.replica_ports():
        sentinel.servers[port].kill()
        sentinel.servers[port].wait(10)
    # the master lists a replica until it sees its link close (asynchronously, after the kill)
    found = wait_for(
        lambda: (f := replication_finding(engine)).ok is False and f,
        timeout=15,
        message="the master to see its replica gone",
    )
    assert "nothing to fail over to" in found.message
    assert "replica" in found.fix


def test_tracker_follows_a_sentinel_result_backend(redis_url: str, uid: str, sentinel: SentinelGroup) -> None:
    """No wfcelery_redis_url: the tracker uses the app's ``sentinel://`` result backend, with
    ``result_backend_transport_options``'s master_name, as Celery's own backend does."""
    app = make_app(
        redis_url,
        sentinel.url(3),
        f"t{uid}",
        f"q{uid}",
        wfcelery_redis_url=None,
        result_backend_transport_options=sentinel.transport_options,
    )
    engine = app._wfcelery_engine
    assert is_sentinel(engine.settings.redis_url)
    assert engine.settings.redis_transport_options == sentinel.transport_options
    try:
        with in_thread_worker(app):
            run = engine.submit(diamond("backend-sentinel"))
            assert run.wait(timeout=30) == DIAMOND_RESULTS
        assert sentinel.node(sentinel.master_port(), 3).exists(engine.tracker.keys.run(run.id))
    finally:
        app._wfcelery_worker.stop_services()


# -- a failover mid-run -------------------------------------------------------------------------------------


def ladder(name: str) -> Workflow:
    """``a -> [b0..b3] -> c -> [d0..d3] -> e``: fan-outs and fan-ins, each body 0.2-0.35 s."""
    wf = Workflow(name)
    wf.add("a", "proj.count", kwargs={"sleep": 0.3}, immutable=True)
    for i in range(4):
        wf.add(f"b{i}", "proj.count", kwargs={"sleep": 0.2 + 0.05 * i}, after=["a"], immutable=True)
    wf.add("c", "proj.count", kwargs={"sleep": 0.3}, after=[f"b{i}" for i in range(4)], immutable=True)
    for i in range(4):
        wf.add(f"d{i}", "proj.count", kwargs={"sleep": 0.2 + 0.05 * i}, after=["c"], immutable=True)
    wf.add("e", "proj.count", kwargs={"sleep": 0.2}, after=[f"d{i}" for i in range(4)], immutable=True)
    return wf


#: Worker settings of the failover test: fast repairs, and lost QUEUED messages re-sent after 5 s.
FAILOVER_CONF = {
    "wfcelery_heartbeat": 1,
    "wfcelery_sweep_interval": 1,
    "wfcelery_report_retry": 1,
    "wfcelery_gate_wait": 1,
    "wfcelery_redis_timeout": 1,
    "wfcelery_queued_timeout": 5,
}
#: Seconds from the master's SIGKILL by which every run must have ended (docs/ha.md: the failover bound).
FAILOVER_BOUND = 45


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_failover_that_loses_the_last_writes_mid_run_ends_every_run(
    broker: str, redis_url: str, uid: str, r: redis.Redis, tmp_path: Path, sentinel: SentinelGroup
) -> None:
    """Three runs on two workers. Mid-run the replica is cut off for 1.5 s (frozen, its link dropped: what
    the master acknowledges meanwhile is on the master alone), then the master is SIGKILLed and the
    replica, thawed, promoted. The promoted tracker lacks those writes: starts and successes the workers
    were told were recorded, releases of children already sent. Every run still ends SUCCEEDED within the
    bound, every node's body ran at least once, only nodes whose success had not reached the replica ran
    again, and the promoted tracker's log follows the transition table (a success of a node whose start
    it never saw records that start first)."""
    if broker == "rabbitmq":
        amqp = rabbitmq_url()
        if amqp is None:
            pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
        broker_url = amqp
    else:
        broker_url = redis_url  # the suite's Redis: a server of its own, apart from the tracker's
    conf = {
        **tracker_conf(sentinel),
        **FAILOVER_CONF,
        "test_probe_url": redis_url,
        "wfcelery_outbox_dir": str(tmp_path / "outbox"),
    }
    app = make_app(broker_url, redis_url, f"t{uid}", f"q{uid}", **conf)
    engine = app._wfcelery_engine
    workers = [
        WorkerProcess(broker_url, redis_url, f"t{uid}", [f"q{uid}"], f"w{i}-{uid}", default_queue=f"q{uid}",
                      conf=conf).start(app)
        for i in range(2)
    ]  # fmt: skip
    try:
        runs = [engine.submit(ladder(f"failover-{i}")) for i in range(3)]
        master = sentinel.node(sentinel.master_port(), TRACKER_DB)

        def done(run_id: str) -> int:
            return int(master.hget(engine.tracker.keys.run(run_id), "done") or 0)

        _wait(lambda: sum(done(run.id) for run in runs) >= 8, 30, "8 nodes done")
        durable = {run.id: _succeeded(run) for run in runs}  # read before WAIT: on the replica after it
        assert master.execute_command("WAIT", 1, 10_000) == 1
        replica = sentinel.replica_ports()[0]
        sentinel.cut_off(replica)
        try:
            time.sleep(1.5)  # the fault: writes land on the master alone meanwhile
            behind = sum(done(run.id) for run in runs)
            killed_port = sentinel.kill_master()
        finally:
            sentinel.thaw(replica)
        killed = time.monotonic()
        sentinel.wait_failover(killed_port)
        promoted = time.monotonic() - killed
        for run in runs:
            assert run.wait(timeout=max(1.0, FAILOVER_BOUND - (time.monotonic() - killed)))
        took = time.monotonic() - killed
    finally:
        for w in workers:
            w.stop()
    new_master = sentinel.node(sentinel.master_port(), TRACKER_DB)
    repeats: dict[str, list[str]] = {}
    for run in runs:
        state = run.state()
        assert state.status is RunStatus.SUCCEEDED
        ran = {k: int(v) for k, v in r.hgetall(f"t{uid}:count:{run.id}").items()}
        assert set(ran) == set(state.nodes), ran
        assert min(ran.values()) >= 1, ran
        repeats[run.id] = sorted(n for n, c in ran.items() if c > 1)
        assert not set(repeats[run.id]) & durable[run.id], "a success on the replica ran again"
        log = new_master.get(engine.tracker.keys.events(run.id)) or ""
        assert not illegal_transitions(log), illegal_transitions(log)
    print(  # the figures docs/ha.md quotes
        f"\nfailover ({broker}): promoted {promoted:.1f} s after the kill, runs ended {took:.1f} s after it; "
        f"nodes done when the replica froze/at the kill: {sum(len(d) for d in durable.values())}/{behind}; "
        f"bodies run again: {sorted(n for v in repeats.values() for n in v)}"
    )
    assert took < FAILOVER_BOUND


def _succeeded(run: Any) -> set[str]:
    return {name for name, n in run.state().nodes.items() if n.status is NodeStatus.SUCCEEDED}


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)
