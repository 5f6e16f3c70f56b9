"""What wfcelery sends to Celery: node messages, revoke broadcasts and a run's end callback.

Both sides send them -- the client API (submit, cancel, resume, retry) and the worker side (released
children, tracker-level retries, fail_fast revokes) -- and neither imports the other: both use this.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from celery import Celery, signature
from celery.events.dispatcher import EventDispatcher

from wfcelery.errors import BrokerUnavailable, WfCeleryError
from wfcelery.plan.compiler import Plan
from wfcelery.tracker.keys import Slot, run_of, split_slot, task_id
from wfcelery.tracker.records import COPY_HEADER, RESEND_HEADER

logger = logging.getLogger("wfcelery.dispatch")

#: Messages per pipelined write to the broker (Redis transport; others publish one by one).
BATCH = 1_000

#: Ids per revoke broadcast message.
REVOKE_CHUNK = 5_000


class Dispatcher:
    """Sends a run's messages through one Celery app."""

    def __init__(self, app: Celery, *, celery_results: bool) -> None:
        self.app = app
        self.ignore_result = not celery_results  # the tracker keeps every result anyway
        self._copies = threading.local()

    @contextmanager
    def maybe_copies(self) -> Iterator[None]:
        """Messages published in this block (this thread) may copy ones already sent: they carry
        ``COPY_HEADER``, so their start asks the tracker, which refuses a copy of a started node."""
        self._copies.on = True
        try:
            yield
        finally:
            self._copies.on = False

    def publish(
        self,
        plan: Plan,
        run_id: str,
        items: Iterable[tuple[Slot, int, Sequence[Any]]],
        params: Mapping[str, Any],
        countdown: float | None = None,
        producer: Any = None,
        resend: bool = False,
        retries: int = 0,
        sent: Callable[[int], None] | None = None,
    ) -> None:
        """Send node messages: ``items`` are (node index, epoch, parent results), or (instance slot,
        epoch, [element]) for instances of a mapped node. ``resend`` marks a message sent again under
        the same id on purpose (a tracker-level retry), which a worker still running the first copy
        must not take for a duplicate; ``retries`` sets the message's retry count as Celery's own
        ``Task.retry`` does (Flower shows it). ``sent(n)`` is told how many were sent, every 256 and at
        the end.

        Each message is JSON whatever the app's ``task_serializer``: pickle apps run workflows too.
        Raises :class:`BrokerUnavailable` when the broker cannot be reached.
        """
        app = self.app
        count = 0
        with (
            broker_errors(app, f"send the tasks of run {run_id}"),
            app.producer_or_acquire(producer) as prod,
        ):
            sender = BulkSender(app, prod) if not countdown and not retries else None
            with sender.batch() if sender else nullcontext():
                for count, (index, epoch, parent_results) in enumerate(items, 1):
                    if sent is not None and count % 256 == 0:
                        sent(count)
                    msg = self._message(plan, run_id, index, epoch, params, parent_results, resend)
                    task = plan.nodes[split_slot(index)[0]].task
                    if sender is not None:
                        sender.send(task, msg)
                    else:  # a retry: Celery's own countdown handling (native delayed delivery...)
                        app.send_task(
                            task,
                            producer=prod,
                            add_to_parent=False,
                            serializer="json",
                            countdown=countdown or None,
                            retries=retries,
                            **msg,
                        )
        if sent is not None:
            sent(count)

    def publish_many(
        self,
        runs: Iterable[tuple[Plan, str, Sequence[tuple[Slot, int, Sequence[Any]]], Mapping[str, Any]]],
        producer: Any = None,
    ) -> None:
        """:meth:`publish` for the messages of many runs, ``(plan, run id, items, params)`` each, in one
        batch (one pipelined write on the Redis transport): a scheduler tick's roots."""
        app = self.app
        with broker_errors(app, "send the tasks of runs"), app.producer_or_acquire(producer) as prod:
            sender = BulkSender(app, prod)
            with sender.batch():
                for plan, run_id, items, params in runs:
                    for index, epoch, parent_results in items:
                        msg = self._message(plan, run_id, index, epoch, params, parent_results, False)
                        sender.send(plan.nodes[split_slot(index)[0]].task, msg)

    def _message(
        self,
        plan: Plan,
        run_id: str,
        index: Slot,
        epoch: int,
        params: Mapping[str, Any],
        parent_results: Sequence[Any],
        resend: bool,
    ) -> dict[str, Any]:
        msg = plan.message(run_id, index, epoch, params, parent_results)
        if resend:
            msg["headers"][RESEND_HEADER] = 1
        if getattr(self._copies, "on", False):
            msg["headers"][COPY_HEADER] = 1
        if self.ignore_result:
            msg["ignore_result"] = True
        return msg

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


def forget_continuation_results(app: Celery, request: Any) -> None:
    """Drop this process's result subscriptions and pending result objects of the tasks that Celery applied
    after ``request``'s task: the next step of its chain, its chord's body, its links.

    A worker that publishes a chord (Celery applies it as the next step of a chain) subscribes to every
    header result and keeps one result object each, never to be read (CELERY-NOTES: 16k per 2k
    workflows); the worker side calls this after each task of a canvas-executor run. Only the ids frozen in
    that task's own continuation are looked at: the cost is the size of the continuation, never the number
    of subscriptions the process holds (a worker that also runs the app's own chords keeps Celery's
    16k), and a subscription some other code in the process waits on is left alone."""
    ids: list[str] = []
    chain = getattr(request, "chain", None)
    _frozen_ids(chain[-1] if chain else None, ids)  # Celery applies the last item: the next step
    _frozen_ids(getattr(request, "chord", None), ids)
    _frozen_ids(getattr(request, "callbacks", None), ids)
    ours = [tid for tid in ids if run_of(tid)]
    if ours:
        forget_results(app, ours)


def _frozen_ids(sig: Any, out: list[str]) -> None:
    """Collect the task ids frozen in a signature (a dict once it has crossed the broker) or a list of
    them: its own and, for a chain, group or chord, its members' -- never walking into args or results."""
    if isinstance(sig, list | tuple):
        for member in sig:
            _frozen_ids(member, out)
        return
    if not isinstance(sig, dict):
        return
    tid = (sig.get("options") or {}).get("task_id")
    if tid:
        out.append(str(tid))
    if sig.get("subtask_type"):
        kwargs = sig.get("kwargs") or {}
        for key in ("tasks", "header", "body"):
            _frozen_ids(kwargs.get(key), out)


class BulkSender:
    """``app.send_task`` for many wfcelery node messages through one producer, without its fixed costs.

    Each message is built by Celery's own ``app.amqp.create_task_message`` and sent by its own
    ``app.amqp.send_task_message``, with the options ``send_task`` would pass them (the task's registered
    execution options, ``task_routes``, time limits, parent / root ids and priority inherited inside a
    worker task, the ``task-sent`` event, the publish signals): the same headers, body, properties,
    exchange, routing key and queue as ``send_task`` (tests/integration/test_bulk_publish.py compares
    them on the broker). What it saves: ``send_task``'s per-call setup, kombu's ``maybe_declare`` of the
    queue and the event exchange on every message (once per batch here), and one network round trip per
    message: inside :meth:`batch`, a transport that can (Redis) buffers the writes and sends them in
    pipelined chunks of :data:`BATCH` (kombu's ``Producer.batch``; other transports publish each message
    as it comes, with Celery's publish retry policy).

    Messages with an ``expires`` (a task's own default) go through ``app.send_task`` itself.
    """

    def __init__(self, app: Celery, producer: Any) -> None:
        self.app = app
        self.producer = producer
        self.amqp = app.amqp
        self.conf = app.conf
        self.declared: set[str] = set()
        self.batched = bool(getattr(producer, "supports_batch_publish", False))
        self.events = (
            _SentEvents(producer.connection, app=app, enabled=False)
            if self.conf.task_send_sent_event
            else None
        )

    def batch(self) -> Any:
        return self.producer.batch(BATCH) if self.batched else nullcontext()

    def send(self, name: str, msg: Mapping[str, Any]) -> None:
        """Send one message: ``msg`` holds ``send_task`` keyword arguments (``Plan.message``)."""
        app, conf = self.app, self.conf
        options = dict(msg)
        task_type = app._tasks.get(name)  # type: ignore[attr-defined]  # as send_task: no finalize
        exec_options = getattr(task_type, "_get_exec_options", None)
        if exec_options is not None:
            defaults = {k: v for k, v in exec_options().items() if v is not None}
            options = {**defaults, **options}
        expires = options.pop("expires", None)
        if expires is not None:
            app.send_task(name, producer=self.producer, add_to_parent=False, serializer="json", **msg)
            return
        task_id = options.pop("task_id")
        args, kwargs = options.pop("args"), options.pop("kwargs")
        time_limit = options.pop("time_limit", None)
        soft_time_limit = options.pop("soft_time_limit", None)
        ignore_result = options.pop("ignore_result", None)
        options["serializer"] = "json"
        options = self.amqp.router.route(options, name, args, kwargs, task_type)
        root_id = parent_id = None
        parent = app.current_worker_task
        if parent is not None:
            root_id = parent.request.root_id or parent.request.id
            parent_id = parent.request.id
            if conf.task_inherit_parent_priority:
                options.setdefault("priority", (parent.request.delivery_info or {}).get("priority"))
        message = self.amqp.create_task_message(
            task_id,
            name,
            args,
            kwargs,
            None,  # countdown
            None,  # eta
            None,  # group_id
            None,  # group_index
            None,  # expires
            0,  # retries
            None,  # chord
            None,  # link
            None,  # link_error
            app.thread_oid,
            time_limit,
            soft_time_limit,
            conf.task_send_sent_event,
            root_id,
            parent_id,
            None,  # shadow
            None,  # chain
            ignore_result=ignore_result,
            replaced_task_nesting=0,
            **options,
        )
        for stamp in options.pop("stamped_headers", []):
            options.pop(stamp)
        queue = options.get("queue")
        qname = getattr(queue, "name", queue)
        if qname is not None and qname in self.declared:
            options["declare"] = []  # declared by this sender's first message to it
        if self.batched:
            options["retry"] = False  # buffered: nothing is written before the batch flushes
        if not ignore_result:
            app.backend.on_task_call(self.producer, task_id)
        self.amqp.send_task_message(self.producer, name, message, event_dispatcher=self.events, **options)
        if qname is not None:
            self.declared.add(qname)


class _SentEvents(EventDispatcher):
    """Celery's dispatcher for the ``task-sent`` events of one :class:`BulkSender`: the same events,
    the event exchange declared with the first one only."""

    _declared = False

    def _publish(
        self,
        event: Any,
        producer: Any,
        routing_key: str,
        retry: bool = False,
        retry_policy: Any = None,
        utcoffset: Any = None,
    ) -> None:
        me: Any = self  # Celery's stubs do not declare the dispatcher's attributes
        exchange = me.exchange
        try:
            producer.publish(
                event,
                routing_key=routing_key,
                exchange=exchange.name,
                retry=retry,
                retry_policy=retry_policy,
                declare=[] if self._declared else [exchange],
                serializer=me.serializer,
                headers=me.headers,
                delivery_mode=me.delivery_mode,
            )
            self._declared = True
        except Exception:
            if not me.buffer_while_offline:
                raise
            me._outbound_buffer.append((event, routing_key))


@contextmanager
def broker_errors(app: Celery, what: str) -> Iterator[None]:
    """Turn the broker's connection errors (refused login, unknown vhost, down, timed out, a pipelined
    batch whose write failed) into :class:`BrokerUnavailable`, naming the broker without its password."""
    try:
        yield
    except _broker_error_types(app) as e:
        if isinstance(e, WfCeleryError):  # TrackerUnavailable is an OSError too: not the broker's
            raise
        conn = app.connection_for_write()
        try:
            uri = conn.as_uri()
        finally:
            conn.release()
        raise BrokerUnavailable(
            f"cannot reach the Celery broker {uri} to {what}: {type(e).__name__}: {e}"
        ) from e


def _broker_error_types(app: Celery) -> tuple[type[BaseException], ...]:
    """The broker transport's error classes (read once per app: publishing a released child must not
    build a connection object each time just to learn them)."""
    errors: tuple[type[BaseException], ...] | None = getattr(app, "_wfcelery_broker_errors", None)
    if errors is None:
        from kombu import exceptions

        batch: type[BaseException] = getattr(exceptions, "BatchPublishError", exceptions.OperationalError)
        conn = app.connection_for_write()
        try:
            errors = (exceptions.OperationalError, batch, *conn.connection_errors, *conn.channel_errors)
        finally:
            conn.release()
        app._wfcelery_broker_errors = errors  # type: ignore[attr-defined]
    return errors


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
