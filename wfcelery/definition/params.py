"""Params: ``${name}`` placeholders in args and kwargs, found and filled in."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from wfcelery.definition.registry import close_matches, did_you_mean

#: Param of a keyed run: its run key (``submit(run_key=...)``), usable as ``${run_key}``.
RUN_KEY_PARAM = "run_key"
#: Param of a schedule's run: the slot it fires for, ISO 8601 UTC (``2026-12-06T02:00:00Z``).
SCHEDULED_AT_PARAM = "scheduled_at"
#: Params every workflow accepts without declaring them; wfcelery sets them where they apply.
BUILTIN_PARAMS = frozenset({RUN_KEY_PARAM, SCHEDULED_AT_PARAM})
#: The built-in params every run a schedule fires has, with stand-in values: what a schedule's params are
#: checked with when it is added (each slot's run gets its own slot and run key).
SLOT_PARAMS_SAMPLE = {SCHEDULED_AT_PARAM: "1970-01-01T00:00:00Z", RUN_KEY_PARAM: "schedule:check"}

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


def param_problem(
    workflow: str,
    known: Collection[str],
    given: Collection[str],
    missing: Sequence[str],
    users: Mapping[str, Sequence[str]],
) -> str | None:
    """What is wrong with the params ``given`` to a workflow, in one line (None: nothing).

    ``known``: every param the workflow knows; ``missing``: its placeholders without a value; ``users``:
    placeholder -> the nodes using it. A placeholder without a value next to a given param that fills
    nothing and is spelled alike is one misspelling: the placeholder is named first (the definition is
    what ``validate`` checks) with both ways to fix it; otherwise an unknown param is named with the
    closest known one, then the placeholders still without a value, each with a node that uses it."""
    unknown = sorted(set(given) - set(known), key=str)
    for name in missing:
        match = close_matches(name, [str(u) for u in unknown])
        if match:
            node, meant = _first(users, name), match[0]
            return (
                f"workflow {workflow!r}: placeholder ${{{name}}} in node {node!r} has no value, and param "
                f"{meant!r} fills no placeholder: did you mean ${{{meant}}} in the definition, or "
                f"--param {name}=...?"
            )
    if unknown:
        first = str(unknown[0])
        listed = ", ".join(sorted(known)) or "none"
        hint = did_you_mean(first, known)
        return f"workflow {workflow!r} has no param {first!r}{hint} (known params: {listed})"
    if missing:
        where = ", ".join(f"${{{m}}} (node {_first(users, m)!r})" for m in missing)
        return (
            f"workflow {workflow!r} needs params {', '.join(missing)} for its placeholders {where} "
            "(pass --param k=v or params={...})"
        )
    return None


def _first(users: Mapping[str, Sequence[str]], name: str) -> str:
    found = users.get(name)
    return found[0] if found else "?"
