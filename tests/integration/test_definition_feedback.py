"""What a definition's author is told: a misspelled placeholder is named as such; unknown tasks, keys,
parents, params and trigger rules come with the closest valid name; ``to_canvas`` says it drops the
tracker's retries (and a real worker shows why it must); ``wfcelery schema`` is the schema the loader
validates with, so an editor reports what ``validate`` would.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from jsonschema import Draft202012Validator

import wfcelery
from tests.helpers import ROOT, in_thread_worker
from tests.integration.test_cli import assert_clean_error, cli_app, invoke
from wfcelery import Workflow
from wfcelery.cli import EXIT_BAD_INPUT, EXIT_OK
from wfcelery.definition.model import NODE_KEYS, WORKFLOW_KEYS
from wfcelery.plan.canvas import RetriesNotCarriedWarning

pytestmark = pytest.mark.usefixtures("cli_app")
__all__ = ["cli_app"]  # the fixture that lets `-A tests.integration.test_cli:APP` load the test's app

ETL = """\
name: etl
params: {delay: 1}
tasks:
  - {name: extract, task: proj.echo, args: ["${dya}", "${delay}"]}
  - {name: load, task: proj.echo, after: [extract]}
"""


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_misspelled_placeholder_is_named_with_and_without_params(tmp_path: Path) -> None:
    flow = write(tmp_path, ETL)
    given = invoke("validate", flow, "-p", "day=2026-11-22")
    assert_clean_error(
        given,
        EXIT_BAD_INPUT,
        "placeholder ${dya} in node 'extract' has no value, and param 'day' fills no placeholder: "
        "did you mean ${day} in the definition, or --param dya=...?",
    )
    assert "no param 'day'" not in given.stderr  # the param is not the one to blame
    alone = invoke("validate", flow)
    assert alone.exit_code == EXIT_OK
    assert "required params without a value: dya" in alone.stdout
    assert "${dya} in node extract" in alone.stdout


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("task: proj.echo, args", "task: proj.ecoh, args"), "task 'proj.ecoh', which is not registered"),
        (("task: proj.echo, args", "task: proj.ecoh, args"), "(did you mean 'proj.echo'?)"),
        (("after: [extract]", "after: [extarct]"), "unknown parent 'extarct' (did you mean 'extract'?)"),
        (("after: [extract]", "after: [extract], retry: 2"), "tasks[1]: unknown key 'retry' (did you mean "),
        (("after: [extract]", "after: [extract], trigger: all_don"), "'all_don' (did you mean 'all_done'?)"),
        (("params: {delay: 1}", "param: {delay: 1}"), "unknown key 'param' (did you mean 'params'?)"),
    ],
)
def test_unknown_names_come_with_the_closest_valid_one(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    flow = write(tmp_path, ETL.replace(*change))
    assert_clean_error(invoke("validate", flow, "-p", "dya=1"), EXIT_BAD_INPUT, flow, message)


def test_an_unknown_param_comes_with_the_closest_known_one(tmp_path: Path) -> None:
    flow = write(tmp_path, ETL.replace("${dya}", "${day}"))
    assert_clean_error(
        invoke("submit", flow, "-p", "day=1", "-p", "dela=2"),
        EXIT_BAD_INPUT,
        "has no param 'dela' (did you mean 'delay'?)",
    )


def test_to_canvas_warns_that_it_drops_retries_and_a_real_worker_shows_why(
    app: Celery, engine: Any, r: redis.Redis, uid: str
) -> None:
    def flaky() -> Workflow:
        wf = Workflow("canvas-retries")
        wf.add("a", "proj.flaky", args=[1, f"t{uid}:{len(wf.nodes)}:{uid}"], retries=1)  # fails once
        return wf

    wf = flaky()
    with pytest.warns(RetriesNotCarriedWarning, match=r"'canvas-retries'.*a \(retries=1\)"):
        sig = wf.to_canvas(app)
    with in_thread_worker(app):
        result = sig.apply_async()
        with pytest.raises(RuntimeError, match="flaky attempt 1"):
            result.get(timeout=30, propagate=True)  # the canvas did not retry
        r.delete(f"t{uid}:0:{uid}")
        assert engine.submit(flaky()).wait(timeout=30) == {"a": 2}  # the tracker does
    plain = Workflow("canvas-plain")
    plain.add("a", "proj.add", args=[1, 2], time_limit=30)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain.to_canvas(app)  # time limits travel in the message: nothing to warn about


def test_the_schema_is_the_loaders_and_accepts_every_example(tmp_path: Path) -> None:
    printed = invoke("schema", app=False)
    assert printed.exit_code == EXIT_OK
    schema = json.loads(printed.stdout)
    Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) == {*WORKFLOW_KEYS, "$schema"}  # "$schema": for JSON files, ignored
    assert set(schema["$defs"]["task"]["properties"]) == NODE_KEYS
    validator = Draft202012Validator(schema)
    examples = sorted((ROOT / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        data = wfcelery.definition.loader.loads(path.read_text(), source=str(path))
        assert list(validator.iter_errors(data)) == [], path
    named_schema = {"$schema": "./wfcelery.schema.json", "name": "n", "tasks": [{"task": "proj.add"}]}
    named = write(tmp_path, json.dumps(named_schema), "named.json")
    assert invoke("validate", named).exit_code == EXIT_OK  # a JSON file may name its schema
    bad = {"name": "x", "tasks": [{"task": "t", "retries": "3"}]}
    assert [list(e.absolute_path) for e in validator.iter_errors(bad)] == [["tasks", 0, "retries"]]
    flow = write(tmp_path, json.dumps(bad), "bad.json")
    assert_clean_error(
        invoke("validate", flow), EXIT_BAD_INPUT, f"{flow}: tasks[0]: node 't': retries must be int, got '3'"
    )
