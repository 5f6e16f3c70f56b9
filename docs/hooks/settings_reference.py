"""MkDocs hook: the settings reference, generated from ``wfcelery.settings`` so it cannot drift.

A page that contains the marker ``<!-- wfcelery-settings -->`` gets, in its place, one table row per field
of ``wfcelery.settings.Settings`` (and of the ``Limits`` it holds): the ``app.conf`` key (``wfcelery_`` +
the field name), the default, and the meaning. The meaning is the ``#:`` comment above the field in the
source, else the ``#:`` comment above the ``DEFAULT_*`` constant the field defaults to (the house style:
defaults are commented constants). The default is the value the dataclass really has; when the constant is
written as an expression (``7 * 24 * 3600``) that expression is shown too.

Checks, as MkDocs warnings (``mkdocs build --strict`` turns them into a failed build): a field whose key
``wfcelery_<field>`` does not occur in the source of the module that reads it, and a field with no meaning
anywhere. Every field has such a comment.
"""

from __future__ import annotations

import ast
import dataclasses
import enum
import importlib
import importlib.util
import inspect
import logging
import re
from types import ModuleType
from typing import Any

log = logging.getLogger("mkdocs.hooks.settings_reference")

MARKER = "<!-- wfcelery-settings -->"
PREFIX = "wfcelery_"

#: Meanings of the fields with no ``#:`` comment in wfcelery/settings.py (a comment in the source wins).
#: Defaults that are not a constant's value (no default: the setting is required or derived).
NO_DEFAULT: dict[str, str] = {"redis_url": "the result backend, if Redis"}
#: Defaults derived from another setting (the field's default is None).
DERIVED: dict[str, str] = {"submit_settle": "3 x wfcelery_redis_timeout"}


@dataclasses.dataclass(frozen=True)
class Row:
    key: str
    default: str
    meaning: str


def _comments(source: str) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """``#:`` comments above module-level assignments and above class-level annotated fields."""
    lines = source.splitlines()

    def above(lineno: int) -> str:
        found: list[str] = []
        i = lineno - 2  # the line before the statement, 0-based
        while i >= 0 and lines[i].strip().startswith("#:"):
            found.insert(0, lines[i].strip()[2:].strip())
            i -= 1
        return " ".join(found)

    module: dict[str, str] = {}
    classes: dict[str, dict[str, str]] = {}
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            module[node.targets[0].id] = above(node.lineno)
        elif isinstance(node, ast.ClassDef):
            fields: dict[str, str] = {}
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    fields[item.target.id] = above(item.lineno)
            classes[node.name] = fields
    return module, classes


def _default_names(source: str, cls_name: str) -> dict[str, ast.expr]:
    """The expression each field of ``cls_name`` defaults to, as written."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == cls_name:
            return {
                item.target.id: item.value
                for item in node.body
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) and item.value
            }
    return {}


def _constant_exprs(source: str) -> dict[str, str]:
    """Module-level ``NAME = <expression>`` as written (``7 * 24 * 3600``)."""
    out: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            out[node.targets[0].id] = ast.unparse(node.value)
    return out


_ROLE = re.compile(r":\w+:`~?(?:[\w.]*\.)?(\w+)`")
_README = re.compile(r'README "([^"]+)"')


def _markdown(text: str) -> str:
    """A source comment as this site shows it: reStructuredText roles (``:class:`~wfcelery.x.Y```) as code
    (`Y`), and ``README "Section"`` pointers as the section's name (its text lives on these pages)."""
    return _README.sub(r"see \1", _ROLE.sub(r"`\1`", text))


def _imported_from(source: str, name: str, package: str) -> str | None:
    """The module ``name`` is imported from in ``source`` (``from x.y import name``), absolute."""
    for node in ast.parse(source).body:
        if isinstance(node, ast.ImportFrom) and any(a.name == name for a in node.names):
            return importlib.util.resolve_name("." * node.level + (node.module or ""), package)
    return None


def _constant(module: ModuleType, name: str) -> tuple[str, str | None]:
    """The ``#:`` comment of constant ``name`` and the expression it is written as, following imports."""
    source = inspect.getsource(module)
    comments, _ = _comments(source)
    if name in comments:
        return comments[name], _constant_exprs(source).get(name)
    origin = _imported_from(source, name, module.__package__ or "")
    if origin is None:
        return "", None
    return _constant(importlib.import_module(origin), name)


def _show(value: Any, written: str | None) -> str:
    if value is None:
        return "none"
    if isinstance(value, enum.Enum):
        return f"`{value.value!r}`"
    text = f"`{value!r}`"
    if written and written != repr(value) and not written.isidentifier():
        text += f" (`{written}`)"
    return text


def rows_of(cls: type, module: ModuleType) -> list[Row]:
    """One row per dataclass field of ``cls``; a field that holds such a dataclass expands into its rows."""
    source = inspect.getsource(module)
    _, classes = _comments(source)
    own = classes.get(cls.__name__, {})
    written = _default_names(source, cls.__name__)
    rows: list[Row] = []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            value = f.default_factory()  # type: ignore[misc]
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                rows += rows_of(type(value), inspect.getmodule(type(value)))  # type: ignore[arg-type]
                continue
        else:
            value = f.default
        expr = written.get(f.name)
        constant = expr.id if isinstance(expr, ast.Name) else None
        const_doc, const_expr = _constant(module, constant) if constant else ("", None)
        meaning = f.metadata.get("doc") or own.get(f.name) or const_doc
        if isinstance(value, enum.Enum):
            meaning += " One of " + ", ".join(f"`{member.value}`" for member in type(value)) + "."
        key = PREFIX + f.name
        if not meaning:
            log.warning("settings reference: %s (%s.%s) has no #: comment", key, cls.__name__, f.name)
        if f'"{key}"' not in source:
            log.warning("settings reference: %s is not read in %s", key, module.__name__)
        if f.name in DERIVED:
            default = DERIVED[f.name]
        elif value is dataclasses.MISSING:
            default = NO_DEFAULT.get(f.name, "required")
        else:
            default = _show(value, const_expr)
        rows.append(Row(key, default, meaning))
    return rows


def table() -> str:
    import wfcelery.settings as settings

    rows = rows_of(settings.Settings, settings)
    lines = ["| setting | default | meaning |", "|---|---|---|"]
    for row in rows:
        meaning = _markdown(row.meaning).replace("|", "\\|")
        lines.append(f"| `{row.key}` | {row.default} | {meaning} |")
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, table())
    return markdown
