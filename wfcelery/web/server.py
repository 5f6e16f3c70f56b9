"""Serving the app: uvicorn, with a deadline on every request a client sends (slowloris).

uvicorn closes an idle kept-alive connection after ``timeout_keep_alive`` seconds, but a connection that
sends nothing, or sends a request a byte at a time, stays open as long as the client likes: a few hundred
such connections hold the server's sockets. :func:`guarded_protocol` gives each request
``wfcelery_web_request_timeout`` seconds, from the moment the connection opens or the previous response
ends, to arrive whole (headers and body); a connection still sending then is closed. The clock is not
reset by data, so trickling bytes does not help; it stops once the request is in, so a long response
(an event stream) is not cut.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from wfcelery.settings import DEFAULT_WEB_REQUEST_TIMEOUT, Settings

#: States of the client's side in which its request is still arriving.
_SENDING = (h11.IDLE, h11.SEND_BODY)


def guarded_protocol(request_timeout: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, with ``request_timeout`` seconds for each request to arrive whole."""

    class DeadlineH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._watch()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._watch()  # the next request on a kept-alive connection gets its own deadline

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel()
            super().connection_lost(exc)

        def _watch(self) -> None:
            if self.transport.is_closing() or self.conn.their_state not in _SENDING:
                self._cancel()  # the request is in (or the connection is ending): no deadline
            elif self._deadline is None:
                self._deadline = self.loop.call_later(request_timeout, self._expired)

        def _cancel(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            if not self.transport.is_closing() and self.conn.their_state in _SENDING:
                self.transport.close()

    return DeadlineH11Protocol


def server_config(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8555,
    log_level: str = "info",
    root_path: str = "",
    **options: Any,
) -> uvicorn.Config:
    """The uvicorn configuration ``wfcelery web`` serves ``app`` with (the tests serve the same)."""
    settings = getattr(getattr(app, "state", None), "settings", None)  # create_app's; else the default
    timeout = settings.web_request_timeout if isinstance(settings, Settings) else DEFAULT_WEB_REQUEST_TIMEOUT
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=True,
        root_path=root_path,
        http=guarded_protocol(timeout),
        **options,
    )


def serve(
    app: Any, host: str = "127.0.0.1", port: int = 8555, log_level: str = "info", root_path: str = ""
) -> None:
    """Run ``app`` on uvicorn until interrupted (what ``wfcelery web`` does).

    ``root_path``: the path prefix a reverse proxy strips (``/workflows``), so links and API calls keep it.
    """
    uvicorn.Server(server_config(app, host, port, log_level, root_path)).run()
