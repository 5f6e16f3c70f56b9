"""The Celery app's task registry as its workers see it, on the client side too.

A Celery worker imports the app's task modules before it takes a task: the ``imports`` and ``include``
settings and what ``app.autodiscover_tasks()`` finds (Django's installed apps included), through
``app.loader.import_default_modules()`` (celery/loaders/base.py, called by ``loader.init_worker()`` in
celery/worker/worker.py). A client that only imported the module defining the app sees none of those
tasks. :func:`import_task_modules` does what the worker does, once per app, and every client entry point
that needs the registry goes through it: ``Workflow.validate`` with an app (submit, validate, register,
the definitions folder, ``to_canvas``), ``doctor``, the web server and the pytest plugin.

Importing the app's own modules is what its workers do anyway; a definition file still never imports
anything itself (task names are looked up, not imported).
"""

from __future__ import annotations

import difflib
import threading
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from wfcelery.errors import TaskImportError

#: Attribute set on an app once its task modules were imported (by us, or by a worker in this process).
_DONE = "_wfcelery_tasks_imported"
_lock = threading.Lock()


def import_task_modules(app: Any) -> None:
    """Import the app's task modules as a Celery worker does before taking tasks (once per app).

    Raises:
        TaskImportError: a module failed to import; the message names it (and, when the error came from
            a module it imports, where), with the error.
    """
    if getattr(app, _DONE, False) or getattr(app.loader, "worker_initialized", False):
        return  # done here before, or this process is a worker: its loader imported them
    with _lock:
        if getattr(app, _DONE, False):
            return
        try:
            app.loader.import_default_modules()
        except Exception as e:
            raise TaskImportError(_describe(app, e)) from e
        setattr(app, _DONE, True)


def task_names(app: Any) -> set[str]:
    """Names of the tasks registered in ``app`` once its task modules are imported (Celery's own
    ``celery.*`` tasks left out)."""
    import_task_modules(app)
    return {name for name in app.tasks if not name.startswith("celery.")}


def close_matches(word: str, candidates: Iterable[str], n: int = 1) -> list[str]:
    """The candidates closest to ``word`` (difflib), best first: for "did you mean" hints."""
    return difflib.get_close_matches(word, sorted(set(candidates)), n=n, cutoff=0.6)


def did_you_mean(word: str, candidates: Iterable[str], quote: str = "'") -> str:
    """``" (did you mean 'extract'?)"`` naming the closest candidate, or ``""`` when none is close."""
    found = close_matches(word, candidates)
    if not found:
        return ""
    return " (did you mean " + " or ".join(f"{quote}{m}{quote}" for m in found) + "?)"


def _describe(app: Any, error: BaseException) -> str:
    """Which module failed and why, in one line."""
    listed = [str(m) for m in app.loader.default_modules]
    outer, inner = _module_frames(error.__traceback__)
    missing = getattr(error, "name", None) if isinstance(error, ImportError) else None
    module = outer or (missing if missing in listed else None)
    if module is None and missing:
        module = missing
    where = f"task module {module!r}" if module else "the task modules"
    origin = f" (raised in {inner[0]!r}, line {inner[1]})" if inner and inner[0] != module else ""
    return (
        f"cannot import {where} of Celery app {app.main!r} (its workers import it too: the imports/include "
        f"settings or autodiscover_tasks): {type(error).__name__}: {error}{origin}"
    )


def _module_frames(tb: TracebackType | None) -> tuple[str | None, tuple[str, int] | None]:
    """The outermost and innermost module bodies (``<module>`` frames) a traceback went through: the task
    module the loader imported, and the module whose body raised."""
    outer: str | None = None
    inner: tuple[str, int] | None = None
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name == "<module>":
            name = str(frame.f_globals.get("__name__", "?"))
            outer = outer or name
            inner = (name, tb.tb_lineno)
        tb = tb.tb_next
    return outer, inner
