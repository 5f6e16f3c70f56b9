"""How every error leaves the web server: ``{"error": "<one line naming the problem>", "type": "<kind>"}``.

The routes' exceptions, the router's own 404 and 405, request validation (422), the middlewares' refusals
(400 Host, 401, 403, 413, 429) and an unexpected failure (500) all answer in this one shape; a message
never echoes the request (a 422 names fields, not values) and is capped at :data:`MAX_ERROR_CHARS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from starlette.exceptions import HTTPException
from starlette.types import Send

from wfcelery.errors import (
    BrokerUnavailable,
    ControlError,
    DefinitionError,
    RunNotFound,
    TaskImportError,
    TrackerError,
    TrackerUnavailable,
    WfCeleryError,
)
from wfcelery.web.hub import TooManyStreams

#: Characters of an error message at most (a definition error listing thousands of names is cut).
MAX_ERROR_CHARS = 2000
#: Validation problems listed at most, in the message and in ``detail``.
MAX_PROBLEMS = 10

#: Status -> the ``type`` of an error the HTTP layer raises (no exception class of ours names it).
_KINDS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    413: "PayloadTooLarge",
    429: "TooManyRequests",
}


class NotFound(WfCeleryError):
    """An unknown node or definition (an unknown run is :class:`RunNotFound`)."""


class Forbidden(WfCeleryError):
    """The caller's role may not do this (answered 403)."""


class InvalidEventId(WfCeleryError):
    """A ``Last-Event-ID`` (or ``?last_event_id=``) that is no id the run's event stream sent."""


class InvalidInput(WfCeleryError):
    """A request field the web layer refuses (answered 422 as a ``ValidationError``)."""


def capped(message: str) -> str:
    if len(message) <= MAX_ERROR_CHARS:
        return message
    return f"{message[:MAX_ERROR_CHARS]}… ({len(message) - MAX_ERROR_CHARS:,} characters more)"


def error_body(message: str, kind: str, **extra: Any) -> bytes:
    return json.dumps({"error": capped(message), "type": kind, **extra}).encode()


def error_response(
    status: int, message: str, kind: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": capped(message), "type": kind}, status_code=status, headers=headers)


async def send_error(
    send: Send,
    status: int,
    message: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
    kind: str | None = None,
) -> None:
    """Answer from a pure ASGI middleware, before the application saw the request."""
    body = error_body(message, kind or _KINDS.get(status, "Error"))
    start_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": start_headers})
    await send({"type": "http.response.body", "body": body})


def _handler(status: int, kind: str | None = None) -> Callable[[Request, Exception], Any]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        return error_response(status, str(exc), kind or type(exc).__name__)

    return handle


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc)


async def _invalid(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each field and what is wrong with it; the values themselves are not sent back."""
    assert isinstance(exc, RequestValidationError)
    found = list(exc.errors())
    shown = found[:MAX_PROBLEMS]
    problems = [f"{_where(e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in shown]
    if len(found) > len(shown):
        problems.append(f"and {len(found) - len(shown):,} more problems")
    detail = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type"))}
        for e in shown
    ]
    body = {"error": capped("; ".join(problems)), "type": "ValidationError", "detail": detail}
    return JSONResponse(body, status_code=422)


async def _broker_down(request: Request, exc: Exception) -> JSONResponse:
    message = str(exc) if isinstance(exc, BrokerUnavailable) else f"cannot reach the Celery broker: {exc}"
    return error_response(503, message, "BrokerUnavailable")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """The router's and the static files' own errors: an unknown path (404), a method not served (405)."""
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    if status == 404:
        message = f"no page, file or API route at {request.url.path}"
    elif status == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"method {request.method} is not allowed on {request.url.path}" + (
            f" (allowed: {allowed})" if allowed else ""
        )
    else:
        message = str(exc.detail)
    return error_response(status, message, _KINDS.get(status, "HTTPError"), headers=exc.headers)


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    """Anything unexpected: the traceback goes to the server's log (uvicorn logs it), not to the client."""
    return error_response(500, "internal error (the server's log has the details)", "InternalServerError")


#: Exception -> handler, installed by create_app (Starlette picks the most specific class).
errors: dict[type[Exception], Callable[[Request, Exception], Any]] = {
    RequestValidationError: _invalid,
    HTTPException: _http_error,
    RunNotFound: _handler(404),
    NotFound: _handler(404),
    Forbidden: _handler(403),
    TooManyStreams: _handler(429),
    InvalidEventId: _handler(400),
    InvalidInput: _handler(422, "ValidationError"),
    ControlError: _handler(409),
    DefinitionError: _handler(422),
    TrackerUnavailable: _handler(503),
    TrackerError: _handler(503),
    BrokerUnavailable: _broker_down,
    OperationalError: _broker_down,
    TaskImportError: _handler(500),  # the server's app cannot import its own task modules
    WfCeleryError: _handler(400),
    Exception: _internal,
}
