"""The command line: ``wfcelery -A proj.celery:app <command>``, also ``celery -A proj wf <command>``.

One click group, registered twice: ``wfcelery`` (console script, its own ``-A/--app`` option loaded the
way celery loads it, with :func:`celery.app.utils.find_app`) and ``wf`` (the ``celery.commands`` entry
point: celery's own group loads the app and hands it over in ``ctx.obj.app``).

The commands live by group in :mod:`.runs`, :mod:`.control`, :mod:`.signals`, :mod:`.definitions`,
:mod:`.schedules`, :mod:`.pools` and :mod:`.service`; what they share (exit codes, errors, loading the
app) in :mod:`.base`.

Exit codes: 0 success; 1 the run failed (or was cancelled); 2 bad input -- an unknown run, an invalid
definition, a refused control operation, an unreachable Redis or broker, a bad ``-A``; 3 a ``--timeout``
passed before the run ended. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import click

from wfcelery.cli.access import audit, token
from wfcelery.cli.base import (
    APP_ENVVARS,
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_RUN_FAILED,
    EXIT_TIMEOUT,
    CliContext,
    CliError,
    epilog,
    load_app,
)
from wfcelery.cli.control import cancel, cleanup, pause, resume, retry
from wfcelery.cli.definitions import graph, schema, validate
from wfcelery.cli.observe import metrics
from wfcelery.cli.pools import pools
from wfcelery.cli.runs import list_, results, status, submit, watch
from wfcelery.cli.schedules import backfill, schedule, scheduler, schedules
from wfcelery.cli.service import demo, doctor, sweep, web
from wfcelery.cli.signals import signal, waiting

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_OK",
    "EXIT_RUN_FAILED",
    "EXIT_TIMEOUT",
    "CliError",
    "cli",
    "load_app",
    "main",
    "wf",
]


@click.group(
    name="wf",
    epilog=epilog("""
wfcelery -A proj.celery:app submit flows/etl.yaml --param day=2026-11-22 --wait
celery -A proj wf status 3f2c...  # the same commands under celery"""),
)
def wf() -> None:
    """Run and control workflow DAGs on your Celery workers (wfcelery)."""


for _command in (
    submit,
    status,
    watch,
    results,
    list_,
    pause,
    resume,
    cancel,
    retry,
    cleanup,
    signal,
    waiting,
    validate,
    graph,
    schema,
    doctor,
    web,
    demo,
    sweep,
    token,
    audit,
    schedules,
    schedule,
    backfill,
    scheduler,
    metrics,
    pools,
):
    wf.add_command(_command)


@click.group(
    name="wfcelery",
    epilog=epilog("""
wfcelery -A proj.celery:app submit flows/etl.yaml --param day=2026-11-22 --wait
wfcelery demo"""),
)
@click.option(
    "-A",
    "--app",
    "app_spec",
    envvar=APP_ENVVARS,
    metavar="MODULE[:APP]",
    help="The Celery app, as for `celery -A` (env WFCELERY_APP).",
)
@click.version_option(package_name="wfcelery", prog_name="wfcelery")
@click.pass_context
def cli(ctx: click.Context, app_spec: str | None) -> None:
    """Run and control workflow DAGs on your Celery workers.

    The same commands run under celery as `celery -A proj wf ...`.
    """
    ctx.obj = CliContext(app_spec)


for _command in wf.commands.values():
    cli.add_command(_command)


def main() -> None:
    """Console script ``wfcelery``."""
    cli(prog_name="wfcelery")


if __name__ == "__main__":  # pragma: no cover
    main()
