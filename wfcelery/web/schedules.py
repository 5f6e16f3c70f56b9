"""The REST API of schedules and run keys: ``/api/schedules`` (list, create, one with its recent runs,
pause, resume, delete, backfill) and ``/api/run-keys/{key}``.

Errors answer as the rest of the API: 422 a bad schedule (``{"error": "cron: invalid cron expression
..."}``, naming the field; nothing stored), 404 an unknown schedule or run key, 409 a run key held
(``on_conflict: fail``), 503 the tracker unreachable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from wfcelery.definition.model import Workflow
from wfcelery.errors import RunKeyConflict, ScheduleError, ScheduleNotFound
from wfcelery.web.api import EngineDep
from wfcelery.web.errors import NotFound

router = APIRouter(prefix="/api", tags=["schedules"])

Name = Annotated[str, Path(max_length=200, description="The schedule's name")]
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No schedule of that name"},
    503: {"description": "The tracker's Redis cannot be reached"},
}


def _error(status: int) -> Callable[[Request, Exception], Any]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"error": str(exc), "type": type(exc).__name__}, status_code=status)

    return handle


#: Installed by create_app beside the API's own handlers.
errors: dict[type[Exception], Callable[[Request, Exception], Any]] = {
    ScheduleNotFound: _error(404),
    RunKeyConflict: _error(409),
}


class ScheduleRequest(BaseModel):
    """A schedule: a known definition (``workflow``) or a whole ``definition``, and exactly one of
    ``cron`` and ``every``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=200, description="The schedule's name (letters, digits, _ . -)")
    workflow: str | None = Field(None, max_length=200, description="A definition known to the engine")
    definition: dict[str, Any] | None = Field(None, description="A definition (the YAML/JSON schema)")
    cron: str | None = Field(None, max_length=200, description="5 fields, or 6 with seconds last")
    every: int | str | None = Field(None, description="Seconds, or a duration: 30s, 15m, 1h")
    timezone: str | None = Field(None, max_length=100, description="IANA time zone of cron (UTC)")
    params: dict[str, Any] = Field(default_factory=dict, description="The runs' params")
    catchup: bool = Field(False, description="After downtime, fire every missed slot (bounded)")
    max_active_runs: int | None = Field(None, description="A due slot waits while this many runs live")


class BackfillRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str = Field(max_length=64, description="First instant, ISO 8601 (UTC unless an offset)")
    end: str = Field(max_length=64, description="Last instant, inclusive")
    dry_run: bool = Field(False, description="List the slots, fire nothing")


def _workflow(engine: Any, body: ScheduleRequest) -> Workflow | dict[str, Any]:
    """Only a known definition or an inline one: a request never names a file on the server."""
    if (body.workflow is None) == (body.definition is None):
        raise ScheduleError("workflow", "give exactly one of 'workflow' (a known definition) or 'definition'")
    if body.definition is not None:
        return body.definition
    known: dict[str, Workflow] = engine.definitions()
    if body.workflow not in known:
        names = ", ".join(sorted(known)) or "none"
        raise ScheduleError("workflow", f"unknown workflow {body.workflow!r} (known: {names})")
    return known[body.workflow]


@router.get("/schedules", summary="Schedules: when they fire, next and last slot, paused")
def list_schedules(engine: EngineDep) -> list[dict[str, Any]]:
    return [info.to_dict() for info in engine.schedules()]


@router.post(
    "/schedules",
    status_code=201,
    summary="Create (or replace) a schedule",
    responses={422: {"description": "A bad field, named (nothing stored)"}, 503: _ERRORS[503]},
)
def create_schedule(body: ScheduleRequest, engine: EngineDep, response: Response) -> dict[str, Any]:
    info = engine.schedule(
        body.name,
        _workflow(engine, body),
        cron=body.cron,
        every=body.every,
        timezone=body.timezone,
        params=body.params,
        catchup=body.catchup,
        max_active_runs=body.max_active_runs,
    )
    response.headers["Location"] = f"/api/schedules/{info.name}"
    return info.to_dict()


@router.get("/schedules/{name}", summary="One schedule and its recent runs", responses=_ERRORS)
def get_schedule(engine: EngineDep, name: Name, limit: int = 20) -> dict[str, Any]:
    info = engine.schedule_info(name)
    runs = engine.schedule_runs(name, max(1, min(limit, 50)))
    return {
        **info.to_dict(),
        "runs": [{"slot": slot, "run": run.to_dict() if run else None} for slot, run in runs],
    }


@router.post("/schedules/{name}/pause", summary="Stop firing (live runs go on)", responses=_ERRORS)
def pause_schedule(engine: EngineDep, name: Name) -> dict[str, Any]:
    return engine.pause_schedule(name).to_dict()


@router.post("/schedules/{name}/resume", summary="Fire again from the next slot", responses=_ERRORS)
def resume_schedule(engine: EngineDep, name: Name) -> dict[str, Any]:
    return engine.resume_schedule(name).to_dict()


@router.delete(
    "/schedules/{name}", status_code=204, summary="Remove a schedule (its runs stay)", responses=_ERRORS
)
def delete_schedule(engine: EngineDep, name: Name) -> Response:
    engine.unschedule(name)
    return Response(status_code=204)


@router.post(
    "/schedules/{name}/backfill",
    summary="Fire every slot of a range once (fired slots keep their run); dry_run lists them",
    responses={**_ERRORS, 422: {"description": "A bad start or end, or too many slots"}},
)
def backfill_schedule(engine: EngineDep, name: Name, body: BackfillRequest) -> list[dict[str, Any]]:
    return [s.to_dict() for s in engine.backfill(name, body.start, body.end, dry_run=body.dry_run)]


@router.get(
    "/run-keys/{key}",
    summary="The run holding a run key",
    responses={404: {"description": "No kept run holds the key"}},
)
def run_by_key(engine: EngineDep, key: Annotated[str, Path(max_length=512)]) -> dict[str, str]:
    run = engine.run_by_key(key)
    if run is None:
        raise NotFound(f"no run holds the run key {key!r}")
    return {"id": run.id, "url": f"/api/runs/{run.id}"}
