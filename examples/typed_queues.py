"""Typed queues: a node's ``type`` is its queue, so each worker runs exactly its kind of task.

Run it (Redis on localhost:6379), one command per terminal::

    celery -A examples.app worker -Q cpu -n cpu@%h -c 2 -l INFO
    celery -A examples.app worker -Q io -n io@%h -P threads -c 8 -l INFO
    python -m examples.typed_queues

It prints which worker ran each node: the checksums on cpu@..., the downloads and uploads on io@....
Map types to other queue names with ``app.conf.wfcelery_routes = {"cpu": "cpu-large"}``.
"""

from __future__ import annotations

from typing import Any

import wfcelery
from examples.app import checksum, engine, extract, upload


def build(parts: int = 3) -> wfcelery.Workflow:
    wf = wfcelery.Workflow("typed-queues")
    for i in range(parts):
        (
            wf.add(f"download_{i}", extract, args=[f"part-{i}"], type="io")
            >> wf.add(f"checksum_{i}", checksum, type="cpu")
            >> wf.add(f"upload_{i}", upload, type="io")
        )
    return wf


def main(timeout: float = 60) -> dict[str, Any]:
    run = engine.submit(build())
    run.wait(timeout=timeout)
    placed = {name: {"queue": n.queue, "worker": n.worker} for name, n in run.state().nodes.items()}
    for name, where in placed.items():
        print(f"{name:12} queue={where['queue']:4} worker={where['worker']}")
    return placed


if __name__ == "__main__":
    main()
