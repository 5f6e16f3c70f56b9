"""Dynamic options in definitions: map, max_map, when, trigger (builder, YAML/JSON schema, plan)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from wfcelery.cli import cli
from wfcelery.definition.loader import load
from wfcelery.definition.model import Workflow
from wfcelery.errors import DefinitionError, SchemaError, UnknownParentError
from wfcelery.plan.compiler import compile_workflow, plan_from_blob
from wfcelery.settings import DEFAULT_MAX_MAP
from wfcelery.tracker.keys import parse_task_id, split_slot, task_id

FLOW = """
name: thumbnails
defaults: {type: io, trigger: all_success}
tasks:
  - {name: files, task: img.list_files, args: ["${bucket}"]}
  - {name: resize, task: img.resize, map: files, max_map: 500, kwargs: {width: 128}}
  - {name: shrink, task: img.shrink, map: resize}
  - {name: report, task: img.report, after: [shrink]}
  - {name: notify, task: img.notify, after: [report], trigger: all_done, when: "params.notify"}
"""


def thumbnails() -> Workflow:
    wf = Workflow("thumbnails", defaults={"type": "io"})
    files = wf.add("files", "img.list_files", args=["${bucket}"])
    resize = wf.add("resize", "img.resize", map=files, max_map=500, kwargs={"width": 128})
    wf.add("shrink", "img.shrink", map="resize")
    wf.add("report", "img.report", after=["shrink"])
    wf.add("notify", "img.notify", after="report", trigger="all_done", when="params.notify")
    assert resize.after == ["files"], "map adds the edge from its source"
    return wf


def test_builder_and_yaml_give_the_same_definition(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW)
    loaded = load(path).validate()
    built = thumbnails().validate()
    assert loaded.to_dict() == built.to_dict()
    resize, notify = loaded["resize"], loaded["notify"]
    assert (resize.map, resize.max_map, resize.after) == ("files", 500, ["files"])
    assert (notify.trigger, notify.when, notify.map) == ("all_done", "params.notify", None)
    assert loaded["files"].trigger == "all_success"


def test_to_dict_round_trips_and_omits_defaults() -> None:
    d = thumbnails().to_dict()
    tasks = {t["name"]: t for t in d["tasks"]}
    assert tasks["resize"]["map"] == "files"
    assert tasks["resize"]["max_map"] == 500
    assert "trigger" not in tasks["report"]
    assert "when" not in tasks["report"]
    assert tasks["notify"]["trigger"] == "all_done"
    assert Workflow.from_dict(d).to_dict() == d


def test_map_source_listed_in_after_is_one_edge_in_after_order() -> None:
    wf = Workflow("w")
    wf.add("config", "t.config")
    wf.add("files", "t.files")
    node = wf.add("resize", "t.resize", after=["config", "files"], map="files")
    assert node.after == ["config", "files"]


def test_plan_carries_dynamic_options_and_survives_the_blob() -> None:
    plan = compile_workflow(thumbnails().validate())
    files, resize, shrink, _report, notify = plan.nodes
    assert (resize.map, resize.max_map, resize.when, resize.trigger) == (
        files.index,
        500,
        None,
        "all_success",
    )
    assert shrink.map == resize.index
    assert (notify.trigger, notify.when, notify.map) == ("all_done", "params.notify", None)
    assert plan.dynamic
    assert plan.graph.maps[shrink.index] == resize.index
    assert plan.graph.survivors == {notify.index}
    assert plan_from_blob(plan.blob) == plan
    assert not compile_workflow(Workflow("plain").stages("a", "b")[0][0].workflow).dynamic


def test_a_different_condition_is_a_different_plan() -> None:
    a, b = thumbnails(), thumbnails()
    b["notify"].when = "params.always"
    assert compile_workflow(a).digest != compile_workflow(b).digest


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"when": "results.a =="}, SchemaError, "node 'b': when: invalid JMESPath expression 'results.a =='"),
        ({"when": "shout(params.x)"}, SchemaError, "node 'b': when: .*unknown function shout()"),
        ({"when": 3}, SchemaError, "node 'b': when must be str"),
        ({"trigger": "sometimes"}, SchemaError, "node 'b': unknown trigger rule 'sometimes'"),
        ({"trigger": "all_done "}, SchemaError, "unknown trigger rule"),
        ({"max_map": 0}, SchemaError, "node 'b': max_map must be >= 1"),
        ({"max_map": True}, SchemaError, "node 'b': max_map must be int"),
        ({"map": "nope"}, UnknownParentError, "node 'b' maps over unknown node 'nope'"),
        ({"map": "a", "immutable": True}, SchemaError, "node 'b': map and immutable exclude each other"),
        ({"map": ["a"]}, SchemaError, "node 'b': map must be str"),
    ],
)
def test_bad_dynamic_options_are_definition_errors_naming_the_node(
    options: dict[str, object], error: type[DefinitionError], message: str
) -> None:
    def define() -> None:
        wf = Workflow("w")
        wf.add("a", "t.a")
        wf.add("b", "t.b", **options)
        wf.validate()

    with pytest.raises(error, match=message):
        define()


def test_validate_catches_options_changed_after_add() -> None:
    wf = Workflow("w")
    wf.add("a", "t.a")
    b = wf.add("b", "t.b")
    wf.add("c", "t.c")
    b.map = "c"  # c exists but is not b's parent
    with pytest.raises(UnknownParentError, match="node 'b' maps over 'c', which is not one of its parents"):
        wf.validate()
    b.map, b.when = None, "params.["
    with pytest.raises(SchemaError, match="node 'b': when: invalid JMESPath"):
        wf.validate()


def test_yaml_errors_name_the_task_and_map_or_when_cannot_be_defaults(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: w\ntasks:\n  - {name: a, task: t.a}\n  - {name: b, task: t.b, trigger: maybe}\n")
    with pytest.raises(SchemaError, match="node 'b': unknown trigger rule 'maybe'"):
        load(path)
    for key in ("map: a", "when: params.x"):
        path.write_text(f"name: w\ndefaults: {{{key}}}\ntasks: [{{name: a, task: t.a}}]\n")
        with pytest.raises(SchemaError, match=f"defaults: unknown key '{key.split(':')[0]}'"):
            load(path)


def test_the_default_limit_is_documented_in_settings() -> None:
    assert DEFAULT_MAX_MAP == 10_000


def test_instance_task_ids_round_trip_and_stay_distinct_from_nodes() -> None:
    run = "0123456789abcdef0123456789abcdef"
    assert task_id(run, "3:12", 2) == f"{run}-3.12-2"
    assert parse_task_id(f"{run}-3.12-2") == (run, "3:12", 2)
    assert parse_task_id(f"{run}-3-2") == (run, 3, 2)
    assert parse_task_id(f"{run}-3.-2") is None
    assert split_slot("3:12") == (3, 12)
    assert split_slot(3) == (3, None)


def test_an_instance_message_carries_its_element_and_its_name_for_flower() -> None:
    plan = compile_workflow(thumbnails().validate())
    run = "0123456789abcdef0123456789abcdef"
    msg = plan.message(run, "1:4", 0, {"bucket": "b"}, ["img4.png"])
    assert msg["args"] == ["img4.png"]
    assert msg["kwargs"] == {"width": 128}
    assert msg["task_id"] == f"{run}-1.4-0"
    assert "'wf_node': 'resize[4]'" in msg["kwargsrepr"]
    assert msg["headers"]["wf_node"] == "resize[4]"
    assert msg["queue"] == "io"


def test_validate_and_graph_show_maps_conditions_and_triggers(tmp_path: Path) -> None:
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW)
    runner = CliRunner()
    out = runner.invoke(cli, ["validate", str(path)])
    assert out.exit_code == 0, out.output
    assert "resize: map over files, max 500" in out.output
    assert "notify: when params.notify; trigger all_done" in out.output
    text = runner.invoke(cli, ["graph", str(path)]).output
    assert "resize [io]  <- files  {map over files, max 500}" in text
    assert "{when params.notify}  {trigger all_done}" in text
    dot = runner.invoke(cli, ["graph", str(path), "--format", "dot"]).output
    assert 'n0 -> n1 [label="map", style=bold];' in dot
    assert "shape=box3d" in dot
    mermaid = runner.invoke(cli, ["graph", str(path), "--format", "mermaid"]).output
    assert "n0 ==>|map| n1" in mermaid
    assert "trigger all_done" in mermaid


def test_a_bad_condition_in_a_file_is_exit_2_naming_the_node(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: w\ntasks:\n  - {name: a, task: t.a}\n  - {name: b, task: t.b, after: [a], when: 'x =='}\n"
    )
    out = CliRunner().invoke(cli, ["validate", str(path)])
    assert out.exit_code == 2
    assert "node 'b': when: invalid JMESPath expression 'x =='" in out.output
    assert "Traceback" not in out.output


def test_to_canvas_refuses_dynamic_nodes_naming_them() -> None:
    from celery import Celery

    from wfcelery.plan.canvas import translate

    app = Celery("canvas-check", set_as_current=False)
    with pytest.raises(DefinitionError, match="node 'resize' uses map, which Celery canvas cannot express"):
        translate(compile_workflow(thumbnails().validate()), app)
