"""Retries a user asked for, with real in-thread workers: ``retry`` of a run gives every node it runs again
its full retry budget and runs the trigger-rule handlers downstream again; each attempt's error is kept;
an expected retry is logged as Celery logs its own (INFO, no ERROR with a traceback); a node that fails
while its run is paused waits for resume as RETRYING, and ``watch`` replays each retry with its reason.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import redis
from celery import Celery

import wfcelery
from tests.helpers import in_thread_worker, wait_for
from tests.integration import test_cli
from tests.integration.test_cli import invoke
from wfcelery import Workflow
from wfcelery.tracker.states import NodeStatus, RunStatus


def node_events(engine: Any, run_id: str, index: int) -> list[str]:
    _, events = engine.tracker.events(run_id)
    return [e.status for e in events if e.node == index]


def test_retry_of_a_run_gives_each_node_its_full_retries(
    app: Celery, engine: Any, r: redis.Redis, uid: str
) -> None:
    counter = f"t{uid}:flaky"
    wf = Workflow("budget")
    wf.add("a", "proj.flaky", args=[4, counter], retries=1)  # attempts 1-4 fail, the 5th returns 5
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(wfcelery.RunFailed):
            run.wait(timeout=30)
        assert r.get(counter) == "2"  # the first try and its one retry
        run.retry()
        with pytest.raises(wfcelery.RunFailed, match="flaky attempt 4"):
            run.wait(timeout=30)
        assert r.get(counter) == "4"  # retry gave it its retry again: two more attempts, not one
        run.retry()
        assert run.wait(timeout=30) == {"a": 5}
    node = run.state().nodes["a"]
    assert node.status is NodeStatus.SUCCEEDED
    assert node.attempts == 5  # attempts count the node's whole life
    # every attempt's error is kept, also once a later attempt succeeded
    assert [(e["attempt"], e["message"]) for e in node.errors] == [
        (i, f"flaky attempt {i}") for i in range(1, 5)
    ]
    assert node_events(engine, run.id, 0).count("Y") == 2  # one retry in each of the first two rounds


def test_retry_runs_an_all_done_handler_and_its_descendants_again(
    app: Celery, engine: Any, r: redis.Redis, uid: str
) -> None:
    wf = Workflow("handler")
    wf.add("load", "proj.flaky", args=[1, f"t{uid}:load"])  # fails once, then returns 2
    wf.add("notify", "proj.echo", after=["load"], trigger="all_done")
    wf.add("archive", "proj.echo", after=["notify"])
    wf.add("audit", "proj.count")  # unrelated: succeeded, and must not run again
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(wfcelery.RunFailed):
            run.wait(timeout=30)
        before = run.results()
        assert before["notify"] == {"args": [None], "kwargs": {}}  # it ran after the failure
        run.retry()
        results = run.wait(timeout=30)
    assert results["load"] == 2
    assert results["notify"] == {"args": [2], "kwargs": {}}  # ran again, with load's new result
    assert results["archive"] == {"args": [results["notify"]], "kwargs": {}}
    assert r.hgetall(f"t{uid}:count:{run.id}") == {"audit": "1"}
    assert run.state().status is RunStatus.SUCCEEDED


def test_an_expected_retry_is_no_error_in_the_worker_log(
    app: Celery, engine: Any, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    wf = Workflow("quiet")
    wf.add("a", "proj.flaky", args=[2, f"t{uid}:quiet"], retries=2)
    caplog.set_level(logging.INFO, logger="celery.app.trace")
    with in_thread_worker(app):
        run = engine.submit(wf)
        assert run.wait(timeout=30) == {"a": 3}
    retried = [
        r for r in caplog.records if r.name == "celery.app.trace" and "retry: Retry in" in r.getMessage()
    ]
    assert len(retried) == 2
    assert all(r.levelno == logging.INFO and "flaky attempt" in r.getMessage() for r in retried)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_a_failure_for_good_is_still_an_error(
    app: Celery, engine: Any, uid: str, caplog: pytest.LogCaptureFixture
) -> None:
    wf = Workflow("loud")
    wf.add("a", "proj.flaky", args=[9, f"t{uid}:loud"], retries=1)
    caplog.set_level(logging.INFO, logger="celery.app.trace")
    with in_thread_worker(app):
        run = engine.submit(wf)
        with pytest.raises(wfcelery.RunFailed):
            run.wait(timeout=30)
    trace = [r for r in caplog.records if r.name == "celery.app.trace"]
    assert [r.levelno for r in trace if "flaky attempt 1" in r.getMessage()] == [logging.INFO]
    assert [r.levelno for r in trace if "flaky attempt 2" in r.getMessage()] == [logging.ERROR]
    assert run.state().nodes["a"].attempts == 2  # recorded once: the hooks did not report it again


def test_a_node_failing_while_paused_waits_for_resume_as_retrying(
    app: Celery, engine: Any, r: redis.Redis, uid: str
) -> None:
    go, counter = f"t{uid}:go", f"t{uid}:n"
    wf = Workflow("paused")
    wf.add("f", "proj.block_flaky", kwargs={"key": go, "failures": 1, "counter": counter}, retries=1)
    with in_thread_worker(app):
        run = engine.submit(wf)
        wait_for(lambda: run.state().nodes["f"].status is NodeStatus.RUNNING, message="f running")
        offset, _ = run.events()
        run.pause()
        r.rpush(go, "first")  # attempt 1 fails while the run is paused
        node = wait_for(
            lambda: (n := run.state().nodes["f"]).status is not NodeStatus.RUNNING and n,
            message="f's first attempt to end",
        )
        assert node.status is NodeStatus.RETRYING  # not FAILED: its retry only waits for resume
        assert node.error is not None
        assert node.error["message"] == "flaky attempt 1"
        _, events = run.events(after=offset)
        assert [e.status for e in events if e.node == 0] == ["Y"]  # the stream never says FAILED
        assert run.state().status is RunStatus.PAUSED
        run.resume()
        r.rpush(go, "second")
        assert run.wait(timeout=30) == {"f": 2}
    node = run.state().nodes["f"]
    assert node.status is NodeStatus.SUCCEEDED
    assert [e["message"] for e in node.errors] == ["flaky attempt 1"]  # kept after the success


def test_watch_replays_each_retry_with_its_reason(app: Celery, engine: Any, uid: str) -> None:
    wf = Workflow("replay")
    wf.add("a", "proj.flaky", args=[2, f"t{uid}:replay"], retries=2)
    with in_thread_worker(app):
        run = engine.submit(wf)
        run.wait(timeout=30)
    test_cli.APP = app
    try:
        watched = invoke("watch", run.id)
        status = invoke("status", run.id)
    finally:
        test_cli.APP = None
    lines = [line for line in watched.stdout.splitlines() if line.split()[1:2] == ["a"]]
    retrying = [line for line in lines if line.split()[2] == "RETRYING"]
    assert len(retrying) == 2
    assert "(RuntimeError: flaky attempt 1)" in retrying[0]
    assert "(RuntimeError: flaky attempt 2)" in retrying[1]
    assert "ERRORS BY ATTEMPT" in status.stdout
    assert "attempt 1" in status.stdout
    assert "flaky attempt 2" in status.stdout
