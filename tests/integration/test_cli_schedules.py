"""The CLI of run keys and schedules (CliRunner, the real ``-A`` path): submit --run-key, status, schedules,
schedule add|pause|resume|rm, backfill (twice: the same runs), scheduler --once, and bad input (exit 2)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from click.testing import CliRunner, Result

from tests.helpers import wait_for
from wfcelery.cli import EXIT_BAD_INPUT, EXIT_OK, cli

APP: Celery | None = None
A = ["-A", "tests.integration.test_cli_schedules:APP"]
FLOW = "name: nightly\ntasks:\n  - {name: a, task: proj.noop, args: ['${scheduled_at}']}\n"


@pytest.fixture
def cli_app(app: Celery) -> Iterator[Celery]:
    global APP
    APP = app
    yield app
    APP = None


@pytest.fixture
def flow(tmp_path: Path) -> str:
    path = tmp_path / "nightly.yaml"
    path.write_text(FLOW)
    return str(path)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, [*A, *args], catch_exceptions=False)


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == EXIT_OK, (result.stdout, result.stderr)
    return result


def test_submit_with_a_run_key_twice_makes_one_run_shown_in_status(cli_app, engine, tmp_path):
    path = tmp_path / "k.yaml"
    path.write_text("name: k\ntasks:\n  - {name: a, task: proj.noop}\n")
    first = ok("submit", str(path), "--run-key", "etl:2026-12-06").stdout.strip()
    again = invoke("submit", str(path), "--run-key", "etl:2026-12-06")
    assert (again.exit_code, again.stdout.strip()) == (EXIT_OK, first)
    assert "is held by run" in again.stderr
    conflict = invoke("submit", str(path), "--run-key", "etl:2026-12-06", "--on-conflict", "fail")
    assert conflict.exit_code == EXIT_BAD_INPUT
    assert first in conflict.stderr
    assert "Traceback" not in conflict.output
    assert "run key etl:2026-12-06" in ok("status", first).stdout
    assert json.loads(ok("status", first, "--json").stdout)["run_key"] == "etl:2026-12-06"
    assert len(engine.runs(name="k")) == 1


def test_schedule_add_list_pause_resume_rm(cli_app, engine, flow):
    added = ok("schedule", "add", "nightly", flow, "--cron", "0 2 * * *", "--timezone", "Europe/Paris")
    assert "scheduled nightly: next at" in added.stdout
    listed = ok("schedules").stdout
    assert "nightly" in listed
    assert "0 2 * * * (Europe/Paris)" in listed
    ok("schedule", "pause", "nightly")
    doc = json.loads(ok("schedules", "--json").stdout)
    assert doc[0] | {"paused": True, "next_at": None, "live_runs": 0} == doc[0]
    ok("schedule", "resume", "nightly")
    assert json.loads(ok("schedules", "--json").stdout)[0]["next_at"] is not None
    ok("schedule", "rm", "nightly")
    assert engine.schedules() == []


@pytest.mark.parametrize(
    ("option", "field"),
    [
        (["--cron", "0 2 * *"], "cron"),
        (["--cron", "0 2 * * *", "--timezone", "Nowhere/City"], "timezone"),
        (["--every", "0"], "every"),
        (["--every", "-3"], "every"),
    ],
)
def test_bad_schedules_exit_2_naming_the_field_and_store_nothing(cli_app, engine, flow, option, field):
    result = invoke("schedule", "add", "nightly", flow, *option)
    assert result.exit_code == EXIT_BAD_INPUT
    assert result.stderr.startswith(f"Error: {field}: ")
    assert "Traceback" not in result.output
    assert engine.schedules() == []


def test_a_schedule_of_an_unknown_workflow_exits_2(cli_app, engine):
    result = invoke("schedule", "add", "x", "no-such-flow", "--every", "5")
    assert result.exit_code == EXIT_BAD_INPUT
    assert "workflow: unknown workflow 'no-such-flow'" in result.stderr
    assert engine.schedules() == []
    assert invoke("schedule", "pause", "x").exit_code == EXIT_BAD_INPUT


def test_backfill_dry_run_then_twice_gives_ten_runs(cli_app, engine, flow):
    ok("schedule", "add", "nightly", flow, "--cron", "0 2 * * *")
    dry = ok("backfill", "nightly", "--start", "2026-11-01", "--end", "2026-11-10T23:00", "--dry-run")
    assert dry.stdout.split() == [f"2026-11-{d:02d}T02:00:00Z" for d in range(1, 11)]
    assert engine.runs(name="nightly") == []
    week = ["--start", "2026-11-01", "--end", "2026-11-10T23:00"]
    first = json.loads(ok("backfill", "nightly", *week, "--json").stdout)
    second = ok("backfill", "nightly", *week)
    assert len(first) == 10
    assert all(s["created"] for s in first)
    assert second.stdout.count("existing") == 10
    assert len(engine.runs(name="nightly", limit=100)) == 10
    backfills = [e for e in engine.audit_log() if e.action == "schedule.backfill"]
    assert len(backfills) == 2  # one entry per backfill that fired; the dry run changed nothing
    bad = invoke("backfill", "nightly", "--start", "yesterday", "--end", "2026-11-10")
    assert bad.exit_code == EXIT_BAD_INPUT
    assert "start: not an ISO 8601 time" in bad.stderr


def test_scheduler_once_fires_what_is_due(cli_app, engine, flow):
    ok("schedule", "add", "often", flow, "--every", "1", "--catchup")
    first = engine.schedule_info("often").next_at
    assert first is not None
    wait_for(lambda: engine.tracker.server_ms() > first.timestamp() * 1000 + 200, timeout=5)
    ok("scheduler", "--once")
    runs = engine.runs(name="nightly")
    assert len(runs) >= 1
    assert runs[0].run_key.startswith("schedule:often:")
