"""The raw ``to_canvas()`` signature on a real worker whose app never calls ``wfcelery.install``.

Each shape runs twice: under the counters executor (an installed app, ``engine.submit``) and as the plain
canvas (``apply_async`` on an app with no wfcelery at all, its own queues, Celery's Redis result backend).
Every node must return the same value both ways -- the nodes echo what they receive, so an argument in the
wrong place or order shows.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from celery import Celery, chain

from tests.helpers import in_thread_worker
from tests.proj import register_tasks
from wfcelery import Workflow
from wfcelery.plan.canvas import translate
from wfcelery.plan.compiler import compile_workflow


@pytest.fixture
def plain(redis_url: str, uid: str) -> Iterator[Celery]:
    """An app that knows the project's tasks and nothing of wfcelery."""
    app = Celery("plain", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        task_default_queue=f"plain{uid}",
        wfcelery_key_prefix=f"t{uid}",  # read by tests.proj's probe tasks only
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_expires=600,
    )
    register_tasks(app)
    assert not hasattr(app, "_wfcelery_engine")
    yield app
    # Applying a chord subscribes this client to its header results (CELERY-NOTES). Drop them now: the
    # results' __del__ would unsubscribe later, when this test's Redis may be gone.
    gc.collect()
    consumer = app.backend.result_consumer
    consumer.subscribed_to.clear()
    consumer.stop()


@contextmanager
def plain_worker(app: Celery) -> Iterator[Any]:
    """One in-thread worker at a time: two start_worker()s in one process disturb each other."""
    queue = app.conf.task_default_queue
    with in_thread_worker(app, queues=[queue, queue.replace("plain", "io")]) as worker:
        yield worker


def echo_workflow(name: str, edges: str, **opts: dict[str, Any]) -> Workflow:
    """Nodes ``proj.echo`` with their own name as argument; ``edges`` like ``"a>b b>c"``."""
    wf = Workflow(name)
    pairs = [tuple(e.split(">")) for e in edges.split()]
    for n in dict.fromkeys(x for pair in pairs for x in pair):
        wf.add(n, "proj.echo", args=[n], **opts.get(n, {}))
    for a, b in pairs:
        wf[a] >> wf[b]
    return wf


def counters(app: Celery, engine: Any, wf: Workflow) -> dict[str, Any]:
    with in_thread_worker(app):
        return dict(engine.submit(wf).wait(timeout=60))


def plain_canvas(app: Celery, wf: Workflow) -> tuple[dict[str, Any], Any]:
    """Per-node results and the canvas's own result, run with plain ``apply_async``."""
    built = translate(compile_workflow(wf.validate(app)), app)
    with plain_worker(app):
        final = built.signature.apply_async().get(timeout=60)
        return {name: app.AsyncResult(tid).get(timeout=10) for name, tid in built.task_ids.items()}, final


def stages(name: str) -> Workflow:
    wf = Workflow(name)
    for n in ("s1", "s2", "merge", "p1", "p2"):
        wf.add(n, "proj.echo", args=[n])
    wf.stages(["s1", "s2"], ["merge"], ["p1", "p2"])
    return wf


def chord_with_chain_headers(name: str) -> Workflow:
    return echo_workflow(name, "a>b1 b1>b2 a>c1 c1>c2 c2>c3 b2>d c3>d d>e")


SHAPES: dict[str, Callable[[str], Workflow]] = {
    "chain": lambda n: echo_workflow(n, "a>b b>c"),
    "fan-out": lambda n: echo_workflow(n, "a>b a>c a>d"),
    "diamond": lambda n: echo_workflow(n, "a>b a>c b>d c>d"),
    "chain of groups": lambda n: echo_workflow(n, "a>b a>c b>d c>d d>e d>f e>g f>g"),
    "chord with chain headers": chord_with_chain_headers,
    "stages": stages,
    "two parents two children": lambda n: echo_workflow(n, "a>x b>x a>y b>y"),
    "transitive edge and gather": lambda n: echo_workflow(n, "a>b b>c a>c c>g", g={"gather": True}),
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_plain_canvas_gives_the_counters_results(
    app: Celery, engine: Any, plain: Celery, shape: Callable[[str], Workflow]
) -> None:
    wf = shape("shape")
    expected = counters(app, engine, wf)
    results, final = plain_canvas(plain, wf)
    assert results == expected
    sinks = [n for n in wf.nodes if not any(n in m.after for m in wf.nodes.values())]
    assert final == (expected[sinks[0]] if len(sinks) == 1 else [expected[s] for s in sinks])


def test_typed_nodes_and_barriers_run_on_the_typed_queue(plain: Celery, uid: str) -> None:
    wf = echo_workflow("typed", "a>b a>c", **{n: {"type": f"io{uid}"} for n in "abc"})
    sig = wf.to_canvas(plain)
    assert sig.tasks[0].options["queue"] == f"io{uid}"
    assert sig.tasks[1].body.options["queue"] == f"io{uid}"  # the barrier joining b and c
    with plain_worker(plain):
        out = sig.apply_async().get(timeout=60)
    assert out == [
        {"args": [{"args": ["a"], "kwargs": {}}, "b"], "kwargs": {}},
        {"args": [{"args": ["a"], "kwargs": {}}, "c"], "kwargs": {}},
    ]


def test_embedded_in_a_users_chain(plain: Celery) -> None:
    wf = echo_workflow("embedded", "a>b a>c b>d c>d")
    prep, notify = plain.signature("proj.add", args=(1, 2)), plain.signature("proj.echo", kwargs={"tag": "x"})
    with plain_worker(plain):
        out = chain(prep, wf.to_canvas(plain), notify).apply_async().get(timeout=60)
    a = {"args": [3, "a"], "kwargs": {}}  # the root received prep's result first, like any signature
    d = {"args": [[{"args": [a, "b"], "kwargs": {}}, {"args": [a, "c"], "kwargs": {}}], "d"], "kwargs": {}}
    assert out == {"args": [d], "kwargs": {"tag": "x"}}


def test_params_fill_the_canvas(plain: Celery) -> None:
    wf = Workflow("params")
    wf.add("a", "proj.add", args=["${x}"], kwargs={"y": "${y}"})
    wf.add("b", "proj.add", after="a", kwargs={"y": 100})
    with plain_worker(plain):
        assert wf.to_canvas(plain, params={"x": 1, "y": 2}).apply_async().get(timeout=60) == 103


def test_inexact_canvas_runs_the_n_shape(app: Celery, engine: Any, plain: Celery) -> None:
    wf = echo_workflow("n", "a>c a>d b>d")
    expected = counters(app, engine, wf)
    built = translate(compile_workflow(wf), plain, exact=False)
    assert built.false_dependencies == (("a", "b"),)
    with plain_worker(plain):
        built.signature.apply_async().get(timeout=60)
        assert {n: plain.AsyncResult(t).get(timeout=10) for n, t in built.task_ids.items()} == expected
