"""YAML / JSON definition files -> Workflow; bad files give one SchemaError naming file, line and column."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import wfcelery
from wfcelery.definition.loader import load, loads
from wfcelery.errors import SchemaError

ETL_YAML = """\
name: etl
on_failure: fail_fast
defaults: {type: io, retries: 1}
tasks:
  - {name: extract,   task: shop.extract, args: ["${day}"]}
  - {name: transform, task: shop.transform, type: cpu, after: [extract]}
  - {name: load,      task: shop.load, after: [transform]}
"""

ETL_DICT = {
    "name": "etl",
    "on_failure": "fail_fast",
    "defaults": {"type": "io", "retries": 1},
    "tasks": [
        {"name": "extract", "task": "shop.extract", "args": ["${day}"]},
        {"name": "transform", "task": "shop.transform", "type": "cpu", "after": ["extract"]},
        {"name": "load", "task": "shop.load", "after": ["transform"]},
    ],
}


def at(path: Path) -> str:
    """``path`` as a regex, for matching messages that start with the file name."""
    return re.escape(str(path))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", ["yaml", "yml", "YAML"])
def test_load_yaml(tmp_path: Path, suffix: str) -> None:
    wf = wfcelery.load(write(tmp_path, f"etl.{suffix}", ETL_YAML))
    assert wf.name == "etl"
    assert list(wf.nodes) == ["extract", "transform", "load"]
    assert [n.after for n in wf.nodes.values()] == [[], ["extract"], ["transform"]]
    assert [(n.type, n.retries) for n in wf.nodes.values()] == [("io", 1), ("cpu", 1), ("io", 1)]
    assert wf["extract"].args == ["${day}"]


def test_yaml_and_json_files_give_the_same_workflow(tmp_path: Path) -> None:
    from_yaml = load(write(tmp_path, "etl.yaml", ETL_YAML))
    from_json = load(str(write(tmp_path, "etl.json", json.dumps(ETL_DICT, indent=2))))
    assert from_yaml.to_dict() == from_json.to_dict()


def test_load_yaml_stages(tmp_path: Path) -> None:
    text = "name: s\nstages: [[extract_a, extract_b], [merge], [publish]]\n"
    wf = load(write(tmp_path, "s.yaml", text))
    assert {n: wf[n].after for n in wf.nodes} == {
        "extract_a": [],
        "extract_b": [],
        "merge": ["extract_a", "extract_b"],
        "publish": ["merge"],
    }


def test_yaml_dates_stay_strings(tmp_path: Path) -> None:
    # JSON-shaped definitions: an unquoted date must reach the task as the text the user wrote.
    text = "name: d\ntasks:\n  - {task: t, args: [2026-11-22, 2026-11-22T10:00:00]}\n"
    wf = load(write(tmp_path, "d.yaml", text))
    assert wf["t"].args == ["2026-11-22", "2026-11-22T10:00:00"]


def test_loading_never_runs_code(tmp_path: Path) -> None:
    path = write(tmp_path, "evil.yaml", "name: !!python/object/apply:os.system ['echo pwned']\ntasks: []\n")
    with pytest.raises(SchemaError, match=r"evil\.yaml:1:7: invalid YAML"):
        load(path)


def test_malformed_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.yaml", "name: x\ntasks:\n  - {name: a, task: t\n  - {name: b}\n")
    with pytest.raises(SchemaError) as err:
        load(path)
    message = str(err.value)
    assert message.startswith(f"{path}:4:")
    assert "invalid YAML" in message


def test_yaml_tab_indentation_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "tab.yaml", "name: x\ntasks:\n\t- {task: t}\n")
    with pytest.raises(SchemaError, match=rf"{at(path)}:3:1: invalid YAML: found character '\\t'"):
        load(path)


def test_duplicate_yaml_key_is_refused_with_its_position(tmp_path: Path) -> None:
    text = "name: x\ntasks:\n  - name: a\n    task: t\n    task: u\n"
    path = write(tmp_path, "dup.yaml", text)
    with pytest.raises(SchemaError, match=rf"{at(path)}:5:5: invalid YAML: duplicate key 'task'"):
        load(path)


def test_duplicate_top_level_yaml_key(tmp_path: Path) -> None:
    path = write(tmp_path, "dup.yaml", "name: x\ntasks: []\nname: y\n")
    with pytest.raises(SchemaError, match=rf"{at(path)}:3:1: invalid YAML: duplicate key 'name'"):
        load(path)


def test_unhashable_yaml_key_is_a_schema_error() -> None:
    with pytest.raises(SchemaError, match="<string>:1:3: invalid YAML: found unhashable key"):
        loads("? [a]\n: b\n")


def test_malformed_json_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "bad.json", '{\n  "name": "x",\n  "tasks": [\n    {"task": "t",}\n  ]\n}\n')
    with pytest.raises(SchemaError, match=rf"{at(path)}:4:18: invalid JSON"):
        load(path)


def test_json_file_is_parsed_as_json_not_yaml(tmp_path: Path) -> None:
    # YAML would accept this (flow style without quotes); a .json file must be strict JSON.
    path = write(tmp_path, "lax.json", "{name: x, tasks: []}")
    with pytest.raises(SchemaError, match=rf"{at(path)}:1:2: invalid JSON"):
        load(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(SchemaError, match=rf"{at(path)}: cannot read workflow file \(No such file"):
        load(path)


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="cannot read workflow file"):
        load(tmp_path)


def test_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SchemaError, match="cannot read workflow file"):
        load(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected a mapping at the top level, got NoneType"),
        ("- a\n- b\n", "expected a mapping at the top level, got list"),
        ("name: x\ntasks:\n  - {task: t}\n  - {task: u, retry: 2}\n", r"tasks\[1\]: unknown key 'retry'"),
        ("name: x\ntasks: []\n", None),
    ],
)
def test_schema_errors_in_files_name_the_file(tmp_path: Path, text: str, message: str | None) -> None:
    path = write(tmp_path, "f.yaml", text)
    if message is None:  # schema-valid but empty: load() succeeds, validate() refuses
        with pytest.raises(wfcelery.EmptyWorkflowError):
            load(path).validate()
        return
    with pytest.raises(SchemaError, match=rf"^{at(path)}: {message}"):
        load(path)
