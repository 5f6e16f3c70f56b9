"""What pools cost: ``python -m benchmarks.pools [--runs 200] [--rounds 2] [--drain 10000] [--out FILE]``.

One throwaway ``redis-server`` (broker db 0, tracker db 1) and ``celery -A benchmarks.tasks worker``
subprocess(es), the same app configuration on both sides (``wfcelery_pools``). Three measurements:

* **Small workflows, every node in a pool of 1,000 slots vs no pool**, and the whole operations layer
  (the pool, a run key and a deadline on every run) vs none (``a -> 8 parallel -> c``, ``--runs`` runs
  submitted at once, end-to-end tasks/s), the order rotated every round so that a shared machine's load
  hits every side alike; the median of each round's ratio (target >= 0.9).
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
import os
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


def run_all(
    engine: Any, waiter: Waiter, wfs: list[wfcelery.Workflow], timeout: float = 600, ops: bool = False
) -> tuple[float, list[str]]:
    """Submit every workflow, wait for every run; seconds from the first submit to the last end, and the
    run ids. ``ops``: each run also gets a run key of its own and a deadline (one hour: never reached)."""
    start = time.monotonic()
    if ops:
        tag = f"{time.monotonic_ns()}"
        ids = [engine.submit(wf, run_key=f"{tag}-{i}", deadline=3600).id for i, wf in enumerate(wfs)]
    else:
        ids = [engine.submit(wf).id for wf in wfs]
    end = waiter.wait(ids, waiter.runs_done, timeout)
    if waiter.failures:
        raise RuntimeError(f"runs failed: {sorted(waiter.failures)[:3]}")
    return end - start, ids


def waited(engine: Any, run_ids: list[str]) -> int:
    """Nodes of these runs that went WAITING for their pool (a full pool parks them: no message out until a
    slot frees), from the runs' event logs."""
    r = engine.tracker.client
    logs = [r.get(engine.tracker.keys.events(run_id)) or "" for run_id in run_ids]
    return sum(1 for log in logs for line in log.splitlines() if line.split(" ")[2:3] == ["W"])


#: The sides of the throughput comparison: label, pool, and whether each run has a run key and a deadline.
SIDES = (
    ("no pool", None, False),
    ("pool of 1,000", "big", False),
    ("pool + run key + deadline", "big", True),
)


def throughput(engine: Any, waiter: Waiter, runs: int, rounds: int) -> dict[str, Any]:
    """Rounds of every side, the order rotated every round; each side's ratio to the plain side in the
    same round, and their median, so a load spike on a shared machine moves one round, not the result.
    Metrics are on for every side (their own cost: ``benchmarks.metrics_cost``)."""
    rates: dict[str, list[float]] = {label: [] for label, _, _ in SIDES}
    waits: dict[str, list[int]] = {label: [] for label, _, _ in SIDES}
    for _, pool, ops in SIDES:  # warm up: connections, plan caches
        run_all(engine, waiter, [small("warm", pool)] * 20, ops=ops)
    for i in range(rounds):
        order = SIDES[i % len(SIDES) :] + SIDES[: i % len(SIDES)]
        for label, pool, ops in order:
            seconds, ids = run_all(engine, waiter, [small(f"s-{label}", pool)] * runs, ops=ops)
            rates[label].append(round(runs * 10 / seconds, 1))
            waits[label].append(waited(engine, ids))
    plain = rates["no pool"]
    pairs = [round(b / a, 3) for a, b in zip(plain, rates["pool of 1,000"], strict=True)]
    ops_pairs = [round(b / a, 3) for a, b in zip(plain, rates["pool + run key + deadline"], strict=True)]
    medians = {k: statistics.median(v) for k, v in rates.items()}
    return {
        "runs_per_round": runs,
        "tasks_per_run": 10,
        "tasks_per_second": rates,
        "nodes_that_waited_for_a_slot": waits,
        "median_tasks_per_second": medians,
        "ratio_per_round": pairs,
        "ratio_pooled_vs_none": statistics.median(pairs),
        "ratio_per_round_ops_layer": ops_pairs,
        "ratio_ops_layer_vs_none": statistics.median(ops_pairs),
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
    parser.add_argument("--throughput-only", action="store_true", help="skip the release latency and drain")
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
            "load_average_at_start": list(os.getloadavg()),
            "throughput": throughput(engine, waiter, args.runs, args.rounds),
        }
        if not args.throughput_only:
            result["release_latency"] = release_latency(engine, waiter)
            result["drain"] = drain(engine, waiter, r, args.drain)
        result["load_average_at_end"] = list(os.getloadavg())
    finally:
        workers.stop()
        server.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
