"""Who may do what: credentials (Bearer tokens, a token as a Basic password, the ``--auth`` admin login),
rate-limited per client address, the cross-site check on writes, read-only mode.

A pure ASGI middleware (not Starlette's BaseHTTPMiddleware), so the Server-Sent Events stream passes
through untouched. What every request passes before this one (Host allowlist, body limit, security
headers) is :mod:`wfcelery.web.shield`; what each role may call is :mod:`wfcelery.web.roles`.

* **Credentials** are required on every path but the dashboard's page shells and static files -- API,
  OpenAPI document, metrics -- once
  ``--auth user:password`` (``wfcelery_web_auth``) is given or any token exists
  (``engine.access_required()``, asked at most every :data:`TOKENS_CHECK_EVERY` seconds); until then the
  server is open and its caller is an anonymous admin. Accepted: ``Authorization: Bearer <token>``
  (``engine.authenticate``, asked on each request, so a revoked token is refused at once), Basic with a
  token as the password, and the ``--auth`` login (an admin, compared in constant time). A 401 challenges
  ``Bearer``, never ``Basic``: the browser's own login dialog would cover the dashboard's login form. The
  page shells hold no data: they load without credentials, and ``GET /api/me`` tells them whether to show
  the login form. A client address that sent wrong credentials ``wfcelery_web_auth_failures`` times within
  ``wfcelery_web_auth_window`` seconds is answered 429 with ``Retry-After`` until the window has passed
  (:mod:`wfcelery.web.ratelimit`). The request then runs under ``acting_as(<token name or Basic user>)``:
  the audit trail records who made each write.
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
import re
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio.to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from wfcelery.client.audit import acting_as
from wfcelery.errors import TrackerError, TrackerUnavailable
from wfcelery.settings import DEFAULT_WEB_AUTH_FAILURES, DEFAULT_WEB_AUTH_WINDOW, Settings
from wfcelery.tracker.access import TOKEN_PREFIX, Role
from wfcelery.web.errors import send_error
from wfcelery.web.ratelimit import FailureLimiter
from wfcelery.web.roles import ANONYMOUS, Principal

#: The caller while the tracker cannot tell whether credentials are needed (its Redis is down).
UNKNOWN = Principal("unknown", Role.VIEWER)

if TYPE_CHECKING:
    from wfcelery.client.engine import Engine

#: Seconds between two looks at whether any token exists (the switch to "credentials required" after the
#: first ``wfcelery token create`` takes at most this long).
TOKENS_CHECK_EVERY = 2.0

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# Bearer, not Basic: a Basic challenge makes a browser open its own login dialog over the dashboard's
# login form (a fetch() answered 401 with it does too).
_CHALLENGE = (b"www-authenticate", b'Bearer realm="wfcelery"')

#: The dashboard's page shells (and their static files) hold no data: served to anyone, so that a browser
#: without credentials gets the login form rather than an error. Everything else needs credentials.
_PAGES = re.compile(r"/(?:static/.*|runs/[^/]+/?|definitions(?:/[^/]+)?/?|schedules/?|history(?:/[^/]+)?/?)?")

Refusal = tuple[int, str, list[tuple[bytes, bytes]]]


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        auth: str | None = None,
        read_only: bool = False,
        allowed_origins: tuple[str, ...] = (),
        settings: Settings | None = None,
        engine: Engine | None = None,
    ) -> None:
        self.app = app
        self.credentials = _credentials(auth) if auth else None
        self.read_only = read_only
        self.allowed = {o.rstrip("/").lower() for o in allowed_origins}
        self.failures = FailureLimiter(
            settings.web_auth_failures if settings else DEFAULT_WEB_AUTH_FAILURES,
            settings.web_auth_window if settings else DEFAULT_WEB_AUTH_WINDOW,
        )
        self.engine = engine
        self._tokens_seen = False
        self._tokens_seen_at: float | None = None  # when the tracker was last asked (monotonic)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD") and _PAGES.fullmatch(_route_path(scope)):
            await self.app(scope, receive, send)  # no credentials looked at: the shell asks /api/me
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        try:
            found = await self._identify(headers.get("authorization"), client[0] if client else "")
        except (TrackerUnavailable, TrackerError) as e:
            if not self._open_during_outage(scope["path"]):
                await send_error(send, 503, str(e), kind=type(e).__name__)
                return
            found = UNKNOWN  # the dashboard's own files hold no data: it loads, and its API calls say why
        refusal = found if not isinstance(found, Principal) else self._check(scope["method"], headers)
        if refusal is None:
            assert isinstance(found, Principal)
            scope.setdefault("state", {})["principal"] = found
            with acting_as(found.name):
                await self.app(scope, receive, send)
            return
        status, message, extra = refusal
        await send_error(send, status, message, extra)

    def _open_during_outage(self, path: str) -> bool:
        """Whether ``path`` (not a page shell: those never ask) is served while the tracker cannot be asked
        who may see it: never the API, the OpenAPI document or the metrics; anything else only where the
        last answer was that no credentials are needed. Fails closed: once tokens were seen (or before any
        answer), 503."""
        if path.startswith("/api/") or path in ("/openapi.json", "/metrics"):
            return False
        return self._tokens_seen_at is not None and not self._tokens_seen

    def _check(self, method: str, headers: dict[str, str]) -> Refusal | None:
        if method in SAFE_METHODS:
            return None
        if self.read_only:
            return 403, "this dashboard is read-only: runs cannot be started or controlled here", []
        if not self._same_site(headers):
            return 403, "cross-site request refused (Origin does not match this server)", []
        return None

    async def _identify(self, header: str | None, client: str) -> Principal | Refusal:
        """Who sent the request, or the refusal: 429 while the address is locked out, 401 without valid
        credentials where credentials are needed (``--auth`` given, or any token created)."""
        required = self.credentials is not None or await self._tokens_exist()
        if not required and header is None:
            return ANONYMOUS
        wait = self.failures.retry_after(client)
        if wait is not None:
            message = f"too many failed logins from this address: try again in {wait} s"
            return 429, message, [(b"retry-after", str(wait).encode())]
        if header is None:  # a browser's first request: not a failed login
            return 401, "authentication required", self._challenge()
        principal = await self._principal(header)
        if principal is None:
            self.failures.failed(client)
            return 401, "authentication required: wrong, unknown or revoked credentials", self._challenge()
        self.failures.succeeded(client)
        return principal

    async def _principal(self, header: str) -> Principal | None:
        scheme, _, value = header.partition(" ")
        scheme, value = scheme.lower(), value.strip()
        if scheme == "bearer":
            return await self._token(value)
        if scheme != "basic":
            return None
        try:
            given = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        if self.credentials is not None and secrets.compare_digest(given, self.credentials):
            return Principal(given.decode(errors="replace").partition(":")[0], Role.ADMIN)
        password = given.decode(errors="replace").partition(":")[2]
        # a token as the password of a Basic login: for clients that only speak Basic
        return await self._token(password) if password.startswith(TOKEN_PREFIX) else None

    async def _token(self, token: str) -> Principal | None:
        if self.engine is None or not token or len(token) > 200:
            return None
        info = await anyio.to_thread.run_sync(self.engine.authenticate, token)
        return Principal(info.name, info.role) if info is not None else None

    async def _tokens_exist(self) -> bool:
        """engine.access_required(), asked at most every :data:`TOKENS_CHECK_EVERY` seconds."""
        if self.engine is None:
            return False
        now = time.monotonic()
        if self._tokens_seen_at is not None and now - self._tokens_seen_at < TOKENS_CHECK_EVERY:
            return self._tokens_seen
        self._tokens_seen = await anyio.to_thread.run_sync(self.engine.access_required)
        self._tokens_seen_at = now
        return self._tokens_seen

    def _challenge(self) -> list[tuple[bytes, bytes]]:
        return [_CHALLENGE]

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


def _route_path(scope: Scope) -> str:
    """The request's path below the app's mount path (``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _credentials(auth: str) -> bytes:
    user, sep, password = auth.partition(":")
    if not sep or not user:
        raise ValueError("web auth must be 'user:password'")
    return f"{user}:{password}".encode()
