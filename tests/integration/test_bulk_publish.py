"""Bulk publishing (dispatch.BulkSender) sends exactly what ``app.send_task`` sends: the same body,
headers, properties, exchange, routing key and queue, on the real broker (Redis, and RabbitMQ when it runs).

Each node message is published twice under the same task id -- once through the dispatcher's bulk path,
once through ``app.send_task`` with the keyword arguments of a per-message publish -- and the two copies
read back from their queues must be equal, field by field, but for the broker's own delivery tag.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from wfcelery import Workflow
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.plan.compiler import compile_workflow


@pytest.fixture
def queues(uid: str) -> dict[str, str]:
    return {"cpu": f"cpu-{uid}", "explicit": f"explicit-{uid}"}


@pytest.fixture
def bulk_app(make_test_app: Any, broker: str | None, queues: dict[str, str]) -> Iterator[Any]:
    app = make_test_app(broker=broker, wfcelery_routes={"cpu": queues["cpu"]})
    yield app
    with app.connection_for_write() as conn:  # RabbitMQ keeps durable queues: delete this test's ones
        for q in [*queues.values(), app.conf.task_default_queue]:
            with contextlib.suppress(Exception):
                conn.default_channel.queue_delete(q)


def _drain(app: Any, queue: str) -> dict[str, list[dict[str, Any]]]:
    """Every message in ``queue``, by task id, as the broker hands it out."""
    out: dict[str, list[dict[str, Any]]] = {}
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        while (m := channel.basic_get(queue, no_ack=True)) is not None:
            props = {k: v for k, v in m.properties.items() if k != "delivery_tag"}
            info = {k: m.delivery_info.get(k) for k in ("exchange", "routing_key", "priority")}
            copy = {
                "body": m.body,
                "headers": m.headers,
                "properties": props,
                "content_type": m.content_type,
                "content_encoding": m.content_encoding,
                "delivery_info": info,
            }
            out.setdefault(m.headers["id"], []).append(copy)
    return out


def test_bulk_messages_equal_send_task_ones(bulk_app: Any, queues: dict[str, str]) -> None:
    app = bulk_app
    settings = app._wfcelery_engine.settings
    wf = Workflow("bulk-format")
    wf.add("plain", "proj.echo", args=[1, "x"], kwargs={"k": "${p}"})
    wf.add("typed", "proj.echo", type="cpu", time_limit=30, soft_time_limit=20, priority=3)
    wf.add("queued", "proj.noop", queue=queues["explicit"])
    wf.add("child", "proj.add", after=["plain"])
    plan = compile_workflow(wf, settings.routes, settings.limits)
    run_id = uuid.uuid4().hex
    params = {"p": "v"}
    items = [(0, 0, []), (1, 0, []), (2, 0, []), (3, 2, [{"r": [1, 2]}])]

    Dispatcher(app, celery_results=False).publish(plan, run_id, items, params)
    for index, epoch, parents in items:  # what dispatch did before bulk publishing, message by message
        msg = plan.message(run_id, index, epoch, params, parents)
        msg["ignore_result"] = True
        app.send_task(plan.nodes[index].task, add_to_parent=False, serializer="json", **msg)

    found: dict[str, list[dict[str, Any]]] = {}
    for q in [app.conf.task_default_queue, queues["cpu"], queues["explicit"]]:
        found.update(_drain(app, q))
    assert len(found) == len(items)
    for task_id, (bulk, single) in ((t, copies) for t, copies in found.items()):
        assert bulk == single, task_id
    headers = {copies[0]["headers"]["wf_node"]: copies[0]["headers"] for copies in found.values()}
    assert headers["typed"]["timelimit"] == [30, 20]
    assert (
        found[plan.message(run_id, 1, 0, params)["task_id"]][0]["delivery_info"]["routing_key"]
        == (queues["cpu"])
    )
