"""Whether the broker still holds a node's message: the reconciler's check for lost messages.

A node QUEUED whose message no queue holds and no worker has taken was lost -- a Redis broker without
persistence restarted, a queue purged or deleted -- and would wait for ``wfcelery_queued_timeout``.
:func:`find_missing` tells which task ids of QUEUED nodes the broker can show are nowhere:

* **Redis broker** (kombu's transport): a queue is one list per priority step (``q``, ``q\\x06\\x163``, ...,
  ``broker_transport_options["priority_steps"]``), and a message delivered to a worker and not acknowledged
  waits in the ``unacked`` hash. The lists are read, then the hash; an id in none of them is missing. An
  id in the hash only was delivered to a worker, perhaps one that died: kombu gives such a message back
  only after the ``visibility_timeout`` (an hour by default). It is missing when every live worker answers
  :data:`HELD_COMMAND` without listing it -- the same question as on RabbitMQ, asked only for these ids.
  A queue or hash longer than :data:`SCAN_LIMIT` messages is not read (a backlog: undecided).
* **RabbitMQ**: queues cannot be browsed. A passive declare gives the number of messages ready in the
  queue; when it is 0 and every live worker answers :data:`HELD_COMMAND` without listing the id, the id
  is missing. A queue holding messages proves nothing: undecided.
* Any other transport: undecided.

:data:`HELD_COMMAND` (worker/held.py) is a remote-control command each worker answers with the ids it
holds: delivered and not acknowledged (kombu's virtual transports list them), reserved, running,
scheduled (ETA) or waiting in a rate limit's token bucket -- Celery's own ``inspect`` lists miss the last.
A worker that does not answer (busy past the timeout, remote control off, an older wfcelery) leaves the
ids undecided.

A message moves between the places read (a worker takes it between two reads): an id found missing once
is not yet lost; the reconciler acts only on an id found missing by two checks (:class:`LostMessages`).
Undecided nodes are left to ``wfcelery_queued_timeout``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

logger = logging.getLogger("wfcelery.reconciler")

#: The remote-control command a worker answers with the task ids it holds (worker/held.py).
HELD_COMMAND = "wfcelery_held"
#: Messages read at most per queue (and in the ``unacked`` hash) by one check.
SCAN_LIMIT = 10_000
#: Messages read per LRANGE.
CHUNK = 1_000


def find_missing(
    app: Any, by_queue: Mapping[str, set[str]], workers: Iterable[str], inspect_timeout: float = 1.0
) -> set[str]:
    """The task ids of ``by_queue`` (queue -> ids of QUEUED nodes) that the broker shows are nowhere: in no
    queue, not delivered to any worker. ``workers``: the hostnames of the live workers (heartbeats), who
    must all answer :data:`HELD_COMMAND` for a verdict. Undecided ids are not returned."""
    if not by_queue:
        return set()
    with app.connection_for_read() as conn:
        driver = conn.transport.driver_type
        if driver == "redis":
            missing, delivered = _redis_missing(conn.default_channel, by_queue)
            if delivered:
                taken = _held_by_workers(app, set(workers), inspect_timeout)
                missing |= set() if taken is None else delivered - taken
            return missing
        if driver == "amqp":
            empty = _amqp_empty_queues(conn, by_queue)
            if not empty:
                return set()
            taken = _held_by_workers(app, set(workers), inspect_timeout)
            return set() if taken is None else set().union(*(by_queue[q] for q in empty)) - taken
    return set()


def _redis_missing(channel: Any, by_queue: Mapping[str, set[str]]) -> tuple[set[str], set[str]]:
    """The ids in no queue and not delivered, and the ids in no queue but delivered to some worker (the
    ``unacked`` hash); both empty when a backlog is too long to read."""
    client = channel.client
    missing: set[str] = set()
    for queue, ids in by_queue.items():
        lists = [f"{queue}{channel.sep}{step}" if step else queue for step in channel.priority_steps]
        held = _held_in_lists(client, lists)
        if held is None:
            continue  # a backlog too long to read: undecided
        missing |= ids - held
    if not missing:
        return missing, set()
    unacked = _held_unacked(client, channel.unacked_key)
    return (set(), set()) if unacked is None else (missing - unacked, missing & unacked)


def _held_in_lists(client: Any, lists: list[str]) -> set[str] | None:
    pipe = client.pipeline(transaction=False)
    for key in lists:
        pipe.llen(key)
    lengths = pipe.execute()
    if sum(lengths) > SCAN_LIMIT:
        return None
    held: set[str] = set()
    for key, length in zip(lists, lengths, strict=True):
        for start in range(0, length, CHUNK):
            held.update(_message_id(raw) for raw in client.lrange(key, start, start + CHUNK - 1))
    return held


def _held_unacked(client: Any, key: str) -> set[str] | None:
    if client.hlen(key) > SCAN_LIMIT:
        return None
    held = set()
    for raw in client.hvals(key):
        try:
            message = json.loads(raw)[0]  # [message, exchange, routing key]
        except (ValueError, TypeError, IndexError):
            continue
        held.add(_message_id(message))
    return held


def _message_id(raw: Any) -> str:
    """The task id of a kombu message (as stored: JSON text, or already decoded)."""
    try:
        message = json.loads(raw) if isinstance(raw, str | bytes) else raw
        return str(message["headers"]["id"])
    except (ValueError, TypeError, KeyError):
        return ""


def _amqp_empty_queues(conn: Any, queues: Iterable[str]) -> list[str]:
    """The queues that exist and hold no ready message (a passive declare: a missing queue closes the
    channel, so one channel per queue)."""
    empty = []
    for queue in queues:
        try:
            with conn.channel() as channel:
                _, count, _ = channel.queue_declare(queue=queue, passive=True)
        except Exception as e:  # not found: undecided (no worker consumes it; status says so)
            logger.debug("wfcelery reconciler: cannot count queue %r: %s", queue, e)
            continue
        if count == 0:
            empty.append(queue)
    return empty


def _held_by_workers(app: Any, live: set[str], timeout: float) -> set[str] | None:
    """Ids the live workers hold (:data:`HELD_COMMAND`: delivered and not acknowledged, reserved, running,
    scheduled, waiting for a rate-limit token); None (undecided) when one of them did not answer. Asked of
    every worker, not only ``live``: a worker the tracker has no heartbeat of (just started, cut off from
    the tracker) may hold some, and its answer counts."""
    if not live:
        return None
    replies = app.control.broadcast(HELD_COMMAND, reply=True, timeout=timeout) or []
    answers: dict[str, list[Any]] = {}
    for reply in replies:
        for host, ids in reply.items():
            # A worker without the command (another app's on the same broker, an older wfcelery) answers
            # {"error": ...}: no answer; a live one among them leaves the ids undecided below.
            if isinstance(ids, list):
                answers.setdefault(host, []).extend(ids)
    if not live <= set(answers):
        return None
    return {str(i) for ids in answers.values() for i in ids}
