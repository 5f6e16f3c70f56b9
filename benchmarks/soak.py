"""Timing-bound tests, repeated beside a busy neighbour (`make soak`).

    python -m benchmarks.soak [--count 20] [--no-burner] [--out FILE] [PYTEST ARGS / TEST IDS...]

Starts one CPU-burning process (``python3 -c 'while 1: pass'``: the machine's other core busy, as on a
shared CI host), runs the given tests (default: :data:`TIMING_BOUND`) ``--count`` times each through
pytest-repeat in one pytest session, and stops the burner. Tests that measure a recovery time append it
to ``$WFCELERY_TIMINGS`` (``tests/integration/test_faults.py: record_timing``); the summary -- passes and
failures per test, and min / median / p95 / max of each measured time -- is printed and written as JSON
to ``--out`` (default ``benchmarks/results/soak-<date>.json``). Exit status: pytest's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: The tests of `make test` whose pass depends on time: a bound asserted on a measured time, or a fault that
#: must heal before a deadline -- the fault and reconciler tests, the repairs at heartbeat pace, a pause
#: mid-flight, the dashboard's 10,000-node render, the web server's request limits, and the active-run limits
#: and deadlines' repairs (a SIGKILLed worker, a crash before an admission) and deadline lateness, the
#: pools' rate spacing, slot returns and crash-gap repairs, the local gate's lease lapse and renewal and a
#: killed worker's messages sent again, and the repairs of waits and sub-workflows.
TIMING_BOUND = [
    "tests/integration/test_faults.py",
    "tests/integration/test_reconciler.py",
    "tests/integration/test_repair_pace.py",
    "tests/integration/test_control.py::test_pause_mid_flight_nothing_starts_then_resume_runs_every_node_once",
    "tests/web/test_browser.py::test_a_10000_node_run_renders_in_time_and_the_tab_stays_responsive",
    "tests/web/test_limits.py",
    "tests/integration/test_routing.py::test_a_worker_that_answers_late_is_not_reported_as_missing",
    "tests/integration/test_routing.py::test_workers_sharing_one_node_name_are_both_counted_and_named",
    "tests/integration/test_run_limits.py",
    "tests/integration/test_local_gate.py",
    "tests/integration/test_waits_repair.py",
    *(
        f"tests/integration/test_pools.py::{name}"
        for name in (
            "test_a_rate_of_10_per_second_spaces_the_starts",
            "test_a_sigkilled_workers_slot_comes_back",
            "test_set_pool_down_never_preempts_and_up_releases_at_once",
            "test_cancel_and_pause_give_slots_back",
            "test_after_a_chaos_run_with_a_sigkilled_worker_no_slot_is_held",
            "test_the_gaps_a_crash_between_a_runs_script_and_its_pools_leaves_are_repaired",
        )
    ),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def distribution(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "min": min(values),
        "median": statistics.median(values),
        "p95": percentile(values, 0.95),
        "max": max(values),
    }


def outcomes(junit: Path) -> dict[str, dict[str, int]]:
    """Passes, failures and skips per test (its repetitions merged: pytest-repeat's ``[1-20]`` suffix)."""
    per: dict[str, dict[str, int]] = defaultdict(lambda: {"passed": 0, "failed": 0, "skipped": 0})
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        base = re.sub(r"(?:(?<=\[)|-)\d+-\d+\]$", "]", name).replace("[]", "")
        if case.find("failure") is not None or case.find("error") is not None:
            per[base]["failed"] += 1
        elif case.find("skipped") is not None:
            per[base]["skipped"] += 1
        else:
            per[base]["passed"] += 1
    return dict(per)


def timings(path: Path) -> dict[str, dict[str, dict[str, float]]]:
    """Each measured time's distribution, per test and parameters (``record_timing`` lines)."""
    series: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            label = " ".join(f"{k}={v}" for k, v in row.items() if not k.endswith("_s"))
            for k, v in row.items():
                if k.endswith("_s"):
                    series[label][k].append(float(v))
    return {label: {k: distribution(v) for k, v in values.items()} for label, values in series.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--count", type=int, default=20, help="repetitions of each test (default 20)")
    parser.add_argument("--no-burner", action="store_true", help="no CPU-burning neighbour")
    parser.add_argument("--out", type=Path, default=None, help="summary JSON")
    args, pytest_args = parser.parse_known_args(argv)
    out = args.out or ROOT / "benchmarks" / "results" / f"soak-{time.strftime('%Y-%m-%d-%H%M')}.json"
    work = Path(tempfile.mkdtemp(prefix="wfcelery-soak-"))
    junit, times = work / "junit.xml", work / "timings.jsonl"
    burner = None if args.no_burner else subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    started = time.monotonic()
    try:
        cmd = [sys.executable, "-m", "pytest", "-q", f"--count={args.count}"]
        cmd += ["--repeat-scope=function", f"--junitxml={junit}", *(pytest_args or TIMING_BOUND)]
        env = {**os.environ, "WFCELERY_TIMINGS": str(times)}
        code = subprocess.call(cmd, cwd=ROOT, env=env)
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()
    summary: dict[str, Any] = {
        "count": args.count,
        "burner": burner is not None,
        "load_average_at_end": os.getloadavg(),
        "seconds": round(time.monotonic() - started),
        "tests": outcomes(junit) if junit.exists() else {},
        "timings": timings(times),
        "pytest_exit": code,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: summary[k] for k in ("seconds", "timings", "pytest_exit")}, indent=1))
    failed = {t: o for t, o in summary["tests"].items() if o["failed"]}
    print(f"{len(summary['tests'])} tests x {args.count}; failed: {failed or 'none'}; summary in {out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
