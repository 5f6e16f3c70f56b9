"""Commands about pools and rate limits: list them (slots, used, waiting), resize one at run time."""

from __future__ import annotations

import click

from wfcelery.cli import display
from wfcelery.cli.base import echo_json, engine_of, epilog, errors_to_exit
from wfcelery.ops.pools import PoolInfo


def pool_rows(infos: list[PoolInfo]) -> list[list[display.Cell]]:
    return [
        [
            i.name,
            "—" if i.slots is None else str(i.slots),
            i.rate or "—",
            str(i.used),
            str(i.waiting),
            i.source,
        ]
        for i in infos
    ]


@click.group(
    "pools",
    invoke_without_command=True,
    epilog=epilog("""
wfcelery -A proj.celery:app pools
wfcelery -A proj.celery:app pools --json | jq '.[] | select(.waiting > 0)'
wfcelery -A proj.celery:app pools set db --slots 8 --rate 120/m"""),
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list (the GET /api/pools shape).")
@click.pass_context
@errors_to_exit
def pools(ctx: click.Context, as_json: bool) -> None:
    """List pools: their slots and rate, slots used (nodes published or running in the pool, across every
    worker and run) and nodes waiting for one. `pools set` resizes one."""
    if ctx.invoked_subcommand is not None:
        return
    infos = engine_of(ctx).pools()
    if as_json:
        echo_json([i.to_dict() for i in infos])
        return
    if not infos:
        click.echo("no pools (set wfcelery_pools, or `wfcelery pools set NAME --slots N`)")
        return
    header = ("POOL", "SLOTS", "RATE", "USED", "WAITING", "FROM")
    for line in display.table(header, pool_rows(infos)):
        click.echo(line)


@pools.command(
    "set",
    epilog=epilog("""
wfcelery -A proj.celery:app pools set db --slots 8
wfcelery -A proj.celery:app pools set llm --rate 60/m
wfcelery -A proj.celery:app pools set llm --rate none"""),
)
@click.argument("name")
@click.option("--slots", type=int, default=None, help="Nodes RUNNING in the pool at once at most (>= 1).")
@click.option(
    "--rate", default=None, help="Starts per second, minute or hour: 10/s, 60/m, 500/h; none: no rate."
)
@click.option("--json", "as_json", is_flag=True, help="Print the pool as JSON.")
@click.pass_context
@errors_to_exit
def set_pool(ctx: click.Context, name: str, slots: int | None, rate: str | None, as_json: bool) -> None:
    """Set a pool's slots and/or rate for every worker and run, from the next release on (a resize down
    never stops a running node)."""
    info = engine_of(ctx).set_pool(name, slots=slots, rate=rate)
    if as_json:
        echo_json(info.to_dict())
        return
    for line in display.table(("POOL", "SLOTS", "RATE", "USED", "WAITING", "FROM"), pool_rows([info])):
        click.echo(line)
