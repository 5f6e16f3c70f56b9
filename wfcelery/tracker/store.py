"""The Redis side: runs its Lua scripts (loaded once per client), turns their replies into typed
outcomes (:mod:`.outcomes`), and reads run state (:mod:`.reads`) and the fleet's (:mod:`.fleet`).

Every write to a run's state goes through one Lua script in ``lua/``; reads are pipelined so that
``Run.state()`` is one round trip. Key names come from ``keys.py``, stored values are encoded and decoded
by ``records.py``. Redis errors leave this module as :class:`TrackerUnavailable` / :class:`TrackerError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from wfcelery.errors import RunNotFound, TrackerError
from wfcelery.tracker.access import Access, AuditEntry
from wfcelery.tracker.base import converted_errors
from wfcelery.tracker.fleet import Fleet
from wfcelery.tracker.history import ENDED_INDEXED, HistoryIndex
from wfcelery.tracker.keys import Slot
from wfcelery.tracker.metering import Metering
from wfcelery.tracker.outcomes import (
    CreateOutcome,
    CreateResult,
    FailMode,
    FailOutcome,
    HaltOutcome,
    RepairOutcome,
    ReplanOutcome,
    StartOutcome,
    SucceedOutcome,
)
from wfcelery.tracker.reads import Reads
from wfcelery.tracker.records import (
    UNCONFIRMED_FIELD,
    NodeRecord,
    canvas_value,
    dropped_field,
    first_events,
    unconfirmed_error,
)
from wfcelery.tracker.runkeys import RunKeys
from wfcelery.tracker.states import NodeStatus, RunStatus


class Tracker(Reads, Fleet, Access, RunKeys, Metering, HistoryIndex):
    """One per Engine (and so per process). Thread-safe: redis-py pools connections."""

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
        unconfirmed_s: float,
    ) -> CreateOutcome:
        """Write the run record (``records.new_run``), its queued roots and the shared plan: one round
        trip (create.lua), refused when the run's tombstone exists (:meth:`settle_run`). The run is
        *unconfirmed* until :meth:`confirm_run`: if it never starts, the reconciler cancels it
        ``unconfirmed_s`` seconds from now and never re-sends it meanwhile.

        On a Redis Cluster the plan, the run index and the live set live in other slots than the run: they
        are written first, in a pipeline of their own (entries of a run that then is not written are
        dropped by the index's and the reconciler's reads). ``plan_created`` says whether this call wrote
        the plan key: runs of one definition share it, so only its creator may delete it again
        (:meth:`delete_run` after a submit that could not publish)."""
        k, ttl = self.keys, self.settings.run_ttl
        queued = NodeRecord(NodeStatus.QUEUED.code, queued_ms=0).encode()  # queued at the run's creation
        nodes = dict.fromkeys((str(i) for i in roots), queued)
        events = first_events(record, roots)
        args: list[Any] = [
            json.dumps({f: str(v) for f, v in record.items()}),
            json.dumps(nodes),
            events,
            int(unconfirmed_s * 1000),
            run_id,
            record["created"],
        ]
        if self.settings.redis_cluster:
            with converted_errors("create the run"):
                pipe = self.client.pipeline(transaction=False)
                pipe.set(k.plan(plan_digest), plan_blob, ex=ttl * 2, nx=True)
                pipe.expire(k.plan(plan_digest), ttl * 2)
                pipe.zadd(k.index, {run_id: record["created"]})
                pipe.zadd(k.runs_of(str(record["name"])), {run_id: record["created"]})
                pipe.sadd(k.live, run_id)
                plan_created = bool(pipe.execute()[0])
            reply = self._run_script("create", run_id, args, [k.void(run_id)], f"create run {run_id}")
            out = CreateOutcome.from_reply(reply)
            return replace(out, plan_created=plan_created)
        extra = [k.void(run_id), k.plan(plan_digest), k.index, k.live, k.runs_of(str(record["name"]))]
        reply = self._run_script("create", run_id, [*args, plan_blob, ttl * 2], extra, f"create run {run_id}")
        return CreateOutcome.from_reply(reply)

    def settle_run(self, run_id: str) -> CreateResult:
        """After a :meth:`create_run` that got no answer: EXISTS (it was written: publish its roots, then
        :meth:`confirm_run`) or VOID (it was not, and its tombstone now makes sure it never will be)."""
        what = f"settle the creation of run {run_id}"
        reply = self._run_script("settle", run_id, [self.settings.run_ttl], [self.keys.void(run_id)], what)
        return CreateResult(reply)

    def confirm_run(
        self, run_id: str, audit: AuditEntry | None = None, audit_maxlen: int = 0
    ) -> RunStatus | None:
        """The submit published the run's roots: the run is no longer unconfirmed (and ``audit``, the
        submit's audit entry, is written in the same round trip). Returns the run's status (CANCELLED: the
        reconciler cancelled it as unconfirmed first, so nothing of it runs; None: gone)."""
        with converted_errors(f"confirm run {run_id}"):
            pipe = self.client.pipeline(transaction=False)
            pipe.hdel(self.keys.run(run_id), UNCONFIRMED_FIELD)
            pipe.hget(self.keys.run(run_id), "status")
            if audit is not None:
                self.queue_audit(pipe, audit, audit_maxlen)
            status = pipe.execute()[1]
        return None if status is None else RunStatus(status)

    def void_run(self, run_id: str) -> RepairOutcome:
        """repair.lua 'void': cancel a run still unconfirmed past its deadline that never started."""
        return self.repair(run_id, "void", json.dumps(unconfirmed_error()))

    def refresh_plan(self, digest: str) -> None:
        """Keep a plan alive as long as a run that uses it (called on control operations)."""
        with converted_errors("refresh the plan"):
            self.client.expire(self.keys.plan(digest), self.settings.run_ttl * 2)

    # -- transitions (Lua) ------------------------------------------------------------------------------

    def start(self, run_id: str, index: Slot, epoch: int, worker: str) -> StartOutcome:
        return StartOutcome.from_reply(self._run_script("start", run_id, [index, epoch, worker]))

    def record_starts(self, starts: Sequence[tuple[str, Slot, int, str, int]]) -> list[StartOutcome]:
        """Record bodies a worker's leased gate already let start (start.lua, mode 'granted'): ``(run id,
        slot, epoch, worker, ms since the body started)`` each, in one pipeline (one call each on a
        Cluster)."""
        rows = [
            (run_id, [slot, epoch, worker, "granted", ago]) for run_id, slot, epoch, worker, ago in starts
        ]
        if self.settings.redis_cluster:  # redis-py sends no script on a cluster pipeline: one call each
            return [StartOutcome.from_reply(self._run_script("start", run_id, args)) for run_id, args in rows]
        with converted_errors("record started nodes"):
            pipe = self.client.pipeline(transaction=False)
            for run_id, args in rows:
                self.scripts["start"](keys=self.script_keys(run_id), args=args, client=pipe)
            return [StartOutcome.from_reply(r) for r in pipe.execute()]

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
        started_ms_ago: int = 0,
        pool_step: tuple[Sequence[str], str] | None = None,
    ) -> SucceedOutcome:
        """``children``: (child index, number of its parents); ``rules``: ``Plan.rule_spec`` (then the
        children are decided by their trigger rules and ``children`` is not needed); ``fetch``: results
        to return (``SucceedOutcome.inputs``) when a child was released (``Plan.fetch``); ``inline``: a
        child that ``worker`` would run itself when it is the only one released (the script then starts
        it: ``SucceedOutcome.inline``); ``started_ms_ago``: when the body started, should the node's start
        not be recorded yet (a leased gate's start: this report records it); ``pool_step``: the pool's keys
        and ``_succeed_pool.lua``'s argument, to give a pooled node's slot back in the same step
        (``SucceedOutcome.pool``; one Redis server only: ``ops.pools.Pools.release_step``)."""
        fetched = ",".join(map(str, fetch))
        args: list[Any] = [
            index,
            epoch,
            result_json,
            rules,
            fetched,
            "" if inline is None else inline,
            worker,
            started_ms_ago,
            pool_step[1] if pool_step else "",
        ]
        if not rules:
            for child, parents in children:
                args += (child, parents)
        extra = pool_step[0] if pool_step else ()
        return SucceedOutcome.from_reply(self._run_script("succeed", run_id, args, extra))

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
        args = [
            index,
            epoch,
            json.dumps(error),
            FailMode(mode).value,
            retries,
            json.dumps(descendants),
            attempt,
            rules,
        ]
        return FailOutcome.from_reply(self._run_script("fail", run_id, args))

    def halt(self, run_id: str, op: str, error: str = "", epoch: int | None = None) -> HaltOutcome:
        """Pause, cancel, or fail at the run's deadline (``op`` 'deadline', ``error``: the run's error as
        JSON); with ``epoch``, only a run still at that epoch (a no-op if it was resumed or retried since).
        Raises :class:`RunNotFound`."""
        reply = self._run_script("halt", run_id, [op, error, "" if epoch is None else str(epoch)])
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

    # -- reading ----------------------------------------------------------------------------------------

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

    def delete_run(
        self,
        run_id: str,
        plan_digest: str | None = None,
        run_key: str | None = None,
        workflow: str | None = None,
    ) -> None:
        """Delete every key of the run and its entries in the indexes (``workflow``: its name, for the
        history's index of it) and the live set; and its ``run_key``, if the run still holds it. Its gate
        entry stays until it expires: messages of the run still queued are dropped by every worker without
        a start (a local gate admits a message only of a run its table does not name, worker/gate.py).

        ``plan_digest``: also delete that plan. Only a submit whose publish failed passes it, and only
        when its own :meth:`create_run` created the plan: other runs of the definition share the key."""
        with converted_errors(f"delete run {run_id}"):
            pipe = self.client.pipeline(transaction=False)
            self.scripts["drop"](keys=self.script_keys(run_id), client=pipe)
            pipe.zrem(self.keys.index, run_id)
            if workflow is not None:
                pipe.zrem(self.keys.runs_of(workflow), run_id)
            for status in ENDED_INDEXED:
                pipe.zrem(self.keys.runs_ended(status), run_id)
            pipe.srem(self.keys.live, run_id)
            if plan_digest is not None:
                pipe.delete(self.keys.plan(plan_digest))
            pipe.execute()
        if run_key is not None:  # after the run: a key left behind names a gone run, which is taken over
            self.release_key(run_key, run_id)

    # -- worker gate ------------------------------------------------------------------------------------


# -- what the Lua scripts reply (each script's header documents its reply) --------------------------------
