"""How late a deadline fails its run: ``python -m benchmarks.deadlines`` (``--runs 60 --deadline 2``).

One throwaway ``redis-server`` (broker, results and tracker), one prefork worker subprocess with the
shipped settings (its timer loop is the elected loop that fires deadlines). ``--runs`` runs of a workflow
whose one node sleeps 60 s are submitted ``--spacing`` seconds apart, each with ``deadline=--deadline``:
each is FAILED at its deadline, its running body terminated (the pool replaces the process), its queued
messages revoked. Lateness of each run: its end (``finished``, Redis's clock, written by the script that
failed it) minus its deadline (Redis's clock, set at submit). Reported: p50, p99 and max, with the
machine's load average before and after. The target -- every run FAILED "deadline exceeded", the p99
within ``--target`` seconds (2 by default) -- is checked: the exit status is 1 when it is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.harness import Workers, WorkerSettings, redis_server_class
from benchmarks.tasks import PREFIX, QUEUE, make_app
from wfcelery import Workflow


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(runs: int, deadline: float, spacing: float, concurrency: int) -> dict[str, Any]:
    server = redis_server_class()().start()
    workers = None
    try:
        app = make_app(server.url, server.url)
        engine = app._wfcelery_engine
        logdir = Path(tempfile.mkdtemp(prefix="wfbench-deadlines-"))
        settings = WorkerSettings(pool="prefork", concurrency=concurrency, workers=1)
        workers = Workers(settings, server.url, server.url, PREFIX, QUEUE, logdir).start(app)
        wf = Workflow("deadline-bench", deadline=deadline)
        wf.add("long", "bench.sleep", args=[60])
        load_before = os.getloadavg()
        ids = []
        for _ in range(runs):
            ids.append(engine.submit(wf).id)
            time.sleep(spacing)
        give_up = time.monotonic() + deadline + 60
        while time.monotonic() < give_up:
            records = engine.tracker.records(ids)
            if all(r is not None and r.status.finished for r in records):
                break
            time.sleep(0.2)
        records = engine.tracker.records(ids)
        late = [
            (r.finished_ms - r.deadline_ms) / 1000
            for r in records
            if r is not None and r.finished_ms is not None and r.deadline_ms is not None
        ]
        statuses = sorted({r.status.value if r else "gone" for r in records})
        errors = sorted({json.dumps(r.error) for r in records if r is not None})
        return {
            "runs": runs,
            "deadline_s": deadline,
            "spacing_s": spacing,
            "pool": f"prefork x{concurrency}, 1 worker process",
            "statuses": statuses,
            "errors": errors,
            "ended": len(late),
            "late_p50_s": round(percentile(late, 0.5), 3) if late else None,
            "late_p99_s": round(percentile(late, 0.99), 3) if late else None,
            "late_max_s": round(max(late), 3) if late else None,
            "cpus": os.cpu_count(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        if workers is not None:
            workers.stop()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--deadline", type=float, default=2.0, help="seconds")
    parser.add_argument("--spacing", type=float, default=0.25, help="seconds between submits")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--target", type=float, default=2.0, help="p99 lateness at most (seconds)")
    args = parser.parse_args()
    report = run(args.runs, args.deadline, args.spacing, args.concurrency)
    met = report["statuses"] == ["FAILED"] and report["ended"] == args.runs
    met = met and report["late_p99_s"] is not None and report["late_p99_s"] <= args.target
    report["target"] = f"every run FAILED, p99 <= {args.target:g} s: {'met' if met else 'MISSED'}"
    print(json.dumps(report, indent=2))
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
