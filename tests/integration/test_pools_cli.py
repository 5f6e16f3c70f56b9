"""The CLI of pools (CliRunner, the real ``-A`` path) and their metrics: ``pools`` lists slots, rate, used
and waiting; ``pools set`` resizes; bad input exits 2 naming it, with no traceback, changing nothing;
``wfcelery_pool_slots_used`` and ``wfcelery_pool_waiting`` have a sample per pool."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from celery import Celery
from click.testing import CliRunner, Result

from wfcelery.cli import EXIT_BAD_INPUT, EXIT_OK, cli
from wfcelery.metrics import exposition, registry_for

APP: Celery | None = None
A = ["-A", "tests.integration.test_pools_cli:APP"]


@pytest.fixture
def cli_app(make_test_app) -> Iterator[Celery]:
    global APP
    APP = make_test_app(wfcelery_pools={"db": 5, "llm": {"slots": 20, "rate": "60/m"}})
    yield APP
    APP = None


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [*A, *args], catch_exceptions=False)


def test_pools_list_set_and_bad_input(cli_app: Celery) -> None:
    listed = invoke("pools")
    assert listed.exit_code == EXIT_OK, listed.output
    assert listed.stdout.split("\n")[0].split() == ["POOL", "SLOTS", "RATE", "USED", "WAITING", "FROM"]
    as_json = json.loads(invoke("pools", "--json").stdout)
    assert as_json == [
        {"name": "db", "slots": 5, "rate": None, "used": 0, "waiting": 0, "source": "setting"},
        {"name": "llm", "slots": 20, "rate": "60/m", "used": 0, "waiting": 0, "source": "setting"},
    ]
    done = invoke("pools", "set", "db", "--slots", "8", "--json")
    assert done.exit_code == EXIT_OK, done.output
    assert json.loads(done.stdout)["slots"] == 8
    for args, named in (
        (("--rate", "5/fortnight"), "malformed rate '5/fortnight'"),
        (("--slots", "0"), "slots must be a whole number >= 1, got 0"),
    ):
        bad = invoke("pools", "set", "llm", *args)
        assert bad.exit_code == EXIT_BAD_INPUT
        assert named in bad.stderr
        assert "Traceback" not in bad.output
    assert json.loads(invoke("pools", "--json").stdout)[1]["rate"] == "60/m"  # nothing changed
    engine = cli_app._wfcelery_engine
    text = exposition(registry_for(engine.metrics)).decode()
    assert 'wfcelery_pool_slots_used{pool="db"} 0.0' in text
    assert 'wfcelery_pool_waiting{pool="llm"} 0.0' in text


def test_an_unknown_pool_on_a_node_is_refused_at_submit(cli_app: Celery, tmp_path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\ntasks:\n  - {name: load, task: proj.noop, pool: dbb}\n")
    bad = invoke("submit", str(path))
    assert bad.exit_code == EXIT_BAD_INPUT
    assert "node 'load' of workflow 'typo': unknown pool 'dbb' (pools: db, llm)" in bad.stderr
    assert cli_app._wfcelery_engine.runs(name="typo") == []


def test_validate_names_an_unknown_pool(cli_app: Celery, tmp_path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("name: typo\ntasks:\n  - {name: load, task: proj.noop, pool: dbb}\n")
    bad = invoke("validate", str(path))
    assert bad.exit_code == EXIT_BAD_INPUT
    assert "unknown pool 'dbb'" in bad.stderr
    assert "Traceback" not in bad.output
    path.write_text("name: fine\ntasks:\n  - {name: load, task: proj.noop, pool: db}\n")
    assert invoke("validate", str(path)).exit_code == EXIT_OK
