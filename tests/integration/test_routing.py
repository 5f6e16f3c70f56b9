"""Routing by type on real ``celery worker`` subprocesses: ``-Q cpu`` runs exactly the cpu nodes, ``-Q io``
exactly the io ones. The same end-to-end test runs with Redis and with RabbitMQ as the broker (Redis stays the
tracker and the result backend).

Queue names carry the test's uid (``wfcelery_routes`` maps the types to them), so no message of one test can
be consumed by another test's workers, here or in a concurrent test session.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import wait_for
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


@pytest.mark.filterwarnings("ignore::celery.exceptions.DuplicateNodenameWarning")  # doctor's clock check
def test_workers_sharing_one_node_name_are_both_counted_and_named(make_test_app, worker_process, uid):
    """Two workers started without their own -n share celery@<host>: both consume (no false "no live
    worker consumes queue" warning), and submit and doctor name the shared node name and the -n fix.
    (Redis broker: each worker gets the broadcast; RabbitMQ gives one shared pidbox queue to one of them.)"""
    from wfcelery.cli.doctor import diagnose

    app = make_test_app(wfcelery_routes={"cpu": f"cpu-{uid}", "io": f"io-{uid}"})
    engine = app._wfcelery_engine
    twin = worker_process(app, [f"cpu-{uid}"], "twin", pool="solo", concurrency=1)
    worker_process(app, [f"io-{uid}"], "twin", pool="solo", concurrency=1)  # the same node name
    # the second one answered nothing yet when the first answered its start-up ping: wait for both
    wait_for(lambda: len(app.control.broadcast("ping", reply=True, timeout=0.5)) == 2, message="both twins")
    wf = Workflow("twins")
    wf.add("c", "proj.whoami", type="cpu") >> wf.add("i", "proj.whoami", type="io")
    run = engine.submit(wf)
    assert [w for w in run.warnings if "no live worker consumes" in w] == []
    assert [w for w in run.warnings if "several workers" in w] == [
        f"several workers run under one node name {twin.hostname!r}: start each with its own -n (for example "
        "-n io@%h and -n cpu@%h); Celery's remote control, revokes and Flower tell workers apart by it"
    ]
    assert run.wait(timeout=60) == {"c": twin.hostname, "i": twin.hostname}
    queues = next(f for f in diagnose(engine, [wf]) if f.check == "queues")
    assert queues.ok is False
    assert twin.hostname in queues.message
    assert "-n io@%h" in queues.fix


def test_a_worker_that_answers_late_is_not_reported_as_missing(make_test_app, worker_process, uid):
    """A worker frozen past the first ``active_queues`` window (a busy or loaded machine) is asked again,
    waiting longer, before submit warns that nobody consumes its queue: the warning is never a guess."""
    app = make_test_app(wfcelery_routes={"cpu": f"cpu-{uid}"}, wfcelery_inspect_timeout=1.5)
    engine = app._wfcelery_engine
    worker = worker_process(app, [f"cpu-{uid}"], "late", pool="solo", concurrency=1)
    assert worker.proc is not None
    wf = Workflow("late")
    wf.add("c", "proj.whoami", type="cpu")
    os.kill(worker.proc.pid, signal.SIGSTOP)  # answers nothing for 3 s: the first 1.5 s window gets no reply
    resume = threading.Timer(3.0, os.kill, (worker.proc.pid, signal.SIGCONT))
    resume.start()
    try:
        run = engine.submit(wf)
    finally:
        resume.join()
    assert run.warnings == []
    assert engine.consumers.get().confirmed  # the answer it used came from the second, longer ask
    assert run.wait(timeout=60) == {"c": worker.hostname}
