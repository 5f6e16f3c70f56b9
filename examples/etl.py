"""ETL pipeline, built in Python: extract (io) -> transform (cpu) -> load (io) -> report.

Run it (Redis on localhost:6379; see examples/app.py to point elsewhere)::

    celery -A examples.app worker -Q io,cpu,celery -n all@%h -l INFO  # terminal 1
    python -m examples.etl 2026-11-22                                 # terminal 2

The same workflow as a file is examples/etl.yaml.
"""

from __future__ import annotations

import sys
from typing import Any

import wfcelery
from examples.app import engine, extract, load, report, transform


def build() -> wfcelery.Workflow:
    wf = wfcelery.Workflow("etl", defaults={"retries": 1})
    e = wf.add("extract", extract, args=["${day}"], type="io")
    t = wf.add("transform", transform, type="cpu")
    ld = wf.add("load", load, kwargs={"table": "revenue_by_sku"}, type="io")
    r = wf.add("report", report, type="io")
    e >> t >> ld >> r  # each node gets its parent's result as first argument, as in a Celery chain
    return wf


def main(day: str = "2026-11-22", timeout: float = 60) -> dict[str, Any]:
    run = engine.submit(build(), params={"day": day})
    print(f"run {run.id} submitted; waiting ...")
    results = run.wait(timeout=timeout)
    print(results["report"])
    return results


if __name__ == "__main__":
    main(*sys.argv[1:2])
