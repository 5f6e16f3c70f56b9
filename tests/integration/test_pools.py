"""Pools and rate limits, for real: two worker processes, one Redis, the bodies measuring themselves.

A pool of 3 over 24 nodes of three runs never has more than 3 bodies at once (and has at least 2); a
saturated pool does not hold back an unpooled node on the same queue (the waiting nodes hold no worker
slot and no message); a rate of 10/s spaces the starts; a SIGKILLed worker's slot comes back; set_pool
down and up; pause and cancel give slots back; bad input is refused naming it, changing nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from celery import Celery

from tests.conftest import WorkerProcess
from tests.helpers import in_thread_worker, probe_times, status_of, wait_for
from tests.integration.test_faults import kill_whole
from wfcelery import NodeStatus, PoolError, RunStatus, Workflow
from wfcelery.cli.display import error_text
from wfcelery.ops.pools import pools_of

pytestmark = pytest.mark.timeout(180)

FAST = {
    "wfcelery_heartbeat": 1,
    "wfcelery_sweep_interval": 1,
    "wfcelery_report_retry": 1,
    "wfcelery_gate_wait": 1,
}


def pooled(name: str, nodes: int, pool: str | None, sleep: float = 0.3, **extra: Any) -> Workflow:
    """``nodes`` independent proj.record nodes, each in ``pool``."""
    wf = Workflow(name)
    for i in range(nodes):
        wf.add(f"n{i}", "proj.record", kwargs={"sleep": sleep, **extra}, pool=pool)
    return wf


def intervals(r: redis.Redis, app: Celery, run_ids: list[str]) -> list[tuple[int, int]]:
    """(start, end) of every body of these runs, in us of Redis's clock, as the bodies recorded them."""
    spans = []
    for run_id in run_ids:
        spans += [(t["start"], t["end"]) for t in probe_times(r, app, run_id).values()]
    return spans


def most_at_once(spans: list[tuple[int, int]]) -> int:
    """The largest number of bodies running at the same instant (an end before a start at a tie)."""
    edges = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    now = best = 0
    for _, step in edges:
        now += step
        best = max(best, now)
    return best


def used(engine: Any, pool: str) -> int:
    return int(engine.pool(pool).used)


@pytest.fixture
def pool_app(make_test_app: Callable[..., Celery]) -> Celery:
    return make_test_app(wfcelery_pools={"db": 3, "api": {"rate": "10/s"}, "solo": 1})


def start_two(worker_process: Callable[..., WorkerProcess], app: Celery, **kw: Any) -> list[WorkerProcess]:
    conf = {**FAST, "wfcelery_pools": {"db": 3, "api": {"rate": "10/s"}, "solo": 1}}
    queue = app.conf.task_default_queue
    return [worker_process(app, [queue], name, concurrency=4, conf=conf, **kw) for name in ("pa", "pb")]


def test_a_pool_of_3_bounds_24_nodes_of_three_runs_across_two_workers(
    pool_app: Celery, r: redis.Redis, worker_process: Callable[..., WorkerProcess]
) -> None:
    engine = pool_app._wfcelery_engine
    start_two(worker_process, pool_app)
    runs = [engine.submit(pooled(f"db{i}", 8, "db")) for i in range(3)]
    for run in runs:
        run.wait(timeout=90)
    spans = intervals(r, pool_app, [run.id for run in runs])
    assert len(spans) == 24
    peak = most_at_once(spans)
    assert 2 <= peak <= 3, f"{peak} bodies at once in a pool of 3"
    wait_for(lambda: used(engine, "db") == 0, timeout=10, message="every slot given back")
    assert engine.pool("db").waiting == 0
    print(f"\npool of 3: at most {peak} bodies at once over 24 nodes of 3 runs")


def test_a_saturated_pool_does_not_stop_an_unpooled_node_on_the_same_queue(
    pool_app: Celery, r: redis.Redis, uid: str, worker_process: Callable[..., WorkerProcess]
) -> None:
    engine = pool_app._wfcelery_engine
    start_two(worker_process, pool_app)
    hold = f"t{uid}:hold"
    blocked = Workflow("hog")
    for i in range(6):  # 1 runs (the pool's one slot), 5 wait for the pool
        blocked.add(f"b{i}", "proj.block", kwargs={"key": hold, "timeout": 60}, pool="solo")
    hog = engine.submit(blocked)
    wait_for(lambda: used(engine, "solo") == 1 and engine.pool("solo").waiting == 5, message="pool full")
    waiting = [n for n in hog.state().nodes.values() if n.status is NodeStatus.WAITING]
    assert len(waiting) == 5
    assert all(n.waiting is not None and n.waiting.pool == "solo" for n in waiting)
    assert error_text(waiting[0]) == "waiting for pool solo"  # `wfcelery status`
    assert waiting[0].to_dict()["waiting"]["pool"] == "solo"  # the REST API and the event stream
    other = engine.submit(pooled("free", 3, None, sleep=0))
    assert other.wait(timeout=30) is not None  # the 7 free worker slots took it at once
    assert hog.state().status is RunStatus.RUNNING
    for _ in range(6):
        r.rpush(hold, "go")
    hog.wait(timeout=60)
    wait_for(lambda: used(engine, "solo") == 0, timeout=10, message="every slot given back")


def test_a_rate_of_10_per_second_spaces_the_starts(
    pool_app: Celery, r: redis.Redis, worker_process: Callable[..., WorkerProcess]
) -> None:
    engine = pool_app._wfcelery_engine
    start_two(worker_process, pool_app)
    run = engine.submit(pooled("rated", 20, "api", sleep=0))
    run.wait(timeout=60)
    starts = sorted(s for s, _ in intervals(r, pool_app, [run.id]))
    assert len(starts) == 20
    burst = 1  # definition/pools.py: 0.1 s of starts at 10/s, at least one
    worst = max(sum(1 for t in starts if s <= t < s + 1_000_000) for s in starts)
    span = (starts[-1] - starts[0]) / 1e6
    # a token every 0.1 s: at most 10 starts in any second, plus the burst
    assert worst <= 10 + burst, f"{worst} starts within one second"
    assert span >= (20 - 10 - burst) / 10, f"20 starts within {span:.2f} s"
    print(f"\nrate 10/s: 20 starts over {span:.2f} s, at most {worst} in any 1-s window")


def test_a_sigkilled_workers_slot_comes_back(
    pool_app: Celery, r: redis.Redis, uid: str, worker_process: Callable[..., WorkerProcess]
) -> None:
    engine = pool_app._wfcelery_engine
    conf = {**FAST, "wfcelery_pools": {"db": 3, "api": {"rate": "10/s"}, "solo": 1}}
    queue = pool_app.conf.task_default_queue
    doomed = worker_process(pool_app, [queue], "doomed", concurrency=2, conf=conf)
    hold = f"t{uid}:hold"
    wf = Workflow("killed")
    wf.add("a", "proj.block", kwargs={"key": hold, "timeout": 60}, pool="solo")
    wf.add("b", "proj.record", pool="solo")
    run = engine.submit(wf)
    wait_for(lambda: status_of(run, "a") is NodeStatus.RUNNING, message="a RUNNING")
    assert status_of(run, "b") is NodeStatus.WAITING
    assert used(engine, "solo") == 1
    kill_whole(doomed)
    worker_process(pool_app, [queue], "heir", concurrency=2, conf=conf)
    wait_for(lambda: run.state().nodes["a"].epoch > 0, timeout=60, message="a repaired by the reconciler")
    r.rpush(hold, "go")
    assert run.wait(timeout=60)["b"] == "b"
    wait_for(lambda: used(engine, "solo") == 0, timeout=10, message="no slot held once nothing runs")
    assert engine.pool("solo").waiting == 0


def test_set_pool_down_never_preempts_and_up_releases_at_once(
    pool_app: Celery, r: redis.Redis, uid: str, worker_process: Callable[..., WorkerProcess]
) -> None:
    engine = pool_app._wfcelery_engine
    start_two(worker_process, pool_app)
    hold = f"t{uid}:hold"
    wf = Workflow("resize")
    for i in range(6):
        wf.add(f"b{i}", "proj.count_block", kwargs={"key": hold, "timeout": 60}, pool="db")
    run = engine.submit(wf)
    wait_for(lambda: used(engine, "db") == 3 and engine.pool("db").waiting == 3, message="3 running")
    engine.set_pool("db", slots=1)  # down: the 3 running go on
    assert used(engine, "db") == 3
    r.rpush(hold, "go")  # one ends: 2 hold, over the new size: nothing is released
    wait_for(lambda: used(engine, "db") == 2, message="one slot given back")
    granted = pools_of(engine.tracker).release("db")  # a grant pass, as the pool loop's tick makes
    assert granted.members == ()  # 2 hold, over the new size of 1: nothing is released
    assert (used(engine, "db"), engine.pool("db").waiting) == (2, 3)
    engine.set_pool("db", slots=5)  # up: the 3 waiting start now
    wait_for(lambda: used(engine, "db") == 5 and engine.pool("db").waiting == 0, message="released")
    wait_for(
        lambda: sum(1 for n in run.state().nodes.values() if n.status is NodeStatus.RUNNING) == 5,
        message="5 running",
    )
    for _ in range(5):
        r.rpush(hold, "go")
    run.wait(timeout=60)
    wait_for(lambda: used(engine, "db") == 0, timeout=10, message="every slot given back")
    assert engine.pool("db").slots == 5
    assert engine.pool("db").source == "set_pool"


def test_cancel_and_pause_give_slots_back(
    pool_app: Celery, r: redis.Redis, uid: str, worker_process: Callable[..., WorkerProcess]
) -> None:
    engine = pool_app._wfcelery_engine
    start_two(worker_process, pool_app)
    hold = f"t{uid}:hold"
    first = engine.submit(pooled("first", 3, "solo", hold=hold))
    wait_for(lambda: used(engine, "solo") == 1 and engine.pool("solo").waiting == 2, message="full")
    second = engine.submit(pooled("second", 2, "solo", sleep=0))
    wait_for(lambda: engine.pool("solo").waiting == 4, message="4 waiting")
    first.pause()
    r.rpush(hold, "go")  # the running one ends; the paused run's waiting nodes give way to the next run
    assert second.wait(timeout=60) is not None
    hog = engine.submit(pooled("hog", 3, "solo", hold=hold))  # 1 holds the slot, 2 wait
    wait_for(lambda: engine.pool("solo").waiting == 2, message="2 waiting")
    hog.cancel()  # its waiting nodes leave the line at once (a rate's token is never spent on them)
    assert engine.pool("solo").waiting == 0
    r.rpush(hold, "go")
    first.cancel()
    wait_for(
        lambda: used(engine, "solo") == 0 and engine.pool("solo").waiting == 0,
        timeout=15,
        message="nothing held, nothing waiting",
    )
    assert first.state().status is RunStatus.CANCELLED


def test_bad_input_is_refused_naming_it_and_changes_nothing(pool_app: Celery, r: redis.Redis) -> None:
    engine = pool_app._wfcelery_engine
    before = sorted(r.keys(f"{pool_app.conf.wfcelery_key_prefix}:*"))
    with pytest.raises(PoolError, match="unknown pool 'dbb'"):
        engine.submit(pooled("typo", 1, "dbb"))
    with pytest.raises(PoolError, match="malformed rate '5/fortnight'"):
        engine.set_pool("db", rate="5/fortnight")
    with pytest.raises(PoolError, match="slots must be a whole number >= 1, got 0"):
        engine.set_pool("db", slots=0)
    assert sorted(r.keys(f"{pool_app.conf.wfcelery_key_prefix}:*")) == before
    assert engine.pool("db").slots == 3
    assert pools_of(engine.tracker).names() == ["api", "db", "solo"]


def test_waiting_nodes_are_released_priority_first_then_in_submit_order(
    pool_app: Celery, r: redis.Redis, uid: str, worker_process: Callable[..., WorkerProcess]
) -> None:
    engine = pool_app._wfcelery_engine
    start_two(worker_process, pool_app)
    hold = f"t{uid}:hold"
    first = engine.submit(pooled("holder", 1, "solo", hold=hold))
    wait_for(lambda: used(engine, "solo") == 1, message="the slot taken")
    runs = []
    for i in range(4):
        runs.append(engine.submit(pooled(f"fifo{i}", 1, "solo", sleep=0)))
        wait_for(lambda n=i: engine.pool("solo").waiting == n + 1, message=f"{i + 1} waiting")
    urgent = Workflow("urgent")
    urgent.add("n0", "proj.record", pool="solo", priority=5)
    runs.append(engine.submit(urgent))
    wait_for(lambda: engine.pool("solo").waiting == 5, message="5 waiting")
    r.rpush(hold, "go")
    for run in [first, *runs]:
        run.wait(timeout=60)
    order = sorted(runs, key=lambda run: probe_times(r, pool_app, run.id)["n0"]["start"])
    assert [run.id for run in order] == [runs[4].id, *(run.id for run in runs[:4])]
    wait_for(lambda: used(engine, "solo") == 0, timeout=10, message="every slot given back")


def test_after_a_chaos_run_with_a_sigkilled_worker_no_slot_is_held(
    pool_app: Celery, r: redis.Redis, worker_process: Callable[..., WorkerProcess]
) -> None:
    engine = pool_app._wfcelery_engine
    first, second = start_two(worker_process, pool_app)
    runs = [engine.submit(pooled(f"chaos{i}", 6, "db", sleep=1.0)) for i in range(3)]

    def running_on_second() -> bool:
        return any(
            n.status is NodeStatus.RUNNING and n.worker == second.hostname
            for run in runs
            for n in run.state().nodes.values()
        )

    wait_for(running_on_second, timeout=60, message="a pooled node running on the second worker")
    kill_whole(second)
    conf = {**FAST, "wfcelery_pools": {"db": 3, "api": {"rate": "10/s"}, "solo": 1}}
    worker_process(pool_app, [pool_app.conf.task_default_queue], "pc", concurrency=4, conf=conf)
    for run in runs:
        run.wait(timeout=150)
    peak = most_at_once(intervals(r, pool_app, [run.id for run in runs]))
    assert peak <= 3, f"{peak} bodies at once in a pool of 3"
    assert any(n.epoch > 0 for run in runs for n in run.state().nodes.values())  # repaired nodes
    wait_for(lambda: used(engine, "db") == 0, timeout=15, message="no slot held once nothing runs")
    assert engine.pool("db").waiting == 0
    assert first.proc is not None
    assert first.proc.poll() is None


def test_the_gaps_a_crash_between_a_runs_script_and_its_pools_leaves_are_repaired(
    pool_app: Celery, r: redis.Redis, uid: str, worker_process: Callable[..., WorkerProcess]
) -> None:
    """A crash between two scripts of one move, written as the state it leaves: a node parked (WAITING)
    but never listed by its pool -- the reconciler's sweep lists it again; a node granted a slot but never
    woken -- the pool loop's audit wakes and publishes it."""
    engine = pool_app._wfcelery_engine
    start_two(worker_process, pool_app)
    keys = engine.tracker.keys
    hold = f"t{uid}:hold"
    wf = Workflow("gaps")
    for i in range(3):
        wf.add(f"b{i}", "proj.block", kwargs={"key": hold, "timeout": 60}, pool="solo")
    run = engine.submit(wf)
    wait_for(lambda: engine.pool("solo").waiting == 2, message="two waiting")
    unlisted, ungranted = r.zrange(keys.pool_waiting("solo"), 0, -1)
    r.zrem(keys.pool_waiting("solo"), unlisted)  # parked, never listed
    wait_for(
        lambda: r.zscore(keys.pool_waiting("solo"), unlisted) is not None,
        timeout=20,
        message="the sweep lists the parked node again",
    )
    r.zrem(keys.pool_waiting("solo"), ungranted)  # granted, never woken (a slot held by a WAITING node)
    r.hset(keys.pool_held("solo"), ungranted, engine.tracker.server_ms() - 60_000)
    slot = ungranted.split("|")[1]
    name = next(n.name for n in run.state().nodes.values() if str(n.index) == slot)
    wait_for(lambda: status_of(run, name) is NodeStatus.RUNNING, timeout=20, message="the audit wakes it")
    for _ in range(3):
        r.rpush(hold, "go")
    run.wait(timeout=60)
    wait_for(lambda: used(engine, "solo") == 0, timeout=10, message="every slot given back")
    assert engine.pool("solo").waiting == 0


def test_pooled_nodes_under_the_canvas_executor_are_published_alone_and_bounded(pool_app: Celery) -> None:
    engine = pool_app._wfcelery_engine
    wf = Workflow("canvas-pooled", executor="canvas")
    wf.add("a", "proj.add", args=[1, 2])
    wf.add("b", "proj.add", args=[10], after="a", pool="solo")
    wf.add("c", "proj.add", args=[100], after="b")
    with in_thread_worker(pool_app, concurrency=4):
        runs = [engine.submit(wf) for _ in range(3)]
        assert [run.wait(timeout=60) for run in runs] == [{"a": 3, "b": 13, "c": 113}] * 3
    assert (used(engine, "solo"), engine.pool("solo").waiting) == (0, 0)
