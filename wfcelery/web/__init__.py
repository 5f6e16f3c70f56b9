"""The web dashboard and REST API (extra ``wfcelery[web]``): ``wfcelery -A proj web``.

::

    from wfcelery.web import create_app
    asgi = create_app(engine)                 # a FastAPI app: mount it in your own ASGI app, or serve it
    parent_app.mount("/workflows", asgi)      # pages, API and static files follow the mount path

One ASGI app holds the REST API (``/api/...``, OpenAPI document at ``/openapi.json``), a Server-Sent
Events stream per run (``/api/runs/{id}/events``), the dashboard (``/``, ``/runs/{id}``,
``/definitions``; plain ES modules under ``/static/js/``) and ``/static/js/wf-run-progress.js``, the
custom element other pages embed. Everything is served from the package: no CDN, no build step. Every
request reaches Redis through the :class:`~wfcelery.client.engine.Engine` only.

Every request passes, in this order: :class:`~wfcelery.web.shield.Shield` (Host allowlist, body limit,
security headers), CORS for the configured origins only, :class:`~wfcelery.web.security.Guard` (auth,
rate-limited failures, cross-site writes, read-only). docs/web-security.md describes each.

Stack: FastAPI (request validation and the OpenAPI document from type hints) on Starlette and uvicorn,
with sse-starlette for the event stream (keep-alive pings, client disconnects, ``Last-Event-ID``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

try:
    from fastapi import Depends, FastAPI
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError("the wfcelery web dashboard needs its extra: pip install 'wfcelery[web]'") from e

from starlette.staticfiles import StaticFiles

from wfcelery import __version__
from wfcelery.definition.registry import import_task_modules
from wfcelery.errors import ConfigurationError
from wfcelery.settings import web_origins
from wfcelery.web import pools, schedules
from wfcelery.web.api import router
from wfcelery.web.errors import errors
from wfcelery.web.history import history_errors, history_pages, history_router
from wfcelery.web.hub import Hub
from wfcelery.web.metrics import metrics_router
from wfcelery.web.pages import pages
from wfcelery.web.roles import access, authorize
from wfcelery.web.security import Guard
from wfcelery.web.server import serve, server_config
from wfcelery.web.shield import OriginReads, Shield
from wfcelery.web.signals import router as signals_router

if TYPE_CHECKING:
    from wfcelery.client.engine import Engine

STATIC = Path(__file__).parent / "static"

__all__ = ["create_app", "serve", "served_hosts", "server_config"]

logger = logging.getLogger("wfcelery.web")

#: Bind addresses that name no host (every interface).
_ANY_INTERFACE = frozenset({"", "0.0.0.0", "::", "[::]"})


def create_app(
    engine: Engine,
    *,
    auth: str | None = None,
    read_only: bool = False,
    flower_url: str | None = None,
    allowed_origins: tuple[str, ...] = (),
    cors_origins: tuple[str, ...] | None = None,
    allowed_hosts: tuple[str, ...] | None = None,
) -> FastAPI:
    """The dashboard + REST API for one engine, as an ASGI application.

    Args:
        engine: the app's :class:`~wfcelery.client.engine.Engine` (``wfcelery.install(app)``).
        auth: ``"user:password"``: an admin login (HTTP Basic, or the dashboard's login form) required on
            every API route (default: the ``wfcelery_web_auth`` setting; none when unset). The page
            shells and static files hold no data and load without credentials, to show the login form.
        read_only: hide the control buttons and refuse every write (submit, control, delete) with 403.
        flower_url: Flower's base URL, to link every node to its task (default: ``wfcelery_flower_url``).
        allowed_origins: extra ``scheme://host[:port]`` origins allowed to send writes (the server's own
            origin always is): e.g. the public URL when a reverse proxy rewrites ``Host``.
        cors_origins: origins whose pages may read the API and embed ``<wf-run-progress>`` (default:
            ``wfcelery_web_cors_origins``; none).
        allowed_hosts: ``Host`` names served (default: ``wfcelery_web_allowed_hosts``; loopback names).

    The other ``wfcelery_web_*`` settings of the engine (body limit, failed-login limit, request
    timeout) apply as they are; docs/web-security.md describes each.
    """
    settings = engine.settings
    # The dashboard lists and submits definitions by the tasks the workers know: import the app's task
    # modules now, so that a broken one stops the server with its name rather than every request.
    import_task_modules(engine.app)
    if cors_origins is not None:
        settings = replace(settings, web_cors_origins=web_origins(list(cors_origins), "cors_origins"))
    if allowed_hosts is not None:
        settings = replace(settings, web_allowed_hosts=tuple(allowed_hosts))
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
    app.state.settings = settings
    app.state.hub = Hub()
    app.include_router(router)
    app.include_router(access)
    app.include_router(schedules.router, dependencies=[Depends(authorize)])
    app.include_router(pools.router, dependencies=[Depends(authorize)])
    app.include_router(signals_router, dependencies=[Depends(authorize)])
    app.include_router(pages)
    app.include_router(history_router, dependencies=[Depends(authorize)])
    app.include_router(history_pages)
    app.include_router(metrics_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for exc, handler in {**errors, **schedules.errors, **history_errors}.items():
        app.add_exception_handler(exc, handler)
    auth = auth if auth is not None else settings.web_auth
    if auth and (":" not in auth or auth.startswith(":")):
        raise ConfigurationError("web auth must be 'user:password' (--auth or wfcelery_web_auth)")
    app.state.password_login = bool(auth)
    # the middlewares run outermost last-added: Shield, then CORS, then Guard, then the routes
    app.add_middleware(
        Guard,
        auth=auth,
        read_only=read_only,
        allowed_origins=allowed_origins,
        settings=settings,
        engine=engine,
    )
    if settings.web_cors_origins:  # their pages may read runs (the embeddable element); writes stay ours
        app.add_middleware(OriginReads, origins=settings.web_cors_origins)
    app.add_middleware(Shield, settings=settings)
    return app


def served_hosts(engine: Engine, bind: str, given: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The ``Host`` names ``wfcelery web --host BIND [--allowed-host NAME ...]`` serves: the names given,
    else ``wfcelery_web_allowed_hosts`` (else the loopback names), plus BIND when it is one address."""
    hosts = tuple(given) or engine.settings.web_allowed_hosts
    if bind in _ANY_INTERFACE:
        if not given:
            logger.warning(
                "wfcelery web: listening on every interface, but only requests naming %s as Host are "
                "served: add the name clients use with --allowed-host",
                ", ".join(hosts),
            )
        return hosts
    name = f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind
    return hosts if name.lower() in {h.lower() for h in hosts} else (*hosts, name)
