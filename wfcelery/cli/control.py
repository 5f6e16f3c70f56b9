"""Commands that control runs: pause, resume, cancel, retry, cleanup."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from wfcelery.cli import display
from wfcelery.cli.base import (
    echo_json,
    engine_of,
    epilog,
    errors_to_exit,
    fail,
)
from wfcelery.errors import ControlError, RunNotFound
from wfcelery.tracker.states import RunState, RunStatus


def control_command(
    name: str, doc: str, example: str, call: Callable[..., RunState], extra: list[click.Option] | None = None
) -> click.Command:
    @click.pass_context
    @errors_to_exit
    def command(ctx: click.Context, run_id: str, as_json: bool, **options: Any) -> None:
        state = call(engine_of(ctx), run_id, **options)
        echo_json(state.to_dict()) if as_json else click.echo(display.summary_line(state))

    command.__doc__ = doc
    params: list[click.Parameter] = [
        click.Argument(["run_id"], metavar="RUN"),
        *(extra or []),
        click.Option(["--json", "as_json"], is_flag=True, help="Print the run's new state as JSON."),
    ]
    return click.Command(name, callback=command, params=params, help=doc, epilog=epilog(example))


pause = control_command(
    "pause",
    "Pause a run: nodes not yet started wait; running nodes finish. Undo with `resume`.",
    "wfcelery -A proj.celery:app pause 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70",
    lambda e, r: e.pause(r),
)


resume = control_command(
    "resume",
    "Resume a paused run: what did not succeed is queued again (fresh task ids).",
    "wfcelery -A proj.celery:app resume 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70",
    lambda e, r: e.resume(r),
)


cancel = control_command(
    "cancel",
    "Cancel a run for good: queued nodes are revoked; --terminate also stops running tasks "
    "(prefork/gevent pools only).",
    "wfcelery -A proj.celery:app cancel 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70 --terminate",
    lambda e, r, terminate: e.cancel(r, terminate=terminate),
    [click.Option(["--terminate"], is_flag=True, help="Also stop tasks that are running now.")],
)


retry = control_command(
    "retry",
    "Retry a FAILED or CANCELLED run: re-runs what did not succeed, reusing the results that did.",
    "wfcelery -A proj.celery:app retry 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70",
    lambda e, r: e.retry(r),
)


@click.command(
    "cleanup",
    epilog=epilog("""
wfcelery -A proj.celery:app cleanup 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70
wfcelery -A proj.celery:app cleanup --status succeeded --older-than 7d"""),
)
@click.argument("run_id", metavar="[RUN]", required=False)
@click.option("--force", is_flag=True, help="With RUN: cancel the run first if it is still live.")
@click.option(
    "--status",
    "status_",
    type=click.Choice([s.value for s in RunStatus if s.finished], case_sensitive=False),
    help="Without RUN: only finished runs in this status.",
)
@click.option(
    "--older-than",
    metavar="AGE",
    help="Without RUN: only runs that ended at least AGE ago (30s, 15m, 12h, 7d).",
)
@click.option("--json", "as_json", is_flag=True, help="Print {deleted: [run ids]} as JSON.")
@click.pass_context
@errors_to_exit
def cleanup(
    ctx: click.Context,
    run_id: str | None,
    force: bool,
    status_: str | None,
    older_than: str | None,
    as_json: bool,
) -> None:
    """Delete every Redis key of a finished run (Celery's result keys included); --force cancels a live
    run first. Without RUN, deletes every finished run matching --status / --older-than (live runs are
    never touched). A run that no longer exists has nothing to clean: exit 0."""
    engine = engine_of(ctx)
    if run_id is None:
        if status_ is None and older_than is None:
            fail("name a RUN, or select finished runs with --status and/or --older-than")
        age = parse_age(older_than) if older_than else 0.0
        with display.progress("cleaning up", 0) as advance:
            deleted = engine.cleanup_finished(status_, age, progress=advance)
        echo_json({"deleted": deleted}) if as_json else click.echo(f"{len(deleted)} runs deleted")
        return
    if status_ or older_than:
        fail("--status / --older-than select runs in bulk: use them without RUN")
    try:
        engine.cleanup(run_id, force=force)
    except ControlError as e:
        fail(str(e).replace("force=True", "--force"))
    except RunNotFound:
        echo_json({"deleted": []}) if as_json else click.echo(f"run {run_id}: nothing to clean (no such run)")
        return
    echo_json({"deleted": [run_id]}) if as_json else click.echo(f"run {run_id} deleted")


AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """``30s``, ``15m``, ``12h``, ``7d``, ``2w`` or plain seconds."""
    value, unit = (text[:-1], text[-1]) if text and text[-1] in AGE_UNITS else (text, "s")
    try:
        number = float(value)
    except ValueError:
        number = -1
    if number < 0:
        raise click.BadParameter(
            f"{text!r} is not an age like 30s, 15m, 12h or 7d", param_hint="--older-than"
        )
    return number * AGE_UNITS[unit]
