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
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import click
from celery import Celery

from . import _display as display
from . import _graphs as graphs
from .canvas import translate
from .compiler import compile_workflow
from .consumers import describe
from .engine import Engine, Run
from .errors import ControlError, DefinitionError, RunFailed, RunNotFound, WaitTimeout, WfCeleryError
from .install import install
from .limits import Limits
from .loader import load
from .model import Workflow
from .settings import check_json_accepted, check_not_eager
from .states import NodeStatus, RunState, RunStatus

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
    type=click.Choice(["counters", "canvas"]),
    default=None,
    help="counters (one message per node) or canvas (native chains and chords per segment); default: "
    "the definition's executor, else the wfcelery_executor setting.",
)
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
    require_workers: bool,
    executor: str | None,
) -> None:
    """Submit the workflow in FLOW (a YAML or JSON file); prints the run id.

    Warns on stderr about each node whose queue no live worker consumes (--require-workers refuses).
    With --wait, shows progress on stderr (a live table on a terminal, one line per node transition
    otherwise) and prints the results as JSON on stdout when the run succeeds; with -q stdout holds
    only one JSON document (the run id inside it).
    """
    engine = _engine(ctx)
    workflow = _workflow(flow, engine.settings.limits)
    with _definition(flow):
        run = engine.submit(
            workflow, params=_params(param), require_workers=require_workers, executor=executor
        )
    for warning in run.warnings:
        click.echo(click.style("Warning: ", fg="yellow") + warning, err=True)
    if not wait:
        _echo_json({"id": run.id}) if as_json else click.echo(run.id)
        return
    if not as_json and not quiet:
        click.echo(run.id)
    try:
        state = _follow(run, timeout, quiet, err=True)
    except KeyboardInterrupt:
        click.echo(f"\nstopped waiting; run {run.id} goes on (`watch {run.id}` to follow it)", err=True)
        raise
    if as_json or quiet:
        doc = _outcome(run, state) if quiet and not as_json else {**state.to_dict(), "results": run.results()}
        _echo_json(doc)
        if state.status is not RunStatus.SUCCEEDED:
            ctx.exit(EXIT_RUN_FAILED)
        return
    results = run.wait(timeout=5)
    lines = [f"  {json.dumps(k)}: {json.dumps(v, default=repr)}" for k, v in results.items()]
    click.echo("{\n" + ",\n".join(lines) + "\n}")  # valid JSON, one node per line


def _outcome(run: Run, state: RunState) -> dict[str, Any]:
    """A finished run for scripts: id, status, results, and the error of each node that failed."""
    errors = {name: n.error for name, n in state.nodes.items() if n.error}
    return {"id": run.id, "status": state.status.value, "results": run.results(), "errors": errors}


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
    run = _engine(ctx).run(run_id)
    state = run.state()
    if as_json:
        _echo_json(state.to_dict())
        return
    for line in display.status_lines(state):
        click.echo(line)
    for line in _idle_lines(run, state):
        click.echo(click.style(line, fg="yellow"))


def _idle_lines(run: Run, state: RunState) -> list[str]:
    """``QUEUED 4m12s: no worker consumes 'gpu'`` for each waiting node whose queue nobody reads."""
    if not state.idle_queues:
        return []
    _, events = run.events()
    queued_at = {e.node: e.at_ms for e in events if e.node is not None and e.status == "Q"}
    now = time.time()
    lines = []
    for node in state.nodes.values():
        if node.status is not NodeStatus.QUEUED or node.queue not in state.idle_queues:
            continue
        since = state.created_at + queued_at.get(node.index, 0) / 1000
        lines.append(
            f"{node.name}: QUEUED {display.seconds(now - since)}: no worker consumes {node.queue!r} "
            f"(start one with -Q {node.queue})"
        )
    return lines


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
    name: str, doc: str, example: str, call: Callable[..., RunState], extra: list[click.Option] | None = None
) -> click.Command:
    @click.pass_context
    @_errors_to_exit
    def command(ctx: click.Context, run_id: str, as_json: bool, **options: Any) -> None:
        state = call(_engine(ctx), run_id, **options)
        _echo_json(state.to_dict()) if as_json else click.echo(display.summary_line(state))

    command.__doc__ = doc
    params: list[click.Parameter] = [
        click.Argument(["run_id"], metavar="RUN"),
        *(extra or []),
        click.Option(["--json", "as_json"], is_flag=True, help="Print the run's new state as JSON."),
    ]
    return click.Command(name, callback=command, params=params, help=doc, epilog=_epilog(example))


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


@click.command(
    "cleanup",
    epilog=_epilog("""
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
@_errors_to_exit
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
    engine = _engine(ctx)
    if run_id is None:
        if status_ is None and older_than is None:
            _fail("name a RUN, or select finished runs with --status and/or --older-than")
        deleted = engine.cleanup_finished(status_, _age(older_than) if older_than else 0.0)
        _echo_json({"deleted": deleted}) if as_json else click.echo(f"{len(deleted)} runs deleted")
        return
    if status_ or older_than:
        _fail("--status / --older-than select runs in bulk: use them without RUN")
    try:
        engine.cleanup(run_id, force=force)
    except ControlError as e:
        _fail(str(e).replace("force=True", "--force"))
    except RunNotFound:
        _echo_json({"deleted": []}) if as_json else click.echo(
            f"run {run_id}: nothing to clean (no such run)"
        )
        return
    _echo_json({"deleted": [run_id]}) if as_json else click.echo(f"run {run_id} deleted")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _age(text: str) -> float:
    """``30s``, ``15m``, ``12h``, ``7d``, ``2w`` or plain seconds."""
    value, unit = (text[:-1], text[-1]) if text and text[-1] in _UNITS else (text, "s")
    try:
        number = float(value)
    except ValueError:
        number = -1
    if number < 0:
        raise click.BadParameter(
            f"{text!r} is not an age like 30s, 15m, 12h or 7d", param_hint="--older-than"
        )
    return number * _UNITS[unit]


@click.command(
    "results",
    epilog=_epilog("""
wfcelery -A proj.celery:app results 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70
wfcelery -A proj.celery:app results 3f2c9a0e6b7d4c1e8f5a2b3c4d5e6f70 --json | jq .results"""),
)
@click.argument("run_id", metavar="RUN")
@click.option("--json", "as_json", is_flag=True, help="Print {id, status, results, errors} as JSON.")
@click.pass_context
@_errors_to_exit
def results(ctx: click.Context, run_id: str, as_json: bool) -> None:
    """Print the results of a finished run, one node per line (--json: one JSON document).

    Exits 0 for a run that succeeded, 1 for one that failed or was cancelled (the nodes that succeeded
    are printed, and the errors), 2 for a run still going (`watch` it) or unknown."""
    run = _engine(ctx).run(run_id)
    state = run.state(check_workers=False)
    if not state.finished:
        _fail(f"run {run_id} is {state.status.value}: its results are ready when it ends (`watch {run_id}`)")
    outcome = _outcome(run, state)
    if as_json:
        _echo_json(outcome)
    else:
        for line in display.results_lines(outcome["results"]):
            click.echo(line)
        for name, error in outcome["errors"].items():
            click.echo(f"{name}: {error.get('type', 'Error')}: {error.get('message', '')}", err=True)
    if state.status is not RunStatus.SUCCEEDED:
        ctx.exit(EXIT_RUN_FAILED)


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
    """Check a definition file: schema, names, parents, cycles, params, limits; with -A also that every
    task is registered and that the app can run it (workers accept JSON, no task_always_eager), and warn
    about queues no live worker consumes. Changes nothing; exits 2 naming the first problem."""
    app = _app(ctx, required=False)
    limits = _limits(app)
    workflow = _workflow(flow, limits)
    with _definition(flow):
        workflow.validate(app, limits)
        given = _params(param)
        if param:
            workflow.resolve_params(given, limits)
        routes = install(app).settings.routes if app is not None else None
        plan = compile_workflow(workflow, routes, limits)
    queues = sorted({n.queue for n in plan.nodes if n.queue})
    warnings: list[str] = []
    if app is not None:
        engine = install(app)
        check_not_eager(app)
        check_json_accepted(app)
        queues = sorted(set(engine.node_queues(plan).values()))
        warnings = describe(engine.unconsumed(plan))
    needed = sorted(workflow.placeholders())
    click.echo(
        f"OK {workflow.name}: {len(plan.nodes)} nodes, {sum(len(n.parents) for n in plan.nodes)} edges"
        + (f", queues {', '.join(queues)}" if queues else "")
        + (f", params {', '.join(needed)}" if needed else "")
    )
    missing = workflow.missing_params(given)
    if missing:
        click.echo(
            f"required params without a value: {', '.join(missing)} (pass "
            + " ".join(f"-p {m}=VALUE" for m in missing)
            + " at submit)"
        )
    for warning in warnings:
        click.echo(click.style("Warning: ", fg="yellow") + warning, err=True)
    for n in plan.nodes:
        notes = graphs.dynamic_notes(plan, n.index)
        if notes:
            click.echo(f"  {n.name}: {'; '.join(notes)}")
    if app is None:
        click.echo("task names not checked: pass -A module:app to check them against your app", err=True)


@click.command(
    "graph",
    epilog=_epilog("""
wfcelery graph flows/etl.yaml
wfcelery graph flows/etl.yaml --format dot | dot -Tsvg > etl.svg
wfcelery graph flows/etl.yaml --format mermaid
wfcelery graph flows/etl.yaml --canvas             # the native chains and chords of to_canvas"""),
)
@click.argument("flow", type=click.Path(dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "dot", "mermaid"]), default="text", show_default=True
)
@click.option(
    "--canvas",
    "as_canvas",
    is_flag=True,
    help="Also show the native canvas Workflow.to_canvas emits (an error names the edges it cannot express).",
)
@click.pass_context
@_errors_to_exit
def graph(ctx: click.Context, flow: str, fmt: str, as_canvas: bool) -> None:
    """Show the DAG of a definition file, the Celery task messages it compiles to, and (--canvas) the
    native chains and chords of Workflow.to_canvas."""
    app = _app(ctx, required=False)
    limits = _limits(app)
    workflow = _workflow(flow, limits)
    with _definition(flow):
        workflow.validate(app, limits)
    plan = compile_workflow(workflow, install(app).settings.routes if app is not None else None, limits)
    if app is not None:  # show the queue the app's task_routes pick for nodes without type/queue
        engine = install(app)
        routed = [replace(n, queue=engine.queue_of(n.task, n.queue)) for n in plan.nodes]
        plan = replace(plan, nodes=tuple(routed))
    render = {"text": graphs.graph_text, "dot": graphs.graph_dot, "mermaid": graphs.graph_mermaid}[fmt]
    for line in render(plan):
        click.echo(line)
    if as_canvas:
        # Signatures need an app only to be built: with none given, a bare one (nothing connects).
        # No params: the placeholders show as written.
        built = translate(plan, app or Celery("wfcelery-graph", set_as_current=False))
        for line in ["", *graphs.canvas_lines(plan, built)]:
            click.echo(line)


@click.command(
    "doctor",
    epilog=_epilog("""
wfcelery -A proj.celery:app doctor
celery -A proj wf doctor flows/*.yaml --json"""),
)
@click.argument("flows", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as a JSON list.")
@click.pass_context
@_errors_to_exit
def doctor(ctx: click.Context, flows: tuple[str, ...], as_json: bool) -> None:
    """Check that the app can run workflows and explain each problem with its fix: the tracker's Redis
    (reachable, eviction policy), the broker (login, vhost), serializers, the queues of FLOWS (and of
    live runs) against live workers' queues, visibility_timeout, acks_late, clock skew.

    Exits 0 when healthy, 1 with findings, 2 when something could not be checked."""
    from .doctor import diagnose, exit_code, report_lines

    engine = _engine(ctx)
    definitions = [_workflow(flow, engine.settings.limits) for flow in flows]
    findings = diagnose(engine, definitions)
    if as_json:
        _echo_json([f.to_dict() for f in findings])
    else:
        for line in report_lines(findings):
            click.echo(line)
    ctx.exit(exit_code(findings))


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
    "web",
    epilog=_epilog("""
wfcelery -A proj.celery:app web                                # http://127.0.0.1:8555
wfcelery -A proj.celery:app web --host 0.0.0.0 --allowed-host ops.example.com --auth admin:s3cret
wfcelery -A proj.celery:app web --cors-origin https://shop.example   # pages there embed <wf-run-progress>
celery -A proj wf web --read-only --port 9000"""),
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8555, show_default=True)
@click.option(
    "--auth",
    metavar="USER:PASSWORD",
    envvar="WFCELERY_WEB_AUTH",
    help="HTTP Basic auth for every page and API route (default: the wfcelery_web_auth setting).",
)
@click.option("--read-only", is_flag=True, help="Hide the control buttons and refuse every write.")
@click.option("--flower-url", metavar="URL", help="Link nodes to Flower (default: wfcelery_flower_url).")
@click.option("--root-path", default="", metavar="PREFIX", help="Path prefix a reverse proxy strips.")
@click.option(
    "--allowed-host",
    "allowed_hosts",
    multiple=True,
    metavar="NAME",
    help="A Host name this server is reached by (repeatable; '*.example.com' for subdomains). "
    "Default: wfcelery_web_allowed_hosts, else localhost, 127.0.0.1 and [::1] "
    "(plus --host when it names one).",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    metavar="ORIGIN",
    help="An origin (https://shop.example) whose pages may read runs and embed <wf-run-progress> "
    "(repeatable). Default: wfcelery_web_cors_origins, else none.",
)
@click.option("--log-level", default="info", show_default=True, help="uvicorn's log level.")
@click.pass_context
@_errors_to_exit
def web(
    ctx: click.Context,
    host: str,
    port: int,
    auth: str | None,
    read_only: bool,
    flower_url: str | None,
    root_path: str,
    allowed_hosts: tuple[str, ...],
    cors_origins: tuple[str, ...],
    log_level: str,
) -> None:
    """Serve the web dashboard and REST API (needs the extra: pip install 'wfcelery[web]').

    The dashboard lists runs, draws each run's DAG live, and pauses, resumes, cancels, retries and
    deletes runs; the REST API is described by its OpenAPI document at /openapi.json.
    """
    try:
        from .web import create_app, serve, served_hosts
    except ImportError as e:
        _fail(str(e))
    engine = _engine(ctx)
    engine.runs(limit=1)  # fail now, with one clear line, when the tracker's Redis is unreachable
    app = create_app(
        engine,
        auth=auth,
        read_only=read_only,
        flower_url=flower_url,
        allowed_hosts=served_hosts(engine, host, allowed_hosts),
        cors_origins=cors_origins or None,
    )
    click.echo(
        f"wfcelery dashboard on http://{host}:{port}/" + ("  (read-only)" if read_only else ""), err=True
    )
    serve(app, host=host, port=port, log_level=log_level, root_path=root_path.rstrip("/"))


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
    reconciler = Reconciler(side, hostname="wfcelery-sweep", patient=False)
    gone = reconciler.gone_workers()  # not patient: a watched worker without a heartbeat is gone now
    repairs = reconciler.sweep()
    engine.tracker.forget_workers(gone)  # their nodes are repaired: stop watching them (as workers do)
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
    results,
    list_,
    pause,
    resume,
    cancel,
    retry,
    cleanup,
    validate,
    graph,
    doctor,
    web,
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
