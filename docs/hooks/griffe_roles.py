"""Griffe extension for the Python API page: the docstrings cross-reference in reStructuredText
(``:class:`~wfcelery.Run```, ``:func:`wfcelery.install```), which Markdown would show as typed; render each
role as inline code of the name it points to (`Run`, `wfcelery.install`; a ``~`` keeps the last part only)."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:class|func|meth|attr|data|exc|mod|obj):`(~?)([\w.]+)`")


def _code(match: re.Match[str]) -> str:
    short, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if short else target}`"


class RstRoles(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
