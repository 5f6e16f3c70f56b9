"""The Celery app every example uses: ordinary Celery tasks, plus the one line that adds wfcelery.

Start Redis (any recent one; e.g. ``docker run -p 6379:6379 redis:7``), then one worker for every queue::

    celery -A examples.app worker -Q io,cpu,celery -n all@%h -l INFO

or one worker per queue, as in production (see examples/typed_queues.py)::

    celery -A examples.app worker -Q cpu -n cpu@%h
    celery -A examples.app worker -Q io -n io@%h -P threads -c 8

Configuration comes from the environment:

    WFCELERY_BROKER_URL      the broker              (default redis://localhost:6379/0)
    WFCELERY_RESULT_BACKEND  Celery's results        (default: the broker URL)
    WFCELERY_REDIS_URL       wfcelery's tracker      (default: the result backend)
    WFCELERY_KEY_PREFIX      prefix of tracker keys  (default wfcelery)

A node's ``type`` (``io`` or ``cpu`` here) is its queue, so the workers above run exactly their kind.
"""

from __future__ import annotations

import collections
import hashlib
import os
import random
import time
from typing import Any

from celery import Celery

import wfcelery

BROKER_URL = os.environ.get("WFCELERY_BROKER_URL", "redis://localhost:6379/0")
RESULT_BACKEND = os.environ.get("WFCELERY_RESULT_BACKEND", BROKER_URL)

app = Celery("examples", broker=BROKER_URL, backend=RESULT_BACKEND)
app.conf.update(
    wfcelery_redis_url=os.environ.get("WFCELERY_REDIS_URL", RESULT_BACKEND),
    wfcelery_key_prefix=os.environ.get("WFCELERY_KEY_PREFIX", "wfcelery"),
    broker_connection_retry_on_startup=True,
)
engine = wfcelery.install(app)


# -- ETL (etl.py, etl.yaml, typed_queues.py) -------------------------------------------------------------


@app.task(name="examples.extract")
def extract(day: str) -> list[dict[str, Any]]:
    """io: pretend to download the day's orders."""
    time.sleep(0.2)
    rng = random.Random(day)
    return [
        {"id": i, "sku": rng.choice("ABCD"), "qty": rng.randint(1, 5), "price": rng.choice([5, 10, 20])}
        for i in range(50)
    ]


@app.task(name="examples.transform")
def transform(orders: list[dict[str, Any]]) -> dict[str, int]:
    """cpu: revenue per SKU."""
    revenue: dict[str, int] = collections.Counter()
    for order in orders:
        revenue[order["sku"]] += order["qty"] * order["price"]
    return dict(sorted(revenue.items()))


@app.task(name="examples.load")
def load(revenue: dict[str, int], table: str = "revenue_by_sku") -> dict[str, Any]:
    """io: pretend to write to the warehouse."""
    time.sleep(0.1)
    return {"table": table, "rows": len(revenue), "total": sum(revenue.values())}


@app.task(name="examples.report")
def report(loaded: dict[str, Any]) -> str:
    return f"{loaded['table']}: {loaded['rows']} rows, total {loaded['total']}"


# -- map-reduce (map_reduce.py) --------------------------------------------------------------------------


@app.task(name="examples.count_words")
def count_words(text: str) -> dict[str, int]:
    """The map step: word counts of one chunk."""
    return dict(collections.Counter(text.lower().split()))


@app.task(name="examples.merge_counts")
def merge_counts(counts: list[dict[str, int]], top: int = 5) -> list[list[Any]]:
    """The reduce step: one list with every mapper's result (in the order of the node's parents)."""
    total: collections.Counter[str] = collections.Counter()
    for c in counts:
        total.update(c)
    return [[word, n] for word, n in total.most_common(top)]


# -- dynamic workflows (dynamic_map_reduce.py, branch.yaml) ---------------------------------------------


@app.task(name="examples.split_text")
def split_text(text: str, words_per_chunk: int = 50) -> list[str]:
    """A list known only at run time: the text's chunks (the mapped node runs once per chunk)."""
    words = text.split()
    return [" ".join(words[i : i + words_per_chunk]) for i in range(0, len(words), words_per_chunk)]


@app.task(name="examples.validate_orders")
def validate_orders(orders: list[dict[str, Any]], max_qty: int = 5) -> dict[str, Any]:
    """The branch's check: are the orders plausible? (The branch conditions read ``valid``.)"""
    bad = [o["id"] for o in orders if not 0 < o["qty"] <= max_qty]
    return {"valid": not bad, "rows": len(orders), "bad": bad, "orders": orders}


@app.task(name="examples.revenue")
def revenue(check: dict[str, Any]) -> dict[str, int]:
    """The happy branch: revenue per SKU of validated orders."""
    return transform(check["orders"])


@app.task(name="examples.quarantine")
def quarantine(check: dict[str, Any]) -> str:
    """The other branch: set the bad rows aside."""
    return f"quarantined {len(check['bad'])} of {check['rows']} orders"


@app.task(name="examples.notify")
def notify(outcomes: list[Any]) -> str:
    """Runs whichever branch was taken (a skipped branch gives null)."""
    return "notified: " + "; ".join(str(o) for o in outcomes if o is not None)


# -- typed queues (typed_queues.py) ----------------------------------------------------------------------


@app.task(name="examples.checksum")
def checksum(data: Any, rounds: int = 20_000) -> str:
    """cpu: real CPU work."""
    digest = repr(data).encode()
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()[:16]


@app.task(name="examples.upload")
def upload(digest: str, bucket: str = "reports") -> str:
    """io: pretend to upload."""
    time.sleep(0.1)
    return f"s3://{bucket}/{digest}.json"


# -- stages (stages.yaml): tasks with no arguments, named by their task names ----------------------------


@app.task(name="examples.fetch_users")
def fetch_users() -> int:
    time.sleep(0.1)
    return 120


@app.task(name="examples.fetch_orders")
def fetch_orders() -> int:
    time.sleep(0.1)
    return 480


@app.task(name="examples.join")
def join(counts: list[int]) -> float:
    users, orders = counts
    return round(orders / users, 2)


@app.task(name="examples.publish")
def publish(orders_per_user: float) -> str:
    return f"orders per user: {orders_per_user}"


# -- pause / resume (pause_resume.py) --------------------------------------------------------------------


@app.task(name="examples.slow_step")
def slow_step(previous: Any = None, seconds: float = 1.0, step: str = "") -> str:
    time.sleep(seconds)
    return f"{step} done"
