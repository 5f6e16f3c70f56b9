"""The dashboard's pages: one HTML shell for every page; static/app.js draws the page the path names.

The shell carries the mount path (so the dashboard works under ``parent.mount("/wf", app)`` and behind a
proxy that strips a prefix and sets ``root_path``) and the two settings the browser needs: read-only mode
and Flower's URL.
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from wfcelery.web.roles import principal_of

STATIC = Path(__file__).parent / "static"

pages = APIRouter(include_in_schema=False)


@cache
def _shell() -> str:
    return (STATIC / "index.html").read_text(encoding="utf-8")


def _page(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "").rstrip("/")
    config = {
        "root": root,
        "readOnly": bool(request.app.state.read_only),
        "user": principal_of(request).name,
        "role": principal_of(request).role.value,  # the page hides what the role cannot do
        "flowerUrl": request.app.state.flower_url,
    }
    body = (
        _shell()
        .replace("{{root}}", html.escape(root))
        .replace("{{config}}", html.escape(json.dumps(config), quote=True))
    )
    return HTMLResponse(body, headers={"Cache-Control": "no-store"})


@pages.get("/", response_class=HTMLResponse)
def runs_page(request: Request) -> HTMLResponse:
    return _page(request)


@pages.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: str) -> HTMLResponse:
    return _page(request)


@pages.get("/definitions", response_class=HTMLResponse)
def definitions_page(request: Request) -> HTMLResponse:
    return _page(request)


@pages.get("/schedules", response_class=HTMLResponse)
def schedules_page(request: Request) -> HTMLResponse:
    return _page(request)


@pages.get("/definitions/{name}", response_class=HTMLResponse)
def definition_page(request: Request, name: str) -> HTMLResponse:
    return _page(request)
