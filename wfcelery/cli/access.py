"""Commands about access: API tokens (``token create|list|revoke``) and the audit trail (``audit``)."""

from __future__ import annotations

import datetime

import click

from wfcelery.cli.base import echo_json, engine_of, epilog, errors_to_exit
from wfcelery.cli.display import table


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@click.group(
    "token",
    epilog=epilog("""
wfcelery -A proj.celery:app token create grafana --role viewer
wfcelery -A proj.celery:app token list
wfcelery -A proj.celery:app token revoke grafana"""),
)
def token() -> None:
    """API tokens for the web dashboard and REST API (``Authorization: Bearer <token>``).

    A viewer reads; an operator also submits, controls and signals runs; an admin also deletes, cleans up,
    and manages pools, schedules and tokens. Once any token exists, the web server serves nothing without
    credentials."""


@token.command("create")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["viewer", "operator", "admin"]),
    required=True,
    help="What the token may do.",
)
@click.pass_context
@errors_to_exit
def token_create(ctx: click.Context, name: str, role: str) -> None:
    """Create a token and print it once (the last word of the output): only its hash is kept."""
    secret = engine_of(ctx).create_token(name, role)
    click.echo(f"token {name} ({role}), shown once: keep it now", err=True)
    click.echo(secret)


@token.command("list")
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list of {name, role, created, last_used}."
)
@click.pass_context
@errors_to_exit
def token_list(ctx: click.Context, as_json: bool) -> None:
    """Every token's name, role, creation and last use (never the token itself)."""
    tokens = engine_of(ctx).tokens()
    if as_json:
        echo_json([t.to_dict() for t in tokens])
        return
    for t in tokens:
        click.echo(
            f"{t.name:<24} {t.role.value:<9} created {_when(t.created)}  last used {_when(t.last_used)}"
        )


@token.command("revoke")
@click.argument("name")
@click.pass_context
@errors_to_exit
def token_revoke(ctx: click.Context, name: str) -> None:
    """Revoke a token: every server refuses it from its next request on."""
    engine_of(ctx).revoke_token(name)
    click.echo(f"token {name} revoked")


@click.command(
    "audit",
    epilog=epilog("""
wfcelery -A proj.celery:app audit --limit 20
wfcelery -A proj.celery:app audit --json | jq '.[] | select(.action == "cancel")'"""),
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list of {at, actor, action, target, outcome}."
)
@click.pass_context
@errors_to_exit
def audit(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The audit trail, newest first: who wrote what (REST, CLI or Python API), when, and how it ended."""
    entries = engine_of(ctx).audit_log(limit)
    if as_json:
        echo_json([e.to_dict() for e in entries])
        return
    rows = [(_when(e.at), e.actor, e.action, e.target, e.outcome) for e in entries]
    for line in table(("WHEN", "ACTOR", "ACTION", "TARGET", "OUTCOME"), rows):
        click.echo(line)
