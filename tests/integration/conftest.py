"""Fixtures shared by the integration tests."""

from __future__ import annotations

from typing import Any

import pytest

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
