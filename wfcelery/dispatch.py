"""What wfcelery sends to Celery: node messages, revoke broadcasts and a run's end callback.

Both sides send them -- the client API (submit, cancel, resume, retry) and the worker side (released
children, tracker-level retries, fail_fast revokes) -- and neither imports the other: both use this.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from celery import Celery, signature

from .compiler import Plan
from .errors import BrokerUnavailable, WfCeleryError
from .keys import Slot, run_of, split_slot, task_id
from .records import RESEND_HEADER

logger = logging.getLogger("wfcelery.dispatch")

#: Ids per revoke broadcast message.
REVOKE_CHUNK = 5_000


class Dispatcher:
    """Sends a run's messages through one Celery app."""

    def __init__(self, app: Celery, *, celery_results: bool) -> None:
        self.app = app
        self.ignore_result = not celery_results  # the tracker keeps every result anyway

    def publish(
        self,
        plan: Plan,
        run_id: str,
        items: Iterable[tuple[Slot, int, Sequence[Any]]],
        params: Mapping[str, Any],
        countdown: float | None = None,
        producer: Any = None,
        resend: bool = False,
    ) -> None:
        """Send node messages: ``items`` are (node index, epoch, parent results), or (instance slot,
        epoch, [element]) for instances of a mapped node. ``resend`` marks a message sent again under
        the same id on purpose (a tracker-level retry), which a worker still running the first copy
        must not take for a duplicate.

        Each message is JSON whatever the app's ``task_serializer``: pickle apps run workflows too.
        Raises :class:`BrokerUnavailable` when the broker cannot be reached.
        """
        app = self.app
        with broker_errors(app, f"send the tasks of run {run_id}"), app.producer_or_acquire(producer) as prod:
            for index, epoch, parent_results in items:
                msg = plan.message(run_id, index, epoch, params, parent_results)
                if countdown:
                    msg["countdown"] = countdown
                if resend:
                    msg["headers"][RESEND_HEADER] = 1
                if self.ignore_result:
                    msg["ignore_result"] = True
                task = plan.nodes[split_slot(index)[0]].task
                app.send_task(task, producer=prod, add_to_parent=False, serializer="json", **msg)

    def publish_canvas(self, run_id: str, signature: Any, ids: Sequence[str]) -> None:
        """Apply one native canvas (a segment of a canvas-executor run) whose task ids are ``ids``.

        Applying a chord makes this process subscribe to every header result and keep a result object per
        id (CELERY-NOTES: 16k subscriptions per 2k workflows); nobody here waits on them, so both are
        dropped at once. Raises :class:`BrokerUnavailable` when the broker cannot be reached."""
        try:
            with broker_errors(self.app, f"send the canvas of run {run_id}"):
                signature.apply_async()
        finally:
            forget_results(self.app, ids)

    def revoke(self, run_id: str, nodes: Sequence[tuple[Slot, int]], terminate: bool = False) -> list[str]:
        """Broadcast a revoke of these (node index, epoch) messages; returns their task ids."""
        ids = [task_id(run_id, index, epoch) for index, epoch in nodes]
        for start in range(0, len(ids), REVOKE_CHUNK):
            self.app.control.revoke(ids[start : start + REVOKE_CHUNK], terminate=terminate)
        return ids

    def callback(self, run_id: str, status: str, callback_json: str | None) -> None:
        """Send the run's ``on_success`` / ``on_failure`` signature (the Lua script that ended the run
        returned it exactly once)."""
        if not callback_json:
            return
        try:
            signature(json.loads(callback_json), app=self.app).apply_async((run_id,))
        except Exception:
            logger.exception("wfcelery: could not send the %s callback of run %s", status, run_id)


def forget_results(app: Celery, ids: Iterable[str]) -> None:
    """Undo what publishing left in this process for ``ids``: the result backend's pending result objects
    and its pub/sub subscriptions (Celery's async backends; nothing to do for the others)."""
    backend = app.backend
    consumer = getattr(backend, "result_consumer", None)
    pending = getattr(backend, "_pending_results", None)  # private: Celery has no public "forget"
    key_for = getattr(backend, "get_key_for_task", None)
    for tid in ids:
        for mapping in pending or ():
            mapping.pop(tid, None)
        subscribed = getattr(consumer, "subscribed_to", None)
        if subscribed and key_for is not None and key_for(tid) in subscribed:
            consumer.cancel_for(tid)  # type: ignore[union-attr]  # subscribed_to is the consumer's


def forget_run_results(app: Celery) -> None:
    """Drop this process's result subscriptions and pending result objects of wfcelery runs' tasks.

    A worker that publishes a chord (Celery applies it as the next step of a chain) subscribes to every
    header result and keeps one result object each, never to be read (CELERY-NOTES: 16k per 2k
    workflows); the worker side calls this after each task of a canvas-executor run."""
    backend = app.backend
    consumer = getattr(backend, "result_consumer", None)
    prefix = getattr(backend, "task_keyprefix", b"celery-task-meta-")
    subscribed = getattr(consumer, "subscribed_to", None) or ()
    ours = []
    for key in list(subscribed):
        raw = key.decode() if isinstance(key, bytes) else str(key)
        tid = raw[len(prefix.decode() if isinstance(prefix, bytes) else prefix) :]
        if run_of(tid):
            ours.append(tid)
    for mapping in getattr(backend, "_pending_results", None) or ():
        ours += [tid for tid in list(mapping) if isinstance(tid, str) and run_of(tid)]
    if ours:
        forget_results(app, ours)


@contextmanager
def broker_errors(app: Celery, what: str) -> Iterator[None]:
    """Turn the broker's connection errors (refused login, unknown vhost, down, timed out) into
    :class:`BrokerUnavailable`, naming the broker without its password."""
    from kombu.exceptions import OperationalError

    conn = app.connection_for_write()
    errors: tuple[type[BaseException], ...] = (
        OperationalError,
        *conn.connection_errors,
        *conn.channel_errors,
    )
    try:
        yield
    except errors as e:
        if isinstance(e, WfCeleryError):  # TrackerUnavailable is an OSError too: not the broker's
            raise
        raise BrokerUnavailable(
            f"cannot reach the Celery broker {conn.as_uri()} to {what}: {type(e).__name__}: {e}"
        ) from e
    finally:
        conn.release()


def ensure_connected(app: Celery, connection: Any) -> None:
    """Connect (retrying as Celery's publish policy says, no longer), or raise the broker's error."""
    policy = app.conf.task_publish_retry_policy or {}
    connection.ensure_connection(
        max_retries=policy.get("max_retries", 3),
        interval_start=policy.get("interval_start", 0),
        interval_step=policy.get("interval_step", 0.2),
        interval_max=policy.get("interval_max", 0.2),
        timeout=app.conf.broker_connection_timeout,
    )
