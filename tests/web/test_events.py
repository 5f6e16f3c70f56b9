"""``GET /api/runs/{id}/events`` (Server-Sent Events): every transition in order, live, resumable."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.helpers import in_thread_worker, wait_for
from wfcelery import Workflow
from wfcelery.tracker.states import NodeStatus

pytestmark = pytest.mark.timeout(60)


def sse(http: httpx.Client, path: str, audit: bool = False, **headers: str) -> Iterator[dict[str, Any]]:
    """Parse a text/event-stream into {event, id, data} dicts (comments and pings skipped; the audit
    entries too unless ``audit``)."""
    with http.stream("GET", path, headers=headers, timeout=30) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        message: dict[str, Any] = {}
        for line in resp.iter_lines():
            if not line:
                if "data" in message and (audit or message.get("event") != "audit"):
                    yield {
                        "event": message.get("event", "message"),
                        "id": message.get("id"),
                        "data": json.loads(message["data"]),
                    }
                message = {}
                continue
            field, _, value = line.partition(":")
            if field:
                message[field] = value[1:] if value.startswith(" ") else value


def tracker_log(engine: Any, run_id: str) -> list[tuple[str | None, str]]:
    """The run's transitions as the tracker logged them: (node name or None, status)."""
    names = [n.name for n in engine.run(run_id).plan().nodes]
    _, events = engine.tracker.events(run_id, 0)
    return [
        (names[e.node], NodeStatus.from_code(e.status).value) if e.node is not None else (None, e.status)
        for e in events
    ]


def diamond() -> Workflow:
    wf = Workflow("diamond")
    a = wf.add("a", "proj.add", args=[1, 1])
    a >> [wf.add("b", "proj.add", args=[1]), wf.add("c", "proj.add", args=[2])] >> wf.add("d", "proj.total")
    return wf


def test_stream_delivers_every_transition_in_order_then_ends(app, engine, http):
    with in_thread_worker(app):
        run = engine.submit(diamond())
        run.wait(timeout=20)
    messages = list(sse(http, f"/api/runs/{run.id}/events"))
    assert messages[-1]["event"] == "end"
    assert messages[-1]["data"] == {"status": "SUCCEEDED", "deleted": False}
    transitions = [(m["data"]["node"], m["data"]["status"]) for m in messages[:-1]]
    assert transitions == tracker_log(engine, run.id)
    for node in "abcd":
        assert [s for n, s in transitions if n == node] == ["QUEUED", "RUNNING", "SUCCEEDED"]
    assert transitions[-1] == (None, "SUCCEEDED")
    assert [m["event"] for m in messages[:-1]] == ["node"] * 12 + ["run"]
    assert len({m["id"] for m in messages[:-1]}) == 13, "every transition has its own id"
    times = [m["data"]["at"] for m in messages[:-1]]
    for node in "abcd":  # a RUNNING line carries the body's start: b's and c's may interleave in the log
        at = [m["data"]["at"] for m in messages[:-1] if m["data"]["node"] == node]
        assert at == sorted(at)
    assert times[-1] == max(times)
    assert abs(times[-1] - run.state().finished_at) < 0.01


def test_reconnecting_with_last_event_id_resumes_exactly_after_it(app, engine, http):
    with in_thread_worker(app):
        run = engine.submit(diamond())
        run.wait(timeout=20)
    full = list(sse(http, f"/api/runs/{run.id}/events"))[:-1]
    for k in (0, 3, 7, len(full) - 2):  # mid-batch cursors ("<offset>.<k>") and batch ends ("<offset>")
        again = list(sse(http, f"/api/runs/{run.id}/events", **{"Last-Event-ID": full[k]["id"]}))[:-1]
        assert again == full[k + 1 :], f"resume after event {k} (id {full[k]['id']})"
        by_query = list(sse(http, f"/api/runs/{run.id}/events?last_event_id={full[k]['id']}"))[:-1]
        assert by_query == again
    rest = list(sse(http, f"/api/runs/{run.id}/events", **{"Last-Event-ID": full[-1]["id"]}))
    assert [m["event"] for m in rest] == ["end"]


def test_live_transitions_arrive_while_the_run_goes_on_and_after_a_reconnect(app, engine, http, r, uid):
    wf = Workflow("live")
    wf.add("first", "proj.block", args=[f"{uid}:first"]) >> wf.add(
        "second", "proj.block", args=[f"{uid}:second"], immutable=True
    )
    with in_thread_worker(app):
        run = engine.submit(wf)
        seen: list[dict[str, Any]] = []
        stream = sse(http, f"/api/runs/{run.id}/events")
        for message in stream:  # the first connection: until "first" runs, then drop it
            seen.append(message)
            if message["data"] == {**message["data"], "node": "first", "status": "RUNNING"}:
                break
        stream.close()
        r.lpush(f"{uid}:first", 1)  # transitions happen while nobody listens
        wait_for(lambda: run.state().nodes["second"].status is NodeStatus.RUNNING, message="second RUNNING")

        resumed: list[dict[str, Any]] = []
        done = threading.Event()

        def listen() -> None:
            for message in sse(http, f"/api/runs/{run.id}/events", **{"Last-Event-ID": seen[-1]["id"]}):
                resumed.append(message)
            done.set()

        thread = threading.Thread(target=listen, daemon=True)
        thread.start()
        wait_for(
            lambda: any(
                m["data"].get("node") == "second" and m["data"]["status"] == "RUNNING" for m in resumed
            ),
            message="missed transitions replayed",
        )
        r.lpush(f"{uid}:second", 1)  # now a transition that happens while the stream is open
        assert done.wait(20), "the stream did not end with the run"
    got = [(m["data"]["node"], m["data"]["status"]) for m in seen + resumed if m["event"] != "end"]
    assert got == tracker_log(engine, run.id)
    assert resumed[-1] == {**resumed[-1], "event": "end", "data": {"status": "SUCCEEDED", "deleted": False}}


def test_a_run_deleted_while_followed_ends_the_stream(app, engine, http, uid):
    wf = Workflow("gone")
    wf.add("only", "proj.block", args=[f"{uid}:never"])
    run = engine.submit(wf)  # no worker: stays QUEUED
    messages: list[dict[str, Any]] = []
    done = threading.Event()

    def listen() -> None:
        messages.extend(sse(http, f"/api/runs/{run.id}/events"))
        done.set()

    threading.Thread(target=listen, daemon=True).start()
    wait_for(lambda: messages, message="the first transition")
    run.cleanup(force=True)
    assert done.wait(20)
    assert messages[-1] == {**messages[-1], "event": "end", "data": {"status": None, "deleted": True}}
