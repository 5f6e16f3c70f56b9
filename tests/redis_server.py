"""The tests' throwaway redis-server (the same one `wfcelery demo` uses, wfcelery/_redis_server.py), and
:class:`FaultyRedis`: a server of the test's own that fault tests restart, stop or freeze.

Only ever a server the test started itself: never the machine's Redis, never another helper's.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from wfcelery._redis_server import RedisServer, free_port, redis_binary

__all__ = ["FaultyRedis", "RedisServer", "free_port", "redis_binary"]


class FaultyRedis(RedisServer):
    """A throwaway redis-server with an append-only file (fsync always), so that a restart keeps every
    write it acknowledged -- like a production Redis with AOF -- plus the faults a test injects."""

    def __init__(self, port: int | None = None, appendonly: bool = True) -> None:
        super().__init__(
            port, appendonly=appendonly
        )  # without: a restart loses everything (a broker's queues)

    def url_db(self, db: int = 0) -> str:
        return f"{self.url}/{db}"

    def kill(self) -> None:
        """SIGKILL the server (a crash: only what the AOF holds survives)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def shutdown(self) -> None:
        """Stop the server as an operator would (SIGTERM: the AOF is flushed); the port refuses."""
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)

    def restart(self, down_for: float = 0.0, crash: bool = False) -> None:
        """Stop (or kill) the server, keep it down ``down_for`` seconds, start it on the same port."""
        self.kill() if crash else self.shutdown()
        if down_for:
            time.sleep(down_for)  # the fault itself lasts this long: the test waits on conditions after
        self.start()

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """SIGSTOP the server for the block: connections hang instead of being refused (a network
        partition or a stalled host, as clients see it); SIGCONT on exit."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.proc.pid, signal.SIGCONT)

    def thaw(self) -> None:
        """SIGCONT a server :meth:`frozen` stopped, before the block ends (a timer thread's fault end)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def up(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a frozen server cannot act on SIGTERM
        super().stop()
