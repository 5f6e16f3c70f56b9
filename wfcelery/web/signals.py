"""REST routes of nodes waiting on people and partners: signal a wait node, list the nodes waiting for one.

``POST /api/runs/{id}/nodes/{node}/signal``: the request body, any JSON (none: null), is the payload that
becomes the node's result. 409 when the node takes no signal now (not a wait node, not reached yet,
signalled already, a paused or finished run: the ``SignalRefused`` text), 422 for a payload that is no
JSON or over the bounds of a result, 404 for an unknown run or node. ``GET /api/waiting``: "Waiting for
you", the nodes waiting for a signal in every run, longest waiting first.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query

from wfcelery.web.api import _CONTROL_ERRORS, EngineDep, RunDep
from wfcelery.web.errors import NotFound

router = APIRouter(prefix="/api")

_SIGNAL_ERRORS: dict[int | str, dict[str, Any]] = {
    **_CONTROL_ERRORS,
    409: {"description": "The node takes no signal now (the SignalRefused text); nothing changed"},
    422: {"description": "The payload is no JSON, or over wfcelery_max_result_bytes / wfcelery_max_depth"},
}


@router.post(
    "/runs/{run_id}/nodes/{node}/signal",
    summary="Signal a wait node: the JSON body becomes its result (the run's new state)",
    responses=_SIGNAL_ERRORS,
)
def signal_node(
    run: RunDep,
    node: Annotated[str, Path(max_length=500)],
    payload: Annotated[Any, Body(description="The payload, any JSON; no body: null")] = None,
) -> dict[str, Any]:
    try:
        return run.signal(node, payload).to_dict()
    except KeyError:
        raise NotFound(f"run {run.id} has no node {node!r}") from None


@router.get("/waiting", summary="Nodes waiting for a signal, in every run, longest waiting first")
def list_waiting(engine: EngineDep, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[dict[str, Any]]:
    return [w.to_dict() for w in engine.waiting(limit)]
