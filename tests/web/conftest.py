"""Fixtures of the web tests: the real ASGI server (uvicorn, in a thread, on a free port) for a test app."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.web.browser import CHROMIUM, launch_args, require_chromium
from wfcelery.client.engine import Engine
from wfcelery.web import create_app, server_config


class Server:
    """``create_app(engine, **options)`` served by uvicorn on 127.0.0.1, a free port, in a daemon thread."""

    def __init__(self, engine: Engine, **options: Any) -> None:
        config = server_config(  # what `wfcelery web` serves with (the request deadline included)
            create_app(engine, **options),
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


# -- the browser tests' fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=launch_args())
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # what the page's Content-Security-Policy blocked (an inline style or script, a foreign request)
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    yield page
    context.close()
    assert not errors, f"JavaScript errors or CSP violations on the page: {errors}"


@pytest.fixture
def other_origin(tmp_path: Path) -> Iterator[Any]:
    """A plain static file server on another port: another origin than the dashboard's."""
    handler = partial(SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[method-assign]
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
