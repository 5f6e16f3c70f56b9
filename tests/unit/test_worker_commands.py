"""Every ``celery ... worker`` command the README, the examples and the docs show gives its worker its own
node name (``-n io@%h``): two workers started without one share ``celery@<host>``, and Celery's remote
control, revokes, Flower and wfcelery's queue check tell workers apart by that name."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from tests.helpers import ROOT

#: A command line (in a code block, a docstring or a comment: not a mention in prose).
_COMMAND = re.compile(r"^[#$\s]*(celery\s+(?:-A|--app)[ =]\S+\s+worker\b[^#\n`]*)", re.MULTILINE)


def documented() -> dict[Path, list[str]]:
    files = [
        ROOT / "README.md",
        *sorted((ROOT / "examples").glob("*")),
        *sorted((ROOT / "docs").rglob("*.md")),
    ]
    found = {path: _COMMAND.findall(path.read_text()) for path in files if path.is_file()}
    return {path: commands for path, commands in found.items() if commands}


def node_name(command: str) -> str | None:
    words = shlex.split(command)
    for i, word in enumerate(words):
        if word in ("-n", "--hostname") and i + 1 < len(words):
            return words[i + 1]
        if word.startswith("--hostname="):
            return word.split("=", 1)[1]
    return None


def test_every_documented_worker_command_names_its_worker() -> None:
    commands = documented()
    assert ROOT / "README.md" in commands, "the README's quick start shows no worker command"
    for path, lines in commands.items():
        unnamed = [line for line in lines if node_name(line) is None]
        assert not unnamed, f"{path.relative_to(ROOT)}: worker commands without -n NAME@%h: {unnamed}"
        queues_by_name: dict[str | None, set[str]] = {}
        for line in lines:  # one name for one kind of worker: the same command shown twice is fine
            queues_by_name.setdefault(node_name(line), set()).add(queues(line))
        shared = {name: q for name, q in queues_by_name.items() if len(q) > 1}
        assert not shared, f"{path.relative_to(ROOT)}: one node name for different workers: {shared}"


def queues(command: str) -> str:
    words = shlex.split(command)
    return next((words[i + 1] for i, w in enumerate(words[:-1]) if w in ("-Q", "--queues")), "")
