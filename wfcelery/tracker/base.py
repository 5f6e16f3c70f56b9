"""The tracker's connection: the Redis client (one pool per tracker; a Redis Cluster client when
configured), the Lua scripts registered once on it, and how redis-py's errors become wfcelery's."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

import redis
from redis.cluster import RedisCluster
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)
from redis.sentinel import MasterNotFoundError

from wfcelery.definition.pools import BURST_SECONDS
from wfcelery.errors import TrackerError, TrackerUnavailable
from wfcelery.settings import Settings
from wfcelery.tracker.connection import connect
from wfcelery.tracker.counters import BUCKETS_MS, run_slot, slot_tag
from wfcelery.tracker.keys import Keys
from wfcelery.tracker.records import RUN_DEFAULTS

logger = logging.getLogger("wfcelery.tracker")


class TrackerBase:
    """The client and scripts every part of :class:`~wfcelery.tracker.store.Tracker` runs on."""

    def __init__(self, settings: Settings, client: redis.Redis | RedisCluster | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        # Any: redis-py's stubs cannot express decode_responses=True (every reply typed bytes | str)
        self.client: Any = client or connect(
            settings.redis_url,
            settings.redis_cluster,
            settings.redis_transport_options,
            settings.redis_timeout or None,
        )
        self.scripts = {name: self.client.register_script(src) for name, src in _SOURCES.items()}

    def _run_script(
        self,
        name: str,
        run_id: str,
        args: Sequence[Any],
        extra_keys: Sequence[str] = (),
        what: str = "",
        client: Any = None,
    ) -> Any:
        """Run script ``name`` on :meth:`script_keys` (and ``extra_keys``, from KEYS[8] on); ``what`` names
        it in errors; ``client``: a pipeline to queue it on."""
        with converted_errors(what or f"record {name} of run {run_id}"):
            keys = [*self.script_keys(run_id), *extra_keys]
            return self.scripts[name](keys=keys, args=list(args), client=client)

    def script_keys(self, run_id: str) -> list[str]:
        """The KEYS every per-run script gets: the run's keys (keys.RUN_KEYS), then the counters' hash (its
        shard on a Redis Cluster) -- or, when metrics are off, the run record's key again, which the
        scripts read as "no counters" (_common.lua K_METRICS)."""
        keys = self.keys.run_keys(run_id)
        keys.append(self.metrics_key(run_id) if self.settings.metrics else keys[0])
        return keys

    def metrics_key(self, run_id: str) -> str:
        """The counters' hash this run's scripts write (counters.py "Where")."""
        if self.settings.redis_cluster:
            return self.keys.metrics(slot_tag(run_slot(run_id)))
        return self.keys.metrics()

    def server_ms(self) -> int:
        """Redis's clock (the one every node time is measured with), in ms."""
        with converted_errors("read the Redis clock"):
            sec, usec = self.client.time()
        return int(sec) * 1000 + int(usec) // 1000

    def check_eviction(self) -> str | None:
        """A warning when Redis may evict run state (maxmemory-policy other than noeviction / volatile-*)."""
        try:
            policy = self.client.config_get("maxmemory-policy").get("maxmemory-policy", "")
        except redis.RedisError:
            return None  # CONFIG may be disabled (managed Redis): nothing to check
        if policy.startswith("allkeys"):
            return (
                f"Redis maxmemory-policy is {policy!r}: Redis may evict wfcelery run state under memory "
                "pressure. Use 'noeviction' (or a volatile-* policy) for the tracker's Redis."
            )
        return None


#: Per-run scripts (``_common.lua`` prepended: they get the run's keys), the fleet's own scripts, and scripts
#: that are not per-run (their own KEYS, no ``_common.lua``): a run key, a keyed run's creation.
_SCRIPTS = (
    "create",
    "settle",
    "start",
    "succeed",
    "fail",
    "skip",
    "expand",
    "halt",
    "replan",
    "repair",
    "drop",
)
_FLEET_SCRIPTS = ("beat", "gate", "gate_lease", "gate_lag")
_STANDALONE = ("runkey", "create_keyed")


def common_source() -> str:
    """``_common.lua`` as every per-run script starts with it (this module's, and ops' scripts on a run's
    keys): the histogram buckets (``counters.py`` owns them) and the run-record defaults
    (``records.RUN_DEFAULTS``) prepended."""
    lua = resources.files("wfcelery.tracker") / "lua"
    buckets = f"local BUCKETS_MS = {{{', '.join(map(str, BUCKETS_MS))}}}\n"
    defaults = ", ".join(f"{name} = '{value}'" for name, value in RUN_DEFAULTS.items())
    return (
        buckets
        + f"local RUN_DEFAULTS = {{{defaults}}}\n"
        + clock_source()
        + (lua / "_common.lua").read_text()
    )


def clock_source() -> str:
    """``_clock.lua``: ``now_ms()``, Redis's clock read once per call (in ``common_source`` and the pool
    scripts)."""
    return (resources.files("wfcelery.tracker") / "lua" / "_clock.lua").read_text()


def pool_source(binding: str) -> str:
    """``_pool.lua`` (a pool's slots and token bucket) after ``binding``, the Lua that names the pool's keys
    and its setting's limits for the script it goes into (see its header)."""
    lua = resources.files("wfcelery.tracker") / "lua"
    return f"local BURST_SECONDS = {BURST_SECONDS}\n{binding}\n" + (lua / "_pool.lua").read_text()


def _load_sources() -> dict[str, str]:
    lua = resources.files("wfcelery.tracker") / "lua"
    common = common_source()
    sources = {name: common + "\n" + (lua / f"{name}.lua").read_text() for name in _SCRIPTS}
    # a pooled node's slot goes back in its success's own step (one Redis server; see _succeed_pool.lua)
    pool = pool_source((lua / "_succeed_pool.lua").read_text())
    sources["succeed"] = "\n".join((common, pool, (lua / "succeed.lua").read_text()))
    return {
        **sources,
        **{name: (lua / f"{name}.lua").read_text() for name in (*_FLEET_SCRIPTS, *_STANDALONE)},
    }


_SOURCES = _load_sources()


#: Error codes with which a Redis that is there says "not now", the command not run: out of memory under
#: ``noeviction``, loading its data set, a replica (the old master after a failover) or one cut off from its
#: master, a script running past ``busy-reply-threshold``, a cluster resharding or down, a failing RDB save
#: refusing writes, too few replicas, a blocked call ended by a role change. Sent again later, it may pass;
#: they are handled like an unreachable server (:class:`TrackerUnavailable`): the gate gives the message
#: back, reports are kept.
TRY_LATER_CODES = frozenset(
    {"OOM", "LOADING", "READONLY", "MASTERDOWN", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MISCONF"}
    | {"NOREPLICAS", "UNBLOCKED"}
)
#: Redis 6 wraps the error of a ``redis.call`` inside a script: "Error running script ...: -OOM command ..."
_IN_SCRIPT = re.compile(r"-(" + "|".join(sorted(TRY_LATER_CODES)) + r") ")


def try_later(error: BaseException) -> bool:
    """True for a redis-py error that means "not now" (see :data:`TRY_LATER_CODES`), not "never"."""
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):  # BusyLoadingError (LOADING) is one
        return True
    if isinstance(error, OutOfMemoryError | ReadOnlyError | ClusterDownError | TryAgainError):
        return True  # ClusterDownError: MASTERDOWN too
    if not isinstance(error, redis.ResponseError):
        return False
    # BUSY, MISCONF...: no class of their own (redis-py < 6 has no status_code: the code starts the text)
    code = getattr(error, "status_code", None) or str(error).split(" ", 1)[0]
    return code in TRY_LATER_CODES or _IN_SCRIPT.search(str(error)) is not None


def never_executed(error: BaseException | None) -> bool:
    """True for a redis-py error that proves the command did not run and never will: the server refused
    it ("try later" replies: it answered, and did not execute it), the connection was refused (the command
    was never sent), or the sentinels know no master. A timeout, or a connection lost after sending, proves
    nothing: the command may have run, or may still run when the server wakes. The tracker's client sends
    each command once (redis-py retries nothing by default)."""
    if isinstance(error, redis.ResponseError):
        return try_later(error)
    if isinstance(error, BusyLoadingError | MasterNotFoundError):  # LOADING is a "connection" error here
        return True
    return isinstance(error, redis.ConnectionError) and isinstance(error.__cause__, ConnectionRefusedError)


@contextmanager
def converted_errors(what: str) -> Iterator[None]:
    """Turn redis-py errors into wfcelery's, naming what we were doing: "try later" replies and lost
    connections become :class:`TrackerUnavailable`, anything else :class:`TrackerError`."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as e:
        raise TrackerUnavailable(f"cannot reach the tracker's Redis while trying to {what}: {e}") from e
    except redis.RedisError as e:
        if try_later(e):
            raise TrackerUnavailable(f"the tracker's Redis refused, for now, to {what}: {e}") from e
        raise TrackerError(f"Redis error while trying to {what}: {e}") from e
