"""Adopting wfcelery in an existing Celery app: queues nobody reads, task_routes, pickle apps,
broker and Redis failures, params, output for scripts, housekeeping, doctor, the testing plugin.

Real Redis, real in-thread workers, real RabbitMQ (wrong password, missing vhost), a real hung server.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery, signals
from click.testing import CliRunner

import wfcelery
from tests.helpers import ROOT, in_thread_worker, rabbitmq_url, wait_for
from tests.integration import test_cli
from tests.integration.test_cli import assert_clean_error, invoke
from tests.redis_server import RedisServer
from wfcelery import (
    BrokerUnavailable,
    ConfigurationError,
    NoWorkerError,
    TrackerUnavailable,
    Workflow,
)
from wfcelery.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_FAILED, cli
from wfcelery.cli.doctor import diagnose, exit_code
from wfcelery.tracker.states import NodeStatus


@pytest.fixture
def cli_app(app: Celery) -> Iterator[Celery]:
    test_cli.APP = app
    yield app
    test_cli.APP = None


def two_queues(uid: str) -> Workflow:
    wf = Workflow("gpu-flow")
    wf.add("prep", "proj.add", args=[1, 2])
    wf.add("train", "proj.add", args=[3, 4], type=f"gpu{uid}", after="prep")
    return wf


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(data))
    return str(path)


# -- 1. a run never waits silently for a queue nobody reads ---------------------------------------------


def test_submit_names_each_node_whose_queue_nobody_reads(app: Celery, engine: Any, uid: str) -> None:
    with in_thread_worker(app):  # consumes only the default queue
        run = engine.submit(two_queues(uid))
        assert len(run.warnings) == 1
        assert f"no live worker consumes queue 'gpu{uid}' (node train)" in run.warnings[0]
        assert f"-Q gpu{uid}" in run.warnings[0]
        state = wait_for(lambda: (s := run.state()).nodes["train"].status.value == "QUEUED" and s)
        assert state.idle_queues == (f"gpu{uid}",)
        assert state.to_dict()["idle_queues"] == [f"gpu{uid}"]
        assert state.nodes["prep"].queue == f"q{uid}"  # the app's default queue, by name


def test_require_workers_refuses_and_writes_nothing(
    app: Celery, engine: Any, r: redis.Redis, uid: str
) -> None:
    with in_thread_worker(app), pytest.raises(NoWorkerError, match=f"'gpu{uid}' .*node train"):
        engine.submit(two_queues(uid), require_workers=True)
    # nothing of a run; the worker's own heartbeat, reconciler, scheduler and timer leases are not run state
    service_keys = {f"t{uid}:reconciler", f"t{uid}:scheduler", f"t{uid}:workers", f"t{uid}:timers:lease"}
    assert [k for k in r.keys(f"t{uid}*") if ":worker:" not in k and k not in service_keys] == []


def test_status_shows_how_long_a_node_waits_for_a_missing_queue(
    cli_app: Celery, engine: Any, uid: str, tmp_path: Path
) -> None:
    flow = write(tmp_path, "gpu", two_queues(uid).to_dict())
    with in_thread_worker(cli_app):
        submitted = invoke("submit", flow)
        assert submitted.exit_code == EXIT_OK
        assert f"Warning: no live worker consumes queue 'gpu{uid}' (node train)" in submitted.stderr
        run_id = submitted.stdout.strip()
        refused = invoke("submit", flow, "--require-workers")
        assert_clean_error(refused, EXIT_BAD_INPUT, "require_workers")
        checked = invoke("validate", flow)
        assert checked.exit_code == EXIT_OK, checked.stderr
        assert f"Warning: no live worker consumes queue 'gpu{uid}' (node train)" in checked.stderr
        wait_for(lambda: engine.run(run_id).state().nodes["train"].status.value == "QUEUED")
        status = invoke("status", run_id)
        assert "train: QUEUED 0." in status.stdout or "train: QUEUED " in status.stdout
        assert f"no worker consumes 'gpu{uid}'" in status.stdout
        watched = invoke("watch", run_id, "--timeout", "1.5")
        assert watched.exit_code == 3  # the run waits; watch says why
        assert f"no worker consumes 'gpu{uid}': its nodes wait (start one with -Q gpu{uid})" in watched.stdout


# -- 3. pickle apps; 4. routing as Celery routes it -------------------------------------------------------


@pytest.mark.parametrize(
    "app",
    [
        {
            "task_serializer": "pickle",
            "result_serializer": "pickle",
            "accept_content": ["pickle", "json"],
            "task_routes": {"proj.total": {"queue": "routed-total"}},
        }
    ],
    indirect=True,
)
def test_a_pickle_app_with_task_routes_runs_workflows(app: Celery, engine: Any, uid: str) -> None:
    wf = Workflow("pickled")
    wf.add("a", "proj.add", args=[1, 2])
    wf.add("b", "proj.add", args=[3, 4])
    wf.add("sum", "proj.total", after=["a", "b"])
    with in_thread_worker(app, queues=[f"q{uid}", "routed-total"]):
        run = engine.submit(wf)
        assert run.warnings == []
        assert run.wait(timeout=30) == {"a": 3, "b": 7, "sum": 10}
    assert run.state().nodes["sum"].queue == "routed-total"  # task_routes, not "(default)"


def test_graph_shows_the_queue_task_routes_pick(make_test_app: Any, tmp_path: Path) -> None:
    test_cli.APP = make_test_app(task_routes={"proj.total": {"queue": "routed-total"}})
    try:
        flow = write(tmp_path, "r", {"name": "r", "tasks": [{"name": "s", "task": "proj.total"}]})
        out = invoke("graph", flow).stdout
        assert "s [routed-total]" in out
        assert "(default)" not in out
    finally:
        test_cli.APP = None


def test_workers_that_refuse_json_are_named_with_the_setting(make_test_app: Any, tmp_path: Path) -> None:
    app = make_test_app(task_serializer="pickle", accept_content=["pickle"])
    with pytest.raises(ConfigurationError, match=r"set accept_content = \['pickle', 'json'\]"):
        app._wfcelery_engine.submit(two_queues("x"))
    test_cli.APP = app
    try:
        flow = write(tmp_path, "j", two_queues("x").to_dict())
        assert_clean_error(invoke("validate", flow), EXIT_BAD_INPUT, "accept_content")
    finally:
        test_cli.APP = None


# -- 5. broker and Redis failures are errors, not tracebacks -------------------------------------------


def _amqp(path: str) -> str:
    if rabbitmq_url() is None:
        pytest.skip("RabbitMQ not reachable on 127.0.0.1:5672")
    return f"amqp://{path}"


@pytest.mark.rabbitmq
@pytest.mark.parametrize(
    ("broker", "fragment"),
    [
        ("guest:wrong-password@127.0.0.1:5672//", "ACCESS_REFUSED"),
        ("guest:guest@127.0.0.1:5672/no-such-vhost", "vhost"),
    ],
    ids=["wrong-password", "missing-vhost"],
)
def test_rabbitmq_refusals_are_one_error(
    make_test_app: Any, r: redis.Redis, uid: str, tmp_path: Path, broker: str, fragment: str
) -> None:
    app = make_test_app(broker=_amqp(broker), task_publish_retry_policy={"max_retries": 0})
    with pytest.raises(BrokerUnavailable, match=fragment) as err:
        app._wfcelery_engine.submit(two_queues(uid))
    assert isinstance(err.value, ConnectionError)
    assert r.keys(f"t{uid}*") == []  # refused before anything was written
    test_cli.APP = app
    try:
        flow = write(tmp_path, "f", two_queues(uid).to_dict())
        result = invoke("submit", flow)
        assert_clean_error(result, EXIT_BAD_INPUT, "cannot reach the Celery broker", fragment)
        assert len(result.stderr.strip().splitlines()) == 1
        found = invoke("doctor")
        assert found.exit_code == 2
        assert "broker" in found.stdout
        assert "rabbitmqctl" in found.stdout
    finally:
        test_cli.APP = None


@pytest.fixture
def hung_server() -> Iterator[int]:
    """A TCP server that accepts connections and never answers (a hung Redis or broker)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_a_hung_redis_fails_within_the_redis_timeout(
    make_test_app: Any, hung_server: int, redis_url: str, uid: str
) -> None:
    hung = f"redis://127.0.0.1:{hung_server}/0"
    app = make_test_app(wfcelery_redis_url=hung, wfcelery_redis_timeout=0.5)
    start = time.monotonic()
    with pytest.raises(TrackerUnavailable, match="cannot reach the tracker's Redis") as err:
        app._wfcelery_engine.run("0" * 32)
    assert time.monotonic() - start < 5
    assert isinstance(err.value, ConnectionError)
    test_cli.APP = app
    try:
        start = time.monotonic()
        assert_clean_error(invoke("status", "0" * 32), EXIT_BAD_INPUT, "Timeout")
        assert time.monotonic() - start < 5
    finally:
        test_cli.APP = None


def test_a_hung_broker_is_one_error(
    make_test_app: Any, hung_server: int, r: redis.Redis, uid: str, tmp_path: Path
) -> None:
    app = make_test_app(
        broker=f"amqp://guest:guest@127.0.0.1:{hung_server}//",
        broker_connection_timeout=0.5,
        task_publish_retry_policy={"max_retries": 0},
        wfcelery_inspect_timeout=0,
    )
    start = time.monotonic()
    with pytest.raises(BrokerUnavailable, match="cannot reach the Celery broker"):
        app._wfcelery_engine.submit(two_queues(uid))
    assert time.monotonic() - start < 10
    assert r.keys(f"t{uid}*") == []
    test_cli.APP = app
    try:
        start = time.monotonic()
        submitted = invoke("submit", write(tmp_path, "gpu", two_queues(uid).to_dict()))
        assert time.monotonic() - start < 10
    finally:
        test_cli.APP = None
    assert_clean_error(submitted, 2, "cannot reach the Celery broker")
    assert len(submitted.stderr.strip().splitlines()) == 1, submitted.stderr
    assert r.keys(f"t{uid}*") == []


# -- 6. params --------------------------------------------------------------------------------------------


def test_params_on_the_command_line(cli_app: Celery, tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "notify",
        {
            "name": "notify",
            "params": {"level": "info"},
            "tasks": [{"name": "send", "task": "proj.echo", "args": ["${channel}", "to=${who}", "${level}"]}],
        },
    )
    assert_clean_error(
        invoke("submit", flow, "-p", "chanel=#ops"),
        EXIT_BAD_INPUT,
        "placeholder ${channel} in node 'send' has no value, and param 'chanel' fills no placeholder",
        "did you mean ${chanel} in the definition, or --param channel=...?",
    )
    checked = invoke("validate", flow)
    assert checked.exit_code == EXIT_OK
    assert "required params without a value: channel, who" in checked.stdout
    with in_thread_worker(cli_app):
        done = invoke("submit", flow, "-p", "channel=#ops", "-p", "who=null", "--wait", "-q")
    assert done.exit_code == EXIT_OK, done.stderr
    assert json.loads(done.stdout)["results"]["send"]["args"] == ["#ops", "to=null", "info"]


# -- 7. output scripts and operators can trust ----------------------------------------------------------


def test_submit_wait_quiet_results_and_control_json(cli_app: Celery, engine: Any, tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "ok",
        {
            "name": "ok",
            "tasks": [
                {"name": "a", "task": "proj.add", "args": [1, 2]},
                {"name": "b", "task": "proj.add", "args": [5], "after": ["a"]},
            ],
        },
    )
    with in_thread_worker(cli_app):
        done = invoke("submit", flow, "--wait", "-q")
    assert done.exit_code == EXIT_OK, done.stderr
    doc = json.loads(done.stdout)  # stdout is one JSON document, nothing else
    assert doc["status"] == "SUCCEEDED"
    assert doc["results"] == {"a": 3, "b": 8}
    results = invoke("results", doc["id"], "--json")
    assert json.loads(results.stdout) == {**doc, "errors": {}}
    text = invoke("results", doc["id"])
    assert text.stdout.splitlines() == ["a  3", "b  8"]
    paused = invoke("pause", doc["id"], "--json")
    assert paused.exit_code == EXIT_BAD_INPUT  # a finished run cannot be paused
    retried = invoke("cleanup", doc["id"], "--json")
    assert json.loads(retried.stdout) == {"deleted": [doc["id"]]}


def test_control_json_and_results_of_a_failed_run(cli_app: Celery, engine: Any, tmp_path: Path) -> None:
    flow = write(
        tmp_path,
        "bad",
        {"name": "bad", "tasks": [{"name": "a", "task": "proj.fail", "kwargs": {"message": "bad row 7"}}]},
    )
    run_id = invoke("submit", flow).stdout.strip()
    paused = invoke("pause", run_id, "--json")
    assert paused.exit_code == EXIT_OK
    assert json.loads(paused.stdout)["status"] == "PAUSED"
    assert_clean_error(invoke("results", run_id), EXIT_BAD_INPUT, "PAUSED")
    resumed = json.loads(invoke("resume", run_id, "--json").stdout)  # no worker yet: it stays RUNNING
    assert resumed["status"] == "RUNNING"
    with in_thread_worker(cli_app):
        wait_for(lambda: engine.run(run_id).state().finished, message="the run to fail")
    failed = invoke("results", run_id, "--json")
    assert failed.exit_code == EXIT_RUN_FAILED
    doc = json.loads(failed.stdout)
    assert doc["status"] == "FAILED"
    assert doc["errors"]["a"]["message"] == "bad row 7"


def test_status_shows_the_current_attempts_error_and_every_attempts_below(
    app: Celery, engine: Any, r: redis.Redis, uid: str
) -> None:
    key, counter = f"go{uid}", f"n{uid}"
    wf = Workflow("flaky")
    wf.add("a", "proj.block_flaky", kwargs={"key": key, "failures": 2, "counter": counter}, retries=1)
    with in_thread_worker(app):
        run = engine.submit(wf)
        r.rpush(key, "go")  # attempt 1 fails and is retried; attempt 2 blocks
        running = wait_for(
            lambda: (n := run.state().nodes["a"]).attempts >= 2 and n.status is NodeStatus.RUNNING and n
        )
        assert running.error is None  # attempt 1's error is not attempt 2's
        r.rpush(key, "go")
        with pytest.raises(wfcelery.RunFailed, match="flaky attempt 2"):
            run.wait(timeout=30)
    node = run.state().nodes["a"]
    assert node.error["message"] == "flaky attempt 2"
    assert [e["message"] for e in node.errors] == ["flaky attempt 1", "flaky attempt 2"]
    status = invoke_with(app, "status", run.id).stdout
    table, _, history = status.partition("ERRORS BY ATTEMPT")
    assert "flaky attempt 2" in table  # the ERROR column: the last
    assert "flaky attempt 1" not in table
    assert "attempt 1" in history
    assert "flaky attempt 1" in history


def invoke_with(app: Celery, *args: str) -> Any:
    test_cli.APP = app
    try:
        return invoke(*args)
    finally:
        test_cli.APP = None


def test_progress_prints_every_transition_in_order_retries_included(
    cli_app: Celery, tmp_path: Path, uid: str
) -> None:
    flow = write(
        tmp_path,
        "flaky",
        {
            "name": "flaky",
            "tasks": [
                {"name": "a", "task": "proj.flaky", "args": [5, f"n{uid}"], "retries": 1},
            ],
        },
    )
    with in_thread_worker(cli_app):
        result = invoke("submit", flow, "--wait")
    assert result.exit_code == EXIT_RUN_FAILED
    statuses = [line.split()[2] for line in result.stderr.splitlines() if line.strip().split()[1:2] == ["a"]]
    assert statuses == ["QUEUED", "RUNNING", "RETRYING", "RUNNING", "FAILED"], result.stderr
    failed = next(line for line in result.stderr.splitlines() if line.rstrip().split()[2:3] == ["FAILED"])
    assert "flaky attempt 2" in failed  # the error of the attempt that failed last


# -- 9. housekeeping --------------------------------------------------------------------------------------


def test_bulk_cleanup_by_status_and_age(cli_app: Celery, engine: Any, r: redis.Redis, uid: str) -> None:
    ok = Workflow("ok")
    ok.add("a", "proj.add", args=[1, 2])
    bad = Workflow("bad")
    bad.add("a", "proj.fail", kwargs={"message": "x"})
    with in_thread_worker(cli_app):
        done = [engine.submit(ok) for _ in range(2)]
        failed = engine.submit(bad)
        for run in done:
            run.wait(timeout=30)
        with pytest.raises(wfcelery.RunFailed):
            failed.wait(timeout=30)
    assert json.loads(invoke("cleanup", "--status", "succeeded", "--older-than", "1h", "--json").stdout) == {
        "deleted": []
    }
    deleted = invoke("cleanup", "--status", "succeeded", "--older-than", "0s", "--json")
    assert sorted(json.loads(deleted.stdout)["deleted"]) == sorted(r.id for r in done)
    assert [s.id for s in engine.runs()] == [failed.id]
    assert_clean_error(invoke("cleanup", "--status", "running"), 2, "'running' is not one of")
    assert_clean_error(invoke("cleanup", "--older-than", "soon"), 2, "not an age")


def test_a_submit_that_cannot_publish_leaves_no_key(make_test_app: Any, r: redis.Redis, uid: str) -> None:
    app = make_test_app(broker="redis://127.0.0.1:1/0", task_publish_retry_policy={"max_retries": 0})
    with pytest.raises(BrokerUnavailable):
        app._wfcelery_engine.submit(two_queues(uid))
    assert r.keys("*") == []


@pytest.fixture
def full_broker() -> Iterator[str]:
    """A Redis broker of the test's own that accepts connections and refuses every write (out of memory)."""
    server = RedisServer().start()
    try:
        client = redis.Redis.from_url(server.url)
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", 1)  # any write is now "OOM command not allowed"; PING still works
        yield f"{server.url}/0"
    finally:
        server.stop()


def _submit_to_a_full_broker(make_test_app: Any, full_broker: str, uid: str) -> BrokerUnavailable:
    app = make_test_app(
        broker=full_broker, task_publish_retry_policy={"max_retries": 0}, wfcelery_inspect_timeout=0
    )
    with pytest.raises(BrokerUnavailable) as err:
        app._wfcelery_engine.submit(two_queues(uid))
    return err.value


def test_a_publish_refused_after_the_broker_connected_leaves_no_key(
    make_test_app: Any, full_broker: str, r: redis.Redis, uid: str
) -> None:
    error = _submit_to_a_full_broker(make_test_app, full_broker, uid)
    message = str(error)
    assert "send the tasks of run" in message  # it failed publishing, after the run was written
    assert "maxmemory" in message  # the broker's own reason
    assert "\n" not in message
    assert isinstance(error, wfcelery.WfCeleryError)
    assert r.keys(f"t{uid}*") == []  # no run keys, no index, no live entry, no plan


def test_a_refused_publish_keeps_the_plan_another_run_shares(
    make_test_app: Any, full_broker: str, r: redis.Redis, uid: str
) -> None:
    app = make_test_app(wfcelery_inspect_timeout=0)  # a healthy broker: the run stays queued, no worker
    first = app._wfcelery_engine.submit(two_queues(uid))
    before = set(r.keys(f"t{uid}*"))
    plans = [k for k in before if k.startswith(f"t{uid}:plan:")]
    assert len(plans) == 1
    _submit_to_a_full_broker(make_test_app, full_broker, uid)  # same definition, same plan key
    assert set(r.keys(f"t{uid}*")) == before  # the first run's plan stays; nothing of the second
    assert r.smembers(f"t{uid}:live") == {first.id}
    assert r.ttl(plans[0]) > 0


def test_a_refused_publish_keeps_the_plan_a_run_submitted_meanwhile_uses(
    make_test_app: Any, full_broker: str, r: redis.Redis, uid: str
) -> None:
    """The failing submit created the plan; while it publishes, another client submits the same definition
    (its publish works) and finds the plan there. The failed submit must not delete it from under that run."""
    healthy = make_test_app(wfcelery_inspect_timeout=0)
    started: list[Any] = []

    def meanwhile(**_: Any) -> None:  # the failing submit is about to publish: its plan is written
        if not started:
            started.append(None)  # the healthy submit publishes too: do this once
            started[0] = healthy._wfcelery_engine.submit(two_queues(uid))

    signals.before_task_publish.connect(meanwhile, weak=False)
    try:
        _submit_to_a_full_broker(make_test_app, full_broker, uid)
    finally:
        signals.before_task_publish.disconnect(meanwhile)
    second = started[0]
    assert r.smembers(f"t{uid}:live") == {second.id}
    plans = r.keys(f"t{uid}:plan:*")
    assert len(plans) == 1  # the plan the second run runs is still there
    assert r.ttl(plans[0]) > 0
    assert [n.name for n in second.plan().nodes] == ["prep", "train"]  # readable: its workers can load it


def test_the_demo_on_an_existing_redis_leaves_no_key(redis_url: str, r: redis.Redis) -> None:
    before = set(r.keys("*"))
    result = CliRunner().invoke(cli, ["demo", "--redis-url", redis_url])
    assert result.exit_code == EXIT_OK, result.output
    assert set(r.keys("*")) - before == set()


# -- 2. doctor --------------------------------------------------------------------------------------------


def test_doctor_healthy_then_names_the_missing_queue(cli_app: Celery, uid: str, tmp_path: Path) -> None:
    plain = write(tmp_path, "plain", {"name": "p", "tasks": [{"name": "a", "task": "proj.add"}]})
    gpu = write(tmp_path, "gpu", two_queues(uid).to_dict())
    with in_thread_worker(cli_app):
        healthy = invoke("doctor", plain)
        assert healthy.exit_code == EXIT_OK, healthy.stdout
        assert "PROBLEM" not in healthy.stdout
        assert "1 worker clocks within 2 s of Redis" in healthy.stdout  # the worker answered wfcelery_clock
        found = invoke("doctor", gpu, "--json")
        assert found.exit_code == 1
        problems = {f["check"]: f for f in json.loads(found.stdout) if f["ok"] is False}
        assert set(problems) == {"queues"}
        assert f"-Q gpu{uid}" in problems["queues"]["fix"]
        assert "gpu-flow.train" in problems["queues"]["message"]


def test_doctor_findings_with_fixes(make_test_app: Any, redis_url: str) -> None:
    app = make_test_app(
        task_acks_late=False,
        broker_transport_options={"visibility_timeout": 60},
        task_time_limit=300,
        accept_content=["pickle"],
    )
    findings = {f.check: f for f in diagnose(app._wfcelery_engine)}
    assert findings["configuration"].ok is False  # accept_content stops everything else: the fix is named
    assert "accept_content" in findings["configuration"].fix
    app = make_test_app(
        task_acks_late=False,
        task_reject_on_worker_lost=False,
        broker_transport_options={"visibility_timeout": 60},
        task_time_limit=300,
    )
    findings = {f.check: f for f in diagnose(app._wfcelery_engine)}
    assert findings["acks"].ok is False
    assert "task_acks_late is False" in findings["acks"].message
    assert "task_reject_on_worker_lost is False" in findings["acks"].message
    assert findings["visibility"].ok is False
    assert "'visibility_timeout': 600" in findings["visibility"].fix
    assert findings["tracker"].ok is True
    assert exit_code(findings.values()) == 1


def test_doctor_names_an_eviction_policy_that_drops_run_state(make_test_app: Any, r: redis.Redis) -> None:
    if os.environ.get("WFCELERY_TEST_REDIS_URL"):
        pytest.skip("changes the server's eviction policy: only on the tests' own throwaway server")
    before = r.config_get("maxmemory-policy")["maxmemory-policy"]
    r.config_set("maxmemory-policy", "allkeys-lru")  # the test's own throwaway server
    try:
        findings = {f.check: f for f in diagnose(make_test_app()._wfcelery_engine)}
    finally:
        r.config_set("maxmemory-policy", before)
    assert findings["tracker"].ok is False
    assert "allkeys-lru" in findings["tracker"].message
    assert "maxmemory-policy noeviction" in findings["tracker"].fix


def test_a_worker_warns_at_start_when_its_tracker_may_evict_run_state(
    make_test_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = RedisServer().start()  # the tracker on a server of this test alone: its policy is changed
    try:
        client = redis.Redis.from_url(tracker.url, decode_responses=True)
        before = client.config_get("maxmemory-policy")["maxmemory-policy"]
        client.config_set("maxmemory-policy", "allkeys-lru")
        try:
            app = make_test_app(wfcelery_redis_url=f"{tracker.url}/0")
            caplog.set_level(logging.WARNING, logger="wfcelery")
            with in_thread_worker(app):
                warned = wait_for(
                    lambda: [r for r in caplog.records if "maxmemory-policy" in r.getMessage()],
                    message="the eviction warning at worker start",
                )
        finally:
            client.config_set("maxmemory-policy", before)
    finally:
        tracker.stop()
    assert [(r.name, r.levelname) for r in warned] == [("wfcelery.hooks", "WARNING")]
    assert "'allkeys-lru'" in warned[0].getMessage()
    assert "noeviction" in warned[0].getMessage()


def test_doctor_cannot_check_an_unreachable_tracker(make_test_app: Any) -> None:
    app = make_test_app(wfcelery_redis_url="redis://127.0.0.1:1/0")
    findings = {f.check: f for f in diagnose(app._wfcelery_engine)}
    assert findings["tracker"].ok is None
    assert "wfcelery_redis_url" in findings["tracker"].fix
    assert exit_code(findings.values()) == 2


# -- 10. the testing plugin -------------------------------------------------------------------------------


def test_the_example_test_of_the_testing_plugin_passes() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WFCELERY_", "PYTEST_"))}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "examples/test_etl_workflow.py", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


# -- 8. quiet, useful worker logs -------------------------------------------------------------------------


def _wfcelery_records(caplog: pytest.LogCaptureFixture, run_id: str) -> list[tuple[str, str]]:
    return [
        (rec.levelname, rec.getMessage())
        for rec in caplog.records
        if rec.name.startswith("wfcelery") and run_id in rec.getMessage()
    ]


def test_a_message_of_an_expired_run_is_dropped_with_one_debug_line(
    app: Celery, engine: Any, r: redis.Redis, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    wf = Workflow("gone")
    wf.add("a", "proj.add", args=[1, 2])
    run = engine.submit(wf)  # no worker yet: the message waits in the queue
    for key in r.keys(f"t{uid}:*"):  # the run expired (its keys' TTL passed) before a worker came
        r.delete(key)
    caplog.set_level(logging.DEBUG, logger="wfcelery")
    with in_thread_worker(app):
        wait_for(lambda: _wfcelery_records(caplog, run.id), message="the message to be dropped")
    assert [level for level, _ in _wfcelery_records(caplog, run.id)] == ["DEBUG"]
    assert "no longer exists" in _wfcelery_records(caplog, run.id)[0][1]
    assert not [
        rec for rec in caplog.records if rec.levelno >= logging.WARNING and run.id in rec.getMessage()
    ]


def test_a_report_of_a_cleaned_up_run_is_dropped_with_one_debug_line(
    app: Celery, engine: Any, r: redis.Redis, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    key = f"go{uid}"
    wf = Workflow("cleaned")
    wf.add("a", "proj.block", args=[key])
    wf.add("b", "proj.add", args=[1, 2], immutable=True, after="a")
    caplog.set_level(logging.DEBUG, logger="wfcelery")
    with in_thread_worker(app):
        run = engine.submit(wf)
        wait_for(lambda: run.state().nodes["a"].status is NodeStatus.RUNNING)
        for k in r.keys(f"t{uid}:*"):  # cleaned up (or expired) while its node runs
            if not k.startswith(f"t{uid}:plan"):
                r.delete(k)
        r.rpush(key, "go")
        wait_for(lambda: _wfcelery_records(caplog, run.id), message="the report to be dropped")
        time.sleep(0.2)  # anything else it would log comes right after
    records = _wfcelery_records(caplog, run.id)
    assert [level for level, _ in records] == ["DEBUG"], records
    assert not [
        rec for rec in caplog.records if rec.levelno >= logging.WARNING and run.id in rec.getMessage()
    ]


def _finished(run: Any) -> bool:
    try:
        return bool(run.state(check_workers=False).finished)
    except TrackerUnavailable:  # the test's own reads wait for Redis like everyone
        return False


def test_a_tracker_outage_logs_one_warning_and_one_info_and_the_run_goes_on(
    make_test_app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = RedisServer().start()  # the tracker on its own server: the broker stays up
    try:
        app = make_test_app(wfcelery_redis_url=f"{tracker.url}/0", wfcelery_redis_timeout=0.3)
        engine = app._wfcelery_engine
        wf = Workflow("outage")
        wf.add("a", "proj.add", args=[1, 2])
        wf.add("b", "proj.add", args=[10], after="a")
        wf.add("c", "proj.add", args=[100], after="b")
        run = engine.submit(wf)  # queued before any worker runs
        caplog.set_level(logging.DEBUG, logger="wfcelery")
        redis.Redis.from_url(tracker.url).execute_command("CLIENT", "PAUSE", "4000", "ALL")  # Redis hangs 4 s
        with in_thread_worker(app):
            wait_for(lambda: _finished(run), timeout=60, message="the run to end after the outage")
        assert run.wait(timeout=5) == {"a": 3, "b": 13, "c": 113}
        worker_side = [
            r for r in caplog.records if r.name.startswith("wfcelery") and r.name != "wfcelery.engine"
        ]
        outage = [(r.levelname, r.getMessage()) for r in worker_side]
        loud = [(level, msg) for level, msg in outage if level in ("WARNING", "ERROR", "INFO")]
        assert [level for level, _ in loud] == ["WARNING", "INFO"], loud
        assert "unreachable" in loud[0][1]
        assert "deferred transitions recorded" in loud[1][1]
        assert int(loud[1][1].split("; ")[1].split()[0]) >= 1  # a's start waited for Redis (strict gate)
    finally:
        tracker.stop()


# -- the adoption path, end to end, as a team would type it ----------------------------------------------

FLOW = """
name: daily
tasks:
  - {name: fetch, task: adopt.fetch, type: io, args: ["${day}"]}
  - {name: parse, task: adopt.parse, after: [fetch]}
  - {name: report, task: adopt.report, kwargs: {channel: "${channel}"}, after: [parse]}
"""


def test_adoption_path_end_to_end_in_subprocesses(redis_url: str, uid: str, tmp_path: Path) -> None:
    """A pickle app with task_routes, two workers, a node no worker reads: the warning appears, doctor
    names the fix, after the fix the run succeeds and `results --json` parses."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("WFCELERY_", "CELERY_"))},
        "ADOPT_REDIS_URL": redis_url,
        "ADOPT_SUFFIX": uid,
        "PYTHONPATH": str(ROOT),
        "C_FORCE_ROOT": "1",  # Celery refuses pickle workers as root otherwise (CI runs as root)
    }
    flow = tmp_path / "daily.yaml"
    flow.write_text(FLOW)
    workers: list[subprocess.Popen[bytes]] = []

    def wf(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "wfcelery.cli", "-A", "tests.adoption_app", *args]
        return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=90, check=False)

    def worker(name: str, queues: str) -> None:
        cmd = [sys.executable, "-m", "celery", "-A", "tests.adoption_app", "worker", "-Q", queues]
        cmd += ["-n", f"{name}-{uid}@{socket.gethostname()}", "-P", "threads", "-c", "2", "-l", "WARNING"]
        cmd += ["--without-mingle", "--without-gossip"]
        workers.append(subprocess.Popen(cmd, env=env, cwd=ROOT))

    try:
        worker("io", f"io-{uid}")
        worker("default", f"default-{uid}")
        pinger = Celery(broker=redis_url, set_as_current=False)
        pinger.conf.accept_content = ["json", "pickle"]  # the team's workers answer in pickle
        control = pinger.control
        names = [f"io-{uid}@{socket.gethostname()}", f"default-{uid}@{socket.gethostname()}"]
        wait_for(
            lambda: len(control.ping(destination=names, timeout=0.5)) == 2,
            timeout=60,
            message="both workers to answer",
        )
        submitted = wf("submit", str(flow), "-p", "day=2026-11-22", "-p", "channel=#ops")
        assert submitted.returncode == EXIT_OK, submitted.stderr
        assert f"no live worker consumes queue 'reports-{uid}' (node report)" in submitted.stderr
        run_id = submitted.stdout.strip()

        doctor = wf("doctor", str(flow))
        assert doctor.returncode == 1, doctor.stdout + doctor.stderr
        assert f"fix: start a worker for -Q reports-{uid}" in doctor.stdout
        assert "Traceback" not in doctor.stderr

        worker("reports", f"reports-{uid}")  # the fix doctor names
        watched = wf("watch", run_id, "--timeout", "60")
        assert watched.returncode == EXIT_OK, watched.stdout + watched.stderr
        results = wf("results", run_id, "--json")
        assert results.returncode == EXIT_OK
        doc = json.loads(results.stdout)
        assert doc["status"] == "SUCCEEDED"
        assert doc["results"] == {"fetch": [10, 2, 3], "parse": 15, "report": "#ops: 15"}

        healthy = wf("doctor", str(flow))
        assert healthy.returncode == EXIT_OK, healthy.stdout
    finally:
        for proc in workers:
            proc.terminate()
        for proc in workers:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
