"""The Redis key layout and task ids, pinned: changing a key string breaks every stored run."""

from __future__ import annotations

import uuid

import pytest

from wfcelery.tracker.keys import RUN_KEYS, Keys, canvas_task_id, parse_task_id, run_of, task_id

RUN = "0123456789abcdef0123456789abcdef"


def test_per_run_keys_share_the_run_hash_tag() -> None:
    k = Keys()
    assert k.run(RUN) == "wfcelery:{0123456789abcdef0123456789abcdef}:run"
    assert k.nodes(RUN) == "wfcelery:{0123456789abcdef0123456789abcdef}:nodes"
    assert k.deps(RUN) == "wfcelery:{0123456789abcdef0123456789abcdef}:deps"
    assert k.results(RUN) == "wfcelery:{0123456789abcdef0123456789abcdef}:results"
    assert k.errors(RUN) == "wfcelery:{0123456789abcdef0123456789abcdef}:errors"
    assert k.events(RUN) == "wfcelery:{0123456789abcdef0123456789abcdef}:events"
    assert k.done_channel(RUN) == "wfcelery:{0123456789abcdef0123456789abcdef}:done"
    assert k.void(RUN) == "wfcelery:{0123456789abcdef0123456789abcdef}:void"
    assert k.run_pattern(RUN) == "wfcelery:{0123456789abcdef0123456789abcdef}:*"


def test_run_keys_are_the_lua_keys_in_order() -> None:
    assert RUN_KEYS == ("run", "nodes", "deps", "results", "errors", "events")
    assert Keys("p").run_keys("r1") == [
        "p:{r1}:run",
        "p:{r1}:nodes",
        "p:{r1}:deps",
        "p:{r1}:results",
        "p:{r1}:errors",
        "p:{r1}:events",
    ]


def test_global_keys() -> None:
    k = Keys()
    assert k.index == "wfcelery:runs"
    assert k.gate == "wfcelery:gate"
    assert k.gate_channel == "wfcelery:gate:changes"
    assert k.plan("da39a3ee5e6b4b0d3255bfef95601890afd80709") == (
        "wfcelery:plan:da39a3ee5e6b4b0d3255bfef95601890afd80709"
    )
    assert k.live == "wfcelery:live"
    assert k.worker("celery@host-1") == "wfcelery:worker:celery@host-1"
    assert k.workers == "wfcelery:workers"
    assert k.reconciler == "wfcelery:reconciler"


def test_run_key_and_schedule_keys() -> None:
    k = Keys()
    assert k.run_key("nightly:2026-12-06") == "wfcelery:runkey:nightly:2026-12-06"
    assert k.schedules == "wfcelery:schedules"
    assert k.schedules_next == "wfcelery:schedules:next"
    assert k.schedules_last == "wfcelery:schedules:last"
    assert k.schedule_runs("etl") == "wfcelery:schedule:etl:runs"
    assert k.schedule_active("etl") == "wfcelery:schedule:etl:active"
    assert k.scheduler == "wfcelery:scheduler"
    assert k.tokens == "wfcelery:tokens"
    assert k.token_hashes == "wfcelery:tokens:by-hash"
    assert k.audit == "wfcelery:audit"


def test_prefix_is_configurable() -> None:
    k = Keys("tenant-a:wf")
    assert k.run("r") == "tenant-a:wf:{r}:run"
    assert k.index == "tenant-a:wf:runs"
    assert k.plan("d") == "tenant-a:wf:plan:d"


def test_task_id_format() -> None:
    assert task_id(RUN, 0, 0) == "0123456789abcdef0123456789abcdef-0-0"
    assert task_id(RUN, 12, 3) == "0123456789abcdef0123456789abcdef-12-3"


@pytest.mark.parametrize(("index", "epoch"), [(0, 0), (1, 0), (0, 1), (199, 7), (10**6, 10**3)])
def test_parse_task_id_inverts_task_id(index: int, epoch: int) -> None:
    run = uuid.uuid4().hex
    assert parse_task_id(task_id(run, index, epoch)) == (run, index, epoch)


@pytest.mark.parametrize(
    "foreign",
    [
        "053b5542-a7a0-47fb-ab50-a7cb80765421",  # a Celery id (uuid4)
        "",
        "abc",
        RUN,  # a run id alone
        f"{RUN}-1",  # no epoch
        f"{RUN}-1-",
        f"{RUN}--1",
        f"{RUN}-x-1",
        f"{RUN}-1-2-3",
        f"{RUN}-01-0",  # not what task_id() writes
        f"{RUN}--1-0",
        f"{RUN}-\u00b2-1",  # '²'.isdigit() is True, int('²') fails
        f"{RUN}-\u0661-1",  # Arabic-Indic digit one
        f"{RUN[:-1]}-1-0",  # 31 chars
        f"{RUN}0-1-0",  # 33 chars
        f"{'g' * 32}-1-0",  # not hex
        f"{RUN.upper()}-1-0",  # uuid4().hex is lower case
        f"{RUN}-1-0\n",
    ],
)
def test_parse_task_id_returns_none_for_foreign_ids(foreign: str) -> None:
    assert parse_task_id(foreign) is None


def test_canvas_barrier_ids_name_their_run_but_no_node() -> None:
    barrier = canvas_task_id(RUN, 2, 7)
    assert barrier == f"{RUN}-x7-2"
    assert parse_task_id(barrier) is None  # the hooks never take a barrier for a node
    assert run_of(barrier) == RUN
    assert run_of(task_id(RUN, 3, 0)) == RUN
    assert run_of("7f1c0f3e-5d7c-4bd0-9d0e-0b6e8e3e7a11") is None  # a Celery uuid
