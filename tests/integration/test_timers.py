"""Durable sleeps, for real: the timer lives in Redis, not in a worker.

A 3 s sleep on a worker of concurrency 1 lets another run complete meanwhile (no slot, no message held)
and ends within a second of its time; ``until`` takes a param; a sleep survives a SIGKILL of its worker and
a restart of the tracker's Redis (AOF) in the middle of it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.helpers import in_thread_worker, status_of, wait_for
from tests.proj import make_app
from tests.redis_server import FaultyRedis
from wfcelery import NodeStatus, RunStatus, Workflow

pytestmark = pytest.mark.timeout(90)

#: The elected loop fires a due timer within this many seconds (docs: waiting for the world).
FIRE_BOUND = 1.0


def test_a_sleep_holds_no_worker_slot_and_ends_on_time(app: Any, engine: Any, r: redis.Redis) -> None:
    wf = Workflow("cool")
    wf.add("load", "proj.add", args=[1, 2])
    wf.sleep("cool_down", 3, after="load")
    wf.add("report", "proj.echo", after="cool_down")
    other = Workflow("other")
    other.add("only", "proj.add", args=[40, 2])
    with in_thread_worker(app, concurrency=1):
        run = engine.submit(wf)
        wait_for(lambda: status_of(run, "cool_down") is NodeStatus.WAITING, message="cool_down WAITING")
        second = engine.submit(other)
        assert second.wait(timeout=10) == {"only": 42}  # the one worker slot is free while the sleep waits
        results = run.wait(timeout=20)
    state = run.state()
    sleep, done = state.nodes["cool_down"], second.state()
    assert results == {"load": 3, "cool_down": None, "report": {"args": [None], "kwargs": {}}}
    assert done.finished_at < sleep.finished_at  # the other run ended while the sleep waited
    assert sleep.worker is None
    assert sleep.attempts == 0
    slept = sleep.finished_at - sleep.started_at
    assert 3.0 - 0.001 <= slept <= 3.0 + FIRE_BOUND, f"slept {slept:.3f} s"
    print(f"\n3 s sleep fired after {slept:.3f} s")


def test_sleep_until_a_param_and_a_bad_time_fails_the_node(engine: Any, worker: Any) -> None:
    wf = Workflow("release")
    wf.sleep("hold", until="${params.release_at}")
    wf.add("go", "proj.add", args=[1, 1], after="hold", immutable=True)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)
    run = engine.submit(wf, params={"release_at": soon.isoformat()})
    wait_for(lambda: status_of(run, "hold") is NodeStatus.WAITING, message="hold WAITING")
    assert run.state().nodes["hold"].waiting.until == pytest.approx(soon.timestamp(), abs=0.002)
    assert run.wait(timeout=20) == {"hold": None, "go": 2}
    assert run.state().nodes["hold"].finished_at >= soon.timestamp() - 0.002
    past = engine.submit(wf, params={"release_at": "2020-01-01T00:00:00Z"})  # a time past: no wait at all
    assert past.wait(timeout=20) == {"hold": None, "go": 2}
    bad = engine.submit(wf, params={"release_at": "next tuesday"})
    state = wait_for(lambda: (s := bad.state()).finished and s, message="the bad run ends")
    assert state.status is RunStatus.FAILED
    assert state.nodes["hold"].error["type"] == "SleepError"
    assert "'next tuesday' is not a time" in state.nodes["hold"].error["message"]


def test_a_sleep_survives_a_worker_sigkill_and_a_tracker_restart(
    faulty_redis: FaultyRedis, redis_url: str, uid: str, tmp_path: Path, worker_process: Any
) -> None:
    """The worker holding the timers' lease is SIGKILLed and the tracker's Redis restarted (AOF) while a
    4 s sleep waits; a new worker takes the lease and the sleep ends, once, on time."""
    tracker_url = faulty_redis.url_db(1)
    conf = {
        "wfcelery_outbox_dir": str(tmp_path / "outbox"),
        "wfcelery_redis_timeout": 2,
        "wfcelery_redis_url": tracker_url,  # the broker and the result backend stay on the suite's Redis
    }
    app = make_app(redis_url, redis_url, f"t{uid}", f"q{uid}", **conf)
    queue = app.conf.task_default_queue
    wf = Workflow("durable")
    wf.add("load", "proj.add", args=[1, 2])
    wf.sleep("cool_down", 4, after="load")
    wf.add("report", "proj.add", args=[5, 5], after="cool_down", immutable=True)
    first = worker_process(app, [queue], "a", concurrency=1, conf=conf)
    run = app._wfcelery_engine.submit(wf)
    wait_for(lambda: status_of(run, "cool_down") is NodeStatus.WAITING, timeout=30, message="WAITING")
    first.proc.kill()  # SIGKILL: its lease on the timers lives on for a few seconds
    first.proc.wait(10)
    faulty_redis.restart(down_for=1)
    wait_for(faulty_redis.up, timeout=10, message="the tracker back")
    worker_process(app, [queue], "b", concurrency=1, conf=conf)
    assert run.wait(timeout=40) == {"load": 3, "cool_down": None, "report": 10}
    sleep = run.state().nodes["cool_down"]
    assert sleep.finished_at - sleep.started_at >= 4.0 - 0.002
    tracker = redis.Redis.from_url(tracker_url, decode_responses=True)
    assert tracker.zcard(f"t{uid}:timers") == 0  # fired once, and gone
