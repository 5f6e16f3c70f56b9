"""Nodes with no task in definitions, plans and the tracker's formats: no Redis, no worker."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from celery import Celery

from wfcelery import DefinitionError, NestingError, SchemaError, Workflow
from wfcelery.definition.loader import loads
from wfcelery.definition.waits import (
    NodeKind,
    check_nesting,
    format_duration,
    parse_duration,
    resolve_until,
)
from wfcelery.plan.compiler import compile_workflow, plan_from_blob
from wfcelery.plan.segments import segments
from wfcelery.tracker.keys import Keys
from wfcelery.tracker.records import ParentLink, RunRecord, TimerEntry, WaitMark, new_run
from wfcelery.tracker.states import TRANSITIONS, NodeStatus, Waiting, WaitKind

YAML = """
name: release
tasks:
  - {name: build, task: shop.build}
  - {name: approve, wait: signal, timeout: 2h, after: [build]}
  - {name: cool_down, sleep: 10m, after: [approve]}
  - {name: hold, until: "${params.release_at}", after: [cool_down]}
  - {name: daily, workflow: etl, params: {day: "${day}"}, after: [hold], trigger: all_done}
"""


def built() -> Workflow:
    wf = Workflow("release")
    wf.add("build", "shop.build")
    wf.wait("approve", after=["build"], timeout="2h")
    wf.sleep("cool_down", "10m", after=["approve"])
    wf.sleep("hold", until="${params.release_at}", after=["cool_down"])
    wf.add("daily", workflow="etl", params={"day": "${day}"}, after=["hold"], trigger="all_done")
    return wf


def test_yaml_and_builder_make_the_same_definition_and_it_round_trips() -> None:
    from_yaml = Workflow.from_dict(loads(YAML))
    assert from_yaml.to_dict() == built().to_dict()
    assert Workflow.from_dict(from_yaml.to_dict()).to_dict() == from_yaml.to_dict()
    kinds = {n.name: n.kind for n in from_yaml.nodes.values()}
    assert kinds == {
        "build": NodeKind.TASK,
        "approve": NodeKind.WAIT,
        "cool_down": NodeKind.SLEEP,
        "hold": NodeKind.SLEEP,
        "daily": NodeKind.WORKFLOW,
    }
    assert from_yaml.placeholders() == {"release_at", "day"}  # their params are the run's params


def test_nodes_with_no_task_pass_validation_against_an_app_that_lacks_their_tasks() -> None:
    app = Celery("v", set_as_current=False)

    @app.task(name="shop.build")
    def build() -> None: ...

    built().validate(app)  # only "build" is a task that must be registered


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"name": "a", "wait": "signal", "task": "t"},
            "a node is one of a task, a wait, a sleep or a workflow",
        ),
        ({"name": "a", "timeout": "2h", "task": "t"}, "'timeout' is an option of wait nodes"),
        ({"name": "a", "task": "t", "params": {}}, "'params' is an option of workflow nodes"),
        ({"name": "a", "sleep": "10m", "args": [1]}, "a sleep node has no 'args'"),
        ({"name": "a", "workflow": "etl", "retries": 2}, "a workflow node has no 'retries'"),
        ({"wait": "signal"}, "needs 'name' or 'task'"),
        ({"name": "a", "wait": "email"}, "wait must be 'signal'"),
        ({"name": "a", "wait": "signal", "timeout": "soon"}, "'soon' is not a duration"),
        ({"name": "a", "sleep": -1}, "out of range"),
        ({"name": "a", "sleep": "10m", "until": "2030-01-01"}, "a duration or until=..., exactly one"),
        ({"name": "a", "until": "tomorrow"}, "'tomorrow' is not a time"),
        ({"name": "a", "workflow": "not a name"}, "must be a workflow's name"),
        ({"name": "a", "workflow": "etl", "params": [1]}, "params must be a mapping"),
    ],
)
def test_bad_nodes_with_no_task_are_refused_naming_the_problem(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(
        SchemaError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")
    ):
        Workflow.from_dict({"name": "x", "tasks": [spec]})


def test_durations() -> None:
    assert parse_duration("90s", "x") == 90
    assert parse_duration("1h30m", "x") == 5400
    assert parse_duration("500ms", "x") == 0.5
    assert parse_duration(2.5, "x") == 2.5
    assert parse_duration("15", "x") == 15
    for bad in ("", "1 hour", "h", True, None, "400d"):
        with pytest.raises(SchemaError):
            parse_duration(bad, "x")
    assert [format_duration(s) for s in (7200, 5400, 1.5, 45, 86400 + 60)] == [
        "2h",
        "1h30m",
        "1.5s",
        "45s",
        "1d1m",
    ]


def test_until_resolves_params_and_iso_times() -> None:
    spec = "${params.release_at}"
    at = resolve_until(spec, {"release_at": "2026-12-06T10:00:00+01:00"}, "x")
    assert at == dt.datetime(2026, 12, 6, 9, 0, tzinfo=dt.UTC).timestamp()
    assert resolve_until("${release_at}", {"release_at": 1_800_000_000}, "x") == 1_800_000_000
    assert resolve_until("2026-12-06T09:00:00", {}, "x") == at  # no offset: UTC
    with pytest.raises(SchemaError, match="'soon' is not a time"):
        resolve_until(spec, {"release_at": "soon"}, "node 'hold': until")


def test_recursion_unknown_and_depth_are_nesting_errors() -> None:
    a, b, leaf = Workflow("a"), Workflow("b"), Workflow("leaf")
    a.add("x", workflow="b")
    b.add("y", workflow="a")
    leaf.add("t", "shop.t")
    known = {"a": a, "b": b, "leaf": leaf}
    with pytest.raises(NestingError, match="workflow 'a' runs itself: a -> b -> a"):
        check_nesting(a, known.get)
    lone = Workflow("lone")
    lone.add("x", workflow="missing")
    with pytest.raises(NestingError, match="runs workflow 'missing', which is not registered"):
        check_nesting(lone, known.get)
    check_nesting(lone, known.get, strict=False)  # unknown ones are looked at later (engine.register)
    chain = [leaf]
    for i in range(3):
        wf = Workflow(f"l{i}")
        wf.add("down", workflow=chain[-1].name)
        chain.append(wf)
    lookup = {wf.name: wf for wf in chain}.get
    check_nesting(chain[-1], lookup, max_nesting=3)
    with pytest.raises(NestingError, match="nest more than 2 levels deep"):
        check_nesting(chain[-1], lookup, max_nesting=2)
    with pytest.raises(NestingError, match="runs itself: node 'me'"):
        Workflow("self").add("me", workflow="self").workflow.validate()
    assert issubclass(NestingError, DefinitionError)


def test_the_plan_carries_kinds_times_and_child_plans() -> None:
    plain = Workflow("plain")
    plain.add("a", "shop.a")
    digest = compile_workflow(plain).digest
    plan = compile_workflow(built(), subplans={"daily": "f" * 40})
    nodes = plan.by_name
    assert [n.has_task for n in plan.nodes] == [True, False, False, False, False]
    assert nodes["approve"].timeout == 7200
    assert nodes["cool_down"].sleep == 600
    assert nodes["hold"].until == "${params.release_at}"
    assert nodes["daily"].subworkflow == "etl"
    assert nodes["approve"].describe() == "wait for a signal (timeout 2h)"
    assert nodes["daily"].describe() == "workflow etl"
    assert plan.subplans == {4: "f" * 40}
    again = plan_from_blob(plan.blob)
    assert again.digest == plan.digest
    assert again.subplans == plan.subplans
    assert compile_workflow(plain).digest == digest  # task-only plans keep their digest
    rules = {r["node"]: r for r in plan.release_rules()}
    assert rules["approve"]["receives"] == "nothing: the signal's payload is its result"


def test_the_canvas_translator_refuses_and_the_canvas_executor_isolates_nodes_with_no_task() -> None:
    app = Celery("c", set_as_current=False)
    for name in ("shop.a", "shop.b", "shop.c", "shop.d"):
        app.task(name=name, shared=False)(_noop)
    wf = Workflow("c")
    wf.add("a", "shop.a") >> wf.add("b", "shop.b")
    wf.sleep("pause", 5, after="b")
    wf.add("c", "shop.c", after="pause") >> wf.add("d", "shop.d")
    with pytest.raises(DefinitionError, match="node 'pause' is a sleep node"):
        wf.to_canvas(app)
    plan = compile_workflow(wf, executor="canvas")
    alone = [s for s in segments(plan) if 2 in s.nodes]
    assert len(alone) == 1
    assert alone[0].nodes == (2,)
    assert not alone[0].canvas


def test_formats_keys_and_the_transition_table() -> None:
    mark = WaitMark(WaitKind.SIGNAL, 1_800_000_000_000)
    assert mark.encode() == "s|1800000000000|"
    assert WaitMark.decode(mark.encode()) == mark
    assert WaitMark.decode("r||0123").run == "0123"
    assert WaitMark.decode("t|5|").kind is WaitKind.TIME
    assert mark.waiting() == Waiting(WaitKind.SIGNAL, 1_800_000_000.0)
    entry = TimerEntry("0123456789abcdef0123456789abcdef", 3, 2)
    assert entry.encode() == "0123456789abcdef0123456789abcdef|3|2"
    assert TimerEntry.decode(entry.encode()) == entry
    assert entry.signal_member() == "0123456789abcdef0123456789abcdef|3"
    link = ParentLink("0123456789abcdef0123456789abcdef", 4, "daily")
    assert ParentLink.decode(link.encode()) == link
    record = new_run(
        name="etl",
        plan_digest="d",
        total=1,
        created_ms=1,
        params={},
        policy="fail_fast",
        ttl=1,
        events_maxlen=1,
        parent=link,
    )
    decoded = RunRecord.decode({**{k: str(v) for k, v in record.items()}, "wt:0": "r||abc"})
    assert decoded.parent == link
    assert decoded.waits == {0: WaitMark(WaitKind.RUN, None, "abc")}
    keys = Keys()
    assert (keys.timers, keys.timers_lease, keys.signals) == (
        "wfcelery:timers",
        "wfcelery:timers:lease",
        "wfcelery:signals",
    )
    assert NodeStatus.WAITING.code == "W"
    assert not NodeStatus.WAITING.terminal
    assert NodeStatus.WAITING in TRANSITIONS[NodeStatus.QUEUED]
    # QUEUED: a task node that waited for its pool got its slot (ops/lua/pool_wake.lua)
    assert TRANSITIONS[NodeStatus.WAITING] == {
        NodeStatus.SUCCEEDED,
        NodeStatus.FAILED,
        NodeStatus.REVOKED,
        NodeStatus.QUEUED,
    }


def _noop() -> None:
    """A task body for the apps these tests build (Celery needs a real function)."""


def test_a_missing_param_names_the_sleep_or_child_node_that_uses_it() -> None:
    wf = built()
    assert wf.placeholder_users() == {"release_at": ["hold"], "day": ["daily"]}
    with pytest.raises(DefinitionError, match=r"\$\{day\} \(node 'daily'\)"):
        wf.resolve_params({"release_at": "2026-12-06T10:00:00Z"})
