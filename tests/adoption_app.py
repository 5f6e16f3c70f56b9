"""A Celery project as a team has it before adopting wfcelery: pickle messages and its own task_routes.

``celery -A tests.adoption_app worker`` and ``wfcelery -A tests.adoption_app ...`` subprocesses load it;
the test passes the URLs and a unique suffix for queue and key names through the environment.
"""

from __future__ import annotations

import os

from celery import Celery

import wfcelery

SUFFIX = os.environ.get("ADOPT_SUFFIX", "x")
URL = os.environ.get("ADOPT_REDIS_URL", "redis://127.0.0.1:6379/0")

app = Celery("adopt", broker=URL, backend=URL)
app.conf.update(
    task_serializer="pickle",
    result_serializer="pickle",
    accept_content=["pickle", "json"],
    task_default_queue=f"default-{SUFFIX}",
    task_routes={"adopt.report": {"queue": f"reports-{SUFFIX}"}},
    broker_connection_retry_on_startup=True,
    wfcelery_key_prefix=f"adopt-{SUFFIX}",
    wfcelery_routes={"io": f"io-{SUFFIX}"},
    wfcelery_inspect_timeout=0.5,
)
wfcelery.install(app)


@app.task(name="adopt.fetch")
def fetch(day: str) -> list[int]:
    return [len(day), 2, 3]


@app.task(name="adopt.parse")
def parse(rows: list[int]) -> int:
    return sum(rows)


@app.task(name="adopt.report")
def report(total: int, channel: str) -> str:
    return f"{channel}: {total}"
