"""A workflow's limits on its runs: at most ``max_active_runs`` running at once (per value of its
``concurrency_key``), and a ``deadline`` by which a run must have ended.

``concurrency_key`` is a JMESPath expression (https://jmespath.org, the language of ``when:`` conditions)
over ``{"params": <the run's params>}``: ``"params.customer"`` gives each customer its own limit. Without
one, the limit is one for the whole workflow. A key that evaluates to null (a param not given) is a value
like any other: those runs share one limit. The ops layer enforces both (``ops/admission.py``,
``ops/deadlines.py``); this module only checks and evaluates them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wfcelery.definition.rules import compile_condition
from wfcelery.definition.waits import format_duration, parse_duration
from wfcelery.errors import SchemaError

#: Longest concurrency key value (characters) a run's params may give: longer values are cut (the
#: admission group is a digest of the value, so this only bounds what errors and logs show).
MAX_KEY_VALUE = 512


@dataclass(frozen=True)
class RunLimits:
    """``max_active_runs`` (None: no limit), its ``concurrency_key`` (None: one limit for the workflow)
    and ``deadline`` (seconds after submit; None: none)."""

    max_active_runs: int | None = None
    concurrency_key: str | None = None
    deadline: float | None = None

    @classmethod
    def check(
        cls, max_active_runs: Any = None, concurrency_key: Any = None, deadline: Any = None, where: str = ""
    ) -> RunLimits:
        """Checked limits; a :class:`SchemaError` names the first bad one."""
        prefix = f"{where}: " if where else ""
        return cls(
            check_max_active_runs(max_active_runs, f"{prefix}max_active_runs"),
            check_concurrency_key(concurrency_key, f"{prefix}concurrency_key", max_active_runs),
            check_deadline(deadline, f"{prefix}deadline"),
        )

    def key_value(self, params: Mapping[str, Any]) -> str:
        """This run's concurrency key value ('' without a key): a string as is, anything else as JSON."""
        if self.concurrency_key is None:
            return ""
        value = compile_condition(self.concurrency_key).search({"params": dict(params)})
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
        return text[:MAX_KEY_VALUE]

    def to_dict(self) -> dict[str, Any]:
        """The definition's top-level keys these limits set (none for those unset)."""
        out: dict[str, Any] = {}
        if self.max_active_runs is not None:
            out["max_active_runs"] = self.max_active_runs
        if self.concurrency_key is not None:
            out["concurrency_key"] = self.concurrency_key
        if self.deadline is not None:
            out["deadline"] = format_duration(self.deadline)
        return out


def check_max_active_runs(value: Any, where: str = "max_active_runs") -> int | None:
    """None, or an int >= 1."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SchemaError(f"{where}: must be an integer >= 1, not {value!r}")
    return value


def check_concurrency_key(value: Any, where: str = "concurrency_key", limit: Any = 1) -> str | None:
    """None, or a valid JMESPath expression; a key needs ``max_active_runs``."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(f"{where}: must be a JMESPath expression (a string), not {value!r}")
    try:
        compile_condition(value)
    except ValueError as e:
        raise SchemaError(f"{where}: {e}") from None
    if limit is None:
        raise SchemaError(f"{where}: {value!r} needs max_active_runs (the limit it splits by key)")
    return value


def check_deadline(value: Any, where: str = "deadline") -> float | None:
    """None, or a duration (``"30m"``, ``"2h"``, seconds) above zero."""
    if value is None:
        return None
    seconds = parse_duration(value, where)
    if seconds <= 0:
        raise SchemaError(f"{where}: {value!r} must be more than 0 s")
    return seconds
