"""Commands that look after the deployment: doctor, demo, web, sweep."""

from __future__ import annotations

import sys

import click

from wfcelery.cli.base import (
    EXIT_RUN_FAILED,
    echo_json,
    engine_of,
    epilog,
    errors_to_exit,
    fail,
    stdout_tty,
    workflow_of,
)


@click.command(
    "doctor",
    epilog=epilog("""
wfcelery -A proj.celery:app doctor
celery -A proj wf doctor flows/*.yaml --json"""),
)
@click.argument("flows", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the findings as a JSON list.")
@click.pass_context
@errors_to_exit
def doctor(ctx: click.Context, flows: tuple[str, ...], as_json: bool) -> None:
    """Check that the app can run workflows and explain each problem with its fix: the tracker's Redis
    (reachable, eviction policy), the broker (login, vhost), serializers, the queues of FLOWS (and of
    live runs) against live workers' queues, visibility_timeout, acks_late, clock skew.

    Exits 0 when healthy, 1 with findings, 2 when something could not be checked."""
    from wfcelery.cli.doctor import diagnose, exit_code, report_lines

    engine = engine_of(ctx)
    definitions = [workflow_of(flow, engine.settings.limits) for flow in flows]
    findings = diagnose(engine, definitions)
    if as_json:
        echo_json([f.to_dict() for f in findings])
    else:
        for line in report_lines(findings):
            click.echo(line)
    ctx.exit(exit_code(findings))


@click.command(
    "demo",
    epilog=epilog("""
wfcelery demo                                      # embedded redis-server, nothing to set up
wfcelery demo --redis-url redis://localhost:6379/0  # an existing Redis (unique keys and queues)"""),
)
@click.option(
    "--redis-url",
    envvar="WFCELERY_DEMO_REDIS_URL",
    default=None,
    help="Use this Redis (broker, results, tracker) instead of starting one.",
)
@errors_to_exit
def demo(redis_url: str | None) -> None:
    """Run a bundled workflow end to end: Redis, a worker and the run, all in this process.

    Shows live progress, then per-node timings (queue, worker, start, duration) and the results, and
    shuts everything down. Needs nothing but this package.
    """
    from wfcelery.cli.demo import run_demo

    code = run_demo(redis_url, out=sys.stdout, tty=stdout_tty())
    if code:
        raise click.exceptions.Exit(code)


@click.command(
    "web",
    epilog=epilog("""
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
    help="An admin login (HTTP Basic, or the dashboard's login form) required on every API route "
    "(default: the wfcelery_web_auth setting).",
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
@errors_to_exit
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
        from wfcelery.web import create_app, serve, served_hosts
    except ImportError as e:
        fail(str(e))
    engine = engine_of(ctx)
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
    epilog=epilog("""
wfcelery -A proj.celery:app sweep          # repair now; exit 1 when something was repaired
wfcelery -A proj.celery:app sweep --json"""),
)
@click.option("--json", "as_json", is_flag=True, help="Print the repairs as JSON.")
@click.pass_context
@errors_to_exit
def sweep(ctx: click.Context, as_json: bool) -> None:
    """Run the reconciler once: repair what no worker will report (nodes of dead workers, nodes past
    their time limit, messages dropped as unregistered, runs whose nodes are all done).

    Workers run the same reconciler on their own (wfcelery_sweep_interval); this is for operators and
    cron. A worker with no heartbeat counts as gone at once here. Exit 0: nothing to repair; 1: repaired
    what it lists.
    """
    from wfcelery.worker.reconciler import Reconciler
    from wfcelery.worker.side import WorkerSide

    engine = engine_of(ctx)
    side = WorkerSide(engine.app, lambda: engine.tracker)
    reconciler = Reconciler(side, hostname="wfcelery-sweep", patient=False)
    gone = reconciler.gone_workers()  # not patient: a watched worker without a heartbeat is gone now
    repairs = reconciler.sweep()
    engine.tracker.forget_workers(gone)  # their nodes are repaired: stop watching them (as workers do)
    if as_json:
        echo_json(
            [{"run": r.run_id, "node": r.node, "action": r.action, "reason": r.reason} for r in repairs]
        )
    else:
        for repair in repairs:
            click.echo(str(repair))
        click.echo(f"{len(repairs)} repair(s)", err=True)
    if repairs:
        ctx.exit(EXIT_RUN_FAILED)
