"""The Redis side: runs its Lua scripts (loaded once per client) and reads run state.

Every write to a run's state goes through one Lua script in ``lua/``; reads are pipelined so that
``Run.state()`` is one round trip. Redis errors leave this module as :class:`TrackerUnavailable`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

import redis
from kombu.utils.json import loads as result_loads  # results are stored with kombu's JSON (as Celery's)

from .compiler import Plan, plan_from_blob
from .errors import RunNotFound, TrackerError, TrackerUnavailable
from .keys import Keys, task_id
from .settings import Settings
from .states import NodeState, NodeStatus, RunState, RunStatus

logger = logging.getLogger("wfcelery.tracker")

#: Plans kept in memory per process (workers look a plan up on every task).
PLAN_CACHE_SIZE = 512

_SCRIPTS = ("start", "succeed", "fail", "control", "replan")
T = TypeVar("T")


def _load_sources() -> dict[str, str]:
    lua = resources.files("wfcelery") / "lua"
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

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        # Any: redis-py's stubs cannot express decode_responses=True (every reply typed bytes | str)
        self.client: Any = client or redis.Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            health_check_interval=30,
            socket_connect_timeout=settings.redis_timeout or None,
            socket_timeout=settings.redis_timeout or None,
        )
        self.scripts = {name: self.client.register_script(src) for name, src in _SOURCES.items()}
        self._plans: OrderedDict[str, Plan] = OrderedDict()
        self._plans_lock = threading.Lock()

    # -- plans ------------------------------------------------------------------------------------------

    def plan(self, digest: str) -> Plan:
        """The compiled plan with this digest (cached; one GET the first time)."""
        with self._plans_lock:
            plan = self._plans.get(digest)
            if plan is not None:
                self._plans.move_to_end(digest)
                return plan
        with converted_errors("load a workflow plan"):
            blob = self.client.get(self.keys.plan(digest))
        if blob is None:
            raise TrackerError(f"workflow plan {digest} is missing from Redis (expired?)")
        return self.remember(plan_from_blob(blob))

    def remember(self, plan: Plan) -> Plan:
        with self._plans_lock:
            self._plans[plan.digest] = plan
            while len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return plan

    # -- creating runs ----------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        plan: Plan,
        params: dict[str, Any],
        *,
        on_success: dict[str, Any] | None,
        on_failure: dict[str, Any] | None,
    ) -> None:
        """Write the run record, its queued roots and the shared plan, in one round trip."""
        k, ttl = self.keys, self.settings.run_ttl
        created = int(time.time() * 1000)
        record: dict[str, Any] = {
            "name": plan.name,
            "status": RunStatus.RUNNING.value,
            "epoch": 0,
            "total": len(plan.nodes),
            "created": created,
            "plan": plan.digest,
            "params": json.dumps(params),
            "policy": plan.on_failure,
            "ttl": ttl,
            "maxlen": self.settings.events_maxlen,
            "chan": k.done_channel(run_id),
            "done": 0,
        }
        if on_success:
            record["on_success"] = json.dumps(on_success)
        if on_failure:
            record["on_failure"] = json.dumps(on_failure)
        with converted_errors("create the run"):
            pipe = self.client.pipeline(transaction=False)
            pipe.set(k.plan(plan.digest), plan.blob, ex=ttl * 2)
            pipe.hset(k.run(run_id), mapping=record)
            pipe.hset(k.nodes(run_id), mapping={i: "Q|0|0|||" for i in plan.roots})
            pipe.append(k.events(run_id), "".join(f"0 {i} Q 0\n" for i in plan.roots))
            pipe.zadd(k.index, {run_id: created})
            pipe.execute()

    def refresh_plan(self, digest: str) -> None:
        """Keep a plan alive as long as a run that uses it (called on control operations)."""
        with converted_errors("refresh the plan"):
            self.client.expire(self.keys.plan(digest), self.settings.run_ttl * 2)

    # -- transitions (Lua) ------------------------------------------------------------------------------

    def _run_script(self, name: str, run_id: str, args: Sequence[Any]) -> Any:
        with converted_errors(f"record {name} of run {run_id}"):
            return self.scripts[name](keys=self.keys.run_keys(run_id), args=list(args))

    def start(self, run_id: str, index: int, epoch: int, worker: str) -> str:
        return str(self._run_script("start", run_id, [index, epoch, worker]))

    def succeed(
        self, run_id: str, index: int, epoch: int, result_json: str, children: Sequence[tuple[int, int]]
    ) -> list[Any]:
        """``children``: (child index, number of its parents). Returns [finish, epoch, params, released...]."""
        args: list[Any] = [index, epoch, result_json]
        for child, parents in children:
            args += (child, parents)
        return list(self._run_script("succeed", run_id, args))

    def fail(
        self,
        run_id: str,
        index: int,
        epoch: int,
        error: dict[str, Any],
        mode: str,
        retries: int,
        descendants: list[int],
        attempt: int = 0,
    ) -> list[Any]:
        return list(
            self._run_script(
                "fail",
                run_id,
                [index, epoch, json.dumps(error), mode, retries, json.dumps(descendants), attempt],
            )
        )

    def control(self, run_id: str, op: str) -> list[Any]:
        return list(self._run_script("control", run_id, [op]))

    def replan(self, run_id: str, op: str, plan: Plan) -> list[Any]:
        spec = [[n.index, list(n.parents)] for n in plan.nodes]
        return list(self._run_script("replan", run_id, [op, json.dumps(spec)]))

    # -- reading ----------------------------------------------------------------------------------------

    def run_record(self, run_id: str) -> dict[str, str]:
        with converted_errors(f"read run {run_id}"):
            record = self.client.hgetall(self.keys.run(run_id))
        if not record:
            raise RunNotFound(run_id)
        return record

    def read_state(self, run_id: str, queue_of: Callable[[str, str | None], str] | None = None) -> RunState:
        """The whole run in one round trip. ``queue_of(task, queue)`` names each node's real queue."""
        k = self.keys
        with converted_errors(f"read run {run_id}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hgetall(k.run(run_id))
            pipe.hgetall(k.nodes(run_id))
            pipe.hgetall(k.errors(run_id))
            record, nodes, errors = pipe.execute()
        if not record:
            raise RunNotFound(run_id)
        return build_state(run_id, record, nodes, errors, self.plan(record["plan"]), queue_of)

    def results(self, run_id: str, indexes: Sequence[int] | None = None) -> dict[int, Any]:
        with converted_errors(f"read results of run {run_id}"):
            if indexes is None:
                raw = self.client.hgetall(self.keys.results(run_id))
                return {int(i): result_loads(v) for i, v in raw.items()}
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
            with converted_errors(f"read events of run {run_id}"):
                pipe = self.client.pipeline(transaction=False)
                pipe.hget(self.keys.run(run_id), "ev_base")
                pipe.get(self.keys.events(run_id))
                base_raw, log = pipe.execute()
            base = int(base_raw or 0)
            data = (log or "")[max(0, after - base) :]
            complete = data[: data.rfind("\n") + 1]
            if complete or time.monotonic() >= deadline:
                return max(after, base) + len(complete), [Event.parse(line) for line in complete.splitlines()]
            time.sleep(0.05)

    def run_ids(self, limit: int, offset: int = 0) -> list[str]:
        with converted_errors("list runs"):
            return list(self.client.zrevrange(self.keys.index, offset, offset + limit - 1))

    def records(self, run_ids: Sequence[str]) -> list[dict[str, str]]:
        with converted_errors("list runs"):
            pipe = self.client.pipeline(transaction=False)
            for run_id in run_ids:
                pipe.hgetall(self.keys.run(run_id))
            return list(pipe.execute())

    def forget(self, run_ids: Sequence[str]) -> None:
        """Drop expired runs from the index."""
        if run_ids:
            with converted_errors("prune the run index"):
                self.client.zrem(self.keys.index, *run_ids)

    def delete_run(self, run_id: str) -> None:
        with converted_errors(f"delete run {run_id}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(*self.keys.run_keys(run_id))
            pipe.zrem(self.keys.index, run_id)
            pipe.hdel(self.keys.gate, run_id)
            pipe.execute()

    # -- worker gate ------------------------------------------------------------------------------------

    def set_gate(self, run_id: str, status: str, epoch: int) -> None:
        """Tell every worker's in-memory gate about a run's new status (HSET for resyncs + PUBLISH)."""
        entry = f"{status[0]}{epoch}:{int(time.time()) + self.settings.run_ttl}"
        with converted_errors("update the worker gate"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self.keys.gate, run_id, entry)
            pipe.publish(self.keys.gate_channel, f"{run_id} {entry}")
            pipe.execute()

    def gate_entries(self) -> dict[str, str]:
        with converted_errors("read the worker gate"):
            return dict(self.client.hgetall(self.keys.gate))

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


@dataclass(frozen=True)
class Event:
    """One line of a run's event log: ``node`` is a node index, or None for the run itself."""

    at_ms: int  # ms since the run was created
    node: int | None
    status: str  # a node status letter (states.NodeStatus.code) or a run status name
    epoch: int

    @classmethod
    def parse(cls, line: str) -> Event:
        at, node, status, *epoch = line.split(" ")
        return cls(int(at), None if node == "run" else int(node), status, int(epoch[0]) if epoch else 0)


def build_state(
    run_id: str,
    record: dict[str, str],
    nodes: dict[str, str],
    errors: dict[str, str],
    plan: Plan,
    queue_of: Callable[[str, str | None], str] | None = None,
) -> RunState:
    created = int(record["created"])
    workers = {number: field[2:] for field, number in record.items() if field.startswith("w:")}
    states: dict[str, NodeState] = {}
    for node in plan.nodes:
        raw = nodes.get(str(node.index))
        code, epoch, attempts, started, finished, worker = (
            raw.split("|", 5) if raw else ("P", "0", "0", "", "", "")
        )
        status = NodeStatus.from_code(code)
        # the error of the current attempt only: a node running again after a retry shows none
        error = errors.get(str(node.index)) if status in _SHOWS_ERROR else None
        states[node.name] = NodeState(
            name=node.name,
            status=status,
            attempts=int(attempts),
            task_id=task_id(run_id, node.index, int(epoch)),
            queue=queue_of(node.task, node.queue) if queue_of else node.queue,
            worker=workers.get(worker),
            started_at=(created + int(started)) / 1000 if started else None,
            finished_at=(created + int(finished)) / 1000 if finished else None,
            error=json.loads(error) if error else None,
            epoch=int(epoch),
            index=node.index,
        )
    return RunState(
        id=run_id,
        name=record["name"],
        status=RunStatus(record["status"]),
        epoch=int(record["epoch"]),
        created_at=created / 1000,
        started_at=_ms(record.get("started")),
        finished_at=_ms(record.get("finished")),
        paused_at=_ms(record.get("paused_at")),
        policy=record["policy"],
        params=json.loads(record.get("params") or "{}"),
        nodes=states,
    )


_SHOWS_ERROR = frozenset({NodeStatus.RETRYING, NodeStatus.FAILED, NodeStatus.REVOKED})


def _ms(value: str | None) -> float | None:
    return int(value) / 1000 if value else None
