"""Quick start: the getting-started page of the docs (and the README's quick start), as a file that runs.

With a Redis on localhost:6379 (``docker run -p 6379:6379 redis:7``), from the repository's root::

    celery -A examples.quickstart worker -Q io -n io@%h      # terminal 1: the io pool
    celery -A examples.quickstart worker -Q cpu -n cpu@%h    # terminal 2: the cpu pool
    python -m examples.quickstart                            # terminal 3: submit, print the run id, wait

Celery reads ``CELERY_BROKER_URL`` and ``CELERY_RESULT_BACKEND`` from the environment before the URLs
below, so the same file runs against another Redis (tests/integration/test_docs.py does that).
"""

from __future__ import annotations

import sys
from typing import Any

# --8<-- [start:app]
from celery import Celery

import wfcelery

app = Celery("examples.quickstart", broker="redis://localhost:6379/0", backend="redis://localhost:6379/1")
engine = wfcelery.install(app)  # idempotent; returns this app's Engine


@app.task
def extract(day: str) -> list[int]:
    return [3, 1, 4, 1, 5]  # the rows of that day


@app.task
def transform(rows: list[int]) -> int:
    return sum(rows)


@app.task
def load(total: int, table: str) -> str:
    return f"{table}: {total}"


# --8<-- [end:app]
# --8<-- [start:workflow]
def build() -> wfcelery.Workflow:
    wf = wfcelery.Workflow("quickstart")
    e = wf.add("extract", extract, args=["${day}"], type="io")  # queue "io": the io workers run it
    t = wf.add("transform", transform, type="cpu", retries=3)
    ld = wf.add("load", load, kwargs={"table": "daily"}, type="io")
    e >> t >> ld  # a child gets its parent's result as first argument, as in a Celery chain
    return wf


def main(day: str = "2026-11-22") -> dict[str, Any]:
    run = engine.submit(build(), params={"day": day})
    print(run.id, flush=True)
    results = run.wait(timeout=60)  # {'extract': [3, 1, 4, 1, 5], 'transform': 14, 'load': 'daily: 14'}
    print(results)
    return results


# --8<-- [end:workflow]

if __name__ == "__main__":
    main(*sys.argv[1:2])
