"""Repairs that must come at the heartbeat's pace, not the full sweep's or a timeout's: a worker restarted
under its own name again and again (as systemd or Kubernetes restart it), and messages a broker lost.

Real processes: ``celery worker`` subprocesses SIGKILLed and started again with the same ``-n``; a Redis
broker without persistence restarted under the workers (its queues come back empty).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import counts, rabbitmq_url, wait_for
from tests.integration.test_faults import kill_whole, record_timing
from tests.redis_server import FaultyRedis
from wfcelery import NodeStatus, RunStatus, Workflow

#: Seconds between heartbeats in the restart test: a worker is judged gone once its last beat is 18 s old,
#: longer than a worker takes to boot on a loaded machine, so that only the boot time it beats with tells
#: the reconciler of a restart. The full sweep is five minutes away: only the heartbeat check can repair
#: within the test.
BEAT = 3.0
SLOW_SWEEPS = 300


def restart_conf(tmp_path: Path) -> dict[str, Any]:
    return {
        "wfcelery_heartbeat": BEAT,
        "wfcelery_sweep_interval": SLOW_SWEEPS,
        "wfcelery_report_retry": 1,
        "wfcelery_gate_wait": 1,
        "wfcelery_redis_timeout": 2,
        "wfcelery_outbox_dir": str(tmp_path / "outbox"),
    }


def test_worker_restarted_under_its_name_three_times_has_its_nodes_resent_at_the_heartbeat_pace(
    make_test_app: Any, redis_url: str, uid: str, r: redis.Redis, tmp_path: Path, workers: Any
) -> None:
    """A worker running a chain's node is SIGKILLed and started again under the same name, three times, each
    while a node runs there. Its heartbeat never lapses (the new process beats under the name within
    seconds), so only its boot time tells the reconciler -- held by another worker -- that the node no longer
    runs: each restart's RUNNING node is re-sent within a few heartbeats of the restart, long before the next
    full sweep, and the run completes, every node run twice (killed once) and the last one once."""
    app = make_test_app()
    conf = restart_conf(tmp_path)
    keeper = workers(app, f"keeper-{uid}", redis_url, conf, queues=[f"idle-{uid}"])
    lease = app._wfcelery_engine.tracker.keys.reconciler
    wait_for(lambda: r.get(lease) == keeper.hostname, timeout=30, message="the keeper holding the lease")
    w = workers(app, f"w-{uid}", redis_url, conf, concurrency=1)
    wf = Workflow("restarts")
    for i in range(3):
        after = [f"n{i - 1}"] if i else []
        wf.add(
            f"n{i}",
            "proj.count_block",
            args=[f"{uid}:go{i}"],
            kwargs={"timeout": 60},
            after=after,
            immutable=True,
        )
    wf.add("end", "proj.count", after=["n2"], immutable=True)
    run = app._wfcelery_engine.submit(wf)
    for i in range(3):
        node = f"n{i}"
        wait_for(lambda n=node: run.state().nodes[n].status is NodeStatus.RUNNING, timeout=30, message=node)
        before = run.state().nodes[node].epoch
        kill_whole(w)
        killed = time.monotonic()
        w.start(app, timeout=60)  # the same name: its heartbeat key never lapses (boots slowly under load)
        ready = time.monotonic()
        wait_for(
            lambda n=node, e=before: run.state().nodes[n].epoch > e, timeout=30, message=f"{node} re-sent"
        )
        resent = time.monotonic()
        boot_s, resent_s = round(ready - killed, 2), round(resent - ready, 2)
        record_timing("same-name-restart", restart=i, boot_s=boot_s, resent_s=resent_s)
        # the new process beats at once; the reconciler's next check (a beat later) sees the new boot and
        # sweeps: a few beats, however loaded the machine, against the full sweep's five minutes
        assert resent - ready < 5 * BEAT, f"{node} re-sent {resent - ready:.1f} s after the restart"
        wait_for(
            lambda n=node: run.state().nodes[n].attempts == 2, timeout=30, message=f"{node} running again"
        )
        r.rpush(f"{uid}:go{i}", "go")  # only now: a killed pool process's BLPOP may linger a moment
    assert run.wait(timeout=30)["end"] == "end"
    state = run.state()
    assert state.status is RunStatus.SUCCEEDED
    assert [state.nodes[f"n{i}"].attempts for i in range(3)] == [2, 2, 2]
    assert counts(r, app.conf.wfcelery_key_prefix, run.id) == {"n0": 2, "n1": 2, "n2": 2, "end": 1}


@pytest.fixture
def volatile_broker() -> Iterator[FaultyRedis]:
    """A Redis broker of the test's own without persistence: a restart empties its queues."""
    server = FaultyRedis(appendonly=False).start()
    yield server
    gc.collect()  # let Celery's result objects go while the server still runs
    server.stop()


@pytest.mark.parametrize("fault", ["redis-broker-restarted", "rabbitmq-queue-purged"])
def test_messages_lost_by_the_broker_are_sent_again_within_a_minute(
    fault: str,
    make_test_app: Any,
    volatile_broker: FaultyRedis,
    redis_url: str,
    uid: str,
    r: redis.Redis,
    tmp_path: Path,
    workers: Any,
) -> None:
    """One node runs, two wait in the broker's queue, and their messages are lost: the Redis broker (no
    AOF, no RDB) restarts, or RabbitMQ's queue is purged. The tracker still says QUEUED. The reconciler
    finds them in no queue and with no worker, on two checks, and re-sends them under a new epoch ("lost
    by the broker"): the run completes within a minute, not after wfcelery_queued_timeout (30 minutes),
    each body run once. With ``wfcelery_lost_message_after=0`` (the check off) the same test times out."""
    if fault.startswith("redis"):
        url = volatile_broker.url_db(0)
    else:
        url = rabbitmq_url() or pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    app = make_test_app(broker=url)
    conf = {**restart_conf(tmp_path), "wfcelery_heartbeat": 1, "wfcelery_sweep_interval": 1}
    workers(app, f"w-{uid}", redis_url, {**conf, "wfcelery_lost_message_after": 2}, concurrency=1)
    wf = Workflow("lost-by-broker")
    wf.add("hold", "proj.count_block", args=[f"{uid}:go"], kwargs={"timeout": 60})
    wf.add("a", "proj.count")
    wf.add("b", "proj.count")
    wf.add("end", "proj.count", after=["hold", "a", "b"], immutable=True)
    run = app._wfcelery_engine.submit(wf)
    wait_for(lambda: run.state().nodes["hold"].status is NodeStatus.RUNNING, timeout=30, message="hold")
    waiting = lambda: queue_length(app)  # noqa: E731
    wait_for(lambda: waiting() == 2, timeout=30, message="a and b waiting in the broker")
    if fault.startswith("redis"):
        volatile_broker.restart()
    else:
        app.control.purge()
    lost = time.monotonic()
    assert waiting() == 0  # the messages of a and b are gone
    r.rpush(f"{uid}:go", "go")
    run.wait(timeout=60)
    took = time.monotonic() - lost
    record_timing("lost-by-broker", fault=fault, took_s=round(took, 2))
    state = run.state()
    assert state.status is RunStatus.SUCCEEDED
    assert 0 not in (state.nodes["a"].epoch, state.nodes["b"].epoch)  # re-sent under new epochs
    assert counts(r, app.conf.wfcelery_key_prefix, run.id) == {"hold": 1, "a": 1, "b": 1, "end": 1}


def queue_length(app: Any) -> int:
    """Messages ready in the app's default queue (either broker; on Redis, whether it was declared or not)."""
    queue = app.conf.task_default_queue
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        if conn.transport.driver_type == "redis":
            return int(channel.client.llen(queue))
        return int(channel.queue_declare(queue, passive=True).message_count)
