"""YAML / JSON files -> :class:`~wfcelery.model.Workflow`. Loading never imports or runs code."""

from __future__ import annotations

import json
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from .errors import SchemaError
from .model import Workflow


def load(path: str | Path) -> Workflow:
    """Load a workflow from a ``.yaml``/``.yml`` or ``.json`` file.

    Raises:
        SchemaError: the file is missing, is not valid YAML/JSON (with line and column), or does not
            follow the schema (naming the field).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SchemaError(f"{path}: cannot read workflow file ({getattr(e, 'strerror', None) or e})") from e
    data = loads(text, fmt="json" if path.suffix.lower() == ".json" else "yaml", source=str(path))
    return Workflow.from_dict(data, source=str(path))


def loads(text: str, fmt: str = "yaml", source: str = "<string>") -> Any:
    """Parse definition text; errors name the line and column."""
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise SchemaError(f"{source}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from e
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise SchemaError(f"{where}: invalid YAML: {e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise SchemaError(f"{source}: invalid YAML: {e}") from e


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would silently keep the last).

    Definitions are JSON data, so a date-like scalar stays a string (``2026-11-22`` is ``"2026-11-22"``,
    as in JSON) instead of becoming a ``datetime.date`` that the plan and Celery's JSON could not carry.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                break  # SafeLoader reports "found unhashable key" with its position
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# Definitions are JSON data: no implicit timestamps (see the class docstring).
_UniqueKeyLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
