"""Bounds the web server keeps whatever a client sends, against the real server (uvicorn, real sockets).

Request bodies are capped before they are parsed (413); a partial request is closed within a bounded
time (slowloris); the definitions folder reads only regular files inside itself. (Failed logins:
test_access.py.)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import Server

pytestmark = pytest.mark.timeout(60)

MB = 1024 * 1024


def connect(server: Server) -> socket.socket:
    url = httpx.URL(server.url)
    assert url.port is not None
    return socket.create_connection((url.host, url.port), timeout=10)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (status, headers, body with Content-Length) read from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return int(lines[0].split()[1]), headers, body


def closed_within(sock: socket.socket, bound: float) -> float:
    """Seconds until the server closes ``sock`` (anything it answers is dropped); fails after ``bound``."""
    sock.settimeout(bound)
    start = time.monotonic()
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        pytest.fail(f"the server kept a partial request open for more than {bound} s")
    except ConnectionResetError:
        pass
    return time.monotonic() - start


# -- request bodies -----------------------------------------------------------------------------------------


def test_a_50_mb_body_is_refused_before_it_is_read(server):
    with connect(server) as sock:
        start = time.monotonic()
        sock.sendall(
            b"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {50 * MB}\r\n\r\n".encode()
            + b'{"name": "etl", "params": {"k0": 0'
        )
        status, headers, body = read_response(sock)  # answered without waiting for the other 50 MB
        elapsed = time.monotonic() - start
    assert status == 413
    assert headers["connection"] == "close"
    error = httpx.Response(413, content=body).json()
    assert error["type"] == "PayloadTooLarge"
    assert "1,048,576" in error["error"]
    assert "k0" not in error["error"]
    assert len(body) < 500
    print(f"\n50 MB body refused in {elapsed * 1000:.0f} ms")
    assert elapsed < 5


def test_a_chunked_body_over_the_limit_is_cut_off_at_the_limit(server, engine):
    with connect(server) as sock:
        sock.sendall(
            b"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        piece = b'{"name": "etl", "params": {' + b'"k": 1, ' * 8000
        stop = threading.Event()

        def send() -> None:  # up to 3 MB, until the server has answered (and closed)
            sent = 0
            try:
                while sent < 3 * MB and not stop.is_set():
                    sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    sent += len(piece)
            except OSError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        status, _, body = read_response(sock)
        stop.set()
        sender.join(10)
    assert status == 413
    assert httpx.Response(413, content=body).json()["type"] == "PayloadTooLarge"
    assert engine.runs() == []


@pytest.mark.parametrize("app", [{"wfcelery_web_max_body_bytes": 1000}], indirect=True)
def test_the_body_limit_is_a_setting(serve):
    server = serve()
    with server.client() as http:
        resp = http.post("/api/runs", json={"name": "etl", "params": {"x": "y" * 1000}})
        assert resp.status_code == 413
        assert "1,000 bytes" in resp.json()["error"]
        assert "wfcelery_web_max_body_bytes" in resp.json()["error"]
        assert http.post("/api/runs", json={"name": "etl"}).status_code == 404  # under it: read as usual


# -- slow clients ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("app", [{"wfcelery_web_request_timeout": 1.0}], indirect=True)
def test_partial_requests_are_closed_within_the_request_timeout(serve, engine):
    timeout = 1.0
    bound = timeout + 4  # generous for a loaded machine; the measured figures are printed
    server = serve()
    measured = {}
    with connect(server) as idle:
        measured["silent"] = closed_within(idle, bound)
    with connect(server) as half:
        half.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        measured["half headers"] = closed_within(half, bound)
    with connect(server) as trickle:  # a byte now and then must not reset the clock
        start = time.monotonic()
        trickle.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        try:
            while time.monotonic() - start < bound:
                trickle.sendall(b"a")
                time.sleep(0.1)
        except OSError:
            pass
        measured["trickled headers"] = time.monotonic() - start
        assert measured["trickled headers"] < bound
    with connect(server) as body:
        body.sendall(b"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n{")
        measured["half body"] = closed_within(body, bound)
    with connect(server) as kept:  # after a whole request on a kept-alive connection
        kept.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(kept)[0] == 200
        kept.sendall(b"GET /api/health HTTP/1.1\r\n")
        measured["second request, half"] = closed_within(kept, bound)
    print("\nclosed after (s):", {k: round(v, 2) for k, v in measured.items()})
    assert all(v < bound for v in measured.values())


@pytest.mark.parametrize("app", [{"wfcelery_web_request_timeout": 0.5}], indirect=True)
def test_the_request_timeout_does_not_cut_an_event_stream(serve, engine):
    from wfcelery import Workflow

    wf = Workflow("long")
    wf.add("only", "proj.noop")
    run = engine.submit(wf)  # no worker: stays RUNNING
    server = serve()
    with server.client() as http, http.stream("GET", f"/api/runs/{run.id}/events") as stream:
        lines = stream.iter_lines()
        seen = []
        while not any(x.startswith("data:") for x in seen):  # the node's QUEUED
            seen.append(next(lines))
        time.sleep(1.5)  # three request timeouts later
        engine.pause(run.id)
        while not any('"PAUSED"' in x for x in seen):
            seen.append(next(lines))


# -- the definitions folder --------------------------------------------------------------------------------


def test_the_definitions_folder_reads_only_regular_files_inside_itself(make_test_app, tmp_path, caplog):
    folder = tmp_path / "flows"
    folder.mkdir()
    (folder / "good.yaml").write_text("name: good\ntasks: [{name: a, task: proj.noop}]\n")
    (folder / "sub").mkdir()
    (folder / "linked.yaml").symlink_to(Path("sub") / "target.yaml")  # a link inside the folder is fine
    (folder / "sub" / "target.yaml").write_text("name: linked\ntasks: [{name: a, task: proj.noop}]\n")
    secret = tmp_path / "secret.yaml"
    secret.write_text("name: secret\ntasks: [{name: a, task: proj.noop}]\n")
    (folder / "escape.yaml").symlink_to(secret)
    os.mkfifo(folder / "fifo.yaml")
    (folder / "zero.yaml").symlink_to("/dev/zero")
    (folder / "big.yaml").write_text("name: big\n" + "# padding\n" * 20_000)
    app = make_test_app(wfcelery_definitions=str(folder), wfcelery_max_plan_bytes=100_000)
    server = Server(app._wfcelery_engine).start()
    caplog.set_level(logging.WARNING, logger="wfcelery")
    try:
        with server.client() as http:
            start = time.monotonic()
            listed = http.get("/api/definitions", timeout=15)
            elapsed = time.monotonic() - start
            assert listed.status_code == 200
            assert sorted(d["name"] for d in listed.json()) == ["good", "linked"]
            assert http.post("/api/runs", json={"name": "secret"}).status_code == 404
    finally:
        server.stop()
    assert elapsed < 5
    reasons = {Path(r.args[0]).name: str(r.args[1]) for r in caplog.records if "skipping definition" in r.msg}
    assert "outside the definitions folder" in reasons["escape.yaml"]
    assert "not a regular file" in reasons["fifo.yaml"]
    assert "outside the definitions folder" in reasons["zero.yaml"]
    assert "over the limit of 100,000" in reasons["big.yaml"]


def test_a_device_is_read_no_further_than_the_size_limit(tmp_path):
    from wfcelery.definition.loader import load
    from wfcelery.errors import LimitError

    start = time.monotonic()
    with pytest.raises(LimitError, match="over the limit of 1,000"):
        load("/dev/zero", max_bytes=1000)
    assert time.monotonic() - start < 2
