"""The front door cannot rot: the getting-started page's commands run as written, against real workers.

docs/index.md includes examples/quickstart.py and examples/quickstart.yaml (pymdownx.snippets) and shows
the shell commands that run them. This test takes those commands from the page's ``bash`` blocks and runs
each one for real: the two ``celery ... worker`` lines as worker subprocesses, ``python -m
examples.quickstart``, then ``wfcelery ... status`` on the run it printed and ``wfcelery ... submit
examples/quickstart.yaml --wait``. Only the Redis differs: Celery reads ``CELERY_BROKER_URL`` and
``CELERY_RESULT_BACKEND`` before the URLs written in the file, so the test points them at its own Redis.
The README's quick start is checked to be the same code, line for line.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ROOT

PAGE = ROOT / "docs" / "index.md"
EXAMPLE = ROOT / "examples" / "quickstart.py"
APP = "examples.quickstart"
SNIPPET = re.compile(r'^--8<-- "([^":]+)(?::([\w:]*))?"$')


def bash_lines(markdown: str) -> list[str]:
    """Every command line of the page's ```bash blocks, comments stripped."""
    lines: list[str] = []
    for block in re.findall(r"```bash\n(.*?)```", markdown, re.S):
        for line in block.splitlines():
            command = line.split("  #", 1)[0].strip()
            if command:
                lines.append(command)
    return lines


def page_commands() -> dict[str, list[str]]:
    """The page's commands that use the quick start, by what they do."""
    found: dict[str, list[str]] = {"worker": [], "python": [], "status": [], "submit": []}
    for line in bash_lines(PAGE.read_text()):
        words = shlex.split(line)
        if words[:3] == ["celery", "-A", APP] and "worker" in words:
            found["worker"].append(line)
        elif words[:3] == ["python", "-m", APP]:
            found["python"].append(line)
        elif words[:3] == ["wfcelery", "-A", APP] and words[3] in ("status", "submit"):
            found[words[3]].append(line)
    return found


def argv(line: str, run_id: str = "") -> list[str]:
    """A page command as this environment runs it: ``python`` is this interpreter, ``celery`` and
    ``wfcelery`` the console scripts installed beside it."""
    words = [run_id if w == "RUN_ID" else w for w in shlex.split(line)]
    program = sys.executable if words[0] == "python" else str(Path(sys.executable).parent / words[0])
    return [program, *words[1:]]


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "PYTHONPATH": str(ROOT),
    }


def queue_and_name(line: str) -> tuple[str, str]:
    """``-Q`` and ``-n`` of a page's worker command."""
    words = shlex.split(line)
    return words[words.index("-Q") + 1], words[words.index("-n") + 1]


@pytest.fixture
def workers(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    """The page's worker commands, running; yields {queue: node name} (``io`` -> ``io@<host>``)."""
    lines = page_commands()["worker"]
    assert len(lines) == 2, f"the page should start two workers, found {lines}"
    host = socket.gethostname()
    procs = []
    for i, line in enumerate(lines):
        log = (tmp_path / f"worker{i}.log").open("wb")
        procs.append(subprocess.Popen(argv(line), env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
    try:
        yield {queue: name.replace("%h", host) for queue, name in map(queue_and_name, lines)}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run(line: str, env: dict[str, str], run_id: str = "") -> str:
    done = subprocess.run(argv(line, run_id), env=env, cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, f"{line}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_getting_started_runs_as_written(env: dict[str, str], workers: dict[str, str]) -> None:
    commands = page_commands()
    page = PAGE.read_text()
    assert commands["python"], "the page shows no `python -m examples.quickstart`"
    assert commands["status"], "the page shows no `wfcelery ... status`"
    assert commands["submit"], "the page shows no `wfcelery ... submit`"

    printed = run(commands["python"][0], env).splitlines()
    run_id, results = printed[0], ast.literal_eval(printed[-1])
    assert results == {"extract": [3, 1, 4, 1, 5], "transform": 14, "load": "daily: 14"}
    assert str(results) in page, "the page quotes other results than the example prints"

    status = run(commands["status"][0], env, run_id)
    rows = {line.split()[0]: line for line in status.splitlines() if line.strip()}
    for node, queue in (("extract", "io"), ("transform", "cpu"), ("load", "io")):
        assert "SUCCEEDED" in rows[node], status
        assert workers[queue] in rows[node], status
    # the page names the worker status shows for each node: the one its commands start for that queue
    shown = {queue: name.replace(socket.gethostname(), "yourhost") for queue, name in workers.items()}
    assert f"`{shown['io']}` for extract and load" in page
    assert f"`{shown['cpu']}` for transform" in page

    submitted = run(commands["submit"][0], env).split("\n", 1)
    assert json.loads(submitted[1]) == results  # the YAML file gives the same results as the Python


def test_the_readme_quick_start_is_the_example() -> None:
    """Every line of the README's quick-start Python block is a line of examples/quickstart.py."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the README's quick start has no Python block"
    example = {line.strip() for line in EXAMPLE.read_text().splitlines()}
    missing = [
        line
        for block in blocks
        for line in block.splitlines()
        if line.strip() and line.strip() not in example
    ]
    assert not missing, f"README quick-start lines that examples/quickstart.py does not have: {missing}"


def test_the_page_includes_the_example() -> None:
    """The page's snippets point at the example files (mkdocs --strict fails on a missing file, too)."""
    included = [m.group(1) for line in PAGE.read_text().splitlines() if (m := SNIPPET.match(line.strip()))]
    assert "examples/quickstart.py" in included
    assert all((ROOT / path).is_file() for path in included), included
