"""Commands about schedules: list them, add, pause, resume and remove one, backfill a range, and run the
scheduler loop as its own process."""

from __future__ import annotations

import socket
import sys
import time
from datetime import datetime
from typing import Any

import click

from wfcelery.cli import display
from wfcelery.cli.base import echo_json, engine_of, epilog, errors_to_exit, parse_params
from wfcelery.client.engine import Engine
from wfcelery.client.schedules import BackfillSlot
from wfcelery.ops.scheduler import Scheduler
from wfcelery.ops.store import ScheduleInfo


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else "—"


def _live(engine: Engine, name: str) -> int:
    return sum(1 for _, run in engine.schedule_runs(name, 50) if run and not run.status.finished)


def schedule_rows(engine: Engine, infos: list[ScheduleInfo]) -> list[list[display.Cell]]:
    return [
        [
            info.name,
            info.workflow,
            info.cron + (f" ({info.timezone})" if info.timezone != "UTC" else "")
            if info.cron
            else f"every {info.every}s",
            _when(info.next_at),
            _when(info.last_at),
            "paused" if info.paused else "",
            str(_live(engine, info.name)),
        ]
        for info in infos
    ]


@click.command(
    "schedules",
    epilog=epilog("""
wfcelery -A proj.celery:app schedules
wfcelery -A proj.celery:app schedules --json | jq '.[].next_at'"""),
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (the GET /api/schedules shape).")
@click.pass_context
@errors_to_exit
def schedules(ctx: click.Context, as_json: bool) -> None:
    """List schedules: when they fire, their next and last slot (UTC), paused, live runs."""
    engine = engine_of(ctx)
    infos = engine.schedules()
    if as_json:
        echo_json([{**i.to_dict(), "live_runs": _live(engine, i.name)} for i in infos])
        return
    if not infos:
        click.echo("no schedules (engine.schedule(...), `wfcelery schedule add`, or a file's schedule:)")
        return
    header = ("NAME", "WORKFLOW", "WHEN", "NEXT", "LAST", "PAUSED", "LIVE")
    for line in display.table(header, schedule_rows(engine, infos)):
        click.echo(line)


@click.group(
    "schedule",
    epilog=epilog("""
wfcelery -A proj.celery:app schedule add nightly flows/etl.yaml --cron '0 2 * * *' --timezone Europe/Paris
wfcelery -A proj.celery:app schedule pause nightly"""),
)
def schedule() -> None:
    """Add, pause, resume or remove (rm) a schedule."""


@schedule.command("add")
@click.argument("name")
@click.argument("flow")
@click.option("--cron", default=None, help="A cron expression: 5 fields, or 6 with seconds last.")
@click.option("--every", default=None, help="Seconds, or a duration: 30s, 15m, 1h, 1d.")
@click.option("--timezone", default=None, help="IANA time zone of --cron (default UTC).")
@click.option("-p", "--param", "param", multiple=True, metavar="KEY=VALUE", help="The runs' params.")
@click.option("--catchup", is_flag=True, help="After downtime, fire every missed slot (bounded).")
@click.option("--max-active-runs", type=int, default=None, help="A due slot waits while N runs live.")
@click.pass_context
@errors_to_exit
def add(
    ctx: click.Context,
    name: str,
    flow: str,
    cron: str | None,
    every: str | None,
    timezone: str | None,
    param: tuple[str, ...],
    catchup: bool,
    max_active_runs: int | None,
) -> None:
    """Schedule FLOW (a known definition's name, or a YAML/JSON file) as NAME."""
    engine = engine_of(ctx)
    info = engine.schedule(
        name,
        flow,
        cron=cron,
        every=every,
        timezone=timezone,
        params=parse_params(param),
        catchup=catchup,
        max_active_runs=max_active_runs,
    )
    click.echo(f"scheduled {info.name}: next at {_when(info.next_at)}")


@schedule.command("pause")
@click.argument("name")
@click.pass_context
@errors_to_exit
def pause(ctx: click.Context, name: str) -> None:
    """Stop firing NAME (runs already started go on)."""
    engine_of(ctx).pause_schedule(name)
    click.echo(f"paused {name}")


@schedule.command("resume")
@click.argument("name")
@click.pass_context
@errors_to_exit
def resume(ctx: click.Context, name: str) -> None:
    """Fire NAME again, from its next slot after now."""
    info = engine_of(ctx).resume_schedule(name)
    click.echo(f"resumed {name}: next at {_when(info.next_at)}")


@schedule.command("rm")
@click.argument("name")
@click.pass_context
@errors_to_exit
def rm(ctx: click.Context, name: str) -> None:
    """Remove the schedule NAME (its runs are kept)."""
    engine_of(ctx).unschedule(name)
    click.echo(f"removed {name}")


@click.command(
    "backfill",
    epilog=epilog("""
wfcelery -A proj.celery:app backfill nightly --start 2026-11-01 --end 2026-11-30 --dry-run
wfcelery -A proj.celery:app backfill nightly --start 2026-11-01 --end 2026-11-30"""),
)
@click.argument("name")
@click.option("--start", required=True, help="First instant (ISO 8601; UTC unless it has an offset).")
@click.option("--end", required=True, help="Last instant (inclusive).")
@click.option("--dry-run", is_flag=True, help="List the slots; fire nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {slot, run_id, created}.")
@click.pass_context
@errors_to_exit
def backfill(ctx: click.Context, name: str, start: str, end: str, dry_run: bool, as_json: bool) -> None:
    """Fire every slot of NAME between --start and --end once (a slot that fired keeps its run), honouring
    max_active_runs; a progress bar on stderr."""
    engine = engine_of(ctx)
    if dry_run:
        done = engine.backfill(name, start, end, dry_run=True)
    else:
        total = len(engine.backfill(name, start, end, dry_run=True))
        stderr = sys.stderr
        progress: Any = click.progressbar(length=total, label=f"backfill {name}", file=stderr)
        with progress as bar:

            def step(_: BackfillSlot) -> None:
                bar.update(1)

            done = engine.backfill(name, start, end, progress=step)
    if as_json:
        echo_json([s.to_dict() for s in done])
        return
    for item in done:
        if dry_run:
            click.echo(item.slot)
        else:
            click.echo(f"{item.slot}  {item.run_id}  {'new' if item.created else 'existing'}")


@click.command(
    "scheduler",
    epilog=epilog("""
wfcelery -A proj.celery:app scheduler
# with wfcelery_scheduler = False in the app, only this process fires schedules"""),
)
@click.option("--once", is_flag=True, help="Fire what is due now and exit (without taking the lease).")
@click.pass_context
@errors_to_exit
def scheduler(ctx: click.Context, once: bool) -> None:
    """Run the scheduler loop in this process (the workers run one too, elected: one fires at a time).
    Also scans the wfcelery_definitions folder for files with a schedule:."""
    engine = engine_of(ctx)
    loop = Scheduler(engine.tracker, engine.dispatch, f"scheduler@{socket.gethostname()}")
    if once:
        loop.tick()
        return
    click.echo("scheduler running (Ctrl-C stops it)", err=True)
    loop.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        loop.stop()
