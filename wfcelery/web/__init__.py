"""The web dashboard and REST API (extra ``wfcelery[web]``): ``wfcelery -A proj web``.

::

    from wfcelery.web import create_app
    asgi = create_app(engine)                 # a FastAPI app: mount it in your own ASGI app, or serve it
    parent_app.mount("/workflows", asgi)      # pages, API and static files follow the mount path

One ASGI app holds the REST API (``/api/...``, OpenAPI document at ``/openapi.json``), a Server-Sent
Events stream per run (``/api/runs/{id}/events``), the dashboard (``/``, ``/runs/{id}``,
``/definitions``) and ``/static/wf-run-progress.js``, the custom element other pages embed. Everything
is served from the package: no CDN, no build step. Every request reaches Redis through the
:class:`~wfcelery.client.engine.Engine` only.

Stack: FastAPI (request validation and the OpenAPI document from type hints) on Starlette and uvicorn,
with sse-starlette for the event stream (keep-alive pings, client disconnects, ``Last-Event-ID``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    from fastapi import FastAPI
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError("the wfcelery web dashboard needs its extra: pip install 'wfcelery[web]'") from e

from starlette.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles

from wfcelery import __version__
from wfcelery.errors import ConfigurationError
from wfcelery.web.api import errors, router
from wfcelery.web.pages import pages
from wfcelery.web.security import Guard
from wfcelery.web.signals import router as signals_router

if TYPE_CHECKING:
    from wfcelery.client.engine import Engine

STATIC = Path(__file__).parent / "static"

__all__ = ["create_app", "serve"]


def create_app(
    engine: Engine,
    *,
    auth: str | None = None,
    read_only: bool = False,
    flower_url: str | None = None,
    allowed_origins: tuple[str, ...] = (),
) -> FastAPI:
    """The dashboard + REST API for one engine, as an ASGI application.

    Args:
        engine: the app's :class:`~wfcelery.client.engine.Engine` (``wfcelery.install(app)``).
        auth: ``"user:password"`` puts every page, API route and static file behind HTTP Basic auth
            (default: the ``wfcelery_web_auth`` setting; none when unset).
        read_only: hide the control buttons and refuse every write (submit, control, delete) with 403.
        flower_url: Flower's base URL, to link every node to its task (default: ``wfcelery_flower_url``).
        allowed_origins: extra ``scheme://host[:port]`` origins allowed to send writes (the server's own
            origin always is): e.g. the public URL when a reverse proxy rewrites ``Host``.
    """
    settings = engine.settings
    app = FastAPI(
        title="wfcelery",
        version=__version__,
        description="Workflow runs on Celery: list, start, follow (Server-Sent Events) and control them.",
        # FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN: offline they are blank pages.
        # The dashboard must work offline, so only the OpenAPI document itself is served.
        docs_url=None,
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.read_only = read_only
    app.state.flower_url = (flower_url or settings.flower_url or "").rstrip("/") or None
    app.include_router(router)
    app.include_router(signals_router)
    app.include_router(pages)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for exc, handler in errors.items():
        app.add_exception_handler(exc, handler)
    auth = auth if auth is not None else settings.web_auth
    if auth and (":" not in auth or auth.startswith(":")):
        raise ConfigurationError("web auth must be 'user:password' (--auth or wfcelery_web_auth)")
    if not auth:  # pages elsewhere may read runs (the embeddable element); writes stay same-origin
        app.add_middleware(
            CORSMiddleware, allow_origins=["*"], allow_methods=["GET"], allow_headers=["Last-Event-ID"]
        )
    app.add_middleware(
        Guard,
        auth=auth,
        read_only=read_only,
        allowed_origins=allowed_origins,
    )
    return app


def serve(
    app: Any, host: str = "127.0.0.1", port: int = 8555, log_level: str = "info", root_path: str = ""
) -> None:
    """Run ``app`` on uvicorn until interrupted (what ``wfcelery web`` does).

    ``root_path``: the path prefix a reverse proxy strips (``/workflows``), so links and API calls keep it.
    """
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=True, root_path=root_path)
