"""Fixtures of the web tests: the real ASGI server (uvicorn, in a thread, on a free port) for a test app."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from wfcelery.client.engine import Engine
from wfcelery.web import create_app


class Server:
    """``create_app(engine)`` served by uvicorn on 127.0.0.1, a free port, in a daemon thread."""

    def __init__(self, engine: Engine, **options: Any) -> None:
        config = uvicorn.Config(
            create_app(engine, **options),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)
        self.url = ""

    def start(self, timeout: float = 20.0) -> Server:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def client(self, **kw: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=20, **kw)


@pytest.fixture
def serve(engine: Engine) -> Iterator[Callable[..., Server]]:
    """``serve(**create_app options)`` -> a started :class:`Server` for the test's engine."""
    started: list[Server] = []

    def factory(**options: Any) -> Server:
        started.append(Server(engine, **options).start())
        return started[-1]

    yield factory
    for s in started:
        s.stop()


@pytest.fixture
def server(serve: Callable[..., Server]) -> Server:
    return serve()


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client
