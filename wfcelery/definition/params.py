"""Params: ``${name}`` placeholders in args and kwargs, found and filled in."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: Param of a keyed run: its run key (``submit(run_key=...)``), usable as ``${run_key}``.
RUN_KEY_PARAM = "run_key"
#: Param of a schedule's run: the slot it fires for, ISO 8601 UTC (``2026-12-06T02:00:00Z``).
SCHEDULED_AT_PARAM = "scheduled_at"
#: Params every workflow accepts without declaring them; wfcelery sets them where they apply.
BUILTIN_PARAMS = frozenset({RUN_KEY_PARAM, SCHEDULED_AT_PARAM})

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


def substitute(value: Any, params: Mapping[str, Any]) -> Any:
    """Fill ``${name}`` placeholders. A string that is exactly one placeholder takes the param's value
    with its type; inside a longer string a string param is inserted as is and any other value as JSON
    (``null``, ``true``, ``[1, 2]``: never Python's ``None``)."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole:
            return params[whole.group(1)]
        return _PLACEHOLDER.sub(lambda m: _as_text(params[m.group(1)]), value)
    if isinstance(value, list | tuple):
        return [substitute(v, params) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, params) for k, v in value.items()}
    return value


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def collect_placeholders(value: Any, found: set[str]) -> None:
    if isinstance(value, str):
        found.update(_PLACEHOLDER.findall(value))
    elif isinstance(value, list | tuple):
        for v in value:
            collect_placeholders(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            collect_placeholders(v, found)
