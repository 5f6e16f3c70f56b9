"""The CLI on a real terminal (a pseudo-terminal) and off one: rich tables that fit the terminal's width,
a progress bar for long work; plain text, no escape codes, when the output is a pipe."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from typing import Any

from celery import Celery

from tests.helpers import ROOT, diamond

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


def _env(app: Celery, columns: int) -> dict[str, str]:
    return {
        **os.environ,
        "WFCELERY_TEST_BROKER": app.conf.broker_url,
        "WFCELERY_TEST_BACKEND": app.conf.wfcelery_redis_url,
        "WFCELERY_TEST_PREFIX": app.conf.wfcelery_key_prefix,
        "WFCELERY_TEST_QUEUE": app.conf.task_default_queue,
        "PYTHONPATH": str(ROOT),
        "COLUMNS": str(columns),
        "LINES": "40",
        "TERM": "xterm-256color",
    }


def on_terminal(app: Celery, *args: str, columns: int = 60) -> tuple[int, str]:
    """Run ``wfcelery -A tests.proj ARGS`` with stdout and stderr on a pseudo-terminal: (exit, output)."""
    master, slave = pty.openpty()
    cmd = [sys.executable, "-m", "wfcelery.cli", "-A", "tests.proj", *args]
    proc = subprocess.Popen(cmd, env=_env(app, columns), cwd=ROOT, stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal closed: the command is done
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return proc.wait(30), b"".join(chunks).decode(errors="replace")


def piped(app: Celery, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "wfcelery.cli", "-A", "tests.proj", *args]
    return subprocess.run(cmd, env=_env(app, 60), cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_status_fits_the_terminal_and_is_plain_in_a_pipe(app: Celery, engine: Any) -> None:
    run = engine.submit(diamond("a-workflow-with-a-rather-long-name-for-a-narrow-terminal"))
    engine.cancel(run.id)  # no worker: every node ends REVOKED (a long status word)
    code, out = on_terminal(app, "status", run.id, columns=60)
    assert code == 0, out
    lines = [ANSI.sub("", line) for line in out.splitlines() if line.strip()]
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("NODE")) :]
    assert max(len(line) for line in table) <= 60, table  # the node table fits; the terminal wraps prose
    assert "\x1b[" in out  # styled on a terminal
    assert {"a", "b", "c", "d"} <= {line.split()[0] for line in lines if line.split()}

    done = piped(app, "status", run.id)
    assert "\x1b[" not in done.stdout
    assert any(line.startswith("NODE") for line in done.stdout.splitlines())


def test_cleanup_of_many_runs_shows_a_progress_bar_on_a_terminal(app: Celery, engine: Any) -> None:
    for _ in range(25):
        engine.cancel(engine.submit(diamond("cleanup-many")).id)
    code, out = on_terminal(app, "cleanup", "--status", "CANCELLED", columns=100)
    assert code == 0, out
    plain = ANSI.sub("", out)
    assert "cleaning up" in plain
    assert "25/25" in plain
    assert "25 runs deleted" in plain

    for _ in range(3):
        engine.cancel(engine.submit(diamond("cleanup-many")).id)
    done = piped(app, "cleanup", "--status", "CANCELLED")
    assert done.stdout.strip() == "3 runs deleted"
    assert done.stderr == ""


def test_submit_of_a_large_run_shows_a_progress_bar_on_a_terminal(app: Celery, tmp_path: Any) -> None:
    flow = tmp_path / "wide.yaml"
    tasks = "".join(f"  - {{name: n{i}, task: proj.noop}}\n" for i in range(3000))
    flow.write_text("name: wide\ntasks:\n" + tasks)
    code, out = on_terminal(app, "submit", str(flow), columns=100)
    assert code == 0, out
    plain = ANSI.sub("", out)
    assert "submitting" in plain
    assert "3000/3000" in plain
    run_id = plain.strip().splitlines()[-1].strip()
    assert len(run_id) == 32

    done = piped(app, "submit", str(flow))
    assert "submitting" not in done.stderr  # no bar off a terminal (the warnings stay)
    assert "\x1b[" not in done.stderr + done.stdout
    assert len(done.stdout.strip()) == 32
