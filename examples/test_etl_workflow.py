"""Testing a workflow with the ``wfcelery.testing`` pytest plugin: this is how a team covers its own
workflows in a few lines. Run it with ``pytest examples/test_etl_workflow.py`` (needs nothing running:
the plugin starts a throwaway Redis and an in-thread worker; the tests of wfcelery run it the same way).

The plugin is loaded by wfcelery's ``pytest11`` entry point; with plugin autoloading off, add
``pytest_plugins = ["wfcelery.testing"]`` to your root conftest.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from wfcelery import RunStatus, Workflow


@pytest.fixture(scope="session")
def wfcelery_app() -> Any:
    """The app under test, exactly as the project defines it (its queues, routes and tasks)."""
    from examples.app import app

    return app


def test_the_etl_definition_computes_revenue(run_workflow: Any) -> None:
    outcome = run_workflow("examples/etl.yaml", params={"day": "2026-11-22"})
    assert outcome.status is RunStatus.SUCCEEDED
    assert set(outcome.results) == {"extract", "transform", "load", "report"}
    assert outcome.state.nodes["extract"].queue == "io"  # routed by type, consumed by the test worker


def test_a_failing_node_is_an_outcome_to_assert_on(run_workflow: Any) -> None:
    wf = Workflow("broken")
    wf.add("extract", "examples.extract", args=["2026-11-22"], type="io")
    wf.add("transform", "examples.transform", type="cpu", args=["not rows"], immutable=True, after="extract")
    outcome = run_workflow(wf)
    assert outcome.status is RunStatus.FAILED
    assert "extract" in outcome.results
    assert outcome.errors["transform"]["type"]
