"""The command line: ``wfcelery -A proj.celery:app <command>``, also ``celery -A proj wf <command>``.

One click group, registered twice: ``wfcelery`` (console script, its own ``-A/--app`` option loaded the
way celery loads it, with :func:`celery.app.utils.find_app`) and ``wf`` (the ``celery.commands`` entry
point: celery's own group loads the app and hands it over in ``ctx.obj.app``).

Exit codes (named below): 0 success; 1 the run failed (or was cancelled); 2 bad input -- an unknown run,
an invalid definition, a refused control operation, an unreachable Redis or broker, a bad ``-A``; 3 a
``--timeout`` passed before the run ended. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import click
from celery import Celery

from . import _display as display
from .compiler import compile_workflow
from .engine import Engine, Run
from .errors import ControlError, DefinitionError, RunFailed, WaitTimeout, WfCeleryError
from .install import install
from .limits import Limits
from .loader import load
from .model import Workflow
from .states import RunState, RunStatus

#: The run succeeded / the command did what it was asked.
EXIT_OK = 0
#: The run ended FAILED or CANCELLED.
EXIT_RUN_FAILED = 1
#: Bad input: unknown run, invalid definition, refused control operation, Redis/broker unreachable.
EXIT_BAD_INPUT = 2
#: ``--timeout`` passed first; the run goes on.
EXIT_TIMEOUT = 3

APP_ENVVARS = ["WFCELERY_APP", "CELERY_APP"]


class CliError(click.ClickException):
    """One line on stderr and an exit code (2 here; subclasses for 1 and 3)."""

    exit_code = EXIT_BAD_INPUT

    def show(self, file: Any = None) -> None:
        click.echo(click.style("Error: ", fg="red") + self.format_message(), err=True)


class _RunFailedError(CliError):
    exit_code = EXIT_RUN_FAILED


class _TimeoutError(CliError):
    exit_code = EXIT_TIMEOUT


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    raise {EXIT_RUN_FAILED: _RunFailedError, EXIT_TIMEOUT: _TimeoutError}.get(code, CliError)(message)


def _errors_to_exit(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn wfcelery, broker and Redis errors into one message and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from kombu.exceptions import OperationalError
        from redis.exceptions import RedisError

        try:
            return fn(*args, **kwargs)
        except RunFailed as e:
            _fail(str(e), EXIT_RUN_FAILED)
        except WaitTimeout as e:
            _fail(f"{e} (the run goes on; follow it with `watch`)", EXIT_TIMEOUT)
        except WfCeleryError as e:
            _fail(str(e))
        except OperationalError as e:
            _fail(f"cannot reach the Celery broker: {e}")
        except RedisError as e:
            _fail(f"Redis error: {e}")
        except KeyboardInterrupt:
            click.echo("", err=True)
            raise click.exceptions.Exit(130) from None

    return wrapper


# -- the Celery app --------------------------------------------------------------------------------------


class _Obj:
    """``ctx.obj`` of the standalone ``wfcelery`` command: the ``-A`` value, loaded on first use."""

    def __init__(self, spec: str | None) -> None:
        self.spec = spec
        self._app: Celery | None = None

    @property
    def app(self) -> Celery | None:
        if self._app is None and self.spec:
            self._app = load_app(self.spec)
        return self._app


def load_app(spec: str) -> Celery:
    """Load ``module:attribute`` (or ``module``, ``package``) exactly as ``celery -A`` does."""
    from celery.app.utils import find_app

    try:
        app = find_app(spec)
    except Exception as e:
        _fail(f"cannot load the Celery app {spec!r}: {type(e).__name__}: {e}")
    if not isinstance(app, Celery):
        _fail(f"{spec!r} is a {type(app).__name__}, not a Celery app")
    return app


def _app(ctx: click.Context, required: bool = True) -> Celery | None:
    obj = ctx.find_object(_Obj)
    if obj is not None:
        app = obj.app
    else:  # under `celery ... wf`: celery loaded the app; without -A it is a default app we ignore
        root = ctx.find_root()
        given = root.params.get("app") is not None
        app = getattr(ctx.obj, "app", None) if given else None
    if app is None and required:
        _fail("no Celery app: pass -A module:app (or set WFCELERY_APP)")
    return app


def _engine(ctx: click.Context) -> Engine:
    app = _app(ctx)
    assert app is not None
    return install(app)


def _stdout_tty() -> bool:
    return sys.stdout.isatty()


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=repr))


def _params(values: tuple[str, ...]) -> dict[str, Any]:
    """``k=v`` pairs; a value that is valid JSON (``5``, ``true``, ``[1, 2]``) is parsed, else a string."""
    params: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="--param")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def _workflow(path: str, limits: Limits) -> Workflow:
    with _definition(path):
        return load(Path(path), limits.max_plan_bytes)


def _limits(app: Celery | None) -> Limits:
    """The app's ``wfcelery_max_*`` bounds (the defaults without an app)."""
    return Limits.from_conf(app.conf) if app is not None else Limits()


@contextmanager
def _definition(path: str) -> Iterator[None]:
    """Definition errors name the file (loader errors already do, with line and column)."""
    try:
        yield
    except DefinitionError as e:
        message = str(e)
        _fail(message if message.startswith(path) else f"{path}: {message}")


# -- the group -------------------------------------------------------------------------------------------


def _epilog(text: str) -> str:
    return "\b\nExample:\n" + "\n".join("  " + line for line in text.strip().splitlines())


@click.group(
    name="wf",
    epilog=_epilog("""
wfcelery -A proj.celery:app submit flows/etl.yaml --param day=2026-11-22 --wait
celery -A proj wf status 3f2c...  # the same commands under celery"""),
)
def wf() -> None:
    """Run and control workflow DAGs on your Celery workers (wfcelery)."""


@click.command(
    "submit",
    epilog=_epilog("""
wfcelery -A proj.celery:app submit flows/etl.yaml --param day=2026-11-22
wfcelery -A proj.celery:app submit flows/etl.yaml -p day=2026-11-22 --wait --timeout 600"""),
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
@click.option("-q", "--quiet", is_flag=True, help="With --wait: no progress on stderr.")
@click.pass_context
@_errors_to_exit
def submit(
    ctx: click.Context,
    flow: str,
    param: tuple[str, ...],
    wait: bool,
    timeout: float | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Submit the workflow in FLOW (a YAML or JSON file); prints the run id.

    With --wait, shows progress on stderr (a live table on a terminal, one line per node transition
    otherwise) and prints the results as JSON on stdout when the run succeeds.
    """
    engine = _engine(ctx)
    workflow = _workflow(flow, engine.settings.limits)
    with _definition(flow):
        run = engine.submit(workflow, params=_params(param))
    if not wait:
        _echo_json({"id": run.id}) if as_json else click.echo(run.id)
        return
    if not as_json:
        click.echo(run.id)
    try:
        state = _follow(run, timeout, quiet, err=True)
    except KeyboardInterrupt:
        click.echo(f"\nstopped waiting; run {run.id} goes on (`watch {run.id}` to follow it)", err=True)
        raise
    if as_json:
        _echo_json({**state.to_dict(), "results": run.results()})
        if state.status is not RunStatus.SUCCEEDED:
            ctx.exit(EXIT_RUN_FAILED)
        return
    results = run.wait(timeout=5)
    lines = [f"  {json.dumps(k)}: {json.dumps(v, default=repr)}" for k, v in results.items()]
    click.echo("{\n" + ",\n".join(lines) + "\n}")  # valid JSON, one node per line


def _follow(run: Run, timeout: float | None, quiet: bool, err: bool) -> RunState:
    stream = sys.stderr if err else sys.stdout
    tty = stream.isatty() and not quiet
    return display.follow(run, display.LiveView(stream, tty, quiet), timeout, tick=0.25 if tty else 1.0)


@click.command(
    "status",
    epilog=_epilog("""
wfcelery -A proj.celery:app status 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70
wfcelery -A proj.celery:app status 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70 --json | jq .counts"""),
)
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON (the stable RunState shape).")
@click.pass_context
@_errors_to_exit
def status(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Show a run: its status, counts and every node (status, queue, worker, times, error).

    Exits 0 whenever the run exists, whatever its status; use `watch` or `submit --wait` to wait.
    """
    state = _engine(ctx).run(run_id).state()
    if as_json:
        _echo_json(state.to_dict())
    else:
        for line in display.status_lines(state):
            click.echo(line)


@click.command(
    "watch",
    epilog=_epilog("""
wfcelery -A proj.celery:app watch 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70"""),
)
@click.argument("run_id", metavar="RUN")
@click.option("--timeout", type=float, default=None, help="Stop watching after SECONDS (exit 3).")
@click.pass_context
@_errors_to_exit
def watch(ctx: click.Context, run_id: str, timeout: float | None) -> None:
    """Follow a run live until it ends: a table redrawn in place on a terminal, one line per node
    transition otherwise. Exits 0 if the run succeeded, 1 if it failed or was cancelled."""
    run = _engine(ctx).run(run_id)
    state = _follow(run, timeout, quiet=False, err=False)
    if state.status is not RunStatus.SUCCEEDED:
        ctx.exit(EXIT_RUN_FAILED)


@click.command(
    "list",
    epilog=_epilog("""
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
@_errors_to_exit
def list_(ctx: click.Context, status_: str | None, name: str | None, limit: int, as_json: bool) -> None:
    """List runs, newest first."""
    runs = _engine(ctx).runs(status=status_, name=name, limit=limit)
    if as_json:
        _echo_json([r.to_dict() for r in runs])
    elif not runs:
        click.echo("no runs", err=True)
    else:
        for line in display.runs_lines(runs):
            click.echo(line)


def _control_command(
    name: str, doc: str, example: str, call: Callable[..., Any], extra: list[click.Option] | None = None
) -> click.Command:
    @click.pass_context
    @_errors_to_exit
    def command(ctx: click.Context, run_id: str, **options: Any) -> None:
        engine = _engine(ctx)
        outcome = call(engine, run_id, **options)
        if isinstance(outcome, RunState):
            click.echo(display.summary_line(outcome))
        else:
            click.echo(outcome)

    command.__doc__ = doc
    params: list[click.Parameter] = [click.Argument(["run_id"], metavar="RUN"), *(extra or [])]
    return click.Command(name, callback=command, params=params, help=doc, epilog=_epilog(example))


def _cleanup(engine: Engine, run_id: str, force: bool) -> str:
    try:
        engine.cleanup(run_id, force=force)
    except ControlError as e:
        _fail(str(e).replace("force=True", "--force"))
    return f"run {run_id} deleted"


pause = _control_command(
    "pause",
    "Pause a run: nodes not yet started wait; running nodes finish. Undo with `resume`.",
    "wfcelery -A proj.celery:app pause 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70",
    lambda e, r: e.pause(r),
)
resume = _control_command(
    "resume",
    "Resume a paused run: what did not succeed is queued again (fresh task ids).",
    "wfcelery -A proj.celery:app resume 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70",
    lambda e, r: e.resume(r),
)
cancel = _control_command(
    "cancel",
    "Cancel a run for good: queued nodes are revoked; --terminate also stops running tasks "
    "(prefork/gevent pools only).",
    "wfcelery -A proj.celery:app cancel 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70 --terminate",
    lambda e, r, terminate: e.cancel(r, terminate=terminate),
    [click.Option(["--terminate"], is_flag=True, help="Also stop tasks that are running now.")],
)
retry = _control_command(
    "retry",
    "Retry a FAILED or CANCELLED run: re-runs what did not succeed, reusing the results that did.",
    "wfcelery -A proj.celery:app retry 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70",
    lambda e, r: e.retry(r),
)
cleanup = _control_command(
    "cleanup",
    "Delete every Redis key of a finished run (Celery's result keys included); --force cancels "
    "a live run first.",
    "wfcelery -A proj.celery:app cleanup 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70",
    _cleanup,
    [click.Option(["--force"], is_flag=True, help="Cancel the run first if it is still live.")],
)


@click.command(
    "validate",
    epilog=_epilog("""
wfcelery validate flows/etl.yaml                        # the DAG only
wfcelery -A proj.celery:app validate flows/etl.yaml     # and every task name is registered"""),
)
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option(
    "-p",
    "--param",
    "param",
    multiple=True,
    metavar="KEY=VALUE",
    help="Also check that these params fill every ${placeholder}.",
)
@click.pass_context
@_errors_to_exit
def validate(ctx: click.Context, flow: str, param: tuple[str, ...]) -> None:
    """Check a definition file: schema, names, parents, cycles; with -A also that every task is
    registered in the app. Changes nothing; exits 2 naming the first problem."""
    app = _app(ctx, required=False)
    limits = _limits(app)
    workflow = _workflow(flow, limits)
    with _definition(flow):
        workflow.validate(app, limits)
        if param:
            workflow.resolve_params(_params(param), limits)
        plan = compile_workflow(workflow, limits=limits)
    queues = sorted({n.queue for n in plan.nodes if n.queue})
    needed = sorted(workflow.placeholders())
    click.echo(
        f"OK {workflow.name}: {len(plan.nodes)} nodes, {sum(len(n.parents) for n in plan.nodes)} edges"
        + (f", queues {', '.join(queues)}" if queues else "")
        + (f", params {', '.join(needed)}" if needed else "")
    )
    if app is None:
        click.echo("task names not checked: pass -A module:app to check them against your app", err=True)


@click.command(
    "graph",
    epilog=_epilog("""
wfcelery graph flows/etl.yaml
wfcelery graph flows/etl.yaml --format dot | dot -Tsvg > etl.svg
wfcelery graph flows/etl.yaml --format mermaid"""),
)
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "dot", "mermaid"]), default="text", show_default=True
)
@click.pass_context
@_errors_to_exit
def graph(ctx: click.Context, flow: str, fmt: str) -> None:
    """Show the DAG of a definition file and the segments (Celery messages) it compiles to."""
    app = _app(ctx, required=False)
    limits = _limits(app)
    workflow = _workflow(flow, limits)
    with _definition(flow):
        workflow.validate(app, limits)
    routes = install(app).settings.routes if app is not None else None
    plan = compile_workflow(workflow, routes, limits)
    render = {"text": display.graph_text, "dot": display.graph_dot, "mermaid": display.graph_mermaid}[fmt]
    for line in render(plan):
        click.echo(line)


@click.command(
    "demo",
    epilog=_epilog("""
wfcelery demo                                      # embedded redis-server, nothing to set up
wfcelery demo --redis-url redis://localhost:6379/0  # an existing Redis (unique keys and queues)"""),
)
@click.option(
    "--redis-url",
    envvar="WFCELERY_DEMO_REDIS_URL",
    default=None,
    help="Use this Redis (broker, results, tracker) instead of starting one.",
)
@_errors_to_exit
def demo(redis_url: str | None) -> None:
    """Run a bundled workflow end to end: Redis, a worker and the run, all in this process.

    Shows live progress, then per-node timings (queue, worker, start, duration) and the results, and
    shuts everything down. Needs nothing but this package.
    """
    from .demo import run_demo

    code = run_demo(redis_url, out=sys.stdout, tty=_stdout_tty())
    if code:
        raise click.exceptions.Exit(code)


@click.command(
    "sweep",
    epilog=_epilog("""
wfcelery -A proj.celery:app sweep          # repair now; exit 1 when something was repaired
wfcelery -A proj.celery:app sweep --json"""),
)
@click.option("--json", "as_json", is_flag=True, help="Print the repairs as JSON.")
@click.pass_context
@_errors_to_exit
def sweep(ctx: click.Context, as_json: bool) -> None:
    """Run the reconciler once: repair what no worker will report (nodes of dead workers, nodes past
    their time limit, messages dropped as unregistered, runs whose nodes are all done).

    Workers run the same reconciler on their own (wfcelery_sweep_interval); this is for operators and
    cron. A worker with no heartbeat counts as gone at once here. Exit 0: nothing to repair; 1: repaired
    what it lists.
    """
    from .reconciler import Reconciler
    from .worker import WorkerSide

    engine = _engine(ctx)
    side = WorkerSide(engine.app, lambda: engine.tracker)
    repairs = Reconciler(side, hostname="wfcelery-sweep", patient=False).sweep()
    if as_json:
        _echo_json(
            [{"run": r.run_id, "node": r.node, "action": r.action, "reason": r.reason} for r in repairs]
        )
    else:
        for repair in repairs:
            click.echo(str(repair))
        click.echo(f"{len(repairs)} repair(s)", err=True)
    if repairs:
        ctx.exit(EXIT_RUN_FAILED)


for _command in (
    submit,
    status,
    watch,
    list_,
    pause,
    resume,
    cancel,
    retry,
    cleanup,
    validate,
    graph,
    demo,
    sweep,
):
    wf.add_command(_command)


@click.group(
    name="wfcelery",
    epilog=_epilog("""
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
    ctx.obj = _Obj(app_spec)


for _command in wf.commands.values():
    cli.add_command(_command)


def main() -> None:
    """Console script ``wfcelery``."""
    cli(prog_name="wfcelery")


if __name__ == "__main__":  # pragma: no cover
    main()
