"""The benchmark profile's buckets: a sample goes to wfcelery's buckets only for wfcelery's own frames.

py-spy names a frame's file by what follows its sys.path entry when it can (``celery/worker/request.py``),
else by its absolute path; Celery and wfcelery both have a ``worker`` package, so the report must not take
one for the other."""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.harness import _bucket, _frame, summarize_stacks
from benchmarks.tables import cpu_split


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("_on_success (wfcelery/worker/hooks.py:300)", "_on_success (wfcelery/worker/hooks.py)"),
        ("Request.execute (celery/worker/request.py:10)", "Request.execute (worker/request.py)"),
        (
            "Request.execute (/venv/lib/python3.11/site-packages/celery/worker/request.py:10)",
            "Request.execute (worker/request.py)",
        ),
        ("noop (benchmarks/tasks.py:3)", "noop (benchmarks/tasks.py)"),
    ],
)
def test_a_frame_keeps_the_wfcelery_package_name_and_only_for_wfcelery(raw: str, shown: str) -> None:
    assert _frame(raw) == shown


def test_celerys_worker_modules_are_not_counted_as_wfcelerys_hooks() -> None:
    celery_only = [_frame("Request.execute_using_pool (celery/worker/request.py:700)")]
    ours = [*celery_only, _frame("_on_received (wfcelery/worker/hooks.py:400)")]
    assert _bucket("main", celery_only) == "other"
    assert _bucket("main", ours) == "wfcelery: message filter and hooks"
    succeed = [_frame("WorkerSide.node_succeeded (wfcelery/worker/side.py:180)")]
    assert _bucket("pool", succeed) == "wfcelery: succeed (Lua + plan)"


def test_an_inline_childs_samples_are_its_own_not_its_parents_success() -> None:
    parent = [
        _frame("trace_task (celery/app/trace.py:450)"),
        _frame("_on_success (wfcelery/worker/hooks.py:283)"),
        _frame("Inline.run_inline (wfcelery/worker/inline.py:97)"),
    ]
    child = [*parent, _frame("Inline._run_child (wfcelery/worker/inline.py:140)")]
    child += [_frame("trace_task (celery/app/trace.py:450)")]
    assert _bucket("pool", [*child, _frame("noop (benchmarks/tasks.py:3)")]) == "task body"
    published = [*child, _frame("Dispatcher.publish (wfcelery/messaging/dispatch.py:200)")]
    assert _bucket("pool", published) == "wfcelery: publish released children"
    assert _bucket("pool", parent) == "wfcelery: other hooks"  # the loop itself
    assert _bucket("pool", parent[:2]) == "wfcelery: succeed (Lua + plan)"  # no inline child: as before


def test_the_cpu_split_divides_the_worker_cpu_by_the_samples_shares() -> None:
    main = 'process 1:"celery worker"'
    pool = 'process 2:"celery worker";process 3:"celery worker"'
    stacks = Counter(
        {
            f"{main};Request.execute (celery/worker/request.py:1)": 30,
            f"{main};EventDispatcher.send (celery/events/dispatcher.py:1)": 10,
            f"{pool};WorkerSide.node_succeeded (wfcelery/worker/side.py:1)": 60,
        }
    )
    side = {"worker_cpu_ms_per_task": 2.0, "profile": summarize_stacks(stacks)}
    cells = [line.strip("| ").split(" | ") for line in cpu_split(side) if line.startswith("| ")]
    rows = {bucket: ms for _, bucket, ms in cells}
    assert rows["wfcelery: succeed (Lua + plan)"] == "1.20"  # 60% of the samples
    assert rows["task events (publish)"] == "0.20"
    assert rows["other"] == "0.60"
