"""Commands about definitions: validate, graph, schema."""

from __future__ import annotations

from dataclasses import replace

import click
from celery import Celery

from wfcelery.cli import graphs
from wfcelery.cli.base import (
    app_of,
    definition_errors,
    echo_json,
    epilog,
    errors_to_exit,
    limits_of,
    parse_params,
    workflow_of,
)
from wfcelery.definition.registry import did_you_mean
from wfcelery.definition.schema import definition_schema
from wfcelery.definition.waits import check_nesting
from wfcelery.install import install
from wfcelery.messaging.consumers import describe
from wfcelery.plan.canvas import dropped_retries, translate
from wfcelery.plan.compiler import compile_workflow
from wfcelery.settings import check_json_accepted, check_not_eager


@click.command(
    "validate",
    epilog=epilog("""
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
@errors_to_exit
def validate(ctx: click.Context, flow: str, param: tuple[str, ...]) -> None:
    """Check a definition file: schema, names, parents, cycles, params, limits; with -A also that every
    task is registered and that the app can run it (workers accept JSON, no task_always_eager), and warn
    about queues no live worker consumes, and that every node's pool exists. Changes nothing; exits 2
    naming the first problem."""
    app = app_of(ctx, required=False)
    limits = limits_of(app)
    workflow = workflow_of(flow, limits)
    with definition_errors(flow):
        workflow.validate(app, limits)
        if app is not None:  # its sub-workflows: known to the app's engine, no recursion, not too deep
            engine = install(app)
            check_nesting(workflow, engine.definitions().get, engine.settings.max_nesting)
        given = parse_params(param)
        if param:
            workflow.resolve_params(given, limits)
        routes = install(app).settings.routes if app is not None else None
        plan = compile_workflow(workflow, routes, limits)
        if app is not None:  # its pools: the app's setting, or set at run time
            install(app).check_pools(plan)
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
        users, others = workflow.placeholder_users(), workflow.param_names() - set(missing)
        for name in missing:  # where each is used: a misspelled ${dya} shows up here, next to its node
            hint = did_you_mean(name, others)  # e.g. a declared default spelled alike
            click.echo(f"  ${{{name}}} in node {', '.join(users.get(name, ['?']))}{hint}")
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
    epilog=epilog("""
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
@errors_to_exit
def graph(ctx: click.Context, flow: str, fmt: str, as_canvas: bool) -> None:
    """Show the DAG of a definition file, the Celery task messages it compiles to, and (--canvas) the
    native chains and chords of Workflow.to_canvas."""
    app = app_of(ctx, required=False)
    limits = limits_of(app)
    workflow = workflow_of(flow, limits)
    with definition_errors(flow):
        workflow.validate(app, limits)
    plan = compile_workflow(workflow, install(app).settings.routes if app is not None else None, limits)
    if app is not None:  # show the queue the app's task_routes pick for nodes without type/queue
        engine = install(app)
        routed = [
            replace(n, queue=engine.queue_of(n.task, n.queue) if n.has_task else None) for n in plan.nodes
        ]
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
        dropped = dropped_retries(plan)
        if dropped:
            click.echo(click.style("Warning: ", fg="yellow") + dropped, err=True)


@click.command(
    "schema",
    epilog=epilog("""
wfcelery schema > wfcelery.schema.json
# then, first line of a definition file (the YAML language server, VS Code's YAML extension):
# yaml-language-server: $schema=./wfcelery.schema.json"""),
)
def schema() -> None:
    """Print the JSON Schema of definition files (YAML or JSON), for editors to validate and complete them.

    It is the schema the loader validates every file with (generated from the model's own keys and
    option types): an editor using it reports what `validate` would, as you type."""
    echo_json(definition_schema())
