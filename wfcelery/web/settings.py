"""The web server's own settings (``wfcelery_web_*`` in the Celery app's configuration), read once.

``create_app(engine)`` reads them from ``engine.app.conf``; ``create_app(engine, web=WebSettings(...))``
and the ``wfcelery web`` options (``--cors-origin``, ``--allowed-host``) override them.
docs/web-security.md explains each one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import ConfigurationError

#: Host names a request may name in its ``Host`` header: the loopback names. A server bound to another
#: interface is reached under a name of its own: add it (``--allowed-host``, ``wfcelery_web_allowed_hosts``).
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: Bytes of a request body read at most (a submitted definition with its params): 1 MiB.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: Failed logins one client address may make within ``auth_window`` before it waits (429).
DEFAULT_AUTH_FAILURES = 10
#: Seconds over which failed logins are counted; an address that reached the limit waits until its oldest
#: failure is that old.
DEFAULT_AUTH_WINDOW = 60.0
#: Seconds a client has to send a whole request (headers and body) once it connected or its previous
#: response ended; a connection still sending after that is closed (slowloris). Not a bound on responses:
#: an event stream stays open as long as it is read.
DEFAULT_REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class WebSettings:
    """What the web server trusts and how much it reads (docs/web-security.md)."""

    #: Origins (``scheme://host[:port]``) whose pages may read the API and load ``<wf-run-progress>``
    #: (CORS, GET only, no credentials). None by default: no cross-origin read at all.
    cors_origins: tuple[str, ...] = ()
    #: ``Host`` names served (``name`` or ``*.domain``; any port); ``*`` alone turns the check off.
    allowed_hosts: tuple[str, ...] = DEFAULT_ALLOWED_HOSTS
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    auth_failures: int = DEFAULT_AUTH_FAILURES
    auth_window: float = DEFAULT_AUTH_WINDOW
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT

    def __post_init__(self) -> None:
        for origin in self.cors_origins:
            if origin == "*" or "://" not in origin:
                raise ConfigurationError(
                    f"wfcelery_web_cors_origins: {origin!r} is not an origin (scheme://host[:port]); "
                    "'*' is refused: name each site that embeds the dashboard's element"
                )
        if self.max_body_bytes < 1:
            raise ConfigurationError(f"wfcelery_web_max_body_bytes must be >= 1, got {self.max_body_bytes!r}")
        if self.auth_failures < 1:
            raise ConfigurationError(f"wfcelery_web_auth_failures must be >= 1, got {self.auth_failures!r}")
        for name in ("auth_window", "request_timeout"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(
                    f"wfcelery_web_{name} must be > 0 seconds, got {getattr(self, name)!r}"
                )

    @classmethod
    def from_conf(cls, conf: Any, **overrides: Any) -> WebSettings:
        """Read ``wfcelery_web_*`` from a Celery app's ``conf``; ``overrides`` (not None) win."""
        read: dict[str, Any] = {}
        for f in fields(cls):
            value = conf.get(f"wfcelery_web_{f.name}")
            if value is not None:
                read[f.name] = _parse(f.name, value)
        settings = cls(**read)
        given = {k: _parse(k, v) for k, v in overrides.items() if v is not None}
        return replace(settings, **given) if given else settings


def _parse(name: str, value: Any) -> Any:
    if name in ("cors_origins", "allowed_hosts"):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, Iterable):
            raise ConfigurationError(f"wfcelery_web_{name} must be a list of names, got {value!r}")
        return tuple(str(i).strip().rstrip("/") for i in items if str(i).strip())
    if name in ("max_body_bytes", "auth_failures"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigurationError(f"wfcelery_web_{name} must be a whole number, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigurationError(f"wfcelery_web_{name} must be a number of seconds, got {value!r}")
    return float(value)
