"""The reconciler: finds and repairs what no hook will report, so that no run stays stuck.

One instance runs inside the workers (elected: a lease key renewed every heartbeat; on by default), and
``wfcelery sweep`` runs one sweep by hand. Every ``wfcelery_heartbeat`` seconds the elected instance reads
the heartbeats of the workers that beat (``<prefix>:workers``: one SMEMBERS, one MGET, however many runs are
live); it sweeps every ``wfcelery_sweep_interval`` seconds, and at once when a worker is judged gone or
restarted under its name -- so a dead worker's nodes wait seconds, not a sweep period, without reading
every live run every few seconds. A sweep reads every live run (``<prefix>:live``) and:

* a node RUNNING on a worker that is gone -- its last heartbeat (``<prefix>:worker:<hostname>``, written
  every ``wfcelery_heartbeat`` seconds with Redis's clock) too old or missing (heartbeat.py judges), or a
  heartbeat from a worker that booted after the node started (restarted under the same name), or a live
  worker whose heartbeat has not listed the node's task for three beats (its pool process died) -- is
  QUEUED again under a new epoch and re-published (repair.lua): its original message, if the broker ever
  gives it back, is stale and dropped, and a late report from the original is ignored. After
  ``wfcelery_quarantine_after`` deliveries that never finished, the node FAILS instead ("killed 3
  workers"), so one bad message cannot starve a queue;
* a node RUNNING past its time limit plus ``wfcelery_time_limit_grace`` with no report fails with
  ``TimeLimitExceeded`` (after its retries);
* a node whose message a worker dropped as unregistered (``task_unknown``) or malformed
  (``task_rejected``) fails after ``wfcelery_unknown_grace`` seconds, naming the worker and the task, unless
  another worker took it meanwhile;
* a node QUEUED whose message the broker shows is nowhere (``wfcelery_lost_message_after``), or QUEUED at
  the same epoch for ``wfcelery_queued_timeout`` seconds, is re-published under a new epoch (queued.py);
* a RUNNING run whose nodes are all terminal ends;
* a run its submit never confirmed (the client gave up on a write that landed late) and that never
  started is never re-sent, and is cancelled once its deadline (``Settings.unconfirmed_bound`` after it
  was written) has passed;
* a keyed run's key gets its full TTL again (a run may live longer than ``wfcelery_run_ttl``; a worker
  that ended a run may have died before setting its key's TTL).
* a run past its deadline that the timer loop did not fail is failed (ops/deadlines.py), and a QUEUED run
  whose admission a crash interrupted is queued again or started (ops/admission.py);
* a node WAITING for a pool that its pool does not list (its parker died between two scripts) is listed
  again (``ops/pool_flow.py``; the pool loop's audit gives back the slots no report will);
* what nodes with no task need beside their transitions: a timer, a child run started or settled, a
  child run whose parent no longer waits on it cancelled (``ops/sweep.py``).

Judging a worker gone needs care after a tracker outage, when every beat is old: heartbeat.py's
:class:`~wfcelery.worker.heartbeat.Liveness` judges only while this reconciler's own Redis calls have
succeeded for a beat and a second. With the defaults (heartbeat 2 s) a worker is judged gone once its last
beat is 12 s old, whichever worker holds the lease and since when.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from wfcelery.errors import RunNotFound, TrackerUnavailable
from wfcelery.ops.admission import repair_queued
from wfcelery.ops.deadlines import check_deadline
from wfcelery.ops.pool_flow import sweep_pool_waits
from wfcelery.ops.sweep import Seen, sweep_waits
from wfcelery.tracker.keys import Slot, run_of, split_slot, task_id
from wfcelery.tracker.outcomes import FailMode, RepairAction
from wfcelery.tracker.records import DroppedMark, NodeRecord, RunRecord, WorkerBeat
from wfcelery.tracker.states import NodeStatus, RunStatus
from wfcelery.worker.heartbeat import HEARTBEAT_BEATS, Liveness
from wfcelery.worker.queued import QueuedChecks, node_name

if TYPE_CHECKING:
    from wfcelery.messaging.dispatch import Dispatcher
    from wfcelery.plan.compiler import Plan, PlanCache
    from wfcelery.tracker.outcomes import Finish
    from wfcelery.tracker.store import Tracker
    from wfcelery.worker.base import Failed
    from wfcelery.worker.outage import Outage

logger = logging.getLogger("wfcelery.reconciler")


@dataclass(frozen=True)
class Repair:
    """One thing a sweep did: ``action`` is requeued, failed, revoked, finished or cancelled."""

    run_id: str
    node: str | None
    action: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.run_id} {self.node}" if self.node else self.run_id
        return f"{where}: {self.action} ({self.reason})"


class Repairs(Protocol):
    """What the reconciler repairs through: the worker side (``worker.WorkerSide``), which publishes
    and reports. A protocol, so this module does not import the worker side that starts it."""

    @property
    def app(self) -> Any: ...
    @property
    def tracker(self) -> Tracker: ...
    @property
    def plans(self) -> PlanCache: ...
    @property
    def outage(self) -> Outage: ...
    @property
    def dispatch(self) -> Dispatcher: ...

    def node_failed(
        self,
        parsed: tuple[str, Slot, int],
        digest: str | None,
        error: dict[str, Any],
        mode: FailMode,
        attempt: int = 0,
    ) -> Failed: ...
    def republish(self, run_id: str, slot: Slot, epoch: int, countdown: float | None = None) -> None: ...
    def quarantine(self, run_id: str, slot: Slot, epoch: int, lost: int, attempt: int = 0) -> None: ...
    def ended(self, plan: Plan, run_id: str, finish: Finish) -> None: ...


class Reconciler:
    """Sweeps live runs and repairs them through the worker side (which publishes and reports)."""

    def __init__(self, side: Repairs, hostname: str, patient: bool = True) -> None:
        self.side = side
        self.tracker = side.tracker
        self.settings = side.tracker.settings
        self.hostname = hostname
        self.patient = patient  # in workers: judge heartbeats only while Redis answers steadily
        self.liveness = Liveness(self.settings.heartbeat, patient)
        self._boots: dict[str, int] = {}  # each watched worker's boot (its heartbeat's boot_ms), last seen
        self._inactive_since: dict[str, float] = {}
        self.queued = QueuedChecks(side.app, self.settings)
        self.restarted: list[str] = []
        self._gone: set[str] = set()  # judged gone this tick: their heartbeat key lives on a while
        self._waits: Seen = {}  # nodes with no task a sweep found suspicious (ops/sweep.py)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the elected loop ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wfcelery-reconciler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        """Every tick (a heartbeat): take or keep the lease (it lives three ticks); the holder checks the
        workers' heartbeats, and sweeps when a sweep is due (one sweep interval after the worker started,
        then every interval; at once for a worker taking over a lapsed lease), a worker is gone or one
        restarted under its name."""
        tick = min(t for t in (self.settings.heartbeat, self.settings.sweep_interval) if t > 0)
        next_sweep = time.monotonic() + self.settings.sweep_interval
        held = False
        while not self._stop.wait(tick):
            try:
                elected = self.tracker.elect(self.hostname, tick * HEARTBEAT_BEATS)
                self.liveness.reached()  # holder or not: Redis answers this reconciler
                if not elected:
                    held = False
                    self.liveness.unwatched()
                    continue
                if not held:  # a lease taken over: its holder may have died with repairs to make
                    held, next_sweep = True, time.monotonic()
                gone = self.gone_workers()
                self._gone = set(gone)
                if gone or self.restarted or time.monotonic() >= next_sweep:
                    for repair in self.sweep(self._lease_keeper(tick)):
                        logger.warning("wfcelery reconciler: %s", repair)
                    next_sweep = time.monotonic() + self.settings.sweep_interval
                    self.tracker.forget_workers(gone)  # their nodes are repaired: stop watching them
            except Exception as e:
                self.liveness.lost()  # what we saw of heartbeats during an outage proves nothing
                if isinstance(e, TrackerUnavailable):
                    self.side.outage.down(e)
                else:
                    logger.warning("wfcelery reconciler: sweep failed: %s", e)

    def _lease_keeper(self, tick: float) -> Callable[[], bool]:
        renewed = time.monotonic()

        def keep() -> bool:
            nonlocal renewed
            if self._stop.is_set():
                return False
            if time.monotonic() - renewed < tick:
                return True
            renewed = time.monotonic()
            return self.tracker.elect(self.hostname, tick * 3)

        return keep

    def gone_workers(self) -> list[str]:
        """Workers on the watch list judged gone from their heartbeats (``Liveness.silent``): two Redis
        calls, whatever the number of live runs. Workers whose heartbeat carries a boot other than the
        one last seen (restarted under the same name: their heartbeat never lapses) are left in
        :attr:`restarted`, for a sweep now."""
        now_ms, values = self.tracker.watched_heartbeats()
        gone: list[str] = []
        self.restarted = []
        for host, value in values.items():
            beat = WorkerBeat.decode(value) if value else None
            if beat is not None and self._boots.setdefault(host, beat.boot_ms) != beat.boot_ms:
                self.restarted.append(host)
                self._boots[host] = beat.boot_ms
            if self.liveness.silent(host, beat, now_ms) is not None:
                gone.append(host)
                self._boots.pop(host, None)
        return gone

    # -- one sweep -----------------------------------------------------------------------------------

    def sweep(self, keep_lease: Callable[[], bool] | None = None) -> list[Repair]:
        """One pass over every live run. ``keep_lease`` (the elected loop's) is called between runs and
        renews the lease once a tick has passed, so a sweep longer than the lease's life does not let
        another worker start a second, overlapping one; the sweep stops if the lease was lost."""
        now_ms = self.tracker.server_ms()
        repairs: list[Repair] = []
        ended: list[str] = []
        for run_id in self.tracker.live_runs():
            if keep_lease is not None and not keep_lease():
                break
            try:
                repairs += self.sweep_run(run_id, now_ms, ended)
            except RunNotFound:
                ended.append(run_id)
        else:  # every run read: look for the messages of the nodes QUEUED long enough
            repairs += self.queued.lost_messages(self._live_workers, self._requeue)
        self.tracker.unwatch(ended)
        return repairs

    def _live_workers(self) -> list[str]:
        """The workers whose answer the lost-message check needs: those that beat, less those judged gone
        this tick (their heartbeat key outlives the judgement; a dead one would leave every id undecided)."""
        _, beats = self.tracker.watched_heartbeats()
        return [host for host, value in beats.items() if value and host not in self._gone]

    def sweep_run(self, run_id: str, now_ms: int, ended: list[str]) -> list[Repair]:
        record, nodes, _ = self.tracker.read_run(run_id)
        if record.run_key:  # the key lives as long as its run: past a run TTL while it runs, and once ended
            self.tracker.keep_key(record.run_key, run_id)
        if record.unconfirmed_ms is not None and record.started_ms is None and not record.status.finished:
            return self._unconfirmed(run_id, record, now_ms)
        if record.deadline_ms is not None or record.status is RunStatus.QUEUED:
            limited = self._run_limits(run_id, record, now_ms)
            if limited is not None:
                return limited
        running = {i: n for i, n in nodes.items() if n.code == NodeStatus.RUNNING.code}
        if record.status.finished and not running:
            ended.append(run_id)
            # the history index: mends an entry lost to a crash between the run's end and its indexing
            self.tracker.index_ended(run_id, record.status.value, record.created_ms)
            return []
        plan = self.side.plans.get(record.plan)
        # A mapped node is RUNNING while its instances run: it has no worker of its own (they do)
        running = {i: n for i, n in running.items() if not _map_parent(plan, i)}
        repairs: list[Repair] = []
        hosts = sorted({record.workers.get(n.worker, "") for n in running.values()} - {""})
        beats = {h: WorkerBeat.decode(v) if v else None for h, v in self.tracker.heartbeats(hosts).items()}
        for index, node in sorted(running.items(), key=lambda item: _order(item[0])):
            host = record.workers.get(node.worker, "")
            started_ms = record.created_ms + (node.started_ms or 0)
            beat = beats.get(host)
            why = self.liveness.restarted(host, beat, started_ms) or self.liveness.silent(host, beat, now_ms)
            if why is None and beat is not None:
                why = self._not_running(host, beat, task_id(run_id, index, node.epoch), now_ms - started_ms)
            name = node_name(plan, index)
            if why:
                repairs += self._requeue(run_id, index, name, node, why)
                continue
            limit = plan.nodes[split_slot(index)[0]].options.get("time_limit")
            if limit and now_ms - started_ms > (float(limit) + self.settings.time_limit_grace) * 1000:
                why = (
                    f"RUNNING past its time limit of {limit} s (+{self.settings.time_limit_grace:g} s grace)"
                )
                error = {"type": "TimeLimitExceeded", "message": why, "traceback": ""}
                self.side.node_failed(
                    (run_id, index, node.epoch), plan.digest, error, FailMode.FAILED, node.attempts
                )
                repairs.append(Repair(run_id, name, "failed", why))
        queued = {i for i, n in nodes.items() if n.code == NodeStatus.QUEUED.code}
        if queued and record.status.value == "RUNNING":
            repairs += self.queued.run_queued(
                run_id, record, plan, {i: nodes[i] for i in queued}, self._requeue
            )
        if queued:
            for index, raw in self.tracker.dropped_marks(run_id).items():
                mark = DroppedMark.decode(raw)
                if index not in queued or nodes[index].epoch != mark.epoch:
                    continue
                if now_ms - mark.at_ms < self.settings.unknown_grace * 1000:
                    continue
                error = mark.error()
                self.side.node_failed(
                    (run_id, index, mark.epoch), plan.digest, error, FailMode.QUARANTINED, 0
                )
                repairs.append(Repair(run_id, node_name(plan, index), "failed", error["message"]))
        waits = sweep_waits(self.tracker, self.side.dispatch, run_id, record, nodes, self._waits)
        repairs += [Repair(run_id, name, action, why) for name, action, why in waits]
        pooled = sweep_pool_waits(self.tracker, self.side.dispatch, run_id, record, nodes, plan)
        repairs += [Repair(run_id, name, action, why) for name, action, why in pooled]
        if record.done >= record.total and record.status.value == "RUNNING":
            out = self.tracker.repair(run_id, "finish")
            if out.finish:
                self.side.ended(plan, run_id, out.finish)
                repairs.append(Repair(run_id, None, "finished", f"every node was done: {out.finish.status}"))
        return repairs

    def _run_limits(self, run_id: str, record: RunRecord, now_ms: int) -> list[Repair] | None:
        """A run past its deadline is failed; a QUEUED run's admission is repaired (ops/admission.py).
        Returns the repairs when the run needs nothing more of this sweep, else None."""
        why = check_deadline(self.tracker, self.side.dispatch, run_id, record, now_ms)
        if why is not None:
            return [Repair(run_id, None, "failed", why)]
        if record.status is not RunStatus.QUEUED:
            return None
        for other, finish in repair_queued(self.tracker, self.side.dispatch, run_id, record):
            self.side.ended(self.side.plans.get(self.tracker.run_record(other).plan), other, finish)
        return []

    def _unconfirmed(self, run_id: str, record: RunRecord, now_ms: int) -> list[Repair]:
        """A run whose submit has not confirmed it and that never started: its client may have told its
        caller nothing was submitted, so nothing of it is ever re-sent; past its deadline it is cancelled."""
        if record.unconfirmed_ms is None or now_ms < record.unconfirmed_ms:
            return []
        out = self.tracker.void_run(run_id)
        if out.finish is None:
            return []
        self.side.ended(self.side.plans.get(record.plan), run_id, out.finish)
        return [Repair(run_id, None, "cancelled", "its submit never completed, and it never started")]

    def _not_running(self, host: str, beat: WorkerBeat, tid: str, running_ms: int) -> str | None:
        """Why a node RUNNING on a live worker is not running there (its pool process died and Celery's
        requeued message went to a worker that refused it as a copy), or None."""
        ttl = self.settings.heartbeat * HEARTBEAT_BEATS
        if tid in beat.active or running_ms < ttl * 1000 or self._inline_here(tid, beat):
            self._inactive_since.pop(tid, None)
            return None
        first = self._inactive_since.setdefault(tid, time.monotonic())
        if self.patient and time.monotonic() - first < ttl:
            return None
        self._inactive_since.pop(tid, None)
        return f"not running on worker {host} any more, never reported (pool process died? report lost?)"

    def _inline_here(self, tid: str, beat: WorkerBeat) -> bool:
        """With inline continuation on, a child runs under its parent's request, which is what the
        heartbeat lists: a task of the same run active on that worker may be running this node."""
        if not self.settings.inline_depth:
            return False
        run_id = run_of(tid)
        return any(run_of(active) == run_id for active in beat.active)

    def _requeue(
        self,
        run_id: str,
        index: Slot,
        name: str,
        node: NodeRecord,
        why: str,
        resent: set[tuple[str, Slot, int]] | None = None,
    ) -> list[Repair]:
        """Queue the node again under a new epoch and re-publish it (``resent`` records that epoch once
        the message went out), or settle / quarantine it as the repair script decides."""
        limit = self.settings.quarantine_after
        # The node's message of the old epoch may still be somewhere: from here on every start of the run
        # asks the tracker, which refuses a stale epoch (worker/gate.py).
        self.tracker.fence_gate(run_id)
        out = self.tracker.repair(run_id, "requeue", index, node.encode(), limit)
        if out.action is RepairAction.REQUEUE:
            self.side.republish(run_id, index, out.epoch)
            if resent is not None:
                resent.add((run_id, index, out.epoch))
            return [Repair(run_id, name, "requeued", why)]
        if out.action is RepairAction.REVOKED:
            return [
                Repair(run_id, name, "revoked", f"{why}; the run is not running: resume / retry re-plan it")
            ]
        if out.action is RepairAction.QUARANTINE:
            self.side.quarantine(run_id, index, out.epoch, out.lost, node.attempts)
            return [Repair(run_id, name, "failed", f"{why}; killed {out.lost} workers")]
        return []


def _order(slot: Slot) -> tuple[int, int]:
    index, instance = split_slot(slot)
    return index, -1 if instance is None else instance


def _map_parent(plan: Any, slot: Slot) -> bool:
    index, instance = split_slot(slot)
    return instance is None and plan.nodes[index].map is not None
