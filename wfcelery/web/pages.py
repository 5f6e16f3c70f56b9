"""The dashboard's pages: one HTML shell for every page; static/app.js draws the page the path names.

The shell carries the mount path (so the dashboard works under ``parent.mount("/wf", app)`` and behind a
proxy that strips a prefix and sets ``root_path``), read-only mode, and whether the login form offers the
``--auth`` user/password login. The shells are served without credentials (they hold no data); the page
asks ``GET /api/me`` who it is, and shows the login form when the answer is 401 (static/js/auth.js).
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

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
        # the login form asks for a user and password too when the server has an --auth login; who is
        # signed in and the role (what the page hides) come from GET /api/me
        "passwordLogin": bool(request.app.state.password_login),
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
