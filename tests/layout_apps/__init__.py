"""Celery projects laid out as teams lay them out: the app in one module, its tasks in others that only the
app's ``include=`` setting or ``app.autodiscover_tasks()`` imports (the usual layout, and every Django
project's). ``celery -A tests.layout_apps.<app> worker`` and ``wfcelery -A tests.layout_apps.<app> ...``
subprocesses load them; the test passes the Redis URL and a unique suffix through the environment
(``LAYOUT_REDIS_URL``, ``LAYOUT_SUFFIX``, ``LAYOUT_DEFINITIONS``, ``LAYOUT_BROKEN``)."""

from __future__ import annotations

import os
from typing import Any


def conf(name: str) -> dict[str, Any]:
    """The configuration both apps share, from the environment the test sets."""
    suffix = os.environ.get("LAYOUT_SUFFIX", "x")
    url = os.environ.get("LAYOUT_REDIS_URL", "redis://127.0.0.1:6379/0")
    return {
        "broker_url": url,
        "result_backend": url,
        "task_default_queue": f"{name}-{suffix}",
        "broker_connection_retry_on_startup": True,
        "wfcelery_key_prefix": f"{name}-{suffix}",
        "wfcelery_definitions": os.environ.get("LAYOUT_DEFINITIONS") or None,
        "wfcelery_inspect_timeout": 1.0,
    }
