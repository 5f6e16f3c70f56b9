"""Workflow definitions: the builder, params, the dict schema and validation (no Redis, no worker)."""

from __future__ import annotations

import datetime
import inspect
import itertools
import re

import pytest
from celery import Celery

import wfcelery
from wfcelery.definition import model
from wfcelery.definition.checks import find_cycle
from wfcelery.definition.model import Workflow
from wfcelery.definition.params import substitute
from wfcelery.errors import (
    CycleError,
    DefinitionError,
    DuplicateNodeError,
    EmptyWorkflowError,
    ParamError,
    SchemaError,
    UnknownParentError,
    UnknownTaskError,
)


def parents(wf: Workflow) -> dict[str, list[str]]:
    return {name: list(node.after) for name, node in wf.nodes.items()}


@pytest.fixture
def celery_app() -> Celery:
    """A Celery app that is never connected: validate() only reads its task registry."""
    app = Celery("shop", set_as_current=False)

    @app.task(name="shop.extract")
    def extract(day: str) -> str:
        return day

    @app.task(name="shop.load")
    def load(rows: object) -> None:
        return None

    return app


# -- builder ---------------------------------------------------------------------------------------------


def test_add_records_task_name_and_options() -> None:
    wf = Workflow("etl")
    node = wf.add(
        "extract",
        "shop.extract",
        args=["2026-11-22"],
        kwargs={"full": True},
        type="io",
        retries=3,
        immutable=True,
        time_limit=30,
        soft_time_limit=20.5,
        priority=5,
        queue="q1",
    )
    assert wf["extract"] is node
    assert (node.name, node.task, node.args, node.kwargs) == (
        "extract",
        "shop.extract",
        ["2026-11-22"],
        {"full": True},
    )
    assert (node.type, node.queue, node.retries, node.immutable) == ("io", "q1", 3, True)
    assert (node.time_limit, node.soft_time_limit, node.priority) == (30, 20.5, 5)
    assert len(wf) == 1


def test_add_accepts_a_celery_task_object(celery_app: Celery) -> None:
    wf = Workflow("etl")
    node = wf.add("extract", celery_app.tasks["shop.extract"])
    assert node.task == "shop.extract"


def test_defaults_apply_and_node_options_win() -> None:
    wf = Workflow("etl", defaults={"type": "io", "retries": 1})
    a = wf.add("a", "t.a")
    b = wf.add("b", "t.b", type="cpu")
    assert (a.type, a.retries) == ("io", 1)
    assert (b.type, b.retries) == ("cpu", 1)


def test_an_option_left_at_none_takes_the_default() -> None:
    wf = Workflow("etl", defaults={"queue": "q", "immutable": True, "retries": 2})
    a = wf.add("a", "t.a", queue=None, immutable=False, retries=0)
    assert (a.queue, a.immutable, a.retries) == ("q", False, 0)


def test_add_has_typed_keyword_parameters_for_every_node_option() -> None:
    params = inspect.signature(Workflow.add).parameters
    options = {name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    # a wait's and a sleep's keys are their builders' (wf.wait, wf.sleep)
    assert options == model.NODE_KEYS - {"name", "task", "wait", "timeout", "sleep", "until"}
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    assert {"timeout", "after"} <= set(inspect.signature(Workflow.wait).parameters)
    assert {"duration", "until", "after"} <= set(inspect.signature(Workflow.sleep).parameters)


def test_rshift_chain_returns_right_side() -> None:
    wf = Workflow("etl")
    e, t, load = wf.add("e", "t.e"), wf.add("t", "t.t"), wf.add("l", "t.l")
    assert (e >> t >> load) is load
    assert parents(wf) == {"e": [], "t": ["e"], "l": ["t"]}


def test_rshift_lists_fan_out_and_fan_in() -> None:
    wf = Workflow("fan")
    e, a, b, load = (wf.add(n, f"t.{n}") for n in ("e", "a", "b", "l"))
    e >> [a, b] >> load
    assert parents(wf) == {"e": [], "a": ["e"], "b": ["e"], "l": ["a", "b"]}


def test_rshift_twice_is_one_edge() -> None:
    wf = Workflow("x")
    a, b = wf.add("a", "t"), wf.add("b", "t")
    a >> b
    a >> b
    assert b.after == ["a"]


def test_rshift_across_workflows_is_refused() -> None:
    a = Workflow("one").add("a", "t")
    b = Workflow("two").add("b", "t")
    with pytest.raises(UnknownParentError, match="another workflow"):
        a >> b


def test_rshift_with_something_else_than_nodes_is_a_type_error() -> None:
    a = Workflow("one").add("a", "t")
    with pytest.raises(TypeError, match="workflow nodes"):
        a >> ["b"]  # type: ignore[list-item]


def test_after_takes_names_nodes_or_one_name() -> None:
    wf = Workflow("x")
    load = wf.add("load", "t")
    other = wf.add("other", "t")
    assert wf.add("report", "t", after=["load"]).after == ["load"]
    assert wf.add("by_node", "t", after=[load, other]).after == ["load", "other"]
    assert wf.add("one_name", "t", after="load").after == ["load"]
    assert wf.add("one_node", "t", after=load).after == ["load"]
    assert wf.add("twice", "t", after=["load", "load"]).after == ["load"]


def test_stages_chain_every_node_of_a_stage_to_the_previous_stage() -> None:
    wf = Workflow("stages")
    merge = wf.add("merge", "shop.merge")
    stages = wf.stages(["extract_a", "extract_b"], merge, "publish")
    assert [[n.name for n in s] for s in stages] == [["extract_a", "extract_b"], ["merge"], ["publish"]]
    assert parents(wf) == {
        "merge": ["extract_a", "extract_b"],
        "extract_a": [],
        "extract_b": [],
        "publish": ["merge"],
    }
    # a name with no node yet becomes a node running the task of that name; existing nodes are reused
    assert wf["extract_a"].task == "extract_a"
    assert wf["merge"].task == "shop.merge"


def test_stages_from_a_definition() -> None:
    wf = Workflow.from_dict(
        {
            "name": "stages",
            "tasks": [{"name": "merge", "task": "shop.merge", "type": "cpu"}],
            "stages": [["extract_a", "extract_b"], ["merge"], ["publish"]],
        }
    )
    assert parents(wf) == {
        "merge": ["extract_a", "extract_b"],
        "extract_a": [],
        "extract_b": [],
        "publish": ["merge"],
    }
    assert wf["merge"].type == "cpu"


# -- params ----------------------------------------------------------------------------------------------


def test_whole_string_placeholder_keeps_the_param_type() -> None:
    params = {"n": 3, "cfg": {"a": [1, 2]}, "flag": None}
    assert substitute("${n}", params) == 3
    assert substitute(["${cfg}", {"k": "${flag}"}], params) == [{"a": [1, 2]}, {"k": None}]


def test_embedded_placeholders_are_formatted_as_str() -> None:
    params = {"day": "2026-11-22", "n": 3}
    assert substitute("s3://bucket/${day}/part-${n}.csv", params) == "s3://bucket/2026-11-22/part-3.csv"
    assert substitute(("${n}", "x${n}", 7), params) == [3, "x3", 7]
    assert substitute("no placeholder $day {day}", params) == "no placeholder $day {day}"


def test_embedded_non_string_params_are_formatted_as_json() -> None:
    params = {"flag": None, "on": True, "ids": [1, 2]}
    assert substitute("x=${flag}&on=${on}&ids=${ids}", params) == "x=null&on=true&ids=[1, 2]"


def test_an_unknown_param_is_refused_naming_the_known_ones() -> None:
    wf = Workflow("notify", params={"day": "today", "channel": "#all"})
    wf.add("a", "t", args=["${channel}", "${day}"])
    with pytest.raises(
        ParamError, match=r"has no param 'chanel' \(did you mean 'channel'\?\) \(known params: channel, day\)"
    ):
        wf.resolve_params({"chanel": "#ops"})


def test_a_misspelled_placeholder_is_named_next_to_the_param_meant_for_it() -> None:
    wf = Workflow("etl", params={"delay": 1})
    wf.add("extract", "t", args=["${dya}", "${delay}"])
    with pytest.raises(ParamError) as err:
        wf.resolve_params({"day": "2026-11-22"})
    assert str(err.value) == (
        "workflow 'etl': placeholder ${dya} in node 'extract' has no value, and param 'day' fills no "
        "placeholder: did you mean ${day} in the definition, or --param dya=...?"
    )
    with pytest.raises(ParamError, match=r"needs params dya for its placeholders \$\{dya\} \(node 'extract'"):
        wf.resolve_params({})


def test_missing_params_lists_placeholders_without_a_value() -> None:
    wf = Workflow("p", params={"day": "today"})
    wf.add("a", "t", args=["${channel}", "${day}", "${n}"])
    assert wf.missing_params() == ["channel", "n"]
    assert wf.missing_params({"n": 1}) == ["channel"]


def test_placeholders_and_resolve_params() -> None:
    wf = Workflow("p", params={"bucket": "default"})
    wf.add("a", "t", args=["${day}", "s3://${bucket}/x"], kwargs={"opts": {"limit": "${limit}"}})
    assert wf.placeholders() == {"day", "bucket", "limit"}
    assert wf.resolve_params({"day": "d", "limit": 5}) == {"bucket": "default", "day": "d", "limit": 5}
    assert wf.resolve_params({"day": "d", "limit": 5, "bucket": "b"})["bucket"] == "b"


def test_missing_params_raise_param_error_naming_them() -> None:
    wf = Workflow("p")
    wf.add("a", "t", args=["${day}"], kwargs={"n": "${limit}"})
    with pytest.raises(ParamError, match="needs params day, limit"):
        wf.resolve_params({})
    with pytest.raises(ParamError, match="limit") as err:
        wf.resolve_params({"day": "d"})
    assert "day" not in str(err.value).split("needs params", 1)[1]
    assert isinstance(err.value, DefinitionError)


# -- dict schema -----------------------------------------------------------------------------------------


def test_from_dict_reads_the_documented_schema() -> None:
    wf = Workflow.from_dict(
        {
            "name": "etl",
            "on_failure": "continue",
            "defaults": {"type": "io", "retries": 1},
            "params": {"day": "2026-11-22"},
            "tasks": [
                {"name": "extract", "task": "shop.extract", "args": ["${day}"]},
                {"name": "transform", "task": "shop.transform", "type": "cpu", "after": ["extract"]},
                {"name": "load", "task": "shop.load", "after": "transform"},
                {"task": "shop.report", "after": ["load"], "immutable": True},
            ],
        }
    )
    assert (wf.name, wf.on_failure, wf.params) == ("etl", "continue", {"day": "2026-11-22"})
    assert parents(wf) == {
        "extract": [],
        "transform": ["extract"],
        "load": ["transform"],
        "shop.report": ["load"],
    }
    assert [(n.type, n.retries) for n in wf.nodes.values()] == [("io", 1), ("cpu", 1), ("io", 1), ("io", 1)]
    assert wf["shop.report"].immutable is True


def test_to_dict_from_dict_round_trip() -> None:
    wf = Workflow("etl", on_failure="continue", defaults={"retries": 2}, params={"day": "x"})
    e = wf.add("extract", "shop.extract", args=["${day}", 1, [2, 3]], kwargs={"k": {"v": None}}, type="io")
    t = wf.add(
        "transform",
        "shop.transform",
        type="cpu",
        queue="big",
        immutable=True,
        time_limit=60,
        soft_time_limit=50,
        priority=0,
    )
    a = wf.add("audit", "shop.audit", retries=0)
    e >> [t, a] >> wf.add("load", "shop.load")
    d = wf.to_dict()
    again = Workflow.from_dict(d)
    assert again.to_dict() == d
    assert parents(again) == parents(wf)
    assert again["transform"].priority == 0
    assert again["audit"].retries == 0
    assert again["extract"].retries == 2


def test_to_dict_is_json_data() -> None:
    import json

    wf = Workflow("x")
    wf.add("a", "t", args=("tuple", "args"))
    d = wf.to_dict()
    assert json.loads(json.dumps(d)) == d


# -- validation ------------------------------------------------------------------------------------------


def test_valid_workflow_validates_and_returns_itself(celery_app: Celery) -> None:
    wf = Workflow("etl")
    wf.add("extract", "shop.extract") >> wf.add("load", "shop.load")
    assert wf.validate() is wf
    assert wf.validate(celery_app) is wf


def test_empty_workflow() -> None:
    with pytest.raises(EmptyWorkflowError, match="'etl' has no tasks"):
        Workflow("etl").validate()
    with pytest.raises(EmptyWorkflowError):
        Workflow.from_dict({"name": "etl", "tasks": []}).validate()


def test_duplicate_node_names() -> None:
    wf = Workflow("etl")
    wf.add("extract", "a")
    with pytest.raises(DuplicateNodeError, match="duplicate node name 'extract'"):
        wf.add("extract", "b")
    with pytest.raises(DuplicateNodeError, match="'extract'"):
        Workflow.from_dict(
            {"name": "x", "tasks": [{"name": "extract", "task": "a"}, {"name": "extract", "task": "b"}]}
        )


def test_unknown_parent_names_node_and_parent() -> None:
    wf = Workflow("etl")
    wf.add("load", "t", after=["transfrom"])
    with pytest.raises(UnknownParentError, match="node 'load' lists unknown parent 'transfrom'"):
        wf.validate()


@pytest.mark.parametrize(
    ("edges", "cycle"),
    [
        ({"a": ["a"]}, ["a", "a"]),
        ({"a": ["b"], "b": ["a"]}, None),  # either direction of a 2-cycle
        ({"a": [], "b": ["a", "d"], "c": ["b"], "d": ["c"]}, ["b", "c", "d", "b"]),
    ],
)
def test_cycle_error_names_the_cycle(edges: dict[str, list[str]], cycle: list[str] | None) -> None:
    wf = Workflow("loop")
    for name, after in edges.items():
        wf.add(name, "t", after=after)
    with pytest.raises(CycleError) as err:
        wf.validate()
    found = err.value.cycle
    assert found[0] == found[-1]
    if cycle:
        assert found == cycle
    # every step of the reported path is a real edge, parent -> child
    for parent, child in itertools.pairwise(found):
        assert parent in edges[child]
    assert str(err.value) == "cycle in workflow: " + " -> ".join(found)


def test_cycle_through_rshift() -> None:
    wf = Workflow("loop")
    a, b, c = wf.add("a", "t"), wf.add("b", "t"), wf.add("c", "t")
    a >> b >> c >> a
    with pytest.raises(CycleError, match=re.escape("a -> b -> c -> a")):
        wf.validate()


def test_find_cycle_none_for_a_dag() -> None:
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"], "d": ["b", "c"]}) is None


def test_unknown_task_name_with_an_unconnected_app(celery_app: Celery) -> None:
    wf = Workflow("etl")
    wf.add("extract", "shop.extract") >> wf.add("load", "shop.lod")
    wf.validate()  # without an app only the DAG is checked
    with pytest.raises(UnknownTaskError, match=r"node 'load' names task 'shop\.lod'.*not registered.*'shop'"):
        wf.validate(celery_app)


def test_unknown_key_in_a_task_names_the_field_path() -> None:
    data = {"name": "x", "tasks": [{"name": "a", "task": "t"}, {"name": "b", "task": "t", "retry": 3}]}
    with pytest.raises(SchemaError, match=r"flow\.yaml: tasks\[1\]: unknown key 'retry'"):
        Workflow.from_dict(data, source="flow.yaml")


def test_unknown_top_level_and_defaults_keys() -> None:
    with pytest.raises(SchemaError, match="unknown key 'task'"):
        Workflow.from_dict({"name": "x", "task": []})
    with pytest.raises(SchemaError, match="defaults: unknown key 'after'"):
        Workflow.from_dict({"name": "x", "defaults": {"after": ["a"]}, "tasks": [{"task": "t"}]})
    with pytest.raises(TypeError, match="unexpected keyword argument 'retry'"):
        Workflow("x").add("a", "t", retry=3)  # type: ignore[call-arg]


def test_unknown_keys_of_mixed_types_still_give_a_schema_error() -> None:
    with pytest.raises(SchemaError, match=r"tasks\[0\]: unknown key"):
        Workflow.from_dict({"name": "x", "tasks": [{"task": "t", 1: "a", "z": "b"}]})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "expected a mapping at the top level"),
        ({"tasks": [{"task": "t"}]}, "'name' is required"),
        ({"name": 5, "tasks": [{"task": "t"}]}, "'name' is required and must be a string"),
        ({"name": "x", "on_failure": "retry", "tasks": [{"task": "t"}]}, "on_failure must be one of"),
        ({"name": "x", "tasks": {"a": "t"}}, "'tasks' must be a list"),
        ({"name": "x", "tasks": ["t"]}, r"tasks\[0\]: expected a mapping"),
        ({"name": "x", "tasks": [{"args": [1]}]}, r"tasks\[0\]: needs 'name' or 'task'"),
        ({"name": "x", "tasks": [{"name": "", "args": [1]}]}, r"tasks\[0\]: needs 'name' or 'task'"),
        ({"name": "x", "tasks": [{"task": "t", "after": 3}]}, "'after' must be a list"),
        ({"name": "x", "tasks": [{"task": "t", "retries": "3"}]}, "node 't': retries must be int, got '3'"),
        ({"name": "x", "tasks": [{"task": "t", "retries": -1}]}, "retries must be >= 0"),
        ({"name": "x", "tasks": [{"task": "t", "retries": True}]}, "retries must be int"),
        ({"name": "x", "tasks": [{"task": "t", "args": "abc"}]}, "args must be list"),
        ({"name": "x", "tasks": [{"task": "t", "kwargs": [1]}]}, "kwargs must be dict"),
        ({"name": "x", "tasks": [{"task": "t", "immutable": "yes"}]}, "immutable must be bool"),
        ({"name": "x", "tasks": [{"task": "t", "time_limit": "1m"}]}, "time_limit must be int"),
        ({"name": "x", "tasks": [{"task": "t", "type": 3}]}, "type must be str"),
        ({"name": "x", "tasks": [{"name": "a", "task": 5}]}, "task must be a Celery task or a regis"),
        ({"name": "x", "tasks": [{"name": "a b", "task": "t"}]}, "node name 'a b' is not a valid name"),
        ({"name": "x", "defaults": [1], "tasks": [{"task": "t"}]}, "defaults must be a mapping"),
        ({"name": "x", "params": "day", "tasks": [{"task": "t"}]}, "params must be a mapping"),
        ({"name": "x", "stages": "a"}, "'stages' must be a list"),
    ],
)
def test_bad_definitions_raise_schema_error(data: object, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        Workflow.from_dict(data)  # type: ignore[arg-type]


def test_args_that_are_not_json_are_refused_at_add() -> None:
    wf = Workflow("x")
    with pytest.raises(SchemaError, match="node 'a': args must be JSON data"):
        wf.add("a", "t", args=[datetime.date(2026, 11, 22)])
    with pytest.raises(SchemaError, match="node 'b': kwargs keys must be strings"):
        wf.add("b", "t", kwargs={1: "x"})
    assert len(wf) == 0


def test_every_definition_error_is_public_and_rooted() -> None:
    for cls in (
        CycleError,
        DuplicateNodeError,
        EmptyWorkflowError,
        ParamError,
        SchemaError,
        UnknownParentError,
        UnknownTaskError,
    ):
        assert issubclass(cls, wfcelery.DefinitionError)
        assert issubclass(cls, wfcelery.WfCeleryError)
        assert getattr(wfcelery, cls.__name__) is cls
