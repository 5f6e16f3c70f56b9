"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery

from tests.conftest import WorkerProcess
from tests.helpers import rabbitmq_url


@pytest.fixture(params=["redis", pytest.param("amqp", marks=pytest.mark.rabbitmq)])
def broker(request: Any) -> str | None:
    """A test parametrised over both brokers: None (the test Redis) or the RabbitMQ URL."""
    if request.param == "redis":
        return None  # the test Redis
    url = rabbitmq_url()
    if url is None:
        pytest.skip("RabbitMQ is not running on 127.0.0.1:5672")
    return url


@pytest.fixture
def workers() -> Iterator[Callable[..., WorkerProcess]]:
    """Starts ``celery worker`` subprocesses (app, name, tracker URL, conf[, concurrency, queues]); stops
    them after the test."""
    started: list[WorkerProcess] = []

    def start(
        app: Celery,
        name: str,
        tracker: str,
        conf: dict[str, Any],
        concurrency: int = 2,
        queues: list[str] | None = None,
    ) -> WorkerProcess:
        queue = app.conf.task_default_queue
        w = WorkerProcess(
            app.conf.broker_url,
            tracker,
            app.conf.wfcelery_key_prefix,
            queues or [queue],
            name,
            concurrency=concurrency,
            default_queue=queue,
            conf=conf,
        )
        started.append(w)
        return w.start(app)

    yield start
    for w in started:
        w.stop()
