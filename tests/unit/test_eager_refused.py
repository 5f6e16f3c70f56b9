"""An app in Celery's eager mode is refused before anything runs: nothing here executes a workflow.

The app points at ports where nothing listens, so the refusal must come before any connection; the
system under test is exercised on real Redis and real workers everywhere else."""

from __future__ import annotations

import pytest
from celery import Celery

import wfcelery
from wfcelery import ConfigurationError, Workflow


def test_eager_apps_are_refused_pointing_to_the_testing_plugin() -> None:
    app = Celery("eager", broker="redis://127.0.0.1:1/0", backend="redis://127.0.0.1:1/1")
    app.conf.task_always_eager = True  # refused by settings.check_not_eager before anything runs
    engine = wfcelery.install(app)
    wf = Workflow("x")
    wf.add("a", "celery.accumulate")
    with pytest.raises(ConfigurationError, match=r"task_always_eager.*wfcelery\.testing"):
        engine.submit(wf)
