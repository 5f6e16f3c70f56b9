"""wfcelery: workflows (DAGs of tasks) on plain Celery workers, with a Redis state tracker.

Public API::

    engine = wfcelery.install(app)
    run = engine.submit(wfcelery.load("flows/etl.yaml"), params={"day": "2026-11-22"})
    run.wait(timeout=60)
"""

from __future__ import annotations

from typing import Any

from wfcelery.client.engine import Engine
from wfcelery.client.run import Run, RunSummary
from wfcelery.definition.loader import load
from wfcelery.definition.model import Workflow
from wfcelery.definition.node import Node
from wfcelery.errors import (
    BrokerUnavailable,
    ConfigurationError,
    ControlError,
    CycleError,
    DefinitionError,
    DuplicateNodeError,
    EmptyWorkflowError,
    LimitError,
    NestingError,
    NotSeriesParallel,
    NoWorkerError,
    ParamError,
    PoolError,
    RunFailed,
    RunKeyConflict,
    RunNotFound,
    ScheduleError,
    ScheduleNotFound,
    SchemaError,
    SignalRefused,
    TaskImportError,
    TrackerError,
    TrackerUnavailable,
    UnknownParentError,
    UnknownTaskError,
    WaitTimeout,
    WfCeleryError,
)
from wfcelery.install import install
from wfcelery.ops.store import ScheduleInfo
from wfcelery.tracker.states import NodeState, NodeStatus, RunState, RunStatus

__version__ = "0.1.0"

__all__ = [
    "BrokerUnavailable",
    "ConfigurationError",
    "ControlError",
    "CycleError",
    "DefinitionError",
    "DuplicateNodeError",
    "EmptyWorkflowError",
    "Engine",
    "LimitError",
    "NestingError",
    "NoWorkerError",
    "Node",
    "NodeState",
    "NodeStatus",
    "NotSeriesParallel",
    "ParamError",
    "PoolError",
    "Run",
    "RunFailed",
    "RunKeyConflict",
    "RunNotFound",
    "RunState",
    "RunStatus",
    "RunSummary",
    "ScheduleError",
    "ScheduleInfo",
    "ScheduleNotFound",
    "SchemaError",
    "SignalRefused",
    "TaskImportError",
    "TrackerError",
    "TrackerUnavailable",
    "UnknownParentError",
    "UnknownTaskError",
    "WaitTimeout",
    "WfCeleryError",
    "Workflow",
    "__version__",
    "install",
    "load",
]


def __getattr__(name: str) -> Any:  # pragma: no cover - helpful error for a common typo
    raise AttributeError(f"module 'wfcelery' has no attribute {name!r}")
