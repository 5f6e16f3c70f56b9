"""Fleet-wide metrics: counted by the tracker's Lua scripts, read by an exporter started after the runs
ended (``wfcelery metrics``, a process of its own), exact; and the exporter across a tracker restart."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import ROOT, diamond, in_thread_worker, wait_for
from tests.proj import make_app
from tests.redis_server import FaultyRedis
from wfcelery import Workflow
from wfcelery.tracker.counters import BUCKETS_MS
from wfcelery.tracker.records import Event


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def exporter(app: Celery, redis_url: str) -> Iterator[str]:
    """``wfcelery -A tests.proj metrics`` as a subprocess on the app's tracker and key prefix: its URL."""
    port = _free_port()
    env = {
        **os.environ,
        "WFCELERY_TEST_BROKER": redis_url,
        "WFCELERY_TEST_BACKEND": app.conf.wfcelery_redis_url,
        "WFCELERY_TEST_PREFIX": app.conf.wfcelery_key_prefix,
        "WFCELERY_TEST_CONF": json.dumps({"wfcelery_redis_timeout": 1.0}),
        "PYTHONPATH": str(ROOT),
    }
    cmd = [sys.executable, "-m", "wfcelery.cli", "-A", "tests.proj", "metrics", "--host", "127.0.0.1"]
    proc = subprocess.Popen([*cmd, "--port", str(port)], env=env, cwd=ROOT, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        wait_for(lambda: _answers(url) or proc.poll() is not None, timeout=30, message="the exporter")
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).read()
        return True
    except OSError:
        return False


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample: (name, sorted labels) -> value."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def attempts(log: str) -> tuple[list[tuple[int | str, int]], list[tuple[int | str, int]]]:
    """(node, ms) of every run time (RUNNING to the attempt's end) and every wait (QUEUED to RUNNING) in
    a run's event log: what the counters must have summed."""
    last: dict[int | str, Event] = {}
    runs, waits = [], []
    for line in log.splitlines():
        e = Event.parse(line)
        if e.node is None:
            continue
        before = last.get(e.node)
        if before is not None and before.status == "R" and e.status in "SFKXY":
            runs.append((e.node, e.at_ms - before.at_ms))
        if before is not None and before.status == "Q" and e.status == "R":
            waits.append((e.node, e.at_ms - before.at_ms))
        last[e.node] = e
    return runs, waits


def test_a_run_of_one_task_counts_under_that_task_without_a_node_map(
    app: Celery, engine: Any, r: Any, redis_url: str
) -> None:
    """A plan with one (task, queue) pair stores its label table but no per-node map (``mn``): every node
    counts under the table's one line, never ``other``."""
    wf = Workflow("met-one")
    wf.add("a", "proj.noop")
    wf.add("b", "proj.noop", after=["a"])
    with in_thread_worker(app):
        run = engine.submit(wf)
        run.wait(timeout=30)
    record = r.hgetall(engine.tracker.keys.run(run.id))
    assert "ml" in record
    assert "mn" not in record
    with exporter(app, redis_url) as url:
        s = scrape(url)
    labels = (("queue", app.conf.task_default_queue), ("status", "SUCCEEDED"), ("task", "proj.noop"))
    assert s[("wfcelery_nodes_total", labels)] == 2
    assert s[("wfcelery_node_duration_seconds_count", (labels[0], labels[2]))] == 2


def test_metrics_scraped_after_the_runs_are_exact(app: Celery, engine: Any, r: Any, redis_url: str) -> None:
    queue = app.conf.task_default_queue
    ok = diamond("met-ok")
    bad = Workflow("met-bad")
    bad.add("first", "proj.add", args=[1, 2])
    bad.add("boom", "proj.fail", after=["first"], retries=1)  # one tracker-level retry, then FAILED
    bad.add("never", "proj.add", after=["boom"], kwargs={"y": 1})
    with in_thread_worker(app):
        runs = [engine.submit(ok) for _ in range(2)] + [engine.submit(bad)]
        for run in runs:
            wait_for(lambda run=run: run.state().finished, timeout=60, message=f"run {run.id} to end")
    parked = engine.submit(ok)  # no worker now: it waits QUEUED, then is paused and cancelled
    engine.pause(parked.id)

    with exporter(app, redis_url) as url:  # a process started after the runs ended
        s = scrape(url)
        assert s[("wfcelery_tracker_up", ())] == 1
        assert s[("wfcelery_runs_total", (("status", "SUCCEEDED"), ("workflow", "met-ok")))] == 2
        assert s[("wfcelery_runs_total", (("status", "FAILED"), ("workflow", "met-bad")))] == 1
        assert s[("wfcelery_runs_active", (("workflow", "met-ok"),))] == 1  # the paused one
        assert s[("wfcelery_runs_active", (("workflow", "met-bad"),))] == 0

        engine.cancel(parked.id)
        s = scrape(url)
        assert s[("wfcelery_runs_total", (("status", "CANCELLED"), ("workflow", "met-ok")))] == 1
        assert s[("wfcelery_runs_active", (("workflow", "met-ok"),))] == 0

    nodes: Counter[tuple[str, str]] = Counter()
    durations: dict[str, list[int]] = {}
    waits: list[int] = []
    for run in [*runs, parked]:
        state = run.state()
        for node in state.nodes.values():
            plan_task = run.plan().by_name[node.name].task
            nodes[(plan_task, node.status.value)] += 1
            nodes[(plan_task, "RETRYING")] += max(0, node.attempts - 1)
        log = r.get(engine.tracker.keys.events(run.id)) or ""
        by_index = {n.index: run.plan().nodes[n.index].task for n in state.nodes.values()}
        ran, waited = attempts(log)
        for index, ms in ran:
            durations.setdefault(by_index[int(index)], []).append(ms)
        waits += [ms for _, ms in waited]

    def node_count(task: str, status: str) -> float:
        key = ("wfcelery_nodes_total", (("queue", queue), ("status", status), ("task", task)))
        return s.get(key, 0)

    for (task, status), n in nodes.items():
        assert node_count(task, status) == n, (task, status)
    assert node_count("proj.fail", "RETRYING") == 1
    assert node_count("proj.add", "REVOKED") == 4  # a, b, c of the cancelled run; met-bad's never
    assert node_count("proj.total", "REVOKED") == 1
    for task, values in durations.items():
        labels = (("queue", queue), ("task", task))
        assert s[("wfcelery_node_duration_seconds_count", labels)] == len(values)
        assert s[("wfcelery_node_duration_seconds_sum", labels)] == pytest.approx(
            sum(values) / 1000, abs=1e-9
        )
        for le in BUCKETS_MS:
            got = s[("wfcelery_node_duration_seconds_bucket", (("le", repr(le / 1000)), *labels))]
            assert got == sum(1 for v in values if v <= le)
    assert s[("wfcelery_node_wait_seconds_count", (("queue", queue),))] == len(waits)
    assert s[("wfcelery_node_wait_seconds_sum", (("queue", queue),))] == pytest.approx(
        sum(waits) / 1000, abs=1e-9
    )
    assert len(waits) == sum(len(v) for v in durations.values()) - 1  # every attempt but the retry


def test_the_exporter_answers_while_the_tracker_restarts_and_recovers_its_numbers(
    faulty_redis: FaultyRedis, redis_url: str, uid: str
) -> None:
    app = make_app(redis_url, faulty_redis.url_db(1), f"t{uid}", f"q{uid}", wfcelery_redis_timeout=1)
    engine = app._wfcelery_engine
    for _ in range(3):  # no worker: each run waits QUEUED, then is cancelled
        engine.cancel(engine.submit(diamond("met-restart")).id)
    cancelled = ("wfcelery_runs_total", (("status", "CANCELLED"), ("workflow", "met-restart")))
    with exporter(app, redis_url) as url:
        assert scrape(url)[cancelled] == 3
        faulty_redis.shutdown()
        down = scrape(url)  # answers at once: the port refuses, the exporter says the tracker is down
        assert down == {("wfcelery_tracker_up", ()): 0}
        faulty_redis.start()
        wait_for(lambda: scrape(url).get(("wfcelery_tracker_up", ())) == 1, timeout=20, message="up again")
        assert scrape(url)[cancelled] == 3  # nothing lost: the counters live in the tracker
        engine.cancel(engine.submit(diamond("met-restart")).id)
        assert scrape(url)[cancelled] == 4


@pytest.mark.parametrize("app", [{"wfcelery_metrics_max_values": 2}], indirect=True)
def test_label_values_past_the_cap_count_as_other(app: Celery, engine: Any) -> None:
    for name in ("cap-a", "cap-b", "cap-c", "cap-d", "cap-a"):  # no worker: each is cancelled queued
        engine.cancel(engine.submit(diamond(name)).id)
    snap = engine.metrics()
    assert snap.runs == {("cap-a", "CANCELLED"): 2, ("cap-b", "CANCELLED"): 1, ("other", "CANCELLED"): 2}
    # tasks: proj.add and proj.total fill the cap; the queue label is the app's one queue
    assert {task for task, _, _ in snap.nodes} == {"proj.add", "proj.total"}


@pytest.mark.parametrize("app", [{"wfcelery_metrics": False}], indirect=True)
def test_metrics_off_the_scripts_count_nothing(app: Celery, engine: Any, r: Any) -> None:
    with in_thread_worker(app):
        engine.submit(diamond("uncounted")).wait(timeout=30)
    assert engine.metrics() == engine.metrics().__class__()  # empty
    assert not r.exists(engine.tracker.keys.metrics())


def test_a_scheduled_run_is_counted_under_its_own_task_and_a_sleep_under_no_queue(
    app: Celery, engine: Any, redis_url: str
) -> None:
    """A run the schedule loop fires (its batched create) carries its label table like a submitted one:
    its nodes count under their task and queue, not ``other``; a sleep counts under ``(sleep)`` and the
    queue ``(none)`` (it is never sent to a queue). Its node gets the slot's run key as ``${run_key}``."""
    from wfcelery.ops.scheduler import Scheduler
    from wfcelery.ops.store import run_key_of

    wf = Workflow("met-sched")
    wf.add("a", "proj.echo", args=["${run_key}"])
    wf.sleep("nap", "1s", after=["a"])
    engine.schedule("met-sched", wf, every=1)
    slot = int(engine.schedule_info("met-sched").next_at.timestamp() * 1000)
    wait_for(lambda: engine.tracker.server_ms() >= slot, timeout=5, message="the slot to come")
    Scheduler(engine.tracker, engine.dispatch, "test").tick()
    engine.pause_schedule("met-sched")
    key = run_key_of("met-sched", slot)
    run = engine.run_by_key(key)
    assert run is not None
    with in_thread_worker(app):
        assert run.wait(timeout=60) == {"a": {"args": [key], "kwargs": {}}, "nap": None}
    queue = app.conf.task_default_queue
    with exporter(app, redis_url) as url:
        s = scrape(url)
    done = {labels: value for (name, labels), value in s.items() if name == "wfcelery_nodes_total"}
    assert done[(("queue", queue), ("status", "SUCCEEDED"), ("task", "proj.echo"))] == 1
    assert done[(("queue", "(none)"), ("status", "SUCCEEDED"), ("task", "(sleep)"))] == 1
    assert not any(("task", "other") in labels for labels in done)
