"""Routing by type on real ``celery worker`` subprocesses: ``-Q cpu`` runs exactly the cpu nodes, ``-Q io``
exactly the io ones. The same end-to-end test runs with Redis and with RabbitMQ as the broker (Redis stays the
tracker and the result backend).

Queue names carry the test's uid (``wfcelery_routes`` maps the types to them), so no message of one test can
be consumed by another test's workers, here or in a concurrent test session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from wfcelery import NodeStatus, RunStatus, Workflow


@pytest.fixture
def routed_app(make_test_app: Any, broker: str | None, uid: str) -> Iterator[Any]:
    queues = {"cpu": f"cpu-{uid}", "io": f"io-{uid}"}
    app = make_test_app(broker=broker, wfcelery_routes=queues)
    yield app
    if broker:  # RabbitMQ keeps durable queues: delete this test's ones
        with app.connection_for_write() as conn:
            channel = conn.default_channel
            for q in [*queues.values(), app.conf.task_default_queue]:
                try:
                    channel.queue_delete(q)
                except Exception:
                    channel = conn.channel()


def test_nodes_run_on_the_worker_of_their_type(routed_app, worker_process, uid):
    app = routed_app
    engine = app._wfcelery_engine
    cpu = worker_process(app, [f"cpu-{uid}"], "cpu", pool="prefork", concurrency=2)
    io = worker_process(app, [f"io-{uid}"], "io", pool="solo", concurrency=1)

    wf = Workflow("routed")
    c1 = wf.add("c1", "proj.whoami", type="cpu")
    i1 = wf.add("i1", "proj.whoami", type="io")
    c2 = wf.add("c2", "proj.whoami", type="cpu")
    i2 = wf.add("i2", "proj.whoami", type="io")
    c3 = wf.add("c3", "proj.whoami", type="cpu")
    ov = wf.add("ov", "proj.whoami", type="cpu", queue=f"io-{uid}")  # an explicit queue wins over the type
    c1 >> i1 >> [c2, i2] >> c3
    c1 >> ov
    expected = {"c1": cpu, "i1": io, "c2": cpu, "i2": io, "c3": cpu, "ov": io}

    run = engine.submit(wf)
    results = run.wait(timeout=60)

    assert results == {name: w.hostname for name, w in expected.items()}
    state = run.state()
    assert state.status is RunStatus.SUCCEEDED
    for name, w in expected.items():
        node = state.nodes[name]
        assert node.status is NodeStatus.SUCCEEDED
        assert node.worker == w.hostname, name
        assert node.queue == (f"io-{uid}" if name == "ov" else f"{wf[name].type}-{uid}")
        assert node.attempts == 1
        assert node.started_at is not None
        assert node.finished_at >= node.started_at
