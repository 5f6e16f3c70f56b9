"""Pools and rate limits in the tracker: a pool's limits, its holders and its waiting nodes, and the Lua
steps that move them (``ops/lua/pool_*.lua``).

A pool bounds the nodes RUNNING in it across every worker and run (``slots``) and their starts (``rate``,
a token bucket). A node of a pool takes a slot (and a token) when it is published and gives it back when
it ends; a node that finds none is not published: it is WAITING for the pool (no message is out, so it
costs no worker slot and no prefetch slot) until a slot frees or a token comes, then QUEUED and published
in the pool's order (priority first, then first come first served). The release path is
``ops/pool_flow.py``; the design page is docs/operations-limits.md.

Keys (``tracker/keys.py``): per pool ``pool:{<name>}`` (limits set at run time, the token bucket),
``pool:{<name>}:held`` and ``pool:{<name>}:waiting``; ``pools`` names the pools set at run time. A pool's
keys share its own hash tag, never a run's: a node's pool step and its run's transition are two scripts,
and the reconciler repairs what a crash between them leaves (``ops/pool_flow.py``) -- except a success on
one Redis server, whose script gives the node's slot back too (:meth:`Pools.release_step`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from importlib import resources
from typing import TYPE_CHECKING, Any

from kombu.utils.json import loads as result_loads
from redis.exceptions import NoScriptError

from wfcelery.definition.pools import (
    PoolSpec,
    Rate,
    check_pool_name,
    check_slots,
    parse_rate,
)
from wfcelery.errors import PoolError
from wfcelery.plan.compiler import PlanCache
from wfcelery.tracker.base import clock_source, common_source, converted_errors, pool_source
from wfcelery.tracker.keys import Slot
from wfcelery.tracker.records import NodeRecord

if TYPE_CHECKING:
    from wfcelery.plan.compiler import Plan
    from wfcelery.tracker.store import Tracker

#: Runs whose plan digest a process remembers for its wakes (oldest dropped first).
DIGESTS_KEPT = 1024
#: Members granted per pool script call at most (the rest on the next call).
GRANT_BATCH = 500

_POOL_SCRIPTS = ("pool_acquire", "pool_enqueue", "pool_release")
_RUN_SCRIPTS = ("pool_park", "pool_wake")


def _sources() -> dict[str, str]:
    lua = resources.files("wfcelery.ops") / "lua"
    pool = pool_source(clock_source() + (lua / "_pool_keys.lua").read_text())
    common = common_source()
    out = {name: pool + "\n" + (lua / f"{name}.lua").read_text() for name in _POOL_SCRIPTS}
    out.update({name: common + "\n" + (lua / f"{name}.lua").read_text() for name in _RUN_SCRIPTS})
    return out


_SOURCES = _sources()


class Acquired(str, Enum):
    """pool_acquire.lua's answer."""

    HELD = "held"  # it holds a slot already (a re-publish)
    GRANTED = "granted"  # it holds one now
    WAIT = "wait"  # none free (or others wait first): park it


class Woken(str, Enum):
    """pool_wake.lua's answer."""

    WOKEN = "woken"
    PAUSED = "paused"
    STALE = "stale"
    GONE = "gone"


def member(run_id: str, slot: Slot) -> str:
    """A pool's member: one node (or instance) of one run, whatever its epoch."""
    return f"{run_id}|{slot}"


def parse_member(raw: str) -> tuple[str, Slot]:
    run_id, slot = raw.split("|", 1)
    return run_id, int(slot) if slot.isdigit() else slot


@dataclass(frozen=True)
class WakeOutcome:
    """pool_wake.lua: the verdict, the node's epoch and status code; when woken, its run's plan digest
    and params (what publishing it needs)."""

    verdict: Woken
    epoch: int
    code: str
    plan: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    #: The results asked for (``fetch``), in order (None: none stored); None when none were asked for.
    results: list[Any] | None = None


@dataclass(frozen=True)
class Granted:
    """What a pool script handed out: members that hold a slot now (to wake and publish), and the ms
    until the next token when members still wait for one (0: a release wakes them)."""

    pool: str
    members: tuple[str, ...]
    next_token_ms: int = 0
    released: int = 0


@dataclass(frozen=True)
class PoolInfo:
    """A pool as ``wfcelery pools`` and ``GET /api/pools`` show it: its limits (``source``: ``setting``,
    ``set_pool`` or ``none`` -- a pool named only by nodes), slots used and nodes waiting."""

    name: str
    slots: int | None
    rate: str | None
    used: int
    waiting: int
    source: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "slots": self.slots,
            "rate": self.rate,
            "used": self.used,
            "waiting": self.waiting,
            "source": self.source,
        }


def pools_of(tracker: Tracker) -> Pools:
    """The :class:`Pools` of this tracker (made once: its scripts are registered on the tracker's client)."""
    found: Pools | None = getattr(tracker, "_wfcelery_pools", None)
    if found is None:
        found = Pools(tracker)
        tracker._wfcelery_pools = found  # type: ignore[attr-defined]
    return found


class Pools:
    """The pool scripts and keys on one tracker's Redis client (get it with :func:`pools_of`)."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.keys = tracker.keys
        self.specs: dict[str, PoolSpec] = dict(tracker.settings.pools)
        self.scripts = {name: tracker.client.register_script(src) for name, src in _SOURCES.items()}
        self.plans = PlanCache(tracker.plan_blob)
        #: Run id -> its plan's digest, as wakes saw them: the next wake of the run fetches the parents'
        #: results in the same call.
        self.digests: dict[str, str] = {}

    # -- limits ---------------------------------------------------------------------------------------

    def _defaults(self, pool: str) -> list[Any]:
        """ARGV[1..2] of every pool script: the setting's slots and rate per second (0: none)."""
        spec = self.specs.get(pool)
        if spec is None:
            return [0, 0]
        return [spec.slots or 0, 0 if spec.rate is None else repr(spec.rate.per_second)]

    def names(self) -> list[str]:
        """Every pool: the setting's and those set at run time."""
        with converted_errors("read the pools"):
            stored = self.tracker.client.smembers(self.keys.pools)
        return sorted(set(self.specs) | set(stored))

    def check_plan(self, plan: Plan) -> None:
        """Refuse a plan with a node in an unknown pool (nothing is written): :class:`PoolError`."""
        unknown = sorted(plan.pools - set(self.specs))
        if unknown:
            known = set(self.names())
            unknown = [p for p in unknown if p not in known]
        if unknown:
            node = next(n.name for n in plan.nodes if n.pool == unknown[0])
            choices = ", ".join(self.names()) or "none: set wfcelery_pools"
            raise PoolError(
                f"node {node!r} of workflow {plan.name!r}: unknown pool {unknown[0]!r} (pools: {choices})"
            )

    def set_pool(self, name: str, slots: int | None = None, rate: str | None = None) -> PoolInfo:
        """Set a pool's slots and/or rate at run time (stored in the tracker: they win over the setting
        for every process); takes effect at the next release. A resize down never preempts a node that
        runs: the pool hands out no slot until fewer than ``slots`` hold one. Raises :class:`PoolError`
        (nothing changed) for a bad name, slots < 1 or a malformed rate."""
        where = f"pool {name!r}"
        check_pool_name(name, "set_pool")
        if slots is None and rate is None:
            raise PoolError(f"{where}: give slots, rate or both")
        fields: dict[str, Any] = {}
        if slots is not None:
            fields["slots"] = check_slots(slots, where)
        if rate is not None:
            parsed = _rate_or_none(rate, where)
            fields["rate"] = 0 if parsed is None else repr(parsed.per_second)
            fields["rate_text"] = "" if parsed is None else str(parsed)
        with converted_errors(f"set {where}"):
            pipe = self.tracker.client.pipeline(transaction=False)
            pipe.hset(self.keys.pool(name), mapping=fields)
            pipe.sadd(self.keys.pools, name)
            pipe.execute()
        return self.info(name)

    def info(self, name: str) -> PoolInfo:
        with converted_errors(f"read pool {name!r}"):
            pipe = self.tracker.client.pipeline(transaction=False)
            pipe.hmget(self.keys.pool(name), "slots", "rate_text")
            pipe.hlen(self.keys.pool_held(name))
            pipe.zcard(self.keys.pool_waiting(name))
            (slots, rate_text), used, waiting = pipe.execute()
        spec = self.specs.get(name)
        source = "set_pool" if slots is not None or rate_text is not None else "setting" if spec else "none"
        if slots is None:
            slots = spec.slots if spec else None
        if rate_text is None:
            rate_text = str(spec.rate) if spec and spec.rate else None
        return PoolInfo(name, int(slots) if slots else None, rate_text or None, used, waiting, source)

    def infos(self) -> list[PoolInfo]:
        return [self.info(name) for name in self.names()]

    # -- the pool's side (its own hash slot) ----------------------------------------------------------

    def _pool_script(self, name: str, pool: str, args: Sequence[Any]) -> Any:
        with converted_errors(f"record {name} of pool {pool!r}"):
            return self.scripts[name](keys=self.keys.pool_keys(pool), args=[*self._defaults(pool), *args])

    def acquire(self, pool: str, who: str) -> Acquired:
        return Acquired(self._pool_script("pool_acquire", pool, [who]))

    def acquire_many(self, wanted: Sequence[tuple[str, str]]) -> list[Acquired]:
        """:meth:`acquire` for (pool, member) pairs in one pipelined round trip, in order."""
        if len(wanted) == 1:
            return [self.acquire(*wanted[0])]
        calls = [(self.keys.pool_keys(pool), [*self._defaults(pool), who]) for pool, who in wanted]
        return [Acquired(v) for v in self._pipelined("pool_acquire", calls, "pooled nodes")]

    def _pipelined(self, name: str, calls: Sequence[tuple[list[str], list[Any]]], what: str) -> list[Any]:
        """Script ``name`` once per (keys, args), in one pipelined round trip. A Redis Cluster's pipeline
        does not load scripts on its masters: a NOSCRIPT loads it everywhere, then the batch runs again.
        Every pool step is idempotent (acquire, park, list); a grant whose reply a retry dropped is woken
        by the audit."""
        script = self.scripts[name]
        with converted_errors(f"record {name} of {what}"):
            for attempt in (1, 2):
                pipe = self.tracker.client.pipeline(transaction=False)
                for keys, args in calls:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                try:
                    return list(pipe.execute())
                except NoScriptError:
                    if attempt == 2:
                        raise
                    self.tracker.client.script_load(script.script)
        raise AssertionError("unreachable")

    def enqueue(self, pool: str, who: str, priority: int) -> Granted:
        reply = self._pool_script("pool_enqueue", pool, [who, priority, GRANT_BATCH])
        return Granted(pool, tuple(reply[1:]), int(reply[0]))

    def release(self, pool: str, members: Sequence[str] = ()) -> Granted:
        """Give back ``members``' slots (those holding one), then grant what is free."""
        reply = self._pool_script("pool_release", pool, [GRANT_BATCH, *members])
        return Granted(pool, tuple(reply[2:]), int(reply[1]), int(reply[0]))

    def release_step(self, pool: str, who: str) -> tuple[list[str], str] | None:
        """What ``Tracker.succeed`` needs to give ``who``'s slot back in the success's own script
        (``tracker/lua/_succeed_pool.lua``), or None on a Redis Cluster, where a run's script cannot reach
        the pool's keys (then :meth:`release`, after the success)."""
        if self.tracker.settings.redis_cluster:
            return None
        slots, rate = self._defaults(pool)
        return self.keys.pool_keys(pool), f"{slots}|{rate}|{GRANT_BATCH}|{who}"

    def holders(self, pool: str) -> dict[str, int]:
        """Members holding a slot -> since (ms, Redis clock)."""
        with converted_errors(f"read the holders of pool {pool!r}"):
            found = self.tracker.client.hgetall(self.keys.pool_held(pool))
        return {m: int(ms) for m, ms in found.items()}

    def waiting(self, pool: str, limit: int) -> list[str]:
        """The first ``limit`` members waiting, in release order."""
        with converted_errors(f"read the nodes waiting for pool {pool!r}"):
            return list(self.tracker.client.zrange(self.keys.pool_waiting(pool), 0, limit - 1))

    def listed(self, pool: str, who: str) -> tuple[bool, bool]:
        """Whether a member holds a slot, and whether it is listed as waiting."""
        with converted_errors(f"read pool {pool!r}"):
            pipe = self.tracker.client.pipeline(transaction=False)
            pipe.hexists(self.keys.pool_held(pool), who)
            pipe.zscore(self.keys.pool_waiting(pool), who)
            held, score = pipe.execute()
        return bool(held), score is not None

    def unlist(self, pool: str, members: Sequence[str]) -> None:
        if members:
            with converted_errors(f"drop nodes waiting for pool {pool!r}"):
                self.tracker.client.zrem(self.keys.pool_waiting(pool), *members)

    # -- the run's side (the run's hash slot) ----------------------------------------------------------

    def _run_script(self, name: str, run_id: str, args: Sequence[Any]) -> Any:
        with converted_errors(f"record {name} of run {run_id}"):
            return self.scripts[name](keys=self.tracker.script_keys(run_id), args=list(args))

    def park(self, run_id: str, slot: Slot, epoch: int, pool: str) -> str:
        """QUEUED -> WAITING for ``pool`` (pool_park.lua): 'parked', 'stale', 'paused' or 'gone'."""
        return str(self._run_script("pool_park", run_id, [slot, epoch, pool]))

    def park_many(self, run_id: str, nodes: Sequence[tuple[Slot, int, str]]) -> list[bool]:
        """:meth:`park` for (slot, epoch, pool) of one run in one pipelined round trip: parked or not."""
        keys = self.tracker.script_keys(run_id)
        calls = [(keys, [slot, epoch, pool]) for slot, epoch, pool in nodes]
        return [v == "parked" for v in self._pipelined("pool_park", calls, f"run {run_id}")] if calls else []

    def enqueue_many(self, nodes: Sequence[tuple[str, str, int]]) -> list[Granted]:
        """:meth:`enqueue` for (pool, member, priority) in one pipelined round trip."""
        calls = [
            (self.keys.pool_keys(pool), [*self._defaults(pool), who, priority, GRANT_BATCH])
            for pool, who, priority in nodes
        ]
        replies = self._pipelined("pool_enqueue", calls, "pooled nodes") if calls else []
        return [Granted(n[0], tuple(r[1:]), int(r[0])) for n, r in zip(nodes, replies, strict=True)]

    def wake(self, run_id: str, slot: Slot, fetch: Sequence[int] = ()) -> WakeOutcome:
        """WAITING -> QUEUED (pool_wake.lua); when woken, the stored results of ``fetch`` come back too."""
        reply = self._run_script("pool_wake", run_id, [slot, *fetch])
        woken = len(reply) > 3
        if woken:
            self.digests[run_id] = str(reply[3])
            while len(self.digests) > DIGESTS_KEPT:
                self.digests.pop(next(iter(self.digests)))
        return WakeOutcome(
            Woken(reply[0]),
            int(reply[1]),
            str(reply[2]),
            str(reply[3]) if woken else "",
            json.loads(reply[4]) if woken else {},
            [None if v is None else result_loads(v) for v in reply[5]] if woken and fetch else None,
        )

    def node_states(self, members: Sequence[str]) -> list[tuple[str | None, NodeRecord]]:
        """Each member's run status (None: no run) and node record, in one pipelined read."""
        if not members:
            return []
        with converted_errors("read the nodes of a pool"):
            pipe = self.tracker.client.pipeline(transaction=False)
            for raw in members:
                run_id, slot = parse_member(raw)
                pipe.hget(self.keys.run(run_id), "status")
                pipe.hget(self.keys.nodes(run_id), str(slot))
            found = pipe.execute()
        return [(found[i], NodeRecord.decode(found[i + 1])) for i in range(0, len(found), 2)]


def _rate_or_none(value: str, where: str) -> Rate | None:
    """A rate, or None for ``"none"`` (no rate any more)."""
    if isinstance(value, str) and value.strip().lower() in ("none", "off", "0"):
        return None
    return parse_rate(value, where)
