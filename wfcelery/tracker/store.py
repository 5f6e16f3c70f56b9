"""The Redis side: runs its Lua scripts (loaded once per client), turns their replies into typed
outcomes, and reads run state.

Every write to a run's state goes through one Lua script in ``lua/``; reads are pipelined so that
``Run.state()`` is one round trip. Key names come from ``keys.py``, stored values are encoded and decoded
by ``records.py``. Redis errors leave this module as :class:`TrackerUnavailable` / :class:`TrackerError`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any

import redis
from kombu.utils.json import loads as result_loads  # results are stored with kombu's JSON (as Celery's)
from redis.cluster import RedisCluster

from wfcelery.errors import RunNotFound, TrackerError, TrackerUnavailable
from wfcelery.settings import Settings
from wfcelery.tracker.keys import Keys, Slot
from wfcelery.tracker.outcomes import (
    FailMode,
    FailOutcome,
    HaltOutcome,
    RepairOutcome,
    ReplanOutcome,
    StartOutcome,
    SucceedOutcome,
    decode_slot,
)
from wfcelery.tracker.records import (
    DROPPED_FIELD_PREFIX,
    Event,
    GateEntry,
    NodeRecord,
    RunRecord,
    canvas_ids,
    canvas_value,
    dropped_field,
    remaining_field,
    remaining_nodes,
)
from wfcelery.tracker.states import RunStatus

logger = logging.getLogger("wfcelery.tracker")

_SCRIPTS = ("start", "succeed", "fail", "skip", "expand", "halt", "replan", "repair")


def _load_sources() -> dict[str, str]:
    lua = resources.files("wfcelery.tracker") / "lua"
    common = (lua / "_common.lua").read_text()
    return {name: common + "\n" + (lua / f"{name}.lua").read_text() for name in _SCRIPTS}


_SOURCES = _load_sources()


@contextmanager
def converted_errors(what: str) -> Iterator[None]:
    """Turn redis-py errors into wfcelery's, naming what we were doing."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as e:
        raise TrackerUnavailable(f"cannot reach the tracker's Redis while trying to {what}: {e}") from e
    except redis.RedisError as e:
        raise TrackerError(f"Redis error while trying to {what}: {e}") from e


class Tracker:
    """One per Engine (and so per process). Thread-safe: redis-py pools connections."""

    def __init__(self, settings: Settings, client: redis.Redis | RedisCluster | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        timeouts: dict[str, Any] = {
            "socket_connect_timeout": settings.redis_timeout or None,
            "socket_timeout": settings.redis_timeout or None,
        }
        # Any: redis-py's stubs cannot express decode_responses=True (every reply typed bytes | str)
        self.client: Any = client
        if client is None and settings.redis_cluster:
            self.client = RedisCluster.from_url(settings.redis_url, decode_responses=True, **timeouts)
        elif client is None:
            self.client = redis.Redis.from_url(
                settings.redis_url, decode_responses=True, health_check_interval=30, **timeouts
            )
        self.scripts = {name: self.client.register_script(src) for name, src in _SOURCES.items()}

    # -- plans ------------------------------------------------------------------------------------------

    def plan_blob(self, digest: str) -> str:
        """The stored plan with this digest (see ``compiler.PlanCache``, which keeps them decoded)."""
        with converted_errors("load a workflow plan"):
            blob = self.client.get(self.keys.plan(digest))
        if blob is None:
            raise TrackerError(f"workflow plan {digest} is missing from Redis (expired?)")
        return str(blob)

    # -- creating runs ----------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        record: Mapping[str, str | int],
        roots: Sequence[int],
        plan_digest: str,
        plan_blob: str,
    ) -> bool:
        """Write the run record (``records.new_run``), its queued roots and the shared plan, in one round
        trip. Returns True when this call created the plan key: runs of one definition share it, so only
        its creator may delete it again (:meth:`delete_run` after a submit that could not publish)."""
        k, ttl = self.keys, self.settings.run_ttl
        with converted_errors("create the run"):
            pipe = self.client.pipeline(transaction=False)
            pipe.set(k.plan(plan_digest), plan_blob, ex=ttl * 2, nx=True)
            pipe.expire(k.plan(plan_digest), ttl * 2)  # a plan already there lives as long as this run
            pipe.hset(k.run(run_id), mapping=dict(record))
            pipe.hset(k.nodes(run_id), mapping={i: NodeRecord("Q").encode() for i in roots})
            pipe.append(k.events(run_id), "".join(Event(0, i, "Q", 0).encode() for i in roots))
            pipe.zadd(k.index, {run_id: record["created"]})
            pipe.sadd(k.live, run_id)
            return bool(pipe.execute()[0])

    def refresh_plan(self, digest: str) -> None:
        """Keep a plan alive as long as a run that uses it (called on control operations)."""
        with converted_errors("refresh the plan"):
            self.client.expire(self.keys.plan(digest), self.settings.run_ttl * 2)

    # -- transitions (Lua) ------------------------------------------------------------------------------

    def _run_script(self, name: str, run_id: str, args: Sequence[Any]) -> Any:
        with converted_errors(f"record {name} of run {run_id}"):
            return self.scripts[name](keys=self.keys.run_keys(run_id), args=list(args))

    def start(self, run_id: str, index: Slot, epoch: int, worker: str) -> StartOutcome:
        return StartOutcome.from_reply(self._run_script("start", run_id, [index, epoch, worker]))

    def succeed(
        self,
        run_id: str,
        index: Slot,
        epoch: int,
        result_json: str,
        children: Sequence[tuple[int, int]],
        rules: str = "",
        fetch: Sequence[int] = (),
        inline: int | None = None,
        worker: str = "",
    ) -> SucceedOutcome:
        """``children``: (child index, number of its parents); ``rules``: ``Plan.rule_spec`` (then the
        children are decided by their trigger rules and ``children`` is not needed); ``fetch``: results
        to return (``SucceedOutcome.inputs``) when a child was released (``Plan.fetch``); ``inline``: a
        child that ``worker`` would run itself when it is the only one released (the script then starts
        it: ``SucceedOutcome.inline``)."""
        fetched = ",".join(map(str, fetch))
        args: list[Any] = [
            index,
            epoch,
            result_json,
            rules,
            fetched,
            "" if inline is None else inline,
            worker,
        ]
        if not rules:
            for child, parents in children:
                args += (child, parents)
        return SucceedOutcome.from_reply(self._run_script("succeed", run_id, args))

    def expand(self, run_id: str, index: int, epoch: int, count: int, rules: str) -> SucceedOutcome:
        """A released mapped node's list has ``count`` elements: queue its instances (none: it succeeds
        with ``[]`` and the outcome lists what its children's rules released)."""
        return SucceedOutcome.from_reply(self._run_script("expand", run_id, [index, epoch, count, rules]))

    def skip(self, run_id: str, index: int, epoch: int, reason: dict[str, Any], rules: str) -> SucceedOutcome:
        """A released node whose condition is false: SKIPPED; returns what its children's rules released."""
        args = [index, epoch, json.dumps(reason), rules]
        return SucceedOutcome.from_reply(self._run_script("skip", run_id, args))

    def fail(
        self,
        run_id: str,
        index: Slot,
        epoch: int,
        error: dict[str, Any],
        mode: FailMode,
        retries: int,
        descendants: list[int],
        attempt: int = 0,
        rules: str = "",
    ) -> FailOutcome:
        args = [index, epoch, json.dumps(error), mode.value, retries, json.dumps(descendants), attempt, rules]
        return FailOutcome.from_reply(self._run_script("fail", run_id, args))

    def halt(self, run_id: str, op: str) -> HaltOutcome:
        """Pause or cancel. Raises :class:`RunNotFound`."""
        reply = self._run_script("halt", run_id, [op])
        if not reply[0]:
            raise RunNotFound(run_id)
        return HaltOutcome.from_reply(reply)

    def replan(
        self, run_id: str, op: str, parents: Sequence[Sequence[int]], rules: str = "", executor: str = ""
    ) -> ReplanOutcome:
        """Resume or retry; ``parents`` lists each node's parent indexes, ``rules`` is ``Plan.rule_spec``;
        ``executor="canvas"`` keeps the nodes planned again (:meth:`remaining`). Raises
        :class:`RunNotFound`."""
        spec = [[index, list(p)] for index, p in enumerate(parents)]
        reply = self._run_script("replan", run_id, [op, json.dumps(spec), rules, executor])
        if not reply[0]:
            raise RunNotFound(run_id)
        self.watch(run_id)
        return ReplanOutcome.from_reply(reply)

    def repair(self, run_id: str, op: str, *args: Any) -> RepairOutcome:
        """repair.lua: ``requeue`` (index, node record as read, quarantine limit), ``received`` (index,
        epoch, quarantine limit) or ``finish``."""
        return RepairOutcome.from_reply(self._run_script("repair", run_id, [op, *args]))

    # -- reconciler support -----------------------------------------------------------------------------

    def watch(self, run_id: str) -> None:
        """Put a run (back) on the reconciler's list of live runs."""
        with converted_errors("list a live run"):
            self.client.sadd(self.keys.live, run_id)

    def live_runs(self) -> list[str]:
        with converted_errors("list live runs"):
            return sorted(self.client.smembers(self.keys.live))

    def unwatch(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            with converted_errors("drop ended runs from the live list"):
                self.client.srem(self.keys.live, *run_ids)

    def server_ms(self) -> int:
        """Redis's clock (the one every node time is measured with), in ms."""
        with converted_errors("read the Redis clock"):
            sec, usec = self.client.time()
        return int(sec) * 1000 + int(usec) // 1000

    def beat(self, hostname: str, value: str, ttl: float) -> None:
        """A worker's heartbeat (``records.WorkerBeat``), kept ``ttl`` seconds; the worker is (again)
        on the list the reconciler watches. One round trip."""
        with converted_errors("send a heartbeat"):
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.keys.worker(hostname), value, px=int(ttl * 1000))
            pipe.sadd(self.keys.workers, hostname)
            pipe.execute()

    def workers(self) -> list[str]:
        """Hostnames of the workers that beat and were not forgotten since (``forget_workers``)."""
        with converted_errors("list workers"):
            return sorted(self.client.smembers(self.keys.workers))

    def forget_workers(self, hostnames: Sequence[str]) -> None:
        """Stop watching workers judged gone (a worker that beats again is back on the list)."""
        if hostnames:
            with converted_errors("forget gone workers"):
                self.client.srem(self.keys.workers, *hostnames)

    def heartbeats(self, hostnames: Sequence[str]) -> dict[str, str | None]:
        """Each worker's heartbeat value, None for a worker with no live heartbeat."""
        if not hostnames:
            return {}
        keys = [self.keys.worker(h) for h in hostnames]
        with converted_errors("read heartbeats"):
            # the heartbeat keys carry no hash tag: on a Redis Cluster they span slots, where MGET refuses
            mget_nonatomic = getattr(self.client, "mget_nonatomic", None)
            values = mget_nonatomic(keys) if mget_nonatomic is not None else self.client.mget(keys)
        return dict(zip(hostnames, values, strict=True))

    def elect(self, hostname: str, ttl: float) -> bool:
        """Take or keep the reconciler's lease for ``ttl`` seconds; False when another worker holds it.
        One round trip (two for the holder, which renews it): every worker calls it every heartbeat."""
        key, ms = self.keys.reconciler, int(ttl * 1000)
        with converted_errors("elect the reconciler"):
            pipe = self.client.pipeline(transaction=False)
            pipe.set(key, hostname, nx=True, px=ms)
            pipe.get(key)
            taken, holder = pipe.execute()
            if taken:
                return True
            if holder == hostname:
                self.client.pexpire(key, ms)
                return True
        return False

    def mark_dropped(self, run_id: str, index: Slot, mark: str) -> None:
        """A worker dropped the node's message (``records.DroppedMark``); the reconciler decides later."""
        with converted_errors(f"record a dropped message of run {run_id}"):
            self.client.hset(self.keys.run(run_id), dropped_field(index), mark)

    def record_canvas(self, run_id: str, field: str, ids: Sequence[str]) -> None:
        """Keep the ids of a published canvas segment that are no node's (``records.canvas_field``), for
        revokes and cleanup. Written only while the run exists (a run deleted meanwhile stays deleted)."""
        if ids:
            with converted_errors(f"record the canvas of run {run_id}"):
                if self.client.exists(self.keys.run(run_id)):
                    self.client.hset(self.keys.run(run_id), field, canvas_value(ids))

    def canvas_ids(self, run_id: str, epoch: int | None = None) -> list[str]:
        """The ids :meth:`record_canvas` kept (of one epoch, or all)."""
        with converted_errors(f"read the canvas ids of run {run_id}"):
            raw = self.client.hgetall(self.keys.run(run_id))
        return canvas_ids(raw, epoch)

    def remaining(self, run_id: str, epoch: int) -> frozenset[int] | None:
        """The nodes a canvas-executor resume / retry planned again at ``epoch`` (None: not such an epoch)."""
        with converted_errors(f"read the re-planned nodes of run {run_id}"):
            raw = self.client.hget(self.keys.run(run_id), remaining_field(epoch))
        return remaining_nodes(raw)

    def dropped_marks(self, run_id: str) -> dict[Slot, str]:
        with converted_errors(f"read dropped messages of run {run_id}"):
            raw = self.client.hgetall(self.keys.run(run_id))
        head = DROPPED_FIELD_PREFIX
        return {decode_slot(f[len(head) :]): v for f, v in raw.items() if f.startswith(head)}

    # -- reading ----------------------------------------------------------------------------------------

    def run_record(self, run_id: str) -> RunRecord:
        """Raises :class:`RunNotFound`."""
        with converted_errors(f"read run {run_id}"):
            record = self.client.hgetall(self.keys.run(run_id))
        if not record:
            raise RunNotFound(run_id)
        return RunRecord.decode(record)

    def read_run(
        self, run_id: str, only: Sequence[int] | None = None
    ) -> tuple[RunRecord, dict[Slot, NodeRecord], dict[Slot, dict[str, Any]]]:
        """The run record, every node record written so far (or those of the ``only`` node indexes) and the
        nodes' last errors, in one round trip. Raises :class:`RunNotFound`."""
        k = self.keys
        with converted_errors(f"read run {run_id}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(k.run(run_id))
            if only is None:
                pipe.hgetall(k.nodes(run_id))
                pipe.hgetall(k.errors(run_id))
            elif only:
                pipe.hmget(k.nodes(run_id), list(only))
                pipe.hmget(k.errors(run_id), list(only))
            record, *found = pipe.execute()
        if not record:
            raise RunNotFound(run_id)
        if only is None:
            nodes, errors = found
        else:  # HMGET replies in the order asked, None for a field not written yet
            replies: list[list[str | None]] = found or [[], []]
            nodes, errors = (dict(zip(only, reply, strict=True)) for reply in replies)
        return (
            RunRecord.decode(record),
            {decode_slot(i): NodeRecord.decode(v) for i, v in nodes.items() if v is not None},
            {decode_slot(i): json.loads(v) for i, v in errors.items() if v is not None},
        )

    def results(self, run_id: str, indexes: Sequence[Slot] | None = None) -> dict[Slot, Any]:
        with converted_errors(f"read results of run {run_id}"):
            if indexes is None:
                raw = self.client.hgetall(self.keys.results(run_id))
                return {decode_slot(i): result_loads(v) for i, v in raw.items()}
            if not indexes:
                return {}
            values = self.client.hmget(self.keys.results(run_id), list(indexes))
        return {i: result_loads(v) for i, v in zip(indexes, values, strict=True) if v is not None}

    def events(self, run_id: str, after: int = 0, block_ms: int | None = None) -> tuple[int, list[Event]]:
        """Transitions logged after offset ``after``: returns (next offset, events).

        With ``block_ms``, waits up to that long for at least one new event (polling every 50 ms).
        Offsets are stable across the log's trimming; pass the returned offset to the next call.
        """
        deadline = time.monotonic() + (block_ms or 0) / 1000
        while True:
            base, data = self._events_after(run_id, after)
            complete = data[: data.rfind("\n") + 1]
            if complete or time.monotonic() >= deadline:
                return max(after, base) + len(complete), [Event.parse(line) for line in complete.splitlines()]
            time.sleep(0.05)

    def _events_after(self, run_id: str, after: int) -> tuple[int, str]:
        """(bytes trimmed off the log's head, the log from offset ``after`` on). Reads only the new bytes
        (GETRANGE), so a follower polling a long log that did not grow costs two small replies."""
        k = self.keys
        with converted_errors(f"read events of run {run_id}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(k.run(run_id), "ev_base")
            pipe.strlen(k.events(run_id))
            base_raw, length = pipe.execute()
            base = int(base_raw or 0)
            while base + length > after:
                pipe = self.client.pipeline(transaction=True)  # MULTI: the range and the base agree
                pipe.getrange(k.events(run_id), max(0, after - base), -1)
                pipe.hget(k.run(run_id), "ev_base")
                data, now_raw = pipe.execute()
                if int(now_raw or 0) == base:
                    return base, data or ""
                base = int(now_raw or 0)  # trimmed meanwhile: read again from the new head
        return base, ""

    def run_ids(self, limit: int, offset: int = 0) -> list[str]:
        with converted_errors("list runs"):
            return list(self.client.zrevrange(self.keys.index, offset, offset + limit - 1))

    def records(self, run_ids: Sequence[str]) -> list[RunRecord | None]:
        """Run records in ``run_ids`` order; None for a run that expired."""
        with converted_errors("list runs"):
            pipe = self.client.pipeline(transaction=False)
            for run_id in run_ids:
                pipe.hgetall(self.keys.run(run_id))
            return [RunRecord.decode(h) if h else None for h in pipe.execute()]

    def forget(self, run_ids: Sequence[str]) -> None:
        """Drop expired runs from the index."""
        if run_ids:
            with converted_errors("prune the run index"):
                self.client.zrem(self.keys.index, *run_ids)

    def plan_in_use(self, digest: str, since_ms: int, besides: str) -> bool:
        """Whether a run other than ``besides``, created since ``since_ms`` (the run index's score), runs
        the plan ``digest``: read on the failure path of a submit before it deletes a plan it created."""
        with converted_errors("read the runs of a plan"):
            others = [i for i in self.client.zrangebyscore(self.keys.index, since_ms, "+inf") if i != besides]
            if not others:
                return False
            pipe = self.client.pipeline(transaction=False)
            for other in others:
                pipe.hget(self.keys.run(other), "plan")
            return digest in pipe.execute()

    def delete_run(self, run_id: str, plan_digest: str | None = None) -> None:
        """Delete every key of the run and its entries in the index, the gate and the live set.

        ``plan_digest``: also delete that plan. Only a submit whose publish failed passes it, and only
        when its own :meth:`create_run` created the plan: other runs of the definition share the key."""
        with converted_errors(f"delete run {run_id}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(*self.keys.run_keys(run_id))
            pipe.zrem(self.keys.index, run_id)
            pipe.hdel(self.keys.gate, run_id)
            pipe.srem(self.keys.live, run_id)
            if plan_digest is not None:
                pipe.delete(self.keys.plan(plan_digest))
            pipe.execute()

    # -- worker gate ------------------------------------------------------------------------------------

    def set_gate(self, run_id: str, status: RunStatus, epoch: int) -> None:
        """Tell every worker's message filter about a run's new status (HSET for resyncs + PUBLISH)."""
        entry = GateEntry.of(status, epoch, int(time.time()) + self.settings.run_ttl)
        with converted_errors("update the worker gate"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self.keys.gate, run_id, entry.encode())
            pipe.publish(self.keys.gate_channel, entry.message(run_id))
            pipe.execute()

    def gate_entries(self) -> dict[str, GateEntry]:
        with converted_errors("read the worker gate"):
            return {run_id: GateEntry.decode(e) for run_id, e in self.client.hgetall(self.keys.gate).items()}

    def drop_gate_entries(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            with converted_errors("prune the worker gate"):
                self.client.hdel(self.keys.gate, *run_ids)

    def subscribe_gate(self) -> Any:
        """A pub/sub subscribed to gate changes (``GateEntry.from_message`` reads its messages)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.keys.gate_channel)
        return pubsub

    def subscribe_done(self, run_id: str) -> Any:
        """A pub/sub subscribed to the run's completion message (published once, when it ends)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.keys.done_channel(run_id))
        return pubsub

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


# -- what the Lua scripts reply (each script's header documents its reply) --------------------------------
