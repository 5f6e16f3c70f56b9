"""Who may do what: HTTP Basic auth (rate-limited per client address), the cross-site check on writes,
read-only mode.

A pure ASGI middleware (not Starlette's BaseHTTPMiddleware), so the Server-Sent Events stream passes
through untouched. What every request passes before this one (Host allowlist, body limit, security
headers) is :mod:`wfcelery.web.shield`.

* **Auth** (``--auth user:password`` / ``wfcelery_web_auth``): every path -- pages, API, static files,
  the OpenAPI document -- answers 401 with a ``WWW-Authenticate`` challenge until the right credentials
  come. Compared in constant time. A client address that sent wrong credentials
  ``wfcelery_web_auth_failures`` times within ``wfcelery_web_auth_window`` seconds is answered 429 with
  ``Retry-After`` until the window has passed (:mod:`wfcelery.web.ratelimit`).
* **Cross-site writes**: a browser sends Basic credentials (and cookies) with any request, also one a
  hostile page triggers. A write (any method but GET/HEAD/OPTIONS) is refused with 403 when its
  ``Origin`` is not this server's own (``Host``; ``X-Forwarded-Host`` behind a proxy) nor an allowed
  one, or when the browser marks it ``Sec-Fetch-Site: cross-site``. Clients that send no ``Origin``
  (curl, other services) are not browsers acting for a third party, and pass.
* **Read-only**: every write answers 403.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from wfcelery.settings import DEFAULT_WEB_AUTH_FAILURES, DEFAULT_WEB_AUTH_WINDOW, Settings
from wfcelery.web.errors import send_error
from wfcelery.web.ratelimit import FailureLimiter

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_CHALLENGE = (b"www-authenticate", b'Basic realm="wfcelery", charset="UTF-8"')

Refusal = tuple[int, str, list[tuple[bytes, bytes]]]


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        auth: str | None = None,
        read_only: bool = False,
        allowed_origins: tuple[str, ...] = (),
        settings: Settings | None = None,
    ) -> None:
        self.app = app
        self.credentials = _credentials(auth) if auth else None
        self.read_only = read_only
        self.allowed = {o.rstrip("/").lower() for o in allowed_origins}
        self.failures = FailureLimiter(
            settings.web_auth_failures if settings else DEFAULT_WEB_AUTH_FAILURES,
            settings.web_auth_window if settings else DEFAULT_WEB_AUTH_WINDOW,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        refusal = self._check(scope["method"], headers, client[0] if client else "")
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, message, extra = refusal
        await send_error(send, status, message, extra)

    def _check(self, method: str, headers: dict[str, str], client: str) -> Refusal | None:
        if self.credentials:
            refusal = self._login(headers.get("authorization"), client)
            if refusal is not None:
                return refusal
        if method in SAFE_METHODS:
            return None
        if self.read_only:
            return 403, "this dashboard is read-only: runs cannot be started or controlled here", []
        if not self._same_site(headers):
            return 403, "cross-site request refused (Origin does not match this server)", []
        return None

    def _login(self, header: str | None, client: str) -> Refusal | None:
        wait = self.failures.retry_after(client)
        if wait is not None:
            message = f"too many failed logins from this address: try again in {wait} s"
            return 429, message, [(b"retry-after", str(wait).encode())]
        if header is None:  # a browser's first request: not a failed login
            return 401, "authentication required", [_CHALLENGE]
        if not self._authorized(header):
            self.failures.failed(client)
            return 401, "authentication required", [_CHALLENGE]
        self.failures.succeeded(client)
        return None

    def _authorized(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or self.credentials is None:
            return False
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return secrets.compare_digest(given, self.credentials)

    def _same_site(self, headers: dict[str, str]) -> bool:
        if headers.get("sec-fetch-site") == "cross-site":
            return False
        origin = headers.get("origin")
        if origin is None:
            return True
        origin = origin.rstrip("/").lower()
        if origin in self.allowed:
            return True
        hosts = {headers.get("host", "").lower()}
        hosts |= {h.strip().lower() for h in headers.get("x-forwarded-host", "").split(",") if h.strip()}
        return origin != "null" and urlsplit(origin).netloc in hosts - {""}


def _credentials(auth: str) -> bytes:
    user, sep, password = auth.partition(":")
    if not sep or not user:
        raise ValueError("web auth must be 'user:password'")
    return f"{user}:{password}".encode()
