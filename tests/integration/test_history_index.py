"""The history index stays bounded by the run TTL: each indexed end drops the oldest entries whose run
expired, and a retried run leaves its old status."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery

from tests.helpers import diamond, in_thread_worker, wait_for
from wfcelery import Workflow


def test_ends_shed_entries_of_expired_runs(app: Celery, engine: Any) -> None:
    tracker, keys = engine.tracker, engine.tracker.keys
    old = int(time.time() * 1000) - engine.settings.run_ttl * 1000 - 60_000
    gone = {f"{i:032x}": old + i for i in range(1, 5)}  # indexed once, their keys long expired
    tracker.client.zadd(keys.runs_ended("FAILED"), gone)
    tracker.client.zadd(keys.runs_of("shed"), gone)
    failing = Workflow("shed")
    failing.add("boom", "proj.fail")
    runs = []
    with in_thread_worker(app):
        for _ in range(2):  # one after the other: each end sheds the two oldest expired entries
            runs.append(engine.submit(failing))
            wait_for(lambda: runs[-1].state().finished, timeout=30, message="the run to end")
    for key in (keys.runs_ended("FAILED"), keys.runs_of("shed")):
        assert sorted(tracker.client.zrange(key, 0, -1)) == sorted(r.id for r in runs)


def test_a_retried_run_leaves_its_old_status(app: Celery, engine: Any) -> None:
    run = engine.submit(diamond("retried"))  # no worker: cancelled while queued
    engine.cancel(run.id)
    assert [r.id for r in engine.search_runs(status="CANCELLED").runs] == [run.id]
    with in_thread_worker(app):
        engine.retry(run.id)
        run.wait(timeout=30)
    assert engine.search_runs(status="CANCELLED").runs == []
    assert [r.id for r in engine.search_runs(status="SUCCEEDED").runs] == [run.id]
    snap = engine.metrics()  # each end counted once; active again while retried, 0 once it ended
    assert snap.runs == {("retried", "CANCELLED"): 1, ("retried", "SUCCEEDED"): 1}
    assert snap.active == {"retried": 0}
