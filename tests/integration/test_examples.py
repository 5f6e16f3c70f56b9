"""Every example in examples/ runs, as its header says: in-thread worker for most, and two
`celery -A examples.app worker` subprocesses (one per queue) for the typed-queues one.

examples/app.py reads its Redis URLs from the environment at import time, so this module points them at
database 0 of the test Redis (the per-test databases start at 1) before importing it.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from tests.helpers import ROOT, in_thread_worker
from wfcelery.cli import cli

ENV_KEYS = ("WFCELERY_BROKER_URL", "WFCELERY_RESULT_BACKEND", "WFCELERY_REDIS_URL", "WFCELERY_KEY_PREFIX")


@pytest.fixture(scope="module")
def examples_env(redis_base: str) -> Iterator[dict[str, str]]:
    shared = os.environ.get("WFCELERY_TEST_REDIS_URL")
    url = shared or f"{redis_base}/0"
    if not shared:
        redis.Redis.from_url(url).flushdb()
    env = {"WFCELERY_BROKER_URL": url, "WFCELERY_KEY_PREFIX": f"ex{uuid.uuid4().hex[:8]}"}
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def ex(examples_env: dict[str, str]) -> ModuleType:
    """examples.app, imported with the test Redis."""
    module = importlib.import_module("examples.app")
    if module.app.conf.broker_url != examples_env["WFCELERY_BROKER_URL"]:  # imported earlier elsewhere
        module = importlib.reload(module)
    return module


@pytest.fixture(scope="class")
def thread_worker(ex: ModuleType) -> Iterator[Any]:
    """One in-thread worker for every queue, stopped before the typed-queues test starts its own."""
    with in_thread_worker(ex.app, queues=["io", "cpu", "celery"]) as w:
        yield w


@pytest.mark.usefixtures("thread_worker")
class TestInThreadWorker:
    """Examples that need any worker consuming io, cpu and the default queue."""

    def test_etl_python(self, ex: ModuleType) -> None:
        from examples import etl

        results = etl.main("2026-11-22", timeout=30)
        assert list(results) == ["extract", "transform", "load", "report"]
        assert results["report"] == f"revenue_by_sku: 4 rows, total {sum(results['transform'].values())}"

    def test_etl_yaml_through_the_cli_gives_the_same_results(self, ex: ModuleType) -> None:
        from examples import etl

        python_results = etl.main("2026-11-22", timeout=30)
        runner = CliRunner()
        assert runner.invoke(cli, ["-A", "examples.app", "validate", "examples/etl.yaml"]).exit_code == 0
        graph = runner.invoke(cli, ["-A", "examples.app", "graph", "examples/etl.yaml"])
        assert "transform [cpu]  <- extract" in graph.stdout
        done = runner.invoke(
            cli,
            [
                "-A",
                "examples.app",
                "submit",
                "examples/etl.yaml",
                "--param",
                "day=2026-11-22",
                "--wait",
                "--timeout",
                "30",
            ],
            catch_exceptions=False,
        )
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout.split("\n", 1)[1]) == python_results

    def test_map_reduce(self, ex: ModuleType) -> None:
        from examples import map_reduce

        assert len(map_reduce.build(6).nodes) == 7
        assert map_reduce.main(6, timeout=30) == [["the", 240], ["quick", 80], ["brown", 80]]

    def test_stages_yaml(self, ex: ModuleType) -> None:
        done = CliRunner().invoke(
            cli,
            ["-A", "examples.app", "submit", "examples/stages.yaml", "--wait", "--timeout", "30"],
            catch_exceptions=False,
        )
        assert done.exit_code == 0, done.output
        results = json.loads(done.stdout.split("\n", 1)[1])
        assert results["examples.join"] == 4.0
        assert results["examples.publish"] == "orders per user: 4.0"

    def test_pause_resume(self, ex: ModuleType) -> None:
        from examples import pause_resume

        outcome = pause_resume.main(seconds=0.4, timeout=30)
        assert outcome["while_paused"] == {"step_0": "SUCCEEDED", "step_1": "PENDING", "step_2": "PENDING"}
        assert outcome["results"] == {f"step_{i}": f"step_{i} done" for i in range(3)}


def _worker(queue: str, name: str, pool: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "examples.app",
        "worker",
        "-Q",
        queue,
        "-n",
        name,
        "-P",
        pool,
        "-c",
        "2",
        "--loglevel",
        "WARNING",
        "--without-mingle",
        "--without-gossip",
    ]
    return subprocess.Popen(cmd, env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, cwd=ROOT)


def test_typed_queues_with_two_workers(ex: ModuleType, examples_env: dict[str, str]) -> None:
    from examples import typed_queues

    tag = uuid.uuid4().hex[:6]
    host = socket.gethostname()
    names = {"cpu": f"cpu-{tag}@{host}", "io": f"io-{tag}@{host}"}
    procs = [
        _worker("cpu", names["cpu"], "prefork", examples_env),
        _worker("io", names["io"], "threads", examples_env),
    ]
    try:
        for proc, name in zip(procs, names.values(), strict=True):
            _wait_for_ping(ex.app, proc, name)
        placed = typed_queues.main(timeout=60)
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
    assert len(placed) == 9
    for node, where in placed.items():
        kind = "cpu" if node.startswith("checksum") else "io"
        assert where == {"queue": kind, "worker": names[kind]}, node


def _wait_for_ping(app: Any, proc: subprocess.Popen[bytes], name: str, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker {name} exited with {proc.returncode}")
        if app.control.ping(destination=[name], timeout=0.5):
            return
    raise RuntimeError(f"worker {name} did not answer ping within {timeout} s")
