"""Commands for nodes waiting on people and partners: ``signal`` (a payload to a wait node) and ``waiting``
(the nodes waiting for one)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from wfcelery.cli import display
from wfcelery.cli.base import echo_json, engine_of, epilog, errors_to_exit, fail


def parse_data(text: str | None) -> Any:
    """``--data``: JSON text, ``@file.json`` for a file's JSON, nothing for null."""
    if text is None:
        return None
    source = "--data"
    if text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as e:
            raise click.BadParameter(f"cannot read {source}: {e.strerror or e}", param_hint="--data") from e
    try:
        return json.loads(text)
    except ValueError as e:
        raise click.BadParameter(f"{source} is not JSON: {e}", param_hint="--data") from e


@click.command(
    "signal",
    epilog=epilog("""
wfcelery -A proj.celery:app signal 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70 approve --data '{"by": "ops"}'
wfcelery -A proj.celery:app signal 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70 partner_file --data @manifest.json"""),
)
@click.argument("run_id", metavar="RUN")
@click.argument("node", metavar="NODE")
@click.option("--data", metavar="JSON", help="The payload: JSON text, or @FILE (default: null).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's new state as JSON.")
@click.pass_context
@errors_to_exit
def signal(ctx: click.Context, run_id: str, node: str, data: str | None, as_json: bool) -> None:
    """Signal the wait node NODE of RUN (`wf.wait`, `wait: signal`): the payload becomes its result, its
    children run. Exits 2, changing nothing, when the node is not waiting for a signal (not a wait
    node, not reached yet, signalled already) or the run is paused or finished."""
    payload = parse_data(data)
    engine = engine_of(ctx)
    try:
        state = engine.signal(run_id, node, payload)
    except KeyError:
        fail(f"run {run_id} has no node {node!r}")
    echo_json(state.to_dict()) if as_json else click.echo(display.summary_line(state))


@click.command(
    "waiting",
    epilog=epilog("""
wfcelery -A proj.celery:app waiting
wfcelery -A proj.celery:app waiting --json | jq '.[].run'"""),
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list of {run, workflow, node, since, until}."
)
@click.pass_context
@errors_to_exit
def waiting(ctx: click.Context, limit: int, as_json: bool) -> None:
    """List the nodes waiting for a signal, in every run, longest waiting first."""
    found = engine_of(ctx).waiting(limit)
    if as_json:
        echo_json([w.to_dict() for w in found])
        return
    if not found:
        click.echo("no node is waiting for a signal", err=True)
        return
    now = time.time()
    rows: list[list[display.Cell]] = [
        [
            w.run_id,
            w.workflow,
            w.node,
            display.seconds(now - w.since),
            "-" if w.until is None else display.seconds(max(0.0, w.until - now)),
        ]
        for w in found
    ]
    for line in display.table(("RUN", "WORKFLOW", "NODE", "WAITING", "TIMES OUT IN"), rows):
        click.echo(line)
