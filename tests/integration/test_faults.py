"""No run gets stuck: real faults on real processes.

A whole worker SIGKILLed (both brokers), the tracker's Redis restarted (both brokers) or frozen for 10 s,
a duplicate delivery of a RUNNING node, a poison message that kills the worker taking it, a result JSON
cannot store, a task the worker does not know. Each test waits on conditions with deadlines; workers run
with short heartbeat / sweep / retry settings (FAST) so that each fault heals in seconds -- except the
whole-worker SIGKILL, which runs the reconciler as shipped (the 30 s target holds with the defaults).

The tracker-outage tests use a redis-server of their own (AOF on: a restart keeps what it acknowledged),
separate from the broker's, and write their probes (body counters) to the suite's Redis, which stays up.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from tests.conftest import WorkerProcess
from tests.helpers import ROOT, counts, in_thread_worker, rabbitmq_url, wait_for
from tests.proj import make_app
from tests.redis_server import FaultyRedis
from wfcelery import NodeStatus, RunStatus, Workflow


def fast(tmp_path: Path) -> dict[str, Any]:
    """Worker settings that make each fault heal within seconds."""
    return {
        "wfcelery_heartbeat": 1,
        "wfcelery_sweep_interval": 1,
        "wfcelery_report_retry": 1,
        "wfcelery_gate_wait": 1,
        "wfcelery_redis_timeout": 2,
        "wfcelery_unknown_grace": 1,
        "wfcelery_outbox_dir": str(tmp_path / "outbox"),
    }


def default_reconciler(tmp_path: Path) -> dict[str, Any]:
    """FAST, but with the shipped heartbeat and sweep settings (what the recovery time depends on)."""
    return {
        k: v for k, v in fast(tmp_path).items() if k not in ("wfcelery_heartbeat", "wfcelery_sweep_interval")
    }


def broker_for(kind: str, redis_url: str) -> str:
    if kind == "redis":
        return redis_url
    url = rabbitmq_url()
    if url is None:
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    return url


def kill_whole(w: WorkerProcess) -> None:
    """SIGKILL a worker's main process and its pool children (a machine lost, as the broker sees it)."""
    assert w.proc is not None
    children = w.child_pids()
    os.kill(w.proc.pid, signal.SIGKILL)
    for pid in children:
        with contextlib.suppress(ProcessLookupError):  # it may have died with its parent already
            os.kill(pid, signal.SIGKILL)
    w.proc.wait(10)


def chain(name: str, n: int, sleep: float) -> Workflow:
    wf = Workflow(name)
    for i in range(n):
        wf.add(
            f"n{i}", "proj.count", kwargs={"sleep": sleep}, immutable=True, after=[f"n{i - 1}"] if i else []
        )
    return wf


# -- a whole worker SIGKILLed -----------------------------------------------------------------------------


def record_timing(test: str, **values: Any) -> None:
    """Append one line of measured times to ``$WFCELERY_TIMINGS`` (set by ``make soak``) if set."""
    path = os.environ.get("WFCELERY_TIMINGS")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"test": test, **values}) + "\n")


@pytest.mark.parametrize("survivor", ["started-just-before", "holding-the-lease"])
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_whole_worker_sigkilled_mid_run_completes_within_30s(
    broker: str,
    survivor: str,
    make_test_app: Any,
    redis_url: str,
    uid: str,
    r: redis.Redis,
    tmp_path: Path,
    workers: Any,
) -> None:
    """The RUNNING node's worker dies with its children. With a Redis broker kombu would give the message
    back only after visibility_timeout (an hour by default); on RabbitMQ it comes back at once, to a worker
    that must not start a second copy while the first may still run. The reconciler judges the worker gone
    from its last heartbeat's age and re-publishes the node under a new epoch: the run ends within 30 s,
    every other body ran once. The workers run the default heartbeat and sweep settings, and the survivor
    either starts just before the kill (the killed worker holds the reconciler's lease: the survivor takes
    it over) or has held the lease long before the run (it started first, consuming another queue, and
    takes the run's queue just before the kill)."""
    app = make_test_app(broker=broker_for(broker, redis_url))
    prefix, key = app.conf.wfcelery_key_prefix, f"{uid}:go"
    conf = default_reconciler(tmp_path)
    b = None
    if survivor == "holding-the-lease":
        b = workers(app, f"b-{uid}", redis_url, conf, queues=[f"idle-{uid}"])
        lease = app._wfcelery_engine.tracker.keys.reconciler
        wait_for(lambda: r.get(lease) == b.hostname, timeout=30, message="b holding the lease")
    a = workers(app, f"a-{uid}", redis_url, conf, concurrency=1)
    wf = Workflow("sigkill")
    wf.add("root", "proj.count_block", args=[key], kwargs={"timeout": 120})
    for i in range(3):
        wf.add(f"k{i}", "proj.count", after=["root"], immutable=True)
    wf.add("end", "proj.count", after=[f"k{i}" for i in range(3)], immutable=True)
    run = app._wfcelery_engine.submit(wf)
    wait_for(
        lambda: run.state().nodes["root"].status is NodeStatus.RUNNING, timeout=30, message="root RUNNING"
    )
    if b is None:
        b = workers(app, f"b-{uid}", redis_url, conf)
    else:
        queue = app.conf.task_default_queue
        assert app.control.add_consumer(queue, destination=[b.hostname], reply=True, timeout=10)
    kill_whole(a)
    killed = time.monotonic()
    # Release the re-published root only once it runs: a killed pool process may still hold its BLPOP on the
    # key for a moment (its socket closes when the kernel reaps it), and Redis would hand it the value.
    wait_for(lambda: run.state().nodes["root"].attempts == 2, timeout=30, message="root re-published")
    rerun = time.monotonic() - killed
    r.rpush(key, "go")
    run.wait(timeout=max(0.0, 30 - (time.monotonic() - killed)))
    done = time.monotonic() - killed
    record_timing("sigkill", broker=broker, survivor=survivor, rerun_s=round(rerun, 2), done_s=round(done, 2))
    assert done < 30
    state = run.state()
    assert state.status is RunStatus.SUCCEEDED
    assert state.nodes["root"].attempts == 2
    assert counts(r, prefix, run.id) == {"root": 2, "k0": 1, "k1": 1, "k2": 1, "end": 1}


# -- the tracker's Redis restarted or frozen mid-run --------------------------------------------------------


@pytest.fixture
def outage_app(faulty_redis: FaultyRedis, redis_url: str, uid: str) -> Callable[[str], Celery]:
    def make(broker: str) -> Celery:
        return make_app(
            broker,
            faulty_redis.url_db(1),
            f"t{uid}",
            f"q{uid}",
            test_probe_url=redis_url,
            wfcelery_redis_timeout=2,
        )

    return make


#: The 60 s outage: a minute per broker, too long for every `make test`; `make soak` runs it.
SOAK = os.environ.get("WFCELERY_SOAK") == "1"
SOAK_ONLY = pytest.mark.skipif(not SOAK, reason="a 60 s tracker outage: `make soak` (WFCELERY_SOAK=1)")


@pytest.mark.parametrize("down_for", [3, pytest.param(60, marks=SOAK_ONLY, id="60s")])
@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_tracker_restarted_mid_run(
    broker: str,
    down_for: int,
    outage_app: Any,
    faulty_redis: FaultyRedis,
    redis_url: str,
    r: redis.Redis,
    tmp_path: Path,
    workers: Any,
    uid: str,
) -> None:
    """Redis restarted (down 3 s; 60 s in `make soak`) while nodes run: starts go back to the broker,
    reports wait in the hook, then in the outbox, and are delivered in order; the run succeeds, each body
    ran once, no child released twice."""
    app = outage_app(broker_for(broker, redis_url))
    conf = {**fast(tmp_path), "test_probe_url": redis_url}
    workers(app, f"w-{uid}", faulty_redis.url_db(1), conf)
    run = app._wfcelery_engine.submit(chain("restart", 8, 0.3))
    wait_for(lambda: run.state().nodes["n2"].status is NodeStatus.RUNNING, timeout=30, message="n2 RUNNING")
    faulty_redis.restart(down_for=down_for)
    results = run.wait(timeout=60 + down_for)
    assert results == {f"n{i}": f"n{i}" for i in range(8)}
    assert counts(r, f"t{uid}", run.id) == {f"n{i}": 1 for i in range(8)}


def test_tracker_unreachable_for_10s_with_the_broker_up(
    outage_app: Any,
    faulty_redis: FaultyRedis,
    redis_url: str,
    r: redis.Redis,
    tmp_path: Path,
    workers: Any,
    uid: str,
) -> None:
    """Redis frozen (SIGSTOP: connections hang, as in a partition) for 10 s while a node runs and the
    next waits: no body runs unchecked, the success is kept and delivered, the run succeeds."""
    app = outage_app(redis_url)
    conf = {**fast(tmp_path), "test_probe_url": redis_url}
    workers(app, f"w-{uid}", faulty_redis.url_db(1), conf)
    run = app._wfcelery_engine.submit(chain("frozen", 4, 1.0))
    wait_for(lambda: run.state().nodes["n1"].status is NodeStatus.RUNNING, timeout=30, message="n1 RUNNING")
    frozen_at = time.monotonic()
    with faulty_redis.frozen():
        # the fault lasts 10 s; what the worker does meanwhile is checked after
        wait_for(lambda: time.monotonic() - frozen_at >= 10, timeout=15, interval=0.5, message="10 s")
    assert run.wait(timeout=60) == {f"n{i}": f"n{i}" for i in range(4)}
    assert counts(r, f"t{uid}", run.id) == {f"n{i}": 1 for i in range(4)}
    assert (tmp_path / "outbox").exists(), "the report should have gone through the outbox"


@pytest.mark.parametrize("broker", ["redis", "rabbitmq"])
def test_tracker_out_of_memory_mid_run_consumes_no_message_without_its_transition(
    broker: str,
    outage_app: Any,
    faulty_redis: FaultyRedis,
    redis_url: str,
    r: redis.Redis,
    tmp_path: Path,
    workers: Any,
    uid: str,
) -> None:
    """The tracker's Redis at maxmemory with noeviction (every write refused with OOM) for 6 s while a
    chain runs: OOM is "try later", not "failed". Starts go back to the broker, the success report waits
    in the outbox; no node fails, and when memory is freed the run succeeds with each body run once."""
    app = outage_app(broker_for(broker, redis_url))
    conf = {**fast(tmp_path), "test_probe_url": redis_url}
    workers(app, f"w-{uid}", faulty_redis.url_db(1), conf)
    run = app._wfcelery_engine.submit(chain("oom", 6, 0.3))
    wait_for(lambda: run.state().nodes["n1"].status is NodeStatus.RUNNING, timeout=30, message="n1 RUNNING")
    tracker = redis.Redis.from_url(faulty_redis.url_db(1))
    policy = tracker.config_get("maxmemory-policy")["maxmemory-policy"]
    tracker.config_set("maxmemory-policy", "noeviction")
    tracker.config_set("maxmemory", 1)  # below what is used: every write is refused
    try:
        full_at = time.monotonic()
        wait_for(lambda: time.monotonic() - full_at >= 6, timeout=10, interval=0.5, message="6 s of OOM")
        state = run.state()  # reads still work
        assert state.status is RunStatus.RUNNING
        assert not [n for n, s in state.nodes.items() if s.status is NodeStatus.FAILED]
    finally:
        tracker.config_set("maxmemory", 0)
        tracker.config_set("maxmemory-policy", policy)
    assert run.wait(timeout=60) == {f"n{i}": f"n{i}" for i in range(6)}
    assert counts(r, f"t{uid}", run.id) == {f"n{i}": 1 for i in range(6)}


@pytest.mark.parametrize("command", ["submit --wait", "watch"])
def test_cli_followers_ride_out_a_tracker_outage(
    command: str,
    outage_app: Any,
    faulty_redis: FaultyRedis,
    redis_url: str,
    tmp_path: Path,
    workers: Any,
    uid: str,
) -> None:
    """``submit --wait -q`` and ``watch`` keep following through an 8 s tracker restart (the run goes on
    meanwhile) and end with the run's outcome: exit 0, the results on stdout."""
    app = outage_app(redis_url)
    conf = {**fast(tmp_path), "test_probe_url": redis_url}
    w = workers(app, f"w-{uid}", faulty_redis.url_db(1), conf)
    engine = app._wfcelery_engine
    flow = tmp_path / "chain.json"
    flow.write_text(json.dumps(chain("ride", 8, 0.5).to_dict()))
    cli = [sys.executable, "-m", "wfcelery.cli", "-A", "tests.proj"]
    if command == "watch":
        run_id = engine.submit(chain("ride", 8, 0.5)).id
        cmd = [*cli, "watch", run_id]
    else:
        cmd = [*cli, "submit", str(flow), "--wait", "-q"]
    proc = subprocess.Popen(
        cmd, env=w.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:

        def under_way() -> bool:
            """The first node succeeded: a state, not a moment a slow poll could miss."""
            runs = engine.runs(limit=1)
            state = engine.run(runs[0].id).state() if runs else None
            return state is not None and state.nodes["n0"].status is NodeStatus.SUCCEEDED

        wait_for(under_way, timeout=30, message="n0 SUCCEEDED")
        faulty_redis.restart(down_for=8)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-2000:]
    if command == "watch":
        assert "SUCCEEDED" in out + err
    else:
        outcome = json.loads(out)
        assert (outcome["status"], len(outcome["results"])) == ("SUCCEEDED", 8)


# -- duplicate delivery, bad results, unknown tasks, poison -------------------------------------------------


def test_duplicate_delivery_while_running_starts_no_second_body(
    app: Celery, engine: Any, r: redis.Redis, uid: str
) -> None:
    """A second copy of a RUNNING node's message (same id and epoch) arrives while the first runs."""
    key = f"{uid}:go"
    wf = Workflow("dup")
    wf.add("a", "proj.count_block", args=[key], kwargs={"timeout": 120})
    wf.add("b", "proj.count", after=["a"], immutable=True)
    with in_thread_worker(app, concurrency=3):
        run = engine.submit(wf)
        wait_for(lambda: run.state().nodes["a"].status is NodeStatus.RUNNING, timeout=30, message="a RUNNING")
        plan = engine.plans.get(engine.tracker.run_record(run.id).plan)
        engine.dispatch.publish(plan, run.id, [(0, 0, [])], {})  # the duplicate
        tid = run.state().nodes["a"].task_id
        # the worker running `a` drops the copy before it reaches the pool (a copy reaching another
        # worker is refused by the start script: test_whole_worker_sigkilled_mid_run_completes_within_30s)
        wait_for(lambda: tid in _revoked_ids(), timeout=30, message="the duplicate dropped")
        r.rpush(key, "go", "go")
        assert run.wait(timeout=30) == {"a": "released", "b": "b"}
    assert counts(r, app.conf.wfcelery_key_prefix, run.id) == {"a": 1, "b": 1}


def _revoked_ids() -> set[str]:
    from celery.worker import state as worker_state

    return set(worker_state.revoked)


@pytest.mark.parametrize("app", [{"wfcelery_max_result_bytes": 1000}], indirect=True)
def test_results_the_tracker_cannot_store_fail_the_node(app: Celery, engine: Any) -> None:
    wf = Workflow("bad-results", on_failure="continue")
    wf.add("aset", "proj.returns_set", retries=1)
    wf.add("big", "proj.big_result", args=[5000])
    wf.add("fine", "proj.big_result", args=[10])
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(Exception, match="cannot be stored as JSON"):
            run.wait(timeout=30)
    state = run.state()
    assert state.status is RunStatus.FAILED
    aset, big = state.nodes["aset"], state.nodes["big"]
    assert aset.status is NodeStatus.FAILED
    assert aset.attempts == 2  # after its retry
    assert aset.error["type"] == "ResultError"
    assert "set" in aset.error["message"]
    assert big.status is NodeStatus.FAILED
    assert "5,002 bytes as JSON, over the limit of 1,000 (wfcelery_max_result_bytes)" in big.error["message"]
    assert state.nodes["fine"].status is NodeStatus.SUCCEEDED


def test_task_missing_on_the_worker_fails_its_node(
    make_test_app: Any, redis_url: str, uid: str, tmp_path: Path, workers: Any
) -> None:
    """The task is registered where the run was submitted, not on the worker: Celery drops the message
    (task_unknown); the node fails naming the worker and the task instead of staying QUEUED."""
    app = make_test_app()

    @app.task(shared=False, name="proj.only_on_the_client")
    def only_here() -> None:
        return None

    w = workers(app, f"w-{uid}", redis_url, fast(tmp_path))
    wf = Workflow("missing")
    wf.add("ok", "proj.count")
    wf.add("gone", "proj.only_on_the_client", after=["ok"], immutable=True)
    run = app._wfcelery_engine.submit(wf)
    with pytest.raises(Exception, match="not registered on worker"):
        run.wait(timeout=30)
    node = run.state().nodes["gone"]
    assert node.status is NodeStatus.FAILED
    assert node.error["type"] == "NotRegistered"
    assert "'proj.only_on_the_client'" in node.error["message"]
    assert w.hostname in node.error["message"]
    assert "task_unknown" in node.error["message"]


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def test_poison_message_is_quarantined_and_the_queue_moves_on(
    make_test_app: Any, redis_url: str, uid: str, r: redis.Redis, tmp_path: Path, workers: Any
) -> None:
    """A message that kills every prefork worker taking it (args ~900 deep: RecursionError while the main
    process pickles it for the pool) -- one that got past submit's checks (an older client, a hand-made
    message). RabbitMQ redelivers it at once to the next worker; after wfcelery_quarantine_after
    deliveries that never finished, the node FAILS ("killed N workers") and the message is dropped; another
    run on the same queue completes."""
    app = make_test_app(broker=broker_for("rabbitmq", redis_url))
    conf = {**fast(tmp_path), "wfcelery_quarantine_after": 2}
    wf = Workflow("poison")
    wf.add("p", "proj.echo")
    engine = app._wfcelery_engine
    run = engine.submit(wf)  # a fine message is on its way; replace it with a poisoned copy
    tid = run.state().nodes["p"].task_id
    app.control.purge()
    app.send_task(
        "proj.echo",
        args=[nested(900)],
        task_id=tid,
        queue=app.conf.task_default_queue,
        headers={"wf_run": run.id, "wf_node": "p"},
    )
    started = []
    for i in range(3):  # not waiting for their ping: each dies as soon as the message reaches it
        queue = app.conf.task_default_queue
        w = WorkerProcess(
            app.conf.broker_url,
            redis_url,
            f"t{uid}",
            [queue],
            f"w{i}-{uid}",
            concurrency=1,
            default_queue=queue,
            conf=conf,
        )
        w.proc = subprocess.Popen(w.cmd, env=w.env, cwd=ROOT)
        started.append(w)
    with pytest.raises(Exception, match="killed 2 workers"):
        run.wait(timeout=60)
    try:
        other = engine.submit(chain("after-poison", 2, 0))
        assert other.wait(timeout=30) == {"n0": "n0", "n1": "n1"}
        assert run.state().nodes["p"].error["type"] == "Quarantined"
        # two workers died of it (they take a moment to exit); the one that quarantined it lives on
        wait_for(lambda: sum(w.proc.poll() is not None for w in started) == 2, timeout=30, message="2 exits")
    finally:
        for w in started:
            w.stop()


# -- wfcelery sweep, and control of runs with stuck nodes -------------------------------------------------


def test_sweep_repairs_nodes_of_a_dead_worker_and_retry_includes_them(
    app: Celery, engine: Any, r: redis.Redis, uid: str
) -> None:
    """Nodes started by a worker that died without a trace (no heartbeat): `wfcelery sweep` re-publishes
    the one of a running run (exit 1, listing it) and settles the one of a cancelled run, which `retry`
    then runs -- before, retry skipped RUNNING nodes and the run could never end."""
    from click.testing import CliRunner

    import tests.integration.test_faults as here
    from wfcelery.cli import EXIT_OK, EXIT_RUN_FAILED, cli

    wf = Workflow("ghost")
    wf.add("a", "proj.count")
    wf.add("b", "proj.count", after=["a"], immutable=True)
    live, cancelled = engine.submit(wf), engine.submit(wf)
    for run in (live, cancelled):
        assert engine.tracker.start(run.id, 0, 0, f"ghost-{uid}@nowhere").run  # then the worker vanished
    watched = engine.tracker.keys.workers
    r.sadd(watched, f"ghost-{uid}@nowhere")  # it had beaten once: on the reconciler's watch list
    cancelled.cancel()
    here.APP = app
    try:
        result = CliRunner().invoke(cli, ["-A", "tests.integration.test_faults:APP", "sweep"])
        assert result.exit_code == EXIT_RUN_FAILED, result.output
        assert f"{live.id} a: requeued (worker ghost-{uid}@nowhere is gone (no heartbeat))" in result.stdout
        assert f"{cancelled.id} a: revoked" in result.stdout
        assert not r.sismember(watched, f"ghost-{uid}@nowhere")  # repaired, so no longer watched
        again = CliRunner().invoke(cli, ["-A", "tests.integration.test_faults:APP", "sweep"])
        assert again.exit_code == EXIT_OK, again.output  # nothing left to repair
    finally:
        here.APP = None
    assert live.state().nodes["a"].status is NodeStatus.QUEUED
    assert live.state().nodes["a"].epoch == 1  # fenced: the original message (epoch 0) is now stale
    assert cancelled.state().nodes["a"].status is NodeStatus.REVOKED
    with in_thread_worker(app):
        assert live.wait(timeout=30) == {"a": "a", "b": "b"}
        cancelled.retry()
        assert cancelled.wait(timeout=30) == {"a": "a", "b": "b"}
        # the original epoch-0 message of `live` (still queued) is refused as stale
        wait_for(lambda: worker_idle(r, app), timeout=30, message="worker idle")
    assert counts(r, app.conf.wfcelery_key_prefix, live.id) == {"a": 1, "b": 1}


APP: Celery | None = None  # loaded by the CLI as tests.integration.test_faults:APP


def worker_idle(r: redis.Redis, app: Celery) -> bool:
    return r.llen(app.conf.task_default_queue) == 0
