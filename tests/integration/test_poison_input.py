"""Poison input through the CLI and the API: one clear error, exit 2, no traceback, nothing written.

And arguments arrive as written: dict key order at a non-root node, through a real worker.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from click.testing import CliRunner, Result

import wfcelery
from tests.helpers import ROOT
from tests.unit.test_limits import ALIAS_BOMB, deep_json, deep_yaml, nested
from wfcelery.cli import EXIT_BAD_INPUT, cli
from wfcelery.errors import LimitError

APP: Celery | None = None  # loaded by the CLI as tests.integration.test_poison_input:APP
A = ["-A", "tests.integration.test_poison_input:APP"]


@pytest.fixture
def cli_app(app: Celery) -> Iterator[Celery]:
    global APP
    APP = app
    yield app
    APP = None


@pytest.fixture
def poison(tmp_path: Path) -> dict[str, str]:
    files = {
        "bomb.yaml": ALIAS_BOMB,
        "deep.yaml": deep_yaml(5_000),
        "deep.json": deep_json(5_000),
        "deep500.json": deep_json(500),
        "deep70.yaml": deep_yaml(70),
        # 1.1 MB of args from a 6 KB file: 1,100 aliases of one 1 KB string (an honest use of aliases)
        "big.yaml": f"name: big\nparams: {{s: &s {'x' * 1000}}}\ntasks:\n"
        f"  - {{name: a, task: proj.echo, args: [{', '.join(['*s'] * 1100)}]}}\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return {name: str(tmp_path / name) for name in files}


def assert_clean_error(result: Result, *fragments: str) -> None:
    assert result.exit_code == EXIT_BAD_INPUT, (result.stdout, result.stderr)
    assert "Traceback" not in result.output
    err = result.stderr.strip().splitlines()
    assert len(err) == 1, result.stderr
    assert err[0].startswith("Error: "), result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize("command", ["validate", "submit"])
def test_poison_files_exit_2_and_change_nothing(
    cli_app: Celery, engine: Any, poison: dict[str, str], command: str
) -> None:
    def invoke(name: str) -> Result:
        started = time.perf_counter()
        result = CliRunner().invoke(cli, [*A, command, poison[name]], catch_exceptions=False)
        assert time.perf_counter() - started < 5, f"{name} took too long"
        return result

    assert_clean_error(invoke("bomb.yaml"), "bomb.yaml:", "aliases", "1,000,000 values")
    assert_clean_error(invoke("deep.yaml"), "deep.yaml:5:", "nested more than 200 levels deep")
    assert_clean_error(invoke("deep.json"), "deep.json:2:", "nested more than 200 levels deep")
    assert_clean_error(invoke("deep500.json"), "deep500.json", "node 'a'", "nested more than 200")
    assert_clean_error(
        invoke("deep70.yaml"), "node 'a'", "nested more than 64 levels deep", "wfcelery_max_depth"
    )
    assert_clean_error(
        invoke("big.yaml"), "node 'a'", "bytes as JSON", "1,048,576", "wfcelery_max_message_bytes"
    )
    assert engine.runs() == []


def test_settings_change_the_limits(make_test_app: Any, poison: dict[str, str]) -> None:
    global APP
    APP = make_test_app(
        wfcelery_max_depth=80, wfcelery_max_plan_bytes=20_000, wfcelery_max_message_bytes=2_000_000
    )
    try:
        result = CliRunner().invoke(cli, [*A, "validate", poison["deep70.yaml"]], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert_clean_error(
            CliRunner().invoke(cli, [*A, "validate", poison["big.yaml"]], catch_exceptions=False),
            "the compiled plan is",
            "wfcelery_max_plan_bytes",
        )
    finally:
        APP = None


def test_cli_subprocess_alias_bomb(poison: dict[str, str]) -> None:
    """As a user types it: `wfcelery validate bomb.yaml` (no app) -- a second, not 19 s and 1.2 GB."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "wfcelery"), "validate", poison["bomb.yaml"]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_BAD_INPUT, done.stderr
    assert "Traceback" not in done.stderr
    assert "aliases" in done.stderr
    assert time.perf_counter() - started < 20  # interpreter start included, on a loaded machine


def test_api_submit_refuses_poison_and_writes_nothing(engine: Any, poison: dict[str, str]) -> None:
    with pytest.raises(LimitError, match="aliases"):
        engine.submit(poison["bomb.yaml"])
    wf = wfcelery.Workflow("p")
    wf.add("a", "proj.echo", args=["${x}"])
    wf.add("b", "proj.echo", kwargs={"deep": "${x}"}, after=["a"])
    with pytest.raises(LimitError, match="workflow 'p': params is nested more than 64 levels deep"):
        engine.submit(wf, params={"x": nested(900)})
    with pytest.raises(LimitError, match=r"node 'a' \(params filled in\): args and kwargs are"):
        engine.submit(wf, params={"x": "y" * 2_000_000})
    deep = wfcelery.Workflow("d")
    deep.add("a", "proj.echo", args=nested(65))
    with pytest.raises(LimitError, match="node 'a': args is nested more than 64 levels deep"):
        engine.submit(deep)
    assert engine.runs() == []
    assert not engine.tracker.client.keys("*")  # not even the plan was stored


@pytest.mark.usefixtures("worker")
def test_dict_key_order_reaches_a_non_root_node(engine: Any) -> None:
    wf = wfcelery.Workflow("order")
    wf.add("a", "proj.echo", kwargs={"z": 1, "a": 2, "m": {"y": 1, "b": 2}})
    wf.add("b", "proj.echo", kwargs={"zz": 1, "aa": 2, "mm": {"yy": 1, "bb": 2}}, after=["a"])
    results = engine.submit(wf).wait(timeout=30)
    assert list(results["a"]["kwargs"]) == ["z", "a", "m"]
    assert list(results["b"]["kwargs"]) == ["zz", "aa", "mm"]
    assert list(results["b"]["kwargs"]["mm"]) == ["yy", "bb"]
    assert list(results["b"]["args"][0]["kwargs"]) == ["z", "a", "m"]  # the parent's result, as returned
