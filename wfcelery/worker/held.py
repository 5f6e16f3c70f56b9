"""``wfcelery_held``: the remote-control command a worker answers with the task ids it holds.

The reconciler's lost-message check (messaging/broker_scan.py) must know, for a node whose message no queue
holds, whether a live worker still has it. Celery's ``inspect`` lists (reserved, active, scheduled) miss
two places a delivered message waits: a rate limit's token bucket (the request is reserved only once its
token comes) and the moment between delivery and the request's creation. This command answers with the
union of:

* every message the broker delivered to this worker's task consumer and it has not acknowledged or
  rejected -- kombu's virtual transports (Redis, SQS, ...) keep them in the channel's QoS (``_delivered``
  minus ``_dirty``: acknowledged, not flushed yet); py-amqp keeps no such list;
* Celery's reserved, active and scheduled (ETA/countdown) requests, and the requests waiting in its
  rate-limit buckets.
"""

from __future__ import annotations

from typing import Any

from celery.worker import state as worker_state
from celery.worker.control import inspect_command
from celery.worker.request import Request

from wfcelery.messaging.broker_scan import HELD_COMMAND


@inspect_command(name=HELD_COMMAND)
def wfcelery_held(state: Any, **_: Any) -> list[str]:
    """Control command: the task ids this worker holds (delivered and not acknowledged, reserved, running,
    scheduled or waiting for a rate-limit token)."""
    consumer = state.consumer
    held = {
        r.id
        for requests in (
            worker_state.reserved_requests,
            worker_state.active_requests,
            worker_state.scheduled_requests,  # type: ignore[attr-defined]  # Celery 5.7, not in its stubs
        )
        for r in list(requests)
    }
    for bucket in list((consumer.task_buckets or {}).values()):
        for item in list(getattr(bucket, "contents", None) or ()):
            request = item[0] if isinstance(item, tuple) else item
            if isinstance(request, Request):
                held.add(request.id)
    channel = getattr(getattr(consumer, "task_consumer", None), "channel", None)
    qos = getattr(channel, "qos", None)
    delivered = getattr(qos, "_delivered", None)
    if isinstance(delivered, dict):
        dirty = getattr(qos, "_dirty", None) or set()
        for tag, message in list(delivered.items()):
            if tag not in dirty:
                headers = getattr(message, "headers", None) or {}
                if headers.get("id"):
                    held.add(str(headers["id"]))
    return sorted(held)
