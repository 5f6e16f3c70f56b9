"""Schedules at scale: ``python -m benchmarks.schedules`` (``--schedules 1000 --seconds 20``).

N schedules firing every second (``every=1``, a one-node workflow), fired by one scheduler loop -- the
:class:`~wfcelery.ops.scheduler.Scheduler` a worker runs in a thread, here in this process alone -- for
``--seconds``. Two throwaway ``redis-server``: the tracker's and the broker's, so the tracker's cost is
counted alone. The runs are published to the broker and not executed (the loop's work is the subject).

Reported: fires per second; fire lag (Redis's clock when a slot's run was created and published, minus
the slot's time) p50 / p99 / max; per fire, the tracker's Redis commands (``INFO commandstats``, commands
inside Lua scripts included), its CPU (``INFO cpu``, user + sys) and the scheduler process's CPU; the
tracker's memory per run. The schedules have ``catchup=True``, so a loop that falls behind fires every
slot late rather than skipping; runs and run keys are counted (one each per slot fired).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import redis
from celery import Celery

import wfcelery
from wfcelery._redis_server import RedisServer
from wfcelery.ops.scheduler import Scheduler


def commandstats(r: redis.Redis) -> int:
    return sum(int(v["calls"]) for k, v in r.info("commandstats").items())


def redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(schedules: int, seconds: float) -> dict[str, Any]:
    tracker_redis, broker_redis = RedisServer().start(), RedisServer().start()
    try:
        app = Celery("bench", broker=broker_redis.url, set_as_current=False)
        app.conf.update(
            wfcelery_redis_url=tracker_redis.url, wfcelery_check_tasks=False, wfcelery_key_prefix="bench"
        )
        engine = wfcelery.install(app)
        wf = wfcelery.Workflow("tick")
        wf.add("a", "bench.noop", args=["${scheduled_at}"])
        for i in range(schedules):
            engine.schedule(f"s{i:04d}", wf, every=1, catchup=True)
        loop = Scheduler(engine.tracker, engine.dispatch, "bench")
        loop.fired = []
        r = redis.Redis.from_url(tracker_redis.url)
        loop.tick()  # warm up: compile once, connect
        loop.fired.clear()
        start_ms = engine.tracker.server_ms()
        calls, cpu, mine = commandstats(r), redis_cpu(r), own_cpu()
        memory = int(r.info("memory")["used_memory"])
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            time.sleep(loop.tick())
        calls, cpu, mine = commandstats(r) - calls, redis_cpu(r) - cpu, own_cpu() - mine
        memory = int(r.info("memory")["used_memory"]) - memory
        fired = [(slot, at) for slot, at in loop.fired if slot >= start_ms]
        lags = sorted(at - slot for slot, at in fired)
        end_ms = engine.tracker.server_ms()
        due = schedules * len(range(-(-start_ms // 1000) * 1000, end_ms + 1, 1000))
        keys = sum(1 for _ in r.scan_iter(match="bench:runkey:*", count=10_000))
        runs = int(r.zcard("bench:runs"))
        n = len(loop.fired)
        return {
            "schedules": schedules,
            "seconds": seconds,
            "fires": n,
            "fires_per_second": round(n / seconds, 1),
            "slots_due_in_window": due,
            "runs": runs,
            "run_keys": keys,
            "lag_ms_p50": lags[len(lags) // 2],
            "lag_ms_p99": lags[int(len(lags) * 0.99)],
            "lag_ms_max": lags[-1],
            "tracker_commands_per_fire": round(calls / n, 2),
            "tracker_cpu_us_per_fire": round(cpu / n * 1e6, 1),
            "scheduler_cpu_us_per_fire": round(mine / n * 1e6, 1),
            "tracker_bytes_per_run": round(memory / n),
        }
    finally:
        tracker_redis.stop()
        broker_redis.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = parser.parse_args()
    result = run(args.schedules, args.seconds)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
