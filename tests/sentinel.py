"""A throwaway Redis Sentinel group on loopback, for the tests and the chaos soak: a master, one replica
(``--replicaof``) and one sentinel (``redis-server sentinel.conf --sentinel``: no redis-sentinel binary
is needed), each on a free port of its own, never the machine's Redis.

The sentinel judges the master down after 1 s without an answer (``down-after-milliseconds 1000``; the
chaos soak gives more), needs only itself to agree (quorum 1) and retries a failover after 3 s
(``failover-timeout 3000``): a SIGKILLed master's replica takes writes again within a few seconds.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.sentinel import Sentinel

from wfcelery._redis_server import free_port, redis_binary

#: The master's name the sentinel monitors (``master_name`` in the transport options).
MASTER_NAME = "wfmaster"


class SentinelGroup:
    """``SentinelGroup().start()``; ``url(db)`` is the ``sentinel://`` URL to give wfcelery and Celery,
    with ``transport_options`` beside it. ``kill_master()`` SIGKILLs whichever server is the master now;
    ``wait_failover()`` returns once the sentinel names another master that takes writes."""

    def __init__(self, appendonly: bool = False, down_after_ms: int = 1000) -> None:
        self.down_after_ms = down_after_ms
        self.dir = tempfile.mkdtemp(prefix="wfcelery-sentinel-")
        self.appendonly = appendonly  # an append-only file (fsync always): a restarted server keeps its data
        self.binary = redis_binary() or "redis-server"
        self.sentinel_port = free_port()
        self.servers: dict[int, subprocess.Popen[bytes]] = {}
        self.sentinel: subprocess.Popen[bytes] | None = None
        self.first_master = 0

    # -- addresses -----------------------------------------------------------------------------------

    def url(self, db: int = 0) -> str:
        return f"sentinel://127.0.0.1:{self.sentinel_port}/{db}"

    @property
    def transport_options(self) -> dict[str, Any]:
        return {"master_name": MASTER_NAME}

    def client(self) -> Sentinel:
        return Sentinel([("127.0.0.1", self.sentinel_port)], socket_timeout=0.5, socket_connect_timeout=0.5)

    def master_port(self) -> int:
        return int(self.client().discover_master(MASTER_NAME)[1])

    def node(self, port: int, db: int = 0) -> redis.Redis:
        return redis.Redis(port=port, db=db, decode_responses=True, socket_timeout=2)

    # -- processes -----------------------------------------------------------------------------------

    def _server(self, port: int, *extra: str) -> None:
        home = os.path.join(self.dir, str(port))  # a directory per server: its own append-only file
        os.makedirs(home, exist_ok=True)
        aof = ["--appendonly", "yes" if self.appendonly else "no", "--appendfsync", "always"]
        self.servers[port] = subprocess.Popen(
            [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", *aof, "--dir", home,
             "--databases", "64", *extra],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def start(self) -> SentinelGroup:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> SentinelGroup:
        master, replica = free_port(), free_port()
        self.first_master = master
        self._server(master)
        self._server(replica, "--replicaof", "127.0.0.1", str(master))
        # the sentinel learns of replicas from the master's INFO, every 10 s once it runs: start it once
        # the replica is linked, so that its first INFO lists it (a failover before would find no replica)
        _wait(lambda: self.node(replica).info("replication").get("master_link_status") == "up", "replication")
        conf = os.path.join(self.dir, "sentinel.conf")
        with open(conf, "w") as f:  # the sentinel rewrites its configuration: a file of its own
            f.write(
                f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master} 1\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} {self.down_after_ms}\n"
                f"sentinel failover-timeout {MASTER_NAME} 3000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n"
            )
        self.sentinel = subprocess.Popen(
            [self.binary, conf, "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _wait(lambda: self.client().discover_slaves(MASTER_NAME), "the sentinel to see the replica", 30)
        return self

    def replica_ports(self) -> list[int]:
        master = self.master_port()
        return [p for p, proc in self.servers.items() if p != master and proc.poll() is None]

    def freeze(self, port: int) -> None:
        os.kill(self.servers[port].pid, signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        os.kill(self.servers[port].pid, signal.SIGCONT)

    def cut_off(self, replica: int) -> None:
        """Make ``replica`` fall behind: freeze it and have the master drop its link, so that what the master
        acknowledges from now on reaches the master alone (a frozen replica's kernel would still buffer the
        stream; a cut link does not). :meth:`thaw` it to let it answer again."""
        self.freeze(replica)
        self.node(self.master_port()).execute_command("CLIENT", "KILL", "TYPE", "slave")

    def kill_master(self) -> int:
        """SIGKILL the current master (its unreplicated writes are lost with it); returns its port."""
        port = self.master_port()
        self.servers[port].kill()
        self.servers[port].wait(10)
        return port

    def restart(self, port: int, down_for: float = 0.0, crash: bool = True) -> None:
        """Stop (SIGKILL, or SIGTERM with ``crash=False``) the server on ``port`` if it runs, keep it down
        ``down_for`` seconds, and start it again on its port (with its data only if ``appendonly``). Back
        after a failover, the sentinel makes it a replica of the new master."""
        proc = self.servers[port]
        if proc.poll() is None:
            proc.kill() if crash else proc.terminate()
            proc.wait(10)
        if down_for:
            time.sleep(down_for)  # the fault itself lasts this long
        self._server(port)

    def wait_failover(self, old: int, timeout: float = 30.0) -> int:
        """Wait until the sentinel names a master other than ``old`` and it takes writes; its port."""

        def promoted() -> int | None:
            port = self.master_port()
            if port == old or self.node(port).info("replication").get("role") != "master":
                return None
            self.node(port).set("wfcelery-test:failover", "1")
            return port

        found: int = _wait(promoted, "a failover", timeout)
        return found

    def stop(self) -> None:
        for proc in [*self.servers.values(), *([self.sentinel] if self.sentinel else [])]:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


def _wait(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.1)
