"""The REST API: ``/api/...`` routes and their request models.

Every error answers ``{"error": "<one line naming the problem>", "type": "<exception name>"}``
(:mod:`wfcelery.web.errors`): 404 an unknown run, node or definition; 409 a control operation the run's
state refuses (the ControlError text); 422 an invalid definition or params (naming the node or field);
503 the tracker's Redis or the broker cannot be reached. Routes are plain ``def``: FastAPI runs them in
its thread pool, since the engine's calls block.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from wfcelery import __version__
from wfcelery.client.engine import Engine
from wfcelery.client.run import Run
from wfcelery.definition.executor import Executor
from wfcelery.definition.model import Workflow
from wfcelery.definition.registry import did_you_mean
from wfcelery.errors import (
    DefinitionError,
    RunNotFound,
)
from wfcelery.ops.runkeys import OnConflict
from wfcelery.plan.compiler import Plan, compile_workflow
from wfcelery.tracker.states import NodeStatus, RunStatus
from wfcelery.web.errors import NotFound
from wfcelery.web.inputs import refuse_bidi
from wfcelery.web.roles import authorize
from wfcelery.web.stream import checked_cursor, event_stream

#: Bytes of a node's JSON result shown by ``/api/runs/{id}/nodes/{node}``.
RESULT_PREVIEW_BYTES = 4096
#: Deepest page of ``GET /api/runs`` (offset + limit): the list is for people, not for bulk export.
MAX_LISTED = 10_000

_RUN_ID = re.compile(r"[0-9a-f]{32}")

router = APIRouter(prefix="/api", dependencies=[Depends(authorize)])


# -- documented errors (web/errors.py answers them) ------------------------------------------------------

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such run (wrong id, cleaned up or expired), node or definition"},
    503: {"description": "The tracker's Redis (or the broker) cannot be reached"},
}
_BAD_EVENT_ID: dict[int | str, dict[str, Any]] = {
    400: {"description": "Last-Event-ID (or last_event_id) is no id this run's stream sent"}
}
_CONTROL_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"description": "Refused in the run's current state (the ControlError text)"},
}


# -- dependencies ----------------------------------------------------------------------------------------


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(engine_of)]
RunId = Annotated[str, Path(description="Run id (32 hex digits)", max_length=200)]


def existing_run(engine: EngineDep, run_id: RunId) -> Run:
    """The run, or 404 -- an id that is not a run id never reaches Redis."""
    if not _RUN_ID.fullmatch(run_id):
        raise RunNotFound(run_id)
    return engine.run(run_id)


RunDep = Annotated[Run, Depends(existing_run)]


# -- models ----------------------------------------------------------------------------------------------


class SubmitRequest(BaseModel):
    """Start a run: the ``name`` of a definition the engine knows, or a whole ``definition``."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="A definition known to the engine (GET /api/definitions)")
    definition: dict[str, Any] | None = Field(None, description="A definition (the YAML/JSON schema)")
    params: dict[str, Any] = Field(default_factory=dict, description="Values for ${name} placeholders")
    executor: Executor | None = Field(
        None, description="How the run is published (default: the definition's, else wfcelery_executor)"
    )
    run_key: str | None = Field(
        None,
        max_length=512,
        description="At most one run per key: a key already held answers 200 with its run",
    )
    on_conflict: OnConflict = Field(
        OnConflict.USE_EXISTING, description="A held run_key: return its run, 409, or retry it if it failed"
    )
    deadline: str | float | None = Field(
        None,
        description='Fail the run ("deadline exceeded") if it has not ended this long after now: '
        "a duration like 30m or 2h, or seconds; overrides the definition's deadline",
    )


class Submitted(BaseModel):
    id: str
    url: str
    created: bool = True


class RunPage(BaseModel):
    runs: list[dict[str, Any]]
    limit: int
    offset: int
    next_offset: int | None = Field(description="offset of the next (older) page; null on the last one")


# -- runs ------------------------------------------------------------------------------------------------


@router.get("/health", summary="Liveness and the tracker's reachability", responses={503: _ERRORS[503]})
def health(request: Request, engine: EngineDep) -> dict[str, Any]:
    engine.runs(limit=1)  # one round trip to the tracker: raises TrackerUnavailable when it is down
    return {"status": "ok", "version": __version__, "read_only": request.app.state.read_only}


@router.get("/runs", summary="Runs, newest first", response_model=RunPage, responses={503: _ERRORS[503]})
def list_runs(
    engine: EngineDep,
    status: Annotated[RunStatus | None, Query(description="Only runs in this status")] = None,
    name: Annotated[str | None, Query(max_length=200, description="Only runs of this workflow")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_LISTED)] = 0,
) -> dict[str, Any]:
    wanted = min(offset + limit + 1, MAX_LISTED + 1)
    found = engine.runs(status=status.value if status else None, name=name, limit=wanted)
    page = found[offset : offset + limit]
    more = len(found) > offset + limit and offset + limit < MAX_LISTED
    return {
        "runs": [r.to_dict() for r in page],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
    }


@router.post(
    "/runs",
    status_code=201,
    response_model=Submitted,
    summary="Start a run (201), or with a run_key already held, its run (200)",
    responses={
        200: {"description": "The run_key is held: the run holding it", "model": Submitted},
        409: {"description": "The run_key is held and on_conflict is fail"},
        404: {"description": "No definition of that name"},
        422: {"description": "Invalid definition or params (names the node or field)"},
        503: _ERRORS[503],
    },
)
def submit(body: SubmitRequest, engine: EngineDep, response: Response) -> dict[str, Any]:
    refuse_bidi(body.name, body.definition, body.params)
    if (body.name is None) == (body.definition is None):
        raise DefinitionError("give exactly one of 'name' (a known definition) or 'definition'")
    workflow: Workflow | dict[str, Any]
    if body.name is not None:
        known = engine.definitions()
        if body.name not in known:
            skipped = engine.skipped_definitions.get(body.name)
            if skipped is not None:  # the file is there but invalid: say why, as validate would
                raise DefinitionError(f"definition {body.name!r} is invalid: {skipped}")
            hint = did_you_mean(body.name, known)
            raise NotFound(f"no definition named {body.name!r}{hint} (GET /api/definitions lists them)")
        workflow = known[body.name]
    else:
        assert body.definition is not None
        workflow = body.definition
    run = engine.submit(
        workflow,
        params=body.params,
        executor=body.executor,
        run_key=body.run_key,
        on_conflict=body.on_conflict,
        deadline=body.deadline,
    )
    response.headers["Location"] = f"/api/runs/{run.id}"
    if not run.created:
        response.status_code = 200
    return {"id": run.id, "url": f"/api/runs/{run.id}", "created": run.created}


@router.get(
    "/runs/{run_id}",
    summary="A run: status, counts, every node (the `status --json` shape)",
    responses=_ERRORS,
)
def get_run(run: RunDep) -> dict[str, Any]:
    return run.state().to_dict()


@router.get(
    "/runs/{run_id}/graph",
    summary="The run's DAG: nodes, tasks, queues (as status routes them), parents, map and trigger rules",
    responses=_ERRORS,
)
def get_graph(run: RunDep, engine: EngineDep) -> dict[str, Any]:
    return graph(run.plan(), engine.queue_of)


@router.get("/runs/{run_id}/results", summary="Results of the nodes that succeeded", responses=_ERRORS)
def get_results(run: RunDep) -> dict[str, Any]:
    return run.results()


@router.get(
    "/runs/{run_id}/nodes/{node}",
    summary="One node: status, attempts, worker, error with traceback, result preview",
    responses=_ERRORS,
)
def get_node(run: RunDep, node: Annotated[str, Path(max_length=500)], request: Request) -> dict[str, Any]:
    try:
        found = run.node(node)  # a node, or an instance of a mapped node: resize[3]
    except KeyError:
        raise NotFound(f"run {run.id} has no node {node!r}") from None
    plan = run.plan()
    plan_node = plan.nodes[found.index]
    preview, truncated = _preview(run.result(node) if found.status is NodeStatus.SUCCEEDED else None)
    flower = request.app.state.flower_url
    return {
        **found.to_dict(),
        "index": found.index,
        "epoch": found.epoch,
        "task": plan_node.describe(),
        "parents": [plan.nodes[p].name for p in plan_node.parents],
        "result_preview": preview,
        "result_truncated": truncated,
        "flower_url": f"{flower}/task/{found.task_id}" if flower and plan_node.has_task else None,
    }


def _preview(result: Any) -> tuple[str | None, bool]:
    if result is None:
        return None, False
    text = json.dumps(result, default=repr, ensure_ascii=False)
    data = text.encode()
    if len(data) <= RESULT_PREVIEW_BYTES:
        return text, False
    return data[:RESULT_PREVIEW_BYTES].decode(errors="ignore") + "…", True


@router.post("/runs/{run_id}/pause", summary="Pause: nodes not started yet wait", responses=_CONTROL_ERRORS)
def pause_run(run: RunDep) -> dict[str, Any]:
    return run.pause().to_dict()


@router.post("/runs/{run_id}/resume", summary="Resume a paused run", responses=_CONTROL_ERRORS)
def resume_run(run: RunDep) -> dict[str, Any]:
    return run.resume().to_dict()


@router.post(
    "/runs/{run_id}/cancel",
    summary="Cancel for good (terminate=true also stops running tasks, prefork/gevent pools)",
    responses=_CONTROL_ERRORS,
)
def cancel_run(run: RunDep, terminate: bool = False) -> dict[str, Any]:
    return run.cancel(terminate=terminate).to_dict()


@router.post(
    "/runs/{run_id}/retry",
    summary="Retry a FAILED or CANCELLED run: re-run what did not succeed",
    responses=_CONTROL_ERRORS,
)
def retry_run(run: RunDep) -> dict[str, Any]:
    return run.retry().to_dict()


@router.delete(
    "/runs/{run_id}",
    status_code=204,
    summary="Clean up: delete every key of the run (409 for a live run unless force=true)",
    responses=_CONTROL_ERRORS,
)
def delete_run(run: RunDep, force: bool = False) -> Response:
    run.cleanup(force=force)
    return Response(status_code=204)


@router.get(
    "/runs/{run_id}/events",
    summary="Server-Sent Events: every transition of the run, in order; resumable with Last-Event-ID",
    response_class=Response,
    responses={
        200: {"content": {"text/event-stream": {}}},
        **_ERRORS,
        **_BAD_EVENT_ID,
        429: {"description": "This client or the server already follows as many streams as it may"},
    },
)
async def run_events(
    run: RunDep,
    request: Request,
    last_event_id: Annotated[
        str | None, Query(max_length=60, description="Resume after this event id (or the header)")
    ] = None,
) -> Response:
    cursor = request.headers.get("last-event-id") or last_event_id
    checked = await anyio.to_thread.run_sync(checked_cursor, run, cursor)
    client = request.client.host if request.client else ""
    return event_stream(run, checked, request.app.state.hub, client)


# -- definitions -----------------------------------------------------------------------------------------


def graph(plan: Plan, queue_of: Callable[[str, str | None], str] | None = None) -> dict[str, Any]:
    """A DAG as the dashboard draws it: nodes in index order, parents by name, each node's queue (the one
    its messages go to, as ``status`` shows it: ``queue_of`` routes a node without ``type``/``queue`` as
    the app's ``task_routes`` do), and what decides at run time whether and how often it runs: ``map``
    (the parent whose list it maps over), ``max_map``, ``when`` and ``trigger``."""
    return {
        "name": plan.name,
        "on_failure": plan.on_failure,
        "nodes": [
            {
                "name": n.name,
                "index": n.index,
                "task": n.describe(),
                "queue": queue_of(n.task, n.queue) if queue_of and n.has_task else n.queue,
                "parents": [plan.nodes[p].name for p in n.parents],
                "map": None if n.map is None else plan.nodes[n.map].name,
                "max_map": n.max_map,
                "when": n.when,
                "trigger": n.trigger,
                "retries": n.retries,
                "kind": n.kind.value,
            }
            for n in plan.nodes
        ],
    }


def _describe(wf: Workflow) -> dict[str, Any]:
    return {
        "name": wf.name,
        "nodes": len(wf.nodes),
        "on_failure": wf.on_failure,
        "params": sorted(wf.placeholders()),
        "defaults": wf.params,
    }


@router.get("/definitions", summary="Definitions the engine knows (register() or wfcelery_definitions)")
def list_definitions(engine: EngineDep) -> list[dict[str, Any]]:
    return [_describe(wf) for wf in engine.definitions().values()]


@router.get(
    "/definitions/{name}",
    summary="One definition: its schema, its DAG and the params it needs",
    responses={404: _ERRORS[404]},
)
def get_definition(engine: EngineDep, name: Annotated[str, Path(max_length=500)]) -> dict[str, Any]:
    wf = engine.definitions().get(name)
    if wf is None:
        raise NotFound(f"no definition named {name!r}")
    return {
        **_describe(wf),
        "definition": wf.to_dict(),
        "graph": graph(compile_workflow(wf, engine.settings.routes), engine.queue_of),
    }
