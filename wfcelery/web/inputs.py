"""Names a submitted request may not carry: bidirectional control characters.

U+202A-U+202E (embeddings, overrides), U+2066-U+2069 (isolates) and U+200E/U+200F (marks) reorder the
text shown around them: ``invoice\\u202egpj.exe`` displays as ``invoiceexe.jpg``. A name is read by
people (the dashboard, ``wfcelery list``, logs) to decide what to pause, cancel or delete, so a name
that displays as another is refused where it enters over the API: ``POST /api/runs`` answers 422 naming
the field. Names that reach the engine another way (Python, a definitions folder) are shown neutralised
by the dashboard (each control as a visible ``\\u202E``). Values (args, params values, results) are data,
not names, and pass unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from wfcelery.web.errors import InvalidInput

#: The bidirectional formatting characters (Unicode's Bidi_Control property).
BIDI_CONTROLS = re.compile("[\u200e\u200f\u202a-\u202e\u2066-\u2069\u061c]")

#: Keys of a node in a definition whose values are names (of nodes, tasks, queues).
_NODE_NAMES = ("name", "task", "queue", "map")


def escape_bidi(text: str) -> str:
    """Each bidi control as a visible ``\\u202E``."""
    return BIDI_CONTROLS.sub(lambda m: f"\\u{ord(m.group()):04X}", text)


def refuse_bidi(name: str | None, definition: Mapping[str, Any] | None, params: Mapping[str, Any]) -> None:
    """Raise :class:`InvalidInput` naming the first field whose name carries a bidi control."""
    for field, value in _names(name, definition, params):
        found = BIDI_CONTROLS.search(value) if isinstance(value, str) else None
        if found:
            raise InvalidInput(
                f"{field}: '{escape_bidi(value)}' contains a bidirectional control character "
                f"(U+{ord(found.group()):04X}), which can make a name display as another; names may not "
                "contain U+200E, U+200F, U+061C, U+202A-U+202E or U+2066-U+2069"
            )


def _names(
    name: str | None, definition: Mapping[str, Any] | None, params: Mapping[str, Any]
) -> Iterator[tuple[str, Any]]:
    if name is not None:
        yield "name", name
    yield from (("params", key) for key in params if isinstance(key, str))
    if not isinstance(definition, Mapping):
        return
    yield "definition.name", definition.get("name")
    defaults = definition.get("params")
    if isinstance(defaults, Mapping):
        yield from (("definition.params", key) for key in defaults)
    tasks = definition.get("tasks")
    for i, task in enumerate(tasks if isinstance(tasks, list) else []):
        if not isinstance(task, Mapping):
            continue
        for key in _NODE_NAMES:
            yield f"definition.tasks[{i}].{key}", task.get(key)
        after = task.get("after")
        for parent in [after] if isinstance(after, str) else after if isinstance(after, list) else []:
            yield f"definition.tasks[{i}].after", parent
    stages = definition.get("stages")
    for i, stage in enumerate(stages if isinstance(stages, list) else []):
        for member in stage if isinstance(stage, list) else [stage]:
            yield f"definition.stages[{i}]", member
