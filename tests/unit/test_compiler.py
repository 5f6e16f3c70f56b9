"""Workflow -> Plan: edges, routing, the message each node is published with, and plan identity."""

from __future__ import annotations

import ast

import pytest

from wfcelery.definition.model import Workflow
from wfcelery.plan.compiler import Plan, compile_workflow, plan_from_blob
from wfcelery.tracker.keys import parse_task_id, task_id

RUN = "0123456789abcdef0123456789abcdef"


def diamond() -> Workflow:
    """extract -> [clean, audit] -> load, and report after audit only (not series-parallel)."""
    wf = Workflow("etl", defaults={"retries": 1})
    extract = wf.add("extract", "shop.extract", args=["${day}"], type="io")
    clean = wf.add("clean", "shop.clean", type="cpu", kwargs={"strict": True})
    audit = wf.add("audit", "shop.audit", type="gpu", queue="audit-q")
    load = wf.add(
        "load", "shop.load", args=["target"], type="io", time_limit=60, soft_time_limit=50, priority=7
    )
    wf.add("report", "shop.report", after=[audit], immutable=True, args=["weekly"])
    extract >> [clean, audit]
    [audit, clean] >> load  # parent order is the order edges were added: audit first
    return wf


@pytest.fixture
def plan() -> Plan:
    return compile_workflow(diamond().validate(), routes={"cpu": "cpu-heavy"})


def names(plan: Plan, indexes: tuple[int, ...]) -> list[str]:
    return [plan.nodes[i].name for i in indexes]


# -- structure -------------------------------------------------------------------------------------------


def test_nodes_keep_insertion_order_as_their_index(plan: Plan) -> None:
    assert [n.name for n in plan.nodes] == ["extract", "clean", "audit", "load", "report"]
    assert [n.index for n in plan.nodes] == [0, 1, 2, 3, 4]
    assert plan.by_name["load"].index == 3
    assert (plan.name, plan.on_failure) == ("etl", "fail_fast")


def test_parents_and_children(plan: Plan) -> None:
    edges = {n.name: (names(plan, n.parents), names(plan, n.children)) for n in plan.nodes}
    assert edges == {
        "extract": ([], ["clean", "audit"]),
        "clean": (["extract"], ["load"]),
        "audit": (["extract"], ["load", "report"]),
        "load": (["audit", "clean"], []),
        "report": (["audit"], []),
    }
    assert plan.roots == (0,)


def test_descendants(plan: Plan) -> None:
    by = plan.by_name
    assert names(plan, tuple(plan.descendants([by["audit"].index]))) == ["load", "report"]
    assert names(plan, tuple(plan.descendants([by["extract"].index]))) == ["clean", "audit", "load", "report"]
    assert plan.descendants([by["report"].index]) == []


def test_node_task_and_options(plan: Plan) -> None:
    load = plan.by_name["load"]
    assert (load.task, load.args, dict(load.kwargs), load.retries) == ("shop.load", ("target",), {}, 1)
    assert dict(load.options) == {"time_limit": 60, "soft_time_limit": 50, "priority": 7}
    assert dict(plan.by_name["extract"].options) == {}
    assert plan.by_name["report"].immutable is True


# -- routing ---------------------------------------------------------------------------------------------


def test_queue_is_the_type(plan: Plan) -> None:
    assert plan.by_name["extract"].queue == "io"
    assert plan.by_name["load"].queue == "io"


def test_routes_rename_a_type(plan: Plan) -> None:
    assert plan.by_name["clean"].queue == "cpu-heavy"


def test_explicit_queue_wins_over_type_and_routes() -> None:
    wf = Workflow("q")
    wf.add("a", "t", type="cpu", queue="special")
    plan = compile_workflow(wf, routes={"cpu": "cpu-heavy"})
    assert plan.nodes[0].queue == "special"
    assert plan.message(RUN, 0, 0, {})["queue"] == "special"


def test_no_type_no_queue(plan: Plan) -> None:
    report = plan.by_name["report"]
    assert report.queue is None
    # no queue option at all: the app's task_routes / default queue decide, as for any Celery task
    assert "queue" not in plan.message(RUN, report.index, 0, {}, ["audit result"])


def test_release_rules_say_when_each_message_is_sent(plan: Plan) -> None:
    rules = {r["node"]: (r["queue"], r["released"], r["receives"]) for r in plan.release_rules()}
    assert rules["extract"] == ("io", "at submit", "its own args")
    assert rules["clean"] == ("cpu-heavy", "when extract succeeds", "parent's result first (chain)")
    assert rules["load"] == (
        "io",
        "when audit, clean have all succeeded (counter)",
        "parents' results as one list (chord)",
    )
    assert rules["report"] == ("(default)", "when audit succeeds", "its own args")  # immutable


# -- messages --------------------------------------------------------------------------------------------


def test_root_gets_only_its_own_args_with_params(plan: Plan) -> None:
    msg = plan.message(RUN, 0, 0, {"day": "2026-11-22"})
    assert msg["args"] == ["2026-11-22"]
    assert msg["kwargs"] == {}
    assert msg["queue"] == "io"


def test_one_parent_result_is_the_first_positional_arg(plan: Plan) -> None:
    clean = plan.by_name["clean"]
    msg = plan.message(RUN, clean.index, 0, {}, [{"rows": 3}])
    assert msg["args"] == [{"rows": 3}]
    assert msg["kwargs"] == {"strict": True}


def test_one_parent_result_goes_before_own_args() -> None:
    wf = Workflow("c")
    wf.add("a", "t") >> wf.add("b", "t", args=[1, "${n}"])
    plan = compile_workflow(wf)
    assert plan.message(RUN, 1, 0, {"n": 2}, ["from a"])["args"] == ["from a", 1, 2]


def test_a_parent_result_that_is_a_list_stays_one_arg() -> None:
    wf = Workflow("c")
    wf.add("a", "t") >> wf.add("b", "t")
    plan = compile_workflow(wf)
    assert plan.message(RUN, 1, 0, {}, [[1, 2]])["args"] == [[1, 2]]


def test_several_parents_give_one_list_in_parent_order(plan: Plan) -> None:
    load = plan.by_name["load"]
    msg = plan.message(RUN, load.index, 0, {}, ["audit result", "clean result"])
    assert msg["args"] == [["audit result", "clean result"], "target"]


def test_immutable_gets_no_parent_result(plan: Plan) -> None:
    report = plan.by_name["report"]
    assert plan.message(RUN, report.index, 0, {}, ["audit result"])["args"] == ["weekly"]


def test_task_id_is_frozen_from_run_node_and_epoch(plan: Plan) -> None:
    load = plan.by_name["load"]
    msg = plan.message(RUN, load.index, 2, {}, [1, 2])
    assert msg["task_id"] == task_id(RUN, load.index, 2) == f"{RUN}-3-2"
    assert parse_task_id(msg["task_id"]) == (RUN, 3, 2)


def test_flower_sees_run_and_node_in_kwargsrepr_and_headers(plan: Plan) -> None:
    clean = plan.by_name["clean"]
    msg = plan.message(RUN, clean.index, 0, {}, [None])
    shown = ast.literal_eval(msg["kwargsrepr"])
    assert shown == {"strict": True, "wf_run": RUN, "wf_node": "clean"}
    assert msg["kwargs"] == {"strict": True}  # the task itself does not receive wf_* kwargs
    assert msg["headers"] == {"wf_run": RUN, "wf_node": "clean", "wf_plan": plan.digest}


def test_per_node_options_reach_send_task(plan: Plan) -> None:
    load = plan.by_name["load"]
    msg = plan.message(RUN, load.index, 0, {}, [1, 2])
    assert (msg["time_limit"], msg["soft_time_limit"], msg["priority"]) == (60, 50, 7)
    assert "time_limit" not in plan.message(RUN, 0, 0, {"day": "d"})


def test_whole_placeholder_keeps_type_in_messages() -> None:
    wf = Workflow("p")
    wf.add("a", "t", args=["${n}", "part-${n}"], kwargs={"cfg": "${cfg}"})
    plan = compile_workflow(wf)
    msg = plan.message(RUN, 0, 0, {"n": 4, "cfg": {"deep": [1]}})
    assert msg["args"] == [4, "part-4"]
    assert msg["kwargs"] == {"cfg": {"deep": [1]}}
    assert "'cfg': {'deep': [1]}" in msg["kwargsrepr"]


def test_message_does_not_mutate_the_plan(plan: Plan) -> None:
    load = plan.by_name["load"]
    plan.message(RUN, load.index, 0, {}, [1, 2])
    plan.message(RUN, 0, 0, {"day": "d"})
    assert plan.by_name["load"].args == ("target",)
    assert plan.nodes[0].args == ("${day}",)


# -- identity --------------------------------------------------------------------------------------------


def test_digest_is_stable_and_shared_by_equal_definitions() -> None:
    first = compile_workflow(diamond(), routes={"cpu": "cpu-heavy"})
    second = compile_workflow(diamond(), routes={"cpu": "cpu-heavy"})
    assert first.digest == second.digest
    assert first.blob == second.blob
    assert len(first.digest) == 40
    assert int(first.digest, 16) >= 0


def test_digest_changes_with_definition_or_routes() -> None:
    base = compile_workflow(diamond()).digest
    assert compile_workflow(diamond(), routes={"cpu": "cpu-heavy"}).digest != base
    changed = diamond()
    changed["load"].retries = 5
    assert compile_workflow(changed).digest != base


def test_plan_from_blob_reproduces_the_plan(plan: Plan) -> None:
    again = plan_from_blob(plan.blob)
    assert again == plan
    assert again.digest == plan.digest
    assert again.message(RUN, 3, 1, {}, ["a", "c"]) == plan.message(RUN, 3, 1, {}, ["a", "c"])


def test_plan_from_blob_keeps_stages_and_workflow_params() -> None:
    wf = Workflow("s", on_failure="continue", params={"day": "d"})
    wf.stages(["a", "b"], wf.add("c", "shop.c", args=["${day}"]))
    plan = compile_workflow(wf)
    again = plan_from_blob(plan.blob)
    assert again == plan
    assert again.on_failure == "continue"
    assert dict(again.definition)["params"] == {"day": "d"}
