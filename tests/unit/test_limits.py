"""Poison input is refused before Redis or a worker sees it: alias bombs, deep nesting, oversize data.

Each bound gives one LimitError (a DefinitionError) naming the node or the line, and the limit.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

import wfcelery
from wfcelery.definition.limits import DEPTH_CEILING, Limits, depth
from wfcelery.definition.loader import load, loads
from wfcelery.errors import ConfigurationError, DefinitionError, LimitError, SchemaError
from wfcelery.plan.compiler import compile_workflow, plan_from_blob

#: 472 bytes that expand to 9**9 values (an alias bomb, "billion laughs" in YAML).
ALIAS_BOMB = """\
name: bomb
tasks:
  - name: a
    task: proj.echo
    args:
      - &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
      - &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
      - &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
      - &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
      - &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
      - &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
      - &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
      - &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
      - &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def nested(levels: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(levels):
        value = [value]
    return value


def deep_yaml(levels: int) -> str:
    return f"name: deep\ntasks:\n  - name: a\n    task: proj.echo\n    args: {'[' * levels}1{']' * levels}\n"


def deep_json(levels: int) -> str:
    return (
        '{"name": "deep", "tasks": [{"name": "a", "task": "proj.echo",\n'
        f'"args": {"[" * levels}1{"]" * levels}}}]}}'
    )


def test_depth_counts_containers_without_recursion() -> None:
    assert depth(1) == 0
    assert depth([1]) == 1
    assert depth({"a": [1, {"b": []}]}) == 4
    assert depth(nested(100_000)) == 100_000  # iterative: no RecursionError
    assert depth(nested(100_000), stop=64) == 65  # stops as soon as it knows


def test_alias_bomb_is_an_error_in_milliseconds(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB)
    assert len(ALIAS_BOMB.encode()) < 600
    started = time.perf_counter()
    with pytest.raises(LimitError, match=r"bomb\.yaml:\d+:\d+: .*aliases .*expand.* 1,000,000 values"):
        load(path)
    assert time.perf_counter() - started < 1.0


def test_modest_aliases_still_work() -> None:
    data = loads(
        "name: x\ndefaults: &d {retries: 2}\ntasks:\n"
        "  - {name: a, task: t, args: &args [1, 2]}\n  - {name: b, task: t, args: *args}\n"
    )
    wf = wfcelery.Workflow.from_dict(data)
    assert wf["b"].args == [1, 2]
    assert wf.defaults == {"retries": 2}


@pytest.mark.parametrize("levels", [500, 1_000, 5_000, 50_000])
@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_deep_files_are_one_clear_error(tmp_path: Path, fmt: str, levels: int) -> None:
    path = tmp_path / f"deep.{fmt}"
    path.write_text(deep_yaml(levels) if fmt == "yaml" else deep_json(levels))
    started = time.perf_counter()
    with pytest.raises(LimitError) as caught:
        load(path)
    assert time.perf_counter() - started < 2.0
    message = str(caught.value)
    assert f"nested more than {DEPTH_CEILING} levels deep" in message
    # the parser stops at the ceiling naming the file, line and column, or the model names the node
    assert re.match(rf"{re.escape(str(path))}:\d+:\d+: ", message) or message.startswith("node 'a': args")


def test_add_refuses_nesting_past_the_ceiling_naming_the_node() -> None:
    wf = wfcelery.Workflow("deep")
    with pytest.raises(LimitError, match=rf"node 'a': args is nested more than {DEPTH_CEILING} levels"):
        wf.add("a", "proj.echo", args=[nested(900)])
    with pytest.raises(LimitError, match="node 'b': kwargs is nested"):
        wf.add("b", "proj.echo", kwargs={"x": nested(5_000)})
    with pytest.raises(LimitError, match="workflow 'p': params is nested"):
        wfcelery.Workflow("p", params={"x": nested(5_000)})
    assert not wf.nodes  # nothing was added


def test_validate_enforces_the_configured_depth() -> None:
    wf = wfcelery.Workflow("deep")
    wf.add("ok", "proj.echo", args=nested(64))
    wf.validate()
    wf.add("a", "proj.echo", args=nested(65))
    with pytest.raises(
        LimitError, match=r"node 'a': args is nested more than 64 levels deep \(wfcelery_max_depth\)"
    ):
        wf.validate()
    wf.validate(limits=Limits(max_depth=65))


def test_message_size_is_bounded() -> None:
    wf = wfcelery.Workflow("big")
    wf.add("a", "proj.echo", args=["x" * 600_000], kwargs={"y": "y" * 600_000})
    with pytest.raises(LimitError, match=r"node 'a': args and kwargs are 1,200,0\d\d bytes .* 1,048,576"):
        wf.validate()
    wf.validate(limits=Limits(max_message_bytes=2_000_000))


def test_params_are_checked_after_substitution() -> None:
    wf = wfcelery.Workflow("p")
    wf.add("a", "proj.echo", args=["${blob}"])
    wf.add("b", "proj.echo", args=[["${tree}"]], after=["a"])
    with pytest.raises(LimitError, match=r"node 'a' \(params filled in\): args and kwargs are"):
        wf.resolve_params({"blob": "x" * 2_000_000, "tree": 1})
    # params themselves within 64 levels, but one level deeper once placed inside b's args
    with pytest.raises(LimitError, match=r"node 'b' \(params filled in\): args is nested more than 64"):
        wf.resolve_params({"blob": 1, "tree": nested(63)})
    with pytest.raises(LimitError, match="workflow 'p': params is nested more than 64"):
        wf.resolve_params({"blob": 1, "tree": nested(70)})
    assert wf.resolve_params({"blob": 1, "tree": nested(10)})["blob"] == 1


def test_plan_size_is_bounded() -> None:
    wf = wfcelery.Workflow("wide")
    for i in range(200):
        wf.add(f"n{i}", "proj.echo", args=["x" * 100])
    with pytest.raises(LimitError, match=r"workflow 'wide': the compiled plan is [\d,]+ bytes .* 10,000"):
        compile_workflow(wf, limits=Limits(max_plan_bytes=10_000))
    compile_workflow(wf)


def test_a_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as f:
        f.truncate(50 * 1024 * 1024)  # 50 MB (sparse): reading it would be the bug
    started = time.perf_counter()
    with pytest.raises(LimitError, match=r"huge\.yaml: the file is 52,428,800 bytes, over the limit"):
        load(path)
    assert time.perf_counter() - started < 0.5


def test_every_bound_is_a_definition_error() -> None:
    assert issubclass(LimitError, DefinitionError)
    assert wfcelery.LimitError is LimitError


def test_limits_from_app_conf() -> None:
    limits = Limits.from_conf({"wfcelery_max_depth": 10, "wfcelery_max_message_bytes": 100})
    assert (limits.max_depth, limits.max_message_bytes) == (10, 100)
    assert Limits.from_conf({}) == Limits()
    with pytest.raises(ConfigurationError, match=f"between 1 and {DEPTH_CEILING}"):
        Limits(max_depth=DEPTH_CEILING + 1)
    with pytest.raises(ConfigurationError, match="wfcelery_max_result_bytes"):
        Limits(max_result_bytes=0)


def test_non_json_args_are_still_schema_errors() -> None:
    with pytest.raises(SchemaError, match="node 'a': args must be JSON data"):
        wfcelery.Workflow("x").add("a", "proj.echo", args=[object()])


# -- key order ------------------------------------------------------------------------------------------


def test_stored_plan_keeps_key_order_for_every_node() -> None:
    wf = wfcelery.Workflow("order")
    wf.add("a", "proj.echo", kwargs={"z": 1, "a": 2, "m": {"y": 1, "b": 2}})
    wf.add("b", "proj.echo", kwargs={"zz": 1, "aa": 2, "mm": 3}, after=["a"])
    plan = compile_workflow(wf)
    rebuilt = plan_from_blob(plan.blob)  # what a worker publishes non-root nodes from
    assert list(rebuilt.nodes[0].kwargs) == ["z", "a", "m"]
    assert list(rebuilt.nodes[0].kwargs["m"]) == ["y", "b"]
    message = rebuilt.message("r" * 32, 1, 0, {}, ["parent"])
    assert list(message["kwargs"]) == ["zz", "aa", "mm"]
    assert rebuilt.digest == plan.digest


def test_digest_tells_key_orders_apart() -> None:
    def plan(kwargs: dict[str, Any]) -> Any:
        wf = wfcelery.Workflow("order")
        wf.add("a", "proj.echo", kwargs=kwargs)
        return compile_workflow(wf)

    assert plan({"x": 1, "y": 2}).digest == plan({"x": 1, "y": 2}).digest
    assert plan({"x": 1, "y": 2}).digest != plan({"y": 2, "x": 1}).digest  # else runs would share one order
    assert json.loads(plan({"y": 2, "x": 1}).blob)["definition"]["tasks"][0]["kwargs"] == {"y": 2, "x": 1}
