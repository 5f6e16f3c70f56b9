"""The executors a plan can run under (``executor=`` of a workflow, a submit, ``wfcelery_executor``)."""

from __future__ import annotations

from enum import Enum


class Executor(str, Enum):
    """How a run's nodes become Celery messages.

    ``COUNTERS`` (the default): one message per node, edges released by the tracker's counters.
    ``CANVAS``: native Celery chains and chords per series-parallel segment, edges between segments
    released by the same counters.
    """

    COUNTERS = "counters"
    CANVAS = "canvas"

    def __str__(self) -> str:
        return self.value


#: The executor of a workflow that names none.
DEFAULT_EXECUTOR = Executor.COUNTERS
