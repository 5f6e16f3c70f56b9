"""Bad run limits, refused with one clear error naming the problem, and nothing written: in Python
(``Workflow``, ``submit``), in a definition file (the loader, ``wfcelery submit``: exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration import test_cli
from tests.integration.test_cli import assert_clean_error, invoke
from wfcelery import Workflow
from wfcelery.cli import EXIT_BAD_INPUT
from wfcelery.definition.loader import from_data
from wfcelery.errors import SchemaError

#: The CLI's tests' fixture: it publishes the test's app where ``wfcelery -A`` imports it.
cli_app = test_cli.cli_app

BAD = [
    ({"max_active_runs": 0}, "max_active_runs: must be an integer >= 1, not 0"),
    ({"max_active_runs": "2"}, "max_active_runs: must be an integer >= 1, not '2'"),
    ({"max_active_runs": True}, "max_active_runs: must be an integer >= 1, not True"),
    ({"max_active_runs": 2, "concurrency_key": "params.["}, "concurrency_key: invalid JMESPath expression"),
    ({"max_active_runs": 2, "concurrency_key": "nope(params)"}, "unknown function nope()"),
    ({"concurrency_key": "params.customer"}, "concurrency_key: 'params.customer' needs max_active_runs"),
    ({"deadline": "5 fortnights"}, "deadline: '5 fortnights' is not a duration"),
    ({"deadline": 0}, "deadline: 0 must be more than 0 s"),
    ({"deadline": "-3s"}, "deadline: '-3s' is not a duration"),
]


@pytest.mark.parametrize(("limits", "message"), BAD)
def test_bad_limits_name_the_key_in_python_and_in_a_definition(limits: dict[str, Any], message: str) -> None:
    with pytest.raises(SchemaError) as made:
        Workflow("etl", **limits)
    assert str(made.value).startswith("workflow 'etl': ")
    assert message in str(made.value)
    data = {"name": "etl", "tasks": [{"task": "proj.add"}], **limits}
    with pytest.raises(SchemaError) as e:
        from_data(data, "etl.yaml")
    assert str(e.value).startswith("etl.yaml: ")
    assert message in str(e.value)


def test_good_limits_round_trip_through_a_definition() -> None:
    wf = Workflow("etl", max_active_runs=2, concurrency_key="params.customer", deadline="1h30m")
    wf.add("a", "proj.add")
    again = Workflow.from_dict(wf.to_dict())
    assert again.limits == wf.limits
    assert wf.to_dict()["deadline"] == "1h30m"
    assert wf.limits.deadline == 5400
    assert wf.limits.key_value({"customer": "acme"}) == "acme"
    assert wf.limits.key_value({"customer": 7}) == "7"
    assert wf.limits.key_value({}) == "null"
    assert "customer" in wf.param_names()  # the key's param may be given without a default


def test_a_bad_submit_deadline_is_refused_and_nothing_is_written(engine: Any, r: Any, uid: str) -> None:
    wf = Workflow("etl")
    wf.add("a", "proj.add", args=[1, 2])
    with pytest.raises(SchemaError, match="submit: deadline: 'soon' is not a duration"):
        engine.submit(wf, deadline="soon")
    assert engine.runs() == []
    assert not list(r.scan_iter(match=f"t{uid}:*"))


@pytest.mark.usefixtures("cli_app")
def test_the_cli_refuses_bad_limits_with_exit_2(engine: Any, tmp_path: Path) -> None:
    flow = tmp_path / "etl.yaml"
    flow.write_text("name: etl\nmax_active_runs: 0\ntasks:\n  - {name: a, task: proj.add, args: [1, 2]}\n")
    assert_clean_error(invoke("submit", str(flow)), EXIT_BAD_INPUT, "max_active_runs", ">= 1")
    flow.write_text("name: etl\ndeadline: 3q\ntasks:\n  - {name: a, task: proj.add, args: [1, 2]}\n")
    assert_clean_error(invoke("submit", str(flow)), EXIT_BAD_INPUT, "deadline: '3q' is not a duration")
    flow.write_text("name: etl\ntasks:\n  - {name: a, task: proj.add, args: [1, 2]}\n")
    assert_clean_error(
        invoke("submit", str(flow), "--deadline", "later"), EXIT_BAD_INPUT, "deadline", "later"
    )
    assert engine.runs() == []
