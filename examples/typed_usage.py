"""Typed use of the public API, as a team writes it: `make lint` checks this file with `mypy --strict`
(wfcelery ships py.typed; for Celery itself, install celery-types).
Not run: it only has to type-check."""

from __future__ import annotations

from celery import Celery

import wfcelery
from wfcelery import NodeStatus, RunFailed, RunStatus, Workflow

app = Celery("proj", broker="redis://localhost:6379/0")
engine: wfcelery.Engine = wfcelery.install(app)


def build(day: str) -> Workflow:
    wf = Workflow("etl", on_failure="continue", defaults={"retries": 1})
    extract = wf.add("extract", "shop.extract", args=[day], type="io", time_limit=60.0)
    transform = wf.add("transform", "shop.transform", type="cpu", retries=3, priority=5)
    load = wf.add("load", "shop.load", kwargs={"table": "t"}, queue="io", immutable=True)
    extract >> transform >> load
    return wf


def run(day: str) -> dict[str, object]:
    handle = engine.submit(build(day), params={"day": day}, require_workers=True)
    for warning in handle.warnings:
        print(warning)
    state = handle.state()
    waiting: tuple[str, ...] = state.idle_queues
    ok: bool = state.status is RunStatus.RUNNING and state.nodes["extract"].status is NodeStatus.QUEUED
    print(waiting, ok)
    try:
        return handle.wait(timeout=60)
    except RunFailed as e:
        return {"failed": e.failed}
    except (wfcelery.BrokerUnavailable, wfcelery.TrackerUnavailable) as e:
        raise SystemExit(str(e)) from e
