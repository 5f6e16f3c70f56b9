"""Poison input through the REST API: ``POST /api/runs`` refuses it with 422 naming the node (or
the params) and the limit, before anything is written -- the same checks as ``engine.submit`` and the CLI
(tests/integration/test_poison_input.py), over real HTTP (uvicorn) and a real Redis."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from wfcelery import Engine

pytestmark = pytest.mark.timeout(60)


def nested(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


def refused(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    resp = http.post("/api/runs", json=body)
    assert resp.status_code == 422, resp.text
    error: dict[str, Any] = resp.json()
    return error


def test_args_nested_65_deep_are_refused_naming_the_node_and_the_limit(
    http: httpx.Client, engine: Engine
) -> None:
    deep = {"name": "deep", "tasks": [{"name": "load", "task": "proj.echo", "args": nested(65)}]}
    error = refused(http, {"definition": deep})
    assert error["type"] == "LimitError"
    assert error["error"] == "node 'load': args is nested more than 64 levels deep (wfcelery_max_depth)"
    just_fits = {"name": "fits", "tasks": [{"name": "load", "task": "proj.echo", "args": nested(64)}]}
    assert http.post("/api/runs", json={"definition": just_fits}).status_code == 201  # the limit, not less
    assert [run.name for run in engine.runs()] == ["fits"]  # the refused one left no run


def test_params_nested_too_deep_are_refused_and_nothing_is_written(
    http: httpx.Client, engine: Engine
) -> None:
    wf = {"name": "p", "tasks": [{"name": "a", "task": "proj.echo", "args": ["${x}"]}]}
    error = refused(http, {"definition": wf, "params": {"x": nested(65)}})
    assert error["type"] == "LimitError"
    assert "params is nested more than 64 levels deep (wfcelery_max_depth)" in error["error"]
    assert engine.runs() == []
    assert engine.tracker.client.keys(f"{engine.tracker.keys.prefix}:*") == []  # not even the plan
