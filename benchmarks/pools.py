"""What pools cost: ``python -m benchmarks.pools [--runs 200] [--rounds 2] [--drain 10000] [--out FILE]``.

One throwaway ``redis-server`` (broker db 0, tracker db 1) and ``celery -A benchmarks.tasks worker``
subprocess(es), the same app configuration on both sides (``wfcelery_pools``). Three measurements:

* **Small workflows, every node in a pool of 1,000 slots vs no pool** (``a -> 8 parallel -> c``, ``--runs``
  runs submitted at once, end-to-end tasks/s), alternated (off, on, off, on...) so that a shared machine's
  load hits both alike; the ratio of the medians (target >= 0.9).
* **Release latency**: 200 nodes in a pool of 1 slot; each body records its start and end, and the gap
  from one body's end to the next body's start is what a waiting node waits once a slot frees (the report,
  the slot given back, the next node woken and published, the broker, the worker's pickup): p50 / p99.
* **10,000 nodes waiting on one pool** (one run, ``--drain`` nodes, a pool of 20 slots): the submit's time,
  the tracker's memory while they wait (``used_memory`` over the idle baseline, per node; the waiting set's
  own ``MEMORY USAGE``), the time to drain, and the same run with no pool for reference.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery

import wfcelery

from .environment import machine
from .harness import Waiter, Workers, WorkerSettings, make_workdir, redis_server_class
from .tasks import PREFIX, QUEUE, make_app

POOLS = {"big": 1000, "one": 1, "drain": 20}


def small(name: str, pool: str | None) -> wfcelery.Workflow:
    wf = wfcelery.Workflow(name)
    wf.add("a", "bench.noop", pool=pool)
    for i in range(8):
        wf.add(f"p{i}", "bench.noop", after="a", pool=pool)
    wf.add("c", "bench.noop", after=[f"p{i}" for i in range(8)], pool=pool)
    return wf


def run_all(engine: Any, waiter: Waiter, wfs: list[wfcelery.Workflow], timeout: float = 600) -> float:
    """Submit every workflow, wait for every run; seconds from the first submit to the last end."""
    start = time.monotonic()
    ids = [engine.submit(wf).id for wf in wfs]
    end = waiter.wait(ids, waiter.runs_done, timeout)
    if waiter.failures:
        raise RuntimeError(f"runs failed: {sorted(waiter.failures)[:3]}")
    return end - start


def throughput(engine: Any, waiter: Waiter, runs: int, rounds: int) -> dict[str, Any]:
    """Rounds of both sides, the order swapped every round (off, on; on, off; ...); the ratio of each
    round's pair, and their median, so a load spike on a shared machine moves one pair, not the result."""
    rates: dict[str, list[float]] = {"no pool": [], "pool of 1,000": []}
    sides = [("no pool", None), ("pool of 1,000", "big")]
    run_all(engine, waiter, [small("warm", None)] * 20)  # warm up: connections, plan caches
    run_all(engine, waiter, [small("warm", "big")] * 20)
    for i in range(rounds):
        for label, pool in sides if i % 2 == 0 else sides[::-1]:
            seconds = run_all(engine, waiter, [small(f"s-{label}", pool)] * runs)
            rates[label].append(round(runs * 10 / seconds, 1))
    pairs = [round(b / a, 3) for a, b in zip(rates["no pool"], rates["pool of 1,000"], strict=True)]
    medians = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "runs_per_round": runs,
        "tasks_per_run": 10,
        "tasks_per_second": rates,
        "median_tasks_per_second": medians,
        "ratio_per_round": pairs,
        "ratio_pooled_vs_none": statistics.median(pairs),
        "target": ">= 0.9",
    }


def release_latency(engine: Any, waiter: Waiter, nodes: int = 200) -> dict[str, Any]:
    wf = wfcelery.Workflow("latency")
    for i in range(nodes):
        wf.add(f"n{i}", "bench.span", pool="one")
    run_all(engine, waiter, [wf])
    spans = sorted(tuple(v) for v in engine.run(engine.runs(name="latency")[0].id).results().values())
    gaps = sorted((b[0] - a[1]) * 1000 for a, b in itertools.pairwise(spans))
    overlap = sum(1 for a, b in itertools.pairwise(spans) if b[0] < a[1])
    return {
        "nodes": nodes,
        "pool_slots": 1,
        "release_ms_p50": round(gaps[len(gaps) // 2], 2),
        "release_ms_p99": round(gaps[int(len(gaps) * 0.99)], 2),
        "release_ms_max": round(gaps[-1], 2),
        "bodies_overlapping": overlap,
    }


def drain(engine: Any, waiter: Waiter, r: redis.Redis, nodes: int) -> dict[str, Any]:
    """One run: a root, then ``nodes`` children in a pool of 20 (released at once by the root's success:
    all but 20 wait), and the same run with no pool."""
    out: dict[str, Any] = {"nodes": nodes, "pool_slots": POOLS["drain"]}
    for label, pool in (("no pool", None), ("pool of 20", "drain")):
        wf = wfcelery.Workflow(f"drain-{pool}")
        wf.add("root", "bench.noop")
        for i in range(nodes):
            wf.add(f"n{i}", "bench.noop", after="root", pool=pool)
        before = int(r.info("memory")["used_memory"])
        start = time.monotonic()
        run = engine.submit(wf)
        side: dict[str, Any] = {}
        if pool is not None:
            side.update(peak_waiting(engine, r, run.id, pool, nodes - POOLS["drain"], before, start))
        end = waiter.wait([run.id], waiter.runs_done, 1800)
        side["drain_s"] = round(end - start, 2)
        side["tasks_per_second"] = round(nodes / (end - start), 1)
        out[label] = side
    return out


def peak_waiting(
    engine: Any, r: redis.Redis, run_id: str, pool: str, expected: int, before: int, start: float
) -> dict[str, Any]:
    """Poll the pool until the most nodes wait (or the run ends): how many, when, the memory then."""
    best: dict[str, Any] = {"waiting_peak": 0}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        waiting = engine.pool(pool).waiting
        if waiting > best["waiting_peak"]:
            used = int(r.info("memory")["used_memory"]) - before
            best = {
                "waiting_peak": waiting,
                "all_parked_after_s": round(time.monotonic() - start, 2),
                "tracker_bytes_over_baseline": used,
                "tracker_bytes_per_node": round(used / (engine.pool(pool).waiting + POOLS["drain"])),
                "waiting_set_bytes": r.memory_usage(engine.tracker.keys.pool_waiting(pool)),
            }
        if waiting >= expected or engine.run(run_id).state().status.finished:
            break
        time.sleep(0.05)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--drain", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = parser.parse_args()
    server = redis_server_class()().start()
    workdir = make_workdir()
    conf = {"wfcelery_pools": POOLS}
    broker, backend = f"{server.url}/0", f"{server.url}/1"
    app: Celery = make_app(broker, backend, conf=conf)
    settings = WorkerSettings(concurrency=args.concurrency)
    workers = Workers(settings, broker, backend, PREFIX, QUEUE, workdir, conf=conf).start(app)
    r = redis.Redis.from_url(backend, decode_responses=True)
    waiter = Waiter(r, lambda t: f"celery-task-meta-{t}", lambda run: f"{PREFIX}:{{{run}}}:run")
    engine = wfcelery.install(app)
    try:
        result = {
            "machine": machine(),
            "workers": settings.describe(app),
            "conditions": "a shared 2-core VM, busy with other jobs (load average in machine)",
            "throughput": throughput(engine, waiter, args.runs, args.rounds),
            "release_latency": release_latency(engine, waiter),
            "drain": drain(engine, waiter, r, args.drain),
            "load_average_at_end": list(__import__("os").getloadavg()),
        }
    finally:
        workers.stop()
        server.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
