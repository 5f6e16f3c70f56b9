"""Run history over REST (``/api/history/...``) and its dashboard page (``/history``, ``/history/{name}``,
drawn by ``static/history.js``).

* ``GET /api/history/runs``: search by workflow, status, creation time range, run key and a text match in
  the params; newest first, one page per call, ``next`` is the cursor of the next page.
* ``GET /api/history/workflows/{name}``: success rate and duration p50/p95 over its recent ended runs,
  runs per day, the last failures with their errors.
* ``GET /api/history/workflows/{name}/nodes/{node}``: the node's duration across recent runs.

The page is its own small HTML shell (``static/history.html``) with its own script, beside the runs
dashboard: it shares only ``app.css`` and the top bar's links.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from wfcelery.client.history import HistoryError
from wfcelery.tracker.states import RunStatus
from wfcelery.web.api import EngineDep

STATIC = FilePath(__file__).parent / "static"

history_router = APIRouter(prefix="/api/history", tags=["history"])
history_pages = APIRouter(include_in_schema=False)

_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "A bad filter (names it): unknown status, empty time range, bad cursor"},
    503: {"description": "The tracker's Redis cannot be reached"},
}
Name = Annotated[str, Path(max_length=200, description="Workflow name")]


async def _bad_query(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"error": str(exc), "type": type(exc).__name__}, status_code=422)


#: Exception -> handler, installed by create_app beside the API's.
history_errors: dict[type[Exception], Callable[[Request, Exception], Any]] = {HistoryError: _bad_query}


@history_router.get("/runs", summary="Search runs, newest first", responses=_ERRORS)
def search_runs(
    engine: EngineDep,
    workflow: Annotated[str | None, Query(max_length=200, description="Runs of this workflow")] = None,
    status: Annotated[RunStatus | None, Query(description="Runs in this status")] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="Created at or after (unix s)")] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11, description="Created before (unix s)")] = None,
    run_key: Annotated[str | None, Query(max_length=500, description="The run's run key")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Text in the run's params")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=80, description="`next` of the previous page")] = None,
) -> dict[str, Any]:
    page = engine.search_runs(
        workflow=workflow,
        status=status,
        since=since,
        until=until,
        run_key=run_key,
        text=q or None,
        limit=limit,
        cursor=cursor,
    )
    return page.to_dict()


@history_router.get("/workflows/{name}", summary="A workflow's record", responses=_ERRORS)
def workflow_record(
    engine: EngineDep,
    name: Name,
    recent: Annotated[int, Query(ge=1, le=1000, description="Ended runs the rates are over")] = 200,
    days: Annotated[int, Query(ge=1, le=90, description="Days of the runs-per-day chart")] = 14,
) -> dict[str, Any]:
    return engine.workflow_record(name, recent=recent, days=days).to_dict()


@history_router.get("/workflows/{name}/nodes/{node}", summary="A node's duration trend", responses=_ERRORS)
def node_trend(
    engine: EngineDep,
    name: Name,
    node: Annotated[str, Path(max_length=200, description="Node name")],
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    return {"workflow": name, "node": node, "runs": engine.node_trend(name, node, limit=limit)}


@cache
def _shell() -> str:
    return (STATIC / "history.html").read_text(encoding="utf-8")


def _page(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    body = (
        _shell()
        .replace("{{root}}", html.escape(root))
        .replace(
            "{{config}}",
            html.escape(
                json.dumps({"root": root, "passwordLogin": bool(request.app.state.password_login)}),
                quote=True,
            ),
        )
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


@history_pages.get("/history", response_class=HTMLResponse)
def history_page(request: Request) -> HTMLResponse:
    return _page(request)


@history_pages.get("/history/{name}", response_class=HTMLResponse)
def workflow_page(request: Request, name: str) -> HTMLResponse:
    return _page(request)
