"""Who is acting: every write through the client API is recorded in the tracker's audit trail with the
actor of the current context (:func:`acting_as`): the web server sets a token's name or a Basic user, the
CLI ``cli:<os user>``, and a plain Python caller is ``api``.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

from wfcelery.errors import ControlError, TrackerUnavailable
from wfcelery.tracker.access import AuditEntry

logger = logging.getLogger("wfcelery.engine")

_actor: ContextVar[str] = ContextVar("wfcelery_actor", default="api")

F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Record the writes made in this block (this thread or task) as ``actor``'s."""
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor() -> str:
    return _actor.get()


def audited(action: str, target: Callable[..., str]) -> Callable[[F], F]:
    """Record each call of an engine method in the audit trail: ``target(self, *args, result=...)`` names
    what it acted on. The outcome is ``ok``, or the first line of a :class:`ControlError` (a control the
    tracker refused: cancelling a finished run...). Input refused before anything was tried (a definition
    error, an unknown run, no worker) is not recorded: bad input changes nothing, the audit trail included.
    Neither is a call with ``dry_run=True``: it changes nothing either. Errors are raised as before."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("dry_run"):
                return fn(self, *args, **kwargs)
            try:
                result = fn(self, *args, **kwargs)
            except ControlError as e:
                _record(self, action, _target(target, self, args, kwargs, None), f"error: {e}".split("\n")[0])
                raise
            _record(self, action, _target(target, self, args, kwargs, result), "ok")
            return result

        return cast(F, wrapper)

    return decorate


def _target(target: Callable[..., str], engine: Any, args: Any, kwargs: Any, result: Any) -> str:
    try:
        return target(engine, *args, result=result, **kwargs)
    except Exception:  # naming the target must never break the action it records
        return "?"


def record_audit(engine: Any, action: str, target: str, outcome: str) -> None:
    """Write one audit entry now (a failure to write it is logged, never raised)."""
    _record(engine, action, target, outcome)


def _record(engine: Any, action: str, target: str, outcome: str) -> None:
    entry = AuditEntry(time.time(), current_actor(), action, target, outcome[:500])
    try:
        engine.tracker.audit(entry, engine.settings.audit_maxlen)
    except TrackerUnavailable as e:  # the action's own outcome stands; the gap is logged
        logger.warning("wfcelery: audit entry not written (%s): %s", e, entry)
