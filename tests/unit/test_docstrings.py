"""The docs say every public class and method has a docstring: walk the public API and check it.

Public means what ``wfcelery.__all__`` exports, plus the classes a ``wfcelery.testing`` user receives. For
a class, its own docstring (not one inherited from ``Enum`` or ``Exception``) and one for each public
method, class method, static method and property it defines itself.
"""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Any

import wfcelery
import wfcelery.testing

TESTING_CLASSES = (wfcelery.testing.WorkflowOutcome, wfcelery.testing.WorkflowRunner)


def _function(member: Any) -> Any:
    """The function behind a class attribute, or None when it is not a method or property."""
    if isinstance(member, (classmethod, staticmethod)):
        return member.__func__
    if isinstance(member, property):
        return member.fget
    if isinstance(member, cached_property):
        return member.func
    return member if inspect.isfunction(member) else None


def _documented(obj: Any) -> bool:
    return bool((obj.__doc__ or "").strip())


def undocumented(obj: Any, name: str) -> list[str]:
    """Names of ``obj`` (a class or function) and of its public members that have no docstring."""
    if inspect.isfunction(obj):
        return [] if _documented(obj) else [name]
    if not inspect.isclass(obj):
        return []  # __version__
    missing = [] if (vars(obj).get("__doc__") or "").strip() else [name]
    for attr, member in vars(obj).items():
        function = _function(member)
        if not attr.startswith("_") and function is not None and not _documented(function):
            missing.append(f"{name}.{attr}")
    return missing


def test_every_public_class_method_and_function_has_a_docstring() -> None:
    missing = [m for name in wfcelery.__all__ for m in undocumented(getattr(wfcelery, name), name)]
    missing += [m for cls in TESTING_CLASSES for m in undocumented(cls, f"testing.{cls.__name__}")]
    assert missing == []


def test_the_walk_finds_a_missing_docstring() -> None:
    class Public:
        """Documented."""

        def documented(self) -> None:
            """Yes."""

        @property
        def bare(self) -> int:
            return 1

        @classmethod
        def of(cls) -> None:
            pass

        def _private(self) -> None:
            pass

    def function() -> None:
        pass

    assert undocumented(Public, "Public") == ["Public.bare", "Public.of"]
    assert undocumented(function, "function") == ["function"]
