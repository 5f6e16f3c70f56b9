"""What every request meets first, whoever sent it: the Host allowlist, the body limit, and the security
headers every response carries (docs/web-security.md).

A pure ASGI middleware, outermost, so its headers are on every answer -- the other middlewares'
refusals, the router's 404, the event stream -- and nothing reaches the application before the ``Host``
is known and the body is bounded.

* **Host allowlist** (``wfcelery_web_allowed_hosts``, ``--allowed-host``; loopback names by default): a
  request naming another host answers 400. A page on ``evil.example`` whose name an attacker points at
  127.0.0.1 (DNS rebinding) sends ``Host: evil.example`` and a matching ``Origin``: the cross-site check
  alone would let its writes through.
* **Body limit** (``wfcelery_web_max_body_bytes``): a ``Content-Length`` over it answers 413 before one
  byte of the body is read; a chunked body is counted as it arrives and cut off at the limit. The
  connection is closed after the 413 (the rest of the body is never read).
* **Headers**: ``Content-Security-Policy`` (scripts, styles and requests from this server only, no
  inline script or style, no framing), ``X-Frame-Options: DENY`` (the same for older browsers),
  ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wfcelery.settings import Settings
from wfcelery.web.errors import error_response, send_error

#: The dashboard loads its scripts, styles and data from its own server only; the favicon is a data: URL.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
)

_CLOSE = (b"connection", b"close")


class Shield:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = HostAllowlist(settings.web_allowed_hosts)
        self.max_body = settings.web_max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        headers = dict(scope["headers"])
        host = headers.get(b"host", b"").decode("latin-1")
        if not self.hosts.allows(host):
            await send_error(send, 400, self.hosts.refusal(host), kind="BadHost")
            return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await send_error(send, 413, self._too_large(), [_CLOSE])
            return
        await BodyLimit(self.max_body, self._too_large()).run(self.app, scope, receive, send)

    def _too_large(self) -> str:
        return f"the request body is over {self.max_body:,} bytes (wfcelery_web_max_body_bytes)"


class BodyLimit:
    """One request's body, counted as the application reads it; past the limit the client gets 413 and
    the application a disconnect (its own answer, if any, is dropped)."""

    def __init__(self, limit: int, message: str) -> None:
        self.limit = limit
        self.message = message
        self.received = 0
        self.started = False
        self.refused = False

    async def run(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] != "http.request" or self.refused:
                return message
            self.received += len(message.get("body", b""))
            if self.received <= self.limit:
                return message
            self.refused = True
            if not self.started:
                self.started = True
                await send_error(send, 413, self.message, [_CLOSE])
            return {"type": "http.disconnect"}

        async def guarded_send(message: Message) -> None:
            if self.refused:
                return
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        await app(scope, limited_receive, guarded_send)


class HostAllowlist:
    """``Host`` names served: exact names, ``*.domain`` (its subdomains) or ``*`` (any); any port."""

    def __init__(self, allowed: tuple[str, ...]) -> None:
        self.allowed = tuple(a.strip().lower() for a in allowed if a.strip())
        self.any = "*" in self.allowed
        self.names = frozenset(_name(a) for a in self.allowed if not a.startswith("*"))
        self.suffixes = tuple(a[1:] for a in self.allowed if a.startswith("*.") and len(a) > 2)

    def allows(self, host: str) -> bool:
        if self.any:
            return True
        name = _name(host.strip().lower())
        return bool(name) and (name in self.names or name.endswith(self.suffixes))

    def refusal(self, host: str) -> str:
        shown = host if len(host) <= 100 else host[:100] + "…"
        return (
            f"Host {shown!r} is not served here (allowed: {', '.join(self.allowed) or 'none'}); "
            "add the name this server is reached by with --allowed-host or wfcelery_web_allowed_hosts"
        )


def _name(host: str) -> str:
    """``example.com:8555`` -> ``example.com``; ``[::1]:8555`` -> ``[::1]``."""
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else ""
    name, sep, port = host.rpartition(":")
    return name if sep and port.isdigit() else host


def _with_headers(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers: list[Any] = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            headers += [h for h in SECURITY_HEADERS if h[0] not in present]
            message = {**message, "headers": headers}
        await send(message)

    return send_with_headers


class OriginReads(CORSMiddleware):
    """Starlette's CORS, for the configured origins and GET only, without credentials; a preflight it
    refuses answers in the error shape like every other refusal."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        super().__init__(
            app, allow_origins=list(origins), allow_methods=["GET"], allow_headers=["Last-Event-ID"]
        )

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = bytes(response.body).decode() + " (wfcelery_web_cors_origins, --cors-origin)"
        return error_response(response.status_code, refused, "BadRequest")
