"""What the tracker's metrics cost: the small-workflows scenario (``a -> 8 parallel -> c``) with
``wfcelery_metrics`` off and on, alternated (off, on, off, on, ...) so that a shared machine's load hits both
alike, and the Redis memory the counters take.

``python -m benchmarks.metrics_cost [--rounds 3] [--runs 400] [--out benchmarks/results]``

Each round is one ``python -m benchmarks.run --full --only small`` (its own redis-server and worker). The
report: median end-to-end tasks/s per setting and their ratio (target >= 0.95), Redis and worker CPU per
task, Redis commands per task; then the bytes of the counters' hash, the label registries and the history
index after ``--runs`` runs (MEMORY USAGE, and the ``used_memory`` drop when they are deleted).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).parent / "results"


def one_round(metrics: bool, runs: int) -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="wfcelery-metrics-cost-"))
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.run",
        "--full",
        "--only",
        "small",
        "--size",
        f"small_runs={runs}",
        "--conf",
        f"wfcelery_metrics={'true' if metrics else 'false'}",
        "--no-chart",
        "--profile",
        "off",
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    (report,) = out.glob("*.json")
    data = json.loads(report.read_text())
    side = data["scenarios"][0]["sides"]["wfcelery"]
    side["load_average_at_start"] = data["machine"]["load_average_at_start"][0]
    side["memory_shared_bytes"] = side["memory"].get("tracker shared", {}).get("bytes")
    return side


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def counters_memory(runs: int) -> dict[str, Any]:
    """Bytes of the metrics keys after ``runs`` runs of a 10-node workflow (3 tasks, 2 queues), recorded
    through the Lua scripts by a real in-thread worker."""
    from celery import Celery
    from celery.contrib.testing.worker import start_worker

    import wfcelery
    from wfcelery._redis_server import RedisServer

    server = RedisServer().start()
    try:
        url = f"{server.url}/1"
        app = Celery("mc", broker=url, backend=url, set_as_current=False)
        app.conf.update(wfcelery_key_prefix="mc", worker_hijack_root_logger=False, wfcelery_inspect_timeout=0)
        for name in ("mc.extract", "mc.transform", "mc.load"):
            app.task(name=name, shared=False)(_noop)
        engine = wfcelery.install(app)
        wf = wfcelery.Workflow("mc")
        first = wf.add("e", "mc.extract", type="io")
        middle = [wf.add(f"t{i}", "mc.transform", type="cpu", after=["e"]) for i in range(8)]
        wf.add("l", "mc.load", type="io", after=[m.name for m in middle])
        _ = first
        with start_worker(app, pool="threads", concurrency=4, perform_ping_check=False, queues=["io", "cpu"]):
            started = [engine.submit(wf) for _ in range(runs)]
            deadline = time.monotonic() + 300
            while any(not r.state().finished for r in started[-5:]) and time.monotonic() < deadline:
                time.sleep(0.2)
            for r in started:
                while not r.state().finished and time.monotonic() < deadline:
                    time.sleep(0.05)
        client = engine.tracker.client
        keys = engine.tracker.keys
        groups = {
            "counters hash": [keys.metrics()],
            "label registries": [keys.metric_values(k) for k in ("workflow", "task", "queue")],
            "history index (runs:wf; every run here succeeds)": [keys.runs_of("mc")],
        }
        out: dict[str, Any] = {"runs": runs, "fields": client.hlen(keys.metrics())}
        for name, group in groups.items():
            usage = sum(client.memory_usage(k, samples=0) or 0 for k in group)
            before = client.info("memory")["used_memory"]
            client.delete(*group)
            dropped = before - client.info("memory")["used_memory"]
            out[name] = {
                "memory_usage": usage,
                "used_memory_drop": dropped,
                "per_run": round(dropped / runs, 1),
            }
        return out
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.metrics_cost")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--runs", type=int, default=400)
    p.add_argument("--memory-runs", type=int, default=500)
    p.add_argument("--out", type=Path, default=RESULTS_DIR)
    args = p.parse_args()
    sides: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for i in range(args.rounds):
        for setting in ("off", "on") if i % 2 == 0 else ("on", "off"):
            side = one_round(setting == "on", args.runs)
            sides[setting].append(side)
            print(f"round {i + 1} metrics {setting}: {side['tasks_per_s']} tasks/s", flush=True)

    def med(setting: str, key: str) -> float:
        return round(statistics.median(s[key] for s in sides[setting]), 3)

    keys = ("tasks_per_s", "redis_cpu_ms_per_task", "worker_cpu_ms_per_task", "redis_commands_per_task")
    summary: dict[str, Any] = {}
    if args.rounds:
        summary = {k: {"off": med("off", k), "on": med("on", k)} for k in keys}
        summary["ratio_tasks_per_s"] = round(summary["tasks_per_s"]["on"] / summary["tasks_per_s"]["off"], 3)
    memory = counters_memory(args.memory_runs)
    result = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "rounds": sides,
        "summary": summary,
        "memory": memory,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{time.strftime('%Y-%m-%d')}-metrics-cost.json"
    path.write_text(json.dumps(result, indent=1))
    print(json.dumps({"summary": summary, "memory": memory}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
