"""YAML / JSON files -> :class:`~wfcelery.definition.model.Workflow`. Loading never imports or runs code.

Loading is bounded, so a hostile file is an error in milliseconds, never a hang or a traceback: a file over
``max_bytes`` is refused before it is read, and no more than ``max_bytes`` are ever read (a device such as
/dev/zero reports no size); read from a folder (``wfcelery_definitions``), only a regular file that lies
inside it is read at all (not a FIFO, which would block the reader, nor a device, nor a link out); YAML
nested deeper than :data:`~wfcelery.definition.limits.DEPTH_CEILING` stops at that line; aliases
(``*name``) may expand the document to at most :data:`~wfcelery.definition.limits.MAX_YAML_EXPANSION`
values (an alias bomb of 500 bytes would otherwise expand to gigabytes); JSON too deep for Python's parser
is reported with its line and column.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from wfcelery.definition.limits import DEFAULT_MAX_PLAN_BYTES, DEPTH_CEILING, MAX_YAML_EXPANSION
from wfcelery.definition.model import Workflow
from wfcelery.definition.schema import check_definition
from wfcelery.errors import LimitError, SchemaError


def load(
    path: str | Path, max_bytes: int = DEFAULT_MAX_PLAN_BYTES, folder: str | Path | None = None
) -> Workflow:
    """Load a workflow from a ``.yaml``/``.yml`` or ``.json`` file.

    ``folder``: the file was found in this folder (``wfcelery_definitions``); it is read only if it is a
    regular file whose real path (links followed) lies inside the folder.

    Raises:
        SchemaError: the file is missing, is not valid YAML/JSON (with line and column), or does not
            follow the schema (``wfcelery schema``; naming the field); read from a folder, it is not a
            regular file inside it.
        LimitError: the file is larger than ``max_bytes``, nested too deep, or an alias bomb.
    """
    return from_data(read_data(path, max_bytes, folder), source=str(path))


def read_data(
    path: str | Path, max_bytes: int = DEFAULT_MAX_PLAN_BYTES, folder: str | Path | None = None
) -> Any:
    """A definition file's data, read and parsed as :func:`load` reads it, not validated."""
    path = Path(path)
    try:
        text = _read(path, max_bytes, None if folder is None else Path(folder))
    except (OSError, UnicodeDecodeError) as e:
        raise SchemaError(f"{path}: cannot read workflow file ({getattr(e, 'strerror', None) or e})") from e
    return loads(text, fmt="json" if path.suffix.lower() == ".json" else "yaml", source=str(path))


def from_data(data: Any, source: str = "definition") -> Workflow:
    """A workflow from parsed definition data (a file's, or a dict given to ``engine.submit`` or the REST
    API): validated against the JSON Schema first (:mod:`.schema`: one error naming where the problem is
    and, for a misspelled key, the closest valid one), then built by :meth:`Workflow.from_dict`."""
    check_definition(data, source)
    return Workflow.from_dict(data, source=source)


def _read(path: Path, max_bytes: int, folder: Path | None) -> str:
    flags = os.O_RDONLY | getattr(os, "O_NOCTTY", 0)
    if folder is not None:
        real, root = path.resolve(strict=True), folder.resolve(strict=True)
        if not real.is_relative_to(root):
            raise SchemaError(f"{path}: refused: it leads to {real}, outside the definitions folder {root}")
        path, flags = real, flags | getattr(os, "O_NONBLOCK", 0)  # opening a FIFO must not wait for a writer
    fd = os.open(path, flags)
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if folder is not None and not stat.S_ISREG(mode):
            raise SchemaError(f"{path}: refused: not a regular file (a FIFO, a device or a socket)")
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise _too_large(path, f"{size:,} bytes", max_bytes)
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise _too_large(path, f"more than {max_bytes:,} bytes", max_bytes)
    return data.decode("utf-8")


def _too_large(path: Path, size: str, max_bytes: int) -> LimitError:
    return LimitError(
        f"{path}: the file is {size}, over the limit of {max_bytes:,} (wfcelery_max_plan_bytes)"
    )


def loads(text: str, fmt: str = "yaml", source: str = "<string>") -> Any:
    """Parse definition text; errors name the line and column."""
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise SchemaError(f"{source}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from e
        except RecursionError:
            raise _too_deep(source, text) from None
    try:
        return _load_yaml(text, source, _FastLoader)
    except SchemaError:
        if _FastLoader is _PyLoader or len(text) > _REPARSE_MAX:
            raise
        # libyaml's messages are terser ("found character that cannot start any token"): PyYAML's own
        # parser names the character. It raises too; only its message differs.
        return _load_yaml(text, source, _PyLoader)


#: Bytes up to which a file libyaml refused is parsed again by PyYAML, for its clearer message.
_REPARSE_MAX = 256 * 1024


def _load_yaml(text: str, source: str, loader: type) -> Any:
    try:
        return yaml.load(text, Loader=loader)
    except _LimitExceeded as e:
        mark = e.problem_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise LimitError(f"{where}: {e.problem}") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        if "maximum nesting depth" in str(e.problem):  # libyaml's own bound (1,000) met while scanning
            raise LimitError(f"{where}: nested more than {DEPTH_CEILING} levels deep") from None
        raise SchemaError(f"{where}: invalid YAML: {e.problem or e.context}") from e
    except yaml.YAMLError as e:
        raise SchemaError(f"{source}: invalid YAML: {e}") from e


def _too_deep(source: str, text: str) -> LimitError:
    """Where JSON first nests deeper than the ceiling (only called once the parser gave up)."""
    level = 0
    for m in _JSON_TOKENS.finditer(text):
        token = m.group()
        if token in "[{":
            level += 1
            if level > DEPTH_CEILING:
                line = text.count("\n", 0, m.start()) + 1
                column = m.start() - text.rfind("\n", 0, m.start())
                return LimitError(f"{source}:{line}:{column}: nested more than {DEPTH_CEILING} levels deep")
        elif token in "]}":
            level -= 1
    return LimitError(f"{source}: nested too deep for the JSON parser")


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class _LimitExceeded(yaml.MarkedYAMLError):
    """A YAML document nested too deep or expanded too far by its aliases."""


class _BoundedComposer(yaml.composer.Composer):
    """Scans and composes as PyYAML does, but refuses nesting past the ceiling (the composer and the
    constructor recurse) and a document whose aliases expand it past ``MAX_YAML_EXPANSION`` values."""

    _depth = 0

    def fetch_flow_collection_start(self, token_class: Any) -> None:
        # The scanner looks ahead up to 1024 characters for a simple key at every flow level (quadratic):
        # stop ``[[[[...`` as it is scanned, before the composer would.
        if self.flow_level >= DEPTH_CEILING:  # type: ignore[attr-defined]
            mark = self.get_mark()  # type: ignore[attr-defined]
            raise _LimitExceeded(None, None, f"nested more than {DEPTH_CEILING} levels deep", mark)
        super().fetch_flow_collection_start(token_class)  # type: ignore[misc]

    def compose_document(self) -> yaml.Node:
        node = super().compose_document()
        assert node is not None  # compose_document is called only when a document follows
        if _expanded_size(node, {}) > MAX_YAML_EXPANSION:
            raise _LimitExceeded(
                None,
                None,
                f"its aliases (*name) expand it to more than {MAX_YAML_EXPANSION:,} values (an alias bomb?)",
                node.start_mark,
            )
        return node

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        collection = self.check_event(yaml.SequenceStartEvent, yaml.MappingStartEvent)  # type: ignore[attr-defined]
        if collection:
            self._depth += 1
            if self._depth > DEPTH_CEILING:
                mark = self.peek_event().start_mark  # type: ignore[attr-defined]
                raise _LimitExceeded(None, None, f"nested more than {DEPTH_CEILING} levels deep", mark)
        try:
            node = super().compose_node(parent, index)
            assert node is not None  # None only for a missing document, never inside one
            return node
        finally:
            if collection:
                self._depth -= 1


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values in ``node`` with every alias expanded (a shared node counts each time it is used)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, sizes) + _expanded_size(v, sizes) for k, v in node.value)
    sizes[id(node)] = size
    return size


class _DefinitionConstructor(yaml.constructor.SafeConstructor):
    """SafeConstructor that refuses a key given twice in one mapping (YAML would silently keep the last)."""

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


class _DefinitionResolver(yaml.resolver.Resolver):
    """Definitions are JSON data, so a date-like scalar stays a string (``2026-11-22`` is ``"2026-11-22"``,
    as in JSON) instead of becoming a ``datetime.date`` that the plan and Celery's JSON could not carry."""


# Definitions are JSON data: no implicit timestamps (see the class docstring).
_DefinitionResolver.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}


class _PyLoader(
    _BoundedComposer,
    yaml.reader.Reader,
    yaml.scanner.Scanner,
    yaml.parser.Parser,
    _DefinitionConstructor,
    _DefinitionResolver,
):
    """PyYAML's SafeLoader, bounded, refusing duplicate keys, timestamps kept as strings."""

    def __init__(self, stream: str) -> None:
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        _BoundedComposer.__init__(self)
        _DefinitionConstructor.__init__(self)
        _DefinitionResolver.__init__(self)


_FastLoader: type = _PyLoader

if yaml.__with_libyaml__:
    from yaml._yaml import CParser

    class _CLoader(_BoundedComposer, CParser, _DefinitionConstructor, _DefinitionResolver):
        """The same, but libyaml scans and parses (C: ~4x faster, no recursion); the bounded composer
        builds the nodes from its events."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _BoundedComposer.__init__(self)
            _DefinitionConstructor.__init__(self)
            _DefinitionResolver.__init__(self)

    _FastLoader = _CLoader
