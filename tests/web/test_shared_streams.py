"""Event streams share one subscription per run: 300 followers of one live run cost the server one poll
loop, not 300; many runs followed at once are read together and each stream still gets its own run's
transitions in order; streams are capped per client address (429); the run's stream shows who controlled
it."""

from __future__ import annotations

import socket
import statistics
import threading
import time
from typing import Any

import pytest

from tests.helpers import in_thread_worker, wait_for
from tests.web.test_api import blocking, chain
from tests.web.test_events import sse, tracker_log
from wfcelery.tracker.access import Role
from wfcelery.web import hub as hub_module
from wfcelery.web.hub import POLL_INTERVAL, STATUS_INTERVAL, Hub

pytestmark = pytest.mark.timeout(120)

FOLLOWERS = 300


def hub_of(server: Any) -> Hub:
    hub: Hub = server.server.config.app.state.hub
    return hub


def open_stream(url: str, path: str) -> socket.socket:
    """A follower: the request sent, the response's head read (the stream is open), the body left unread."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, "the server closed the stream"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return sock


def test_300_followers_of_one_run_share_one_poll_loop_and_the_api_stays_fast(serve, engine, uid):
    run = engine.submit(blocking(f"{uid}:never"))  # no worker: stays live
    server = serve()
    hub = hub_of(server)
    hub.per_client = FOLLOWERS
    socks = [open_stream(server.url, f"/api/runs/{run.id}/events") for _ in range(FOLLOWERS)]
    try:
        wait_for(lambda: hub.streams == FOLLOWERS, timeout=30, message="every stream counted")
        assert list(hub.channels) == [run.id]  # one channel for the run, however many followers
        refused = open_refused(server.url, f"/api/runs/{run.id}/events")
        assert refused.startswith(b"HTTP/1.1 429"), refused[:200]
        before, started = hub.polls, time.monotonic()
        with server.client() as http:
            latencies = []
            for _ in range(20):
                t0 = time.monotonic()
                assert http.get("/api/runs").status_code == 200
                latencies.append(time.monotonic() - t0)
            time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
        elapsed = time.monotonic() - started
        polls = hub.polls - before
        # one loop: a read per POLL_INTERVAL plus the end checks; 300 loops would be 300 times that
        assert polls <= 2 * elapsed / POLL_INTERVAL + 4 * elapsed / STATUS_INTERVAL + 5, polls
        assert statistics.median(latencies) < 0.5, latencies
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: hub.streams == 0 and not hub.channels, timeout=30, message="streams and loop gone")


def open_refused(url: str, path: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        return data


def test_the_run_stream_shows_who_controlled_the_run(serve, engine, uid):
    run = engine.submit(blocking(f"{uid}:never"))
    bob = engine.create_token("bob", Role.OPERATOR)
    server = serve()
    auth = {"Authorization": f"Bearer {bob}"}
    with server.client(headers=auth) as http:
        assert http.post(f"/api/runs/{run.id}/pause").status_code == 200
        for message in sse(http, f"/api/runs/{run.id}/events", audit=True):
            if message["event"] == "audit" and message["data"]["action"] == "pause":
                assert message["data"]["actor"] == "bob"
                assert message["data"]["target"] == f"run {run.id}"
                assert message["data"]["outcome"] == "ok"
                assert message["id"] is None  # not a cursor into the run's log
                break


def test_many_runs_followed_at_once_each_stream_gets_its_own_runs_transitions_in_order(app, engine, serve):
    """One poll loop reads every followed run in one go: each stream still gets exactly its run's
    transitions, all of them, in the tracker's order, with increasing ids, and ends with its run."""
    runs = [engine.submit(chain(f"many{i}")) for i in range(4)]  # no worker yet: all wait
    server = serve()
    hub = hub_of(server)
    got: dict[int, list[dict[str, Any]]] = {}

    def follow(k: int, run_id: str) -> None:
        with server.client() as http:
            got[k] = list(sse(http, f"/api/runs/{run_id}/events"))

    followers = [
        threading.Thread(target=follow, args=(k, runs[k % len(runs)].id), daemon=True) for k in range(8)
    ]
    for t in followers:
        t.start()
    wait_for(lambda: hub.streams == 8, timeout=30, message="every stream open")
    assert sorted(hub.channels) == sorted(r.id for r in runs)
    with in_thread_worker(app):
        for t in followers:
            t.join(60)
    for k, messages in got.items():
        run = runs[k % len(runs)]
        assert messages[-1]["event"] == "end"
        assert messages[-1]["data"]["status"] == "SUCCEEDED"
        transitions = messages[:-1]
        assert [(m["data"]["node"], m["data"]["status"]) for m in transitions] == tracker_log(engine, run.id)
        ids = [int(m["id"]) for m in transitions]
        assert ids == sorted(set(ids))
    assert len(got) == 8


def test_a_stream_behind_what_the_server_keeps_reads_the_rest_from_the_tracker(
    app, engine, serve, monkeypatch
):
    """The server keeps only the newest transitions of a followed run (its memory stays flat however long
    the log grows); a stream from the start, or resumed from an older id, still gets every transition."""
    monkeypatch.setattr(hub_module, "MAX_LINES", 3)
    with in_thread_worker(app):
        run = engine.submit(chain("kept"))
        run.wait(timeout=30)
    logged = tracker_log(engine, run.id)
    assert len(logged) > 3
    server = serve()
    with server.client() as http:
        messages = list(sse(http, f"/api/runs/{run.id}/events"))
        assert [(m["data"]["node"], m["data"]["status"]) for m in messages[:-1]] == logged
        assert messages[-1]["event"] == "end"
        resumed = list(sse(http, f"/api/runs/{run.id}/events", **{"Last-Event-ID": messages[1]["id"]}))
        assert [m["id"] for m in resumed[:-1]] == [m["id"] for m in messages[2:-1]]
