"""The one exception tree of wfcelery.

::

    WfCeleryError
     +-- DefinitionError            the workflow definition is wrong; nothing was touched
     |    +-- EmptyWorkflowError
     |    +-- DuplicateNodeError
     |    +-- UnknownParentError
     |    +-- CycleError
     |    +-- UnknownTaskError      a task name not registered in the Celery app
     |    +-- SchemaError           a malformed file, an unknown key, a bad value
     |    +-- ParamError            a ${name} placeholder with no value in the run's params
     |    +-- NotSeriesParallel     Celery canvas cannot express the DAG exactly (to_canvas)
     |    +-- LimitError            over a bound: nesting depth, message, plan or YAML size (limits.py)
     |    +-- NestingError          a sub-workflow unknown, running itself, or nested too deep
     |    +-- ScheduleError         a schedule's cron, every, timezone, workflow... is wrong (``.field``)
     |    +-- PoolError             an unknown pool, a malformed rate, slots < 1 (``ops/pools.py``)
     +-- ConfigurationError         wfcelery_* settings, Celery version, serializer, task_always_eager
     |    +-- TaskImportError       a task module of the app (imports/include/autodiscover) fails to import
     +-- NoWorkerError              submit(require_workers=True): a node's queue has no live consumer
     +-- BrokerUnavailable (also ConnectionError)   the Celery broker refused or did not answer
     +-- TrackerError
     |    +-- TrackerUnavailable (also ConnectionError)   Redis cannot be reached or timed out
     +-- RunNotFound                no run with that id (never created, cleaned up or expired)
     +-- RunKeyConflict             submit(run_key=..., on_conflict="fail"): a run holds the key (``.run_id``)
     +-- ScheduleNotFound           no schedule of that name
     +-- ControlError               pause/resume/cancel/retry/cleanup refused in this state
     |    +-- SignalRefused         run.signal() to a node that is not waiting for one
     +-- RunFailed                  run.wait() on a run that ended FAILED or CANCELLED
     +-- WaitTimeout (also TimeoutError)
"""

from __future__ import annotations

from typing import Any


class WfCeleryError(Exception):
    """Root of every error raised by wfcelery."""


class DefinitionError(WfCeleryError):
    """A workflow definition is invalid. Raised before Redis or a broker is touched."""


class EmptyWorkflowError(DefinitionError):
    """The workflow has no tasks."""


class DuplicateNodeError(DefinitionError):
    """Two nodes share a name."""


class UnknownParentError(DefinitionError):
    """A node lists a parent that is not in the workflow."""


class CycleError(DefinitionError):
    """The dependencies form a cycle; ``cycle`` lists it, first node repeated last."""

    def __init__(self, cycle: list[str]) -> None:
        self.cycle = cycle
        super().__init__("cycle in workflow: " + " -> ".join(cycle))


class UnknownTaskError(DefinitionError):
    """A node names a task that is not registered in the Celery app."""


class SchemaError(DefinitionError):
    """A definition file or dict is malformed (unknown key, wrong type, bad YAML/JSON)."""


class ParamError(DefinitionError):
    """A ``${name}`` placeholder has no value in the run's params."""


class NotSeriesParallel(DefinitionError):
    """Celery canvas (chains and chords) cannot express this DAG exactly.

    ``edges`` are the (parent, child) edges that break it: for dependencies, an "N" (``a -> c``,
    ``a -> d``, ``b -> d`` with ``c`` and ``b`` unrelated); for results, the edges into the node that canvas
    cannot hand its parents' results in its ``after`` order. ``reason`` is ``"dependencies"`` or
    ``"results"``.
    """

    def __init__(self, message: str, edges: list[tuple[str, str]], reason: str = "dependencies") -> None:
        self.edges = edges
        self.reason = reason
        super().__init__(message)


class LimitError(DefinitionError):
    """A definition, its params or a YAML file is over a bound of :mod:`wfcelery.definition.limits`."""


class NestingError(DefinitionError):
    """A sub-workflow node names a workflow that is not registered, that runs itself (directly or through
    others), or nests deeper than ``wfcelery_max_nesting``."""


class PoolError(DefinitionError):
    """A pool is unknown or its limits are wrong (a malformed rate, slots < 1). Nothing was changed."""


class ScheduleError(DefinitionError):
    """A schedule is invalid; ``field`` names what is wrong (``cron``, ``every``, ``timezone``,
    ``workflow``, ``params``, ``name``...). Nothing was stored."""

    def __init__(self, field: str, message: str, where: str = "") -> None:
        self.field = field
        self.detail = message
        super().__init__(f"{where}: {field}: {message}" if where else f"{field}: {message}")


class ConfigurationError(WfCeleryError):
    """wfcelery cannot work with this Celery app's configuration."""


class TaskImportError(ConfigurationError):
    """A task module the app's workers import (``imports``, ``include``, ``autodiscover_tasks``) fails to
    import on the client side; the message names the module and the error."""


class NoWorkerError(WfCeleryError):
    """``submit(require_workers=True)``: no live worker consumes the queue of one of the run's nodes."""


class BrokerUnavailable(WfCeleryError, ConnectionError):
    """The Celery broker cannot be reached: refused login, unknown vhost, down or not answering."""


class TrackerError(WfCeleryError):
    """The Redis tracker failed."""


class TrackerUnavailable(TrackerError, ConnectionError):
    """The tracker's Redis server cannot be reached or did not answer within ``wfcelery_redis_timeout``."""


class RunNotFound(WfCeleryError):
    """No run with this id exists (wrong id, cleaned up, or expired)."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"no workflow run with id {run_id!r} (wrong id, cleaned up, or expired)")


class RunKeyConflict(WfCeleryError):
    """``submit(run_key=K, on_conflict="fail")``: run ``run_id`` already holds the key ``run_key``."""

    def __init__(self, run_key: str, run_id: str, status: str = "") -> None:
        self.run_key = run_key
        self.run_id = run_id
        self.status = status
        held = f"run {run_id}" + (f" ({status})" if status else "")
        super().__init__(f"run key {run_key!r} is held by {held}: nothing was submitted")


class ScheduleNotFound(WfCeleryError):
    """No schedule of this name."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"no schedule named {name!r}")


class ControlError(WfCeleryError):
    """A control operation is not allowed in the run's current state."""


class SignalRefused(ControlError):
    """``run.signal(node, ...)`` refused, nothing changed: the node is not a wait node, has not been reached,
    is done (a second signal), or its run is paused or finished. ``reason`` is a
    :class:`~wfcelery.ops.waits.SignalVerdict` value."""

    def __init__(self, message: str, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class RunFailed(WfCeleryError):
    """The run ended FAILED or CANCELLED. ``failed`` maps node -> error text."""

    def __init__(self, run_id: str, status: str, failed: dict[str, str], results: dict[str, Any]) -> None:
        self.run_id = run_id
        self.status = status
        self.failed = failed
        self.results = results
        detail = "; ".join(f"{node}: {err}" for node, err in failed.items()) or "no node failed"
        super().__init__(f"run {run_id} {status.lower()}: {detail}")


class WaitTimeout(WfCeleryError, TimeoutError):
    """run.wait() gave up before the run ended."""
