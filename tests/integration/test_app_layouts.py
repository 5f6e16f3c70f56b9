"""Apps whose tasks live in modules only ``include=`` or ``autodiscover_tasks()`` imports (tests/layout_apps):
every client entry point sees the tasks their workers see -- the CLI, doctor and the web server, each run
as a fresh subprocess (in this process the task modules may have been imported already) against a real
``celery worker`` subprocess -- and a task module that fails to import is named.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from celery import Celery

from tests.helpers import ROOT, wait_for
from tests.redis_server import free_port

FLOWS = {
    "included": """
name: ship
tasks:
  - {name: pack, task: shipping.pack, args: ["${order}"]}
  - {name: label, task: shipping.label, after: [pack]}
""",
    "discovered": """
name: bill
tasks:
  - {name: charge, task: billing.charge, args: [7]}
  - {name: receipt, task: billing.receipt, after: [charge]}
""",
}
PARAMS = {"included": ["-p", "order=o-1"], "discovered": []}
RESULTS = {
    "included": {"pack": ["o-1", "box"], "label": "o-1+box"},
    "discovered": {"charge": 700, "receipt": "paid 700 cents"},
}


class Layout:
    """One layout app of tests/layout_apps, configured for this test through the environment."""

    def __init__(self, name: str, redis_url: str, uid: str, folder: Path, broken: bool = False) -> None:
        self.name = name
        self.spec = f"tests.layout_apps.{name}"
        self.queue = f"{name}-{uid}"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LAYOUT_REDIS_URL": redis_url,
            "LAYOUT_SUFFIX": uid,
            "LAYOUT_DEFINITIONS": str(folder),
            "LAYOUT_BROKEN": "1" if broken else "",
        }
        self.client = Celery("layout-client", broker=redis_url, backend=redis_url, set_as_current=False)
        self.procs: list[subprocess.Popen[bytes]] = []

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "wfcelery.cli", "-A", self.spec, *args]
        return subprocess.run(cmd, env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)

    def start(self, *cmd: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(cmd, env=self.env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def worker(self, uid: str) -> None:
        hostname = f"{self.name}-{uid}@{socket.gethostname()}"
        proc = self.start(
            sys.executable, "-m", "celery", "-A", self.spec, "worker", "-Q", self.queue, "-n", hostname,
            "-P", "threads", "-c", "2", "--without-mingle", "--without-gossip", "-l", "WARNING",
        )  # fmt: skip

        def up() -> bool:
            assert proc.poll() is None, f"worker exited: {proc.stdout.read() if proc.stdout else ''}"
            return bool(self.client.control.ping(destination=[hostname], timeout=0.5))

        wait_for(up, timeout=40, message=f"worker {hostname}")

    def web(self) -> str:
        port = free_port()
        proc = self.start(sys.executable, "-m", "wfcelery.cli", "-A", self.spec, "web", "--port", str(port))
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert proc.poll() is None, f"web server exited: {proc.stdout.read() if proc.stdout else ''}"
            try:
                return httpx.get(f"{base}/api/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=40, message="the web server")
        return base

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.client.close()


@pytest.fixture
def layout(redis_url: str, uid: str, tmp_path: Path) -> Iterator[Callable[..., Layout]]:
    made: list[Layout] = []

    def factory(name: str, broken: bool = False) -> Layout:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        (folder / "flow.yaml").write_text(FLOWS[name])
        made.append(Layout(name, redis_url, uid, folder, broken))
        return made[-1]

    yield factory
    for app in made:
        app.stop()


@pytest.mark.parametrize("name", ["included", "discovered"])
def test_cli_doctor_and_web_see_the_tasks_the_workers_import(
    layout: Callable[..., Layout], uid: str, tmp_path: Path, name: str
) -> None:
    app = layout(name)
    flow = str(tmp_path / name / "flow.yaml")
    checked = app.cli("validate", flow, *PARAMS[name])
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("OK ")

    app.worker(uid)
    submitted = app.cli("submit", flow, *PARAMS[name], "--wait", "-q", "--timeout", "60")
    assert submitted.returncode == 0, submitted.stderr
    assert json.loads(submitted.stdout)["results"] == RESULTS[name]

    doctor = app.cli("doctor", flow, "--json")
    findings = {f["check"]: f for f in json.loads(doctor.stdout)}
    assert findings["tasks"]["ok"] is True, findings["tasks"]
    assert "every task of 1 definitions registered" in findings["tasks"]["message"]

    base = app.web()
    listed = httpx.get(f"{base}/api/definitions", timeout=10).json()
    wanted = "ship" if name == "included" else "bill"
    assert [d["name"] for d in listed] == [wanted]
    params = {"order": "o-1"} if name == "included" else {}
    posted = httpx.post(f"{base}/api/runs", json={"name": wanted, "params": params}, timeout=10)
    assert posted.status_code == 201, posted.text
    run = posted.json()["url"]
    state = wait_for(
        lambda: (s := httpx.get(f"{base}{run}", timeout=10).json())["status"] == "SUCCEEDED" and s,
        timeout=60,
        message="the run started by name to succeed",
    )
    assert {n: v["status"] for n, v in state["nodes"].items()} == dict.fromkeys(RESULTS[name], "SUCCEEDED")


def test_a_task_module_that_fails_to_import_is_named_everywhere(
    layout: Callable[..., Layout], tmp_path: Path
) -> None:
    app = layout("included", broken=True)
    flow = str(tmp_path / "included" / "flow.yaml")
    named = "cannot import task module 'tests.layout_apps.broken' of Celery app 'included'"
    cause = "ModuleNotFoundError: No module named 'wfcelery_missing_dependency'"

    checked = app.cli("validate", flow)
    assert checked.returncode == 2
    assert named in checked.stderr
    assert cause in checked.stderr
    assert "Traceback" not in checked.stderr

    doctor = app.cli("doctor", flow, "--json")
    assert doctor.returncode != 0
    tasks = next(f for f in json.loads(doctor.stdout) if f["check"] == "tasks")
    assert tasks["ok"] is False
    assert named in tasks["message"]

    web = app.cli("web", "--port", str(free_port()))
    assert web.returncode == 2
    assert named in web.stderr
    assert "Traceback" not in web.stderr


def test_doctor_finds_a_task_no_module_registers(layout: Callable[..., Layout], tmp_path: Path) -> None:
    app = layout("discovered")
    flow = tmp_path / "typo.yaml"
    flow.write_text("name: typo\ntasks:\n  - {name: charge, task: billing.charg, args: [1]}\n")
    doctor = app.cli("doctor", str(flow), "--json")
    assert doctor.returncode != 0
    tasks = next(f for f in json.loads(doctor.stdout) if f["check"] == "tasks")
    assert tasks["ok"] is False
    assert "typo.charge: 'billing.charg' (did you mean 'billing.charge'?)" in tasks["message"]
    submitted = app.cli("submit", str(flow))
    assert submitted.returncode == 2
    assert "not registered in app 'discovered' (did you mean 'billing.charge'?)" in submitted.stderr
