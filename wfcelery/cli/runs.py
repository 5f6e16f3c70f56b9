"""Commands about runs: submit, status, watch, list, results."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import click

from wfcelery.cli import display
from wfcelery.cli.base import (
    EXIT_RUN_FAILED,
    definition_errors,
    echo_json,
    engine_of,
    epilog,
    errors_to_exit,
    fail,
    parse_params,
    workflow_of,
)
from wfcelery.client.run import Run
from wfcelery.definition.executor import Executor
from wfcelery.errors import TrackerUnavailable
from wfcelery.settings import Settings
from wfcelery.tracker.keys import instance_slot
from wfcelery.tracker.states import NodeStatus, RunState, RunStatus


@click.command(
    "submit",
    epilog=epilog("""
wfcelery -A proj.celery:app submit flows/etl.yaml --param day=2026-11-22
wfcelery -A proj.celery:app submit flows/etl.yaml -p day=2026-11-22 --wait --timeout 600
wfcelery -A proj.celery:app submit flows/etl.yaml -p day=2026-11-22 --run-key etl:2026-11-22
wfcelery -A proj.celery:app submit flows/etl.yaml -p day=2026-11-22 --deadline 30m"""),
)
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option(
    "-p",
    "--param",
    "param",
    multiple=True,
    metavar="KEY=VALUE",
    help="Fill ${KEY} placeholders; VALUE is parsed as JSON when it is valid JSON, else a string.",
)
@click.option("--wait", is_flag=True, help="Wait for the run to end (exit 1 if it fails); print results.")
@click.option("--timeout", type=float, default=None, help="With --wait: give up after SECONDS (exit 3).")
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON: {id}, or with --wait the final state and results."
)
@click.option(
    "-q",
    "--quiet",
    is_flag=True,
    help="With --wait: no progress on stderr, and stdout is one JSON document {id, status, results}.",
)
@click.option(
    "--require-workers",
    is_flag=True,
    help="Refuse (exit 2) when no live worker consumes the queue of a node, instead of warning.",
)
@click.option(
    "--executor",
    type=click.Choice([e.value for e in Executor]),
    default=None,
    help="counters (one message per node) or canvas (native chains and chords per segment); default: "
    "the definition's executor, else the wfcelery_executor setting.",
)
@click.option(
    "--run-key",
    default=None,
    metavar="KEY",
    help="At most one run per KEY: a KEY already held returns its run (see --on-conflict).",
)
@click.option(
    "--on-conflict",
    type=click.Choice(["use_existing", "fail", "retry_failed"]),
    default="use_existing",
    show_default=True,
    help="With --run-key held by a run: print that run; fail (exit 2); or retry it if it failed.",
)
@click.option(
    "--deadline",
    default=None,
    metavar="DURATION",
    help='Fail the run ("deadline exceeded") if it has not ended DURATION after now (30m, 2h, seconds); '
    "overrides the definition's deadline.",
)
@click.pass_context
@errors_to_exit
def submit(
    ctx: click.Context,
    flow: str,
    param: tuple[str, ...],
    wait: bool,
    timeout: float | None,
    as_json: bool,
    quiet: bool,
    require_workers: bool,
    executor: str | None,
    run_key: str | None,
    on_conflict: str,
    deadline: str | None,
) -> None:
    """Submit the workflow in FLOW (a YAML or JSON file); prints the run id.

    Warns on stderr about each node whose queue no live worker consumes (--require-workers refuses).
    With --wait, shows progress on stderr (a live table on a terminal, one line per node transition
    otherwise) and prints the results as JSON on stdout when the run succeeds; with -q stdout holds
    only one JSON document (the run id inside it).
    """
    engine = engine_of(ctx)
    workflow = workflow_of(flow, engine.settings.limits)
    with definition_errors(flow), display.progress("submitting", 0) as advance:
        run = engine.submit(
            workflow,
            params=parse_params(param),
            require_workers=require_workers,
            executor=executor,
            run_key=run_key,
            on_conflict=on_conflict,
            progress=advance,
            deadline=deadline,
        )
    if not run.created:
        click.echo(f"run key {run_key!r} is held by run {run.id}: nothing new was submitted", err=True)
    for warning in run.warnings:
        click.echo(click.style("Warning: ", fg="yellow") + warning, err=True)
    if not wait:
        echo_json({"id": run.id}) if as_json else click.echo(run.id)
        return
    if not as_json and not quiet:
        click.echo(run.id)
    try:
        state = follow(run, timeout, quiet, err=True)
    except KeyboardInterrupt:
        click.echo(f"\nstopped waiting; run {run.id} goes on (`watch {run.id}` to follow it)", err=True)
        raise
    if as_json or quiet:
        doc = (
            outcome_of(run, state) if quiet and not as_json else {**state.to_dict(), "results": run.results()}
        )
        echo_json(doc)
        if state.status is not RunStatus.SUCCEEDED:
            ctx.exit(EXIT_RUN_FAILED)
        return
    results = run.wait(timeout=5)
    lines = [f"  {json.dumps(k)}: {json.dumps(v, default=repr)}" for k, v in results.items()]
    click.echo("{\n" + ",\n".join(lines) + "\n}")  # valid JSON, one node per line


def outcome_of(run: Run, state: RunState) -> dict[str, Any]:
    """A finished run for scripts: id, status, results, and the error of each node that failed."""
    errors = {name: n.error for name, n in state.nodes.items() if n.error}
    return {"id": run.id, "status": state.status.value, "results": run.results(), "errors": errors}


T = TypeVar("T")


def ride_out(call: Callable[[], T], patience: float) -> T:
    """``call()``, retried every second while the tracker is unavailable, for up to ``patience`` seconds
    (a follower started during an outage waits like one that was following when it began)."""
    give_up = time.monotonic() + patience
    while True:
        try:
            return call()
        except TrackerUnavailable:
            if time.monotonic() >= give_up:
                raise
            time.sleep(1.0)


def follow(run: Run, timeout: float | None, quiet: bool, err: bool) -> RunState:
    stream = sys.stderr if err else sys.stdout
    tty = stream.isatty() and not quiet
    return display.follow(run, display.LiveView(stream, tty, quiet), timeout, tick=0.25 if tty else 1.0)


@click.command(
    "status",
    epilog=epilog("""
wfcelery -A proj.celery:app status 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70
wfcelery -A proj.celery:app status 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70 --json | jq .counts"""),
)
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON (the stable RunState shape).")
@click.pass_context
@errors_to_exit
def status(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run: its status, counts and every node (status, queue, worker, times, error).

    Exits 0 whenever the run exists, whatever its status; use `watch` or `submit --wait` to wait.
    """
    run = engine_of(ctx).run(run_id)
    state = run.state()
    if as_json:
        echo_json(state.to_dict())
        return
    for line in display.status_lines(state):
        click.echo(line)
    queued_at = queued_since(run, state)
    for line in idle_lines(state, queued_at):
        click.echo(click.style(line, fg="yellow"))
    for line in resend_lines(state, queued_at, run.engine.settings):
        click.echo(line)


def queued_since(run: Run, state: RunState) -> dict[str, float]:
    """When each QUEUED node was queued at its epoch (Unix time, Redis's clock), from the event log."""
    if state.finished or not any(n.status is NodeStatus.QUEUED for n in state.nodes.values()):
        return {}
    _, events = run.events()
    at = {(e.node, e.epoch): e.at_ms for e in events if e.node_status is NodeStatus.QUEUED}
    since = {}
    for node in state.nodes.values():
        slot = node.index if node.instance is None else instance_slot(node.index, node.instance)
        if node.status is NodeStatus.QUEUED and (slot, node.epoch) in at:
            since[node.name] = state.created_at + at[slot, node.epoch] / 1000
    return since


def idle_lines(state: RunState, queued_at: dict[str, float]) -> list[str]:
    """``QUEUED 4m12s: no worker consumes 'gpu'`` for each waiting node whose queue nobody reads."""
    now = time.time()
    lines = []
    for node in state.nodes.values():
        if node.status is not NodeStatus.QUEUED or node.queue not in state.idle_queues:
            continue
        since = queued_at.get(node.name, state.created_at)
        lines.append(
            f"{node.name}: QUEUED {display.seconds(now - since)}: no worker consumes {node.queue!r} "
            f"(start one with -Q {node.queue})"
        )
    return lines


#: QUEUED nodes listed at most by ``status`` with their re-send times.
RESEND_LINES = 20


def resend_lines(state: RunState, queued_at: dict[str, float], settings: Settings) -> list[str]:
    """For each QUEUED node: how long it has waited, and when the reconciler re-sends it unless it starts
    -- about ``wfcelery_lost_message_after`` plus two sweeps after it was queued if the broker shows its
    message is lost, ``wfcelery_queued_timeout`` plus a sweep at the latest."""
    if state.status is not RunStatus.RUNNING:
        return []
    now, sweep, lines = time.time(), settings.sweep_interval, []
    for name, since in sorted(queued_at.items(), key=lambda item: item[1])[:RESEND_LINES]:
        when = []
        if settings.lost_message_after > 0:
            lost = display.clock(since + settings.lost_message_after + 2 * sweep)
            when.append(f"about {lost} if the broker lost its message")
        if settings.queued_timeout > 0:
            latest = display.clock(since + settings.queued_timeout + sweep)
            when.append(f"at {latest} at the latest (wfcelery_queued_timeout)")
        resend = f"; re-sent unless it starts: {', '.join(when)}" if when else ""
        lines.append(f"{name}: QUEUED {display.seconds(now - since)} since {display.clock(since)}{resend}")
    if len(queued_at) > RESEND_LINES:
        lines.append(f"... and {len(queued_at) - RESEND_LINES} more QUEUED nodes")
    return lines


@click.command(
    "watch",
    epilog=epilog("""
wfcelery -A proj.celery:app watch 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70"""),
)
@click.argument("run_id", metavar="RUN")
@click.option("--timeout", type=float, default=None, help="Stop watching after SECONDS (exit 3).")
@click.pass_context
@errors_to_exit
def watch(ctx: click.Context, run_id: str, timeout: float | None) -> None:
    """Follow a run live until it ends: a table redrawn in place on a terminal, one line per node
    transition otherwise. Exits 0 if the run succeeded, 1 if it failed or was cancelled."""
    engine = engine_of(ctx)
    run = ride_out(lambda: engine.run(run_id), engine.settings.follow_patience)
    state = follow(run, timeout, quiet=False, err=False)
    if state.status is not RunStatus.SUCCEEDED:
        ctx.exit(EXIT_RUN_FAILED)


@click.command(
    "list",
    epilog=epilog("""
wfcelery -A proj.celery:app list --status failed --name etl --limit 20"""),
)
@click.option(
    "--status",
    "status_",
    type=click.Choice([s.value for s in RunStatus], case_sensitive=False),
    help="Only runs in this status.",
)
@click.option("--name", help="Only runs of this workflow name.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {id, name, status, ...}.")
@click.pass_context
@errors_to_exit
def list_(ctx: click.Context, status_: str | None, name: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    runs = engine_of(ctx).runs(status=status_, name=name, limit=limit)
    if as_json:
        echo_json([r.to_dict() for r in runs])
    elif not runs:
        click.echo("no runs", err=True)
    else:
        for line in display.runs_lines(runs):
            click.echo(line)


@click.command(
    "results",
    epilog=epilog("""
wfcelery -A proj.celery:app results 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70
wfcelery -A proj.celery:app results 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70 --json | jq .results"""),
)
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print {id, status, results, errors} as JSON.")
@click.pass_context
@errors_to_exit
def results(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Print the results of a finished run, one node per line (--json: one JSON document).

    Exits 0 for a run that succeeded, 1 for one that failed or was cancelled (the nodes that succeeded
    are printed, and the errors), 2 for a run still going (`watch` it) or unknown."""
    run = engine_of(ctx).run(run_id)
    state = run.state(check_workers=False)
    if not state.finished:
        fail(f"run {run_id} is {state.status.value}: its results are ready when it ends (`watch {run_id}`)")
    outcome = outcome_of(run, state)
    if as_json:
        echo_json(outcome)
    else:
        for line in display.results_lines(outcome["results"]):
            click.echo(line)
        for name, error in outcome["errors"].items():
            click.echo(f"{name}: {error.get('type', 'Error')}: {error.get('message', '')}", err=True)
    if state.status is not RunStatus.SUCCEEDED:
        ctx.exit(EXIT_RUN_FAILED)
