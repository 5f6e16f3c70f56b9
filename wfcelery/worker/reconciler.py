"""The reconciler: finds and repairs what no hook will report, so that no run stays stuck.

One instance runs inside the workers (elected: a lease key renewed every heartbeat; on by default), and
``wfcelery sweep`` runs one sweep by hand. Every ``wfcelery_heartbeat`` seconds the elected instance reads
the heartbeats of the workers that beat (``<prefix>:workers``: one SMEMBERS, one MGET, however many runs are
live); it sweeps every ``wfcelery_sweep_interval`` seconds, and at once when a worker's heartbeat has been
missing for a whole TTL -- so a dead worker's nodes wait seconds, not a sweep period, without reading every
live run every few seconds. A sweep reads every live run (``<prefix>:live``) and:

* a node RUNNING on a worker that is gone -- no heartbeat (``<prefix>:worker:<hostname>``, refreshed every
  ``wfcelery_heartbeat`` seconds with a TTL of three beats), or a heartbeat from a worker that booted after
  the node started (restarted under the same name), or a live worker whose heartbeat has not listed the
  node's task for three beats (its pool process died) -- is QUEUED again under a new epoch and re-published
  (repair.lua): its original message, if the broker ever gives it back, is stale and dropped, and a late
  report from the original is ignored. After ``wfcelery_quarantine_after`` deliveries that never finished,
  the node FAILS instead ("killed 3 workers"), so one bad message cannot starve a queue;
* a node RUNNING past its time limit plus ``wfcelery_time_limit_grace`` with no report fails with
  ``TimeLimitExceeded`` (after its retries);
* a node whose message a worker dropped as unregistered (``task_unknown``) or malformed
  (``task_rejected``) fails after ``wfcelery_unknown_grace`` seconds, naming the worker and the task, unless
  another worker took it meanwhile;
* a node QUEUED at the same epoch for ``wfcelery_queued_timeout`` seconds is re-published under a new epoch,
  once per epoch (its message may be lost; a node merely waiting in a backlog goes to the back once);
* a RUNNING run whose nodes are all terminal ends;
* what nodes with no task need beside their transitions: a timer, a child run started or settled, a
  child run whose parent no longer waits on it cancelled (``ops/sweep.py``).

Judging a worker gone needs care after a tracker outage: every heartbeat may have expired while Redis was
away. The in-worker reconciler therefore only acts on a heartbeat it has itself seen missing for a whole
TTL, on consecutive checks that reached Redis (a live worker beats again within one interval). With the
defaults (heartbeat 2 s, TTL 6 s) a live worker is judged gone only after ~12 s without a beat -- longer
than a beat stuck on a slow Redis (``wfcelery_redis_timeout`` 5 s, retried 1 s later) can take.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from celery.worker import state as worker_state

from wfcelery.errors import RunNotFound, TrackerUnavailable
from wfcelery.ops.sweep import Seen, sweep_waits
from wfcelery.tracker.keys import Slot, parse_task_id, run_of, split_slot, task_id
from wfcelery.tracker.outcomes import FailAction, FailMode, RepairAction
from wfcelery.tracker.records import DroppedMark, NodeRecord, WorkerBeat
from wfcelery.tracker.states import NodeStatus

if TYPE_CHECKING:
    from wfcelery.messaging.dispatch import Dispatcher
    from wfcelery.plan.compiler import Plan, PlanCache
    from wfcelery.tracker.outcomes import Finish
    from wfcelery.tracker.store import Tracker
    from wfcelery.worker.outage import Outage

logger = logging.getLogger("wfcelery.reconciler")

#: A heartbeat lives this many beats.
HEARTBEAT_BEATS = 3


@dataclass(frozen=True)
class Repair:
    """One thing a sweep did: ``action`` is requeued, failed, revoked or finished."""

    run_id: str
    node: str | None
    action: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.run_id} {self.node}" if self.node else self.run_id
        return f"{where}: {self.action} ({self.reason})"


class Heartbeat:
    """Keeps this worker's heartbeat alive from a daemon thread in its main process."""

    def __init__(
        self, tracker: Tracker, hostname: str, interval: float, outage: Outage | None = None
    ) -> None:
        self.tracker = tracker
        self.outage = outage
        self.hostname = hostname
        self.interval = interval
        self.boot_ms: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def beat(self) -> None:
        if self.boot_ms is None:
            self.boot_ms = self.tracker.server_ms()
        active = frozenset(r.id for r in list(worker_state.active_requests) if parse_task_id(r.id or ""))
        value = WorkerBeat(self.boot_ms, active).encode()
        self.tracker.beat(self.hostname, value, self.interval * HEARTBEAT_BEATS)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="wfcelery-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
                wait = self.interval
                if self.outage is not None:
                    self.outage.up()
            except TrackerUnavailable as e:  # the outage's one WARNING says it, not one line a second
                if self.outage is not None:
                    self.outage.down(e)
                else:
                    logger.warning("wfcelery heartbeat: %s", e)
                wait = min(1.0, self.interval)  # beat again as soon as the tracker is back
            except Exception as e:
                logger.warning("wfcelery heartbeat: %s", e)
                wait = min(1.0, self.interval)  # beat again as soon as the tracker is back
            self._stop.wait(wait)


class Repairs(Protocol):
    """What the reconciler repairs through: the worker side (``worker.WorkerSide``), which publishes
    and reports. A protocol, so this module does not import the worker side that starts it."""

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
    ) -> FailAction: ...
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
        self.patient = patient  # in workers: act on a missing heartbeat only once seen missing for a TTL
        self._missing_since: dict[str, float] = {}
        self._boots: dict[str, int] = {}  # each watched worker's boot (its heartbeat's boot_ms), last seen
        self._inactive_since: dict[str, float] = {}
        self._queued_since: dict[tuple[str, Slot, int], float] = {}
        self._queued_requeued: set[tuple[str, Slot, int]] = set()  # (run, node, epoch) this loop re-sent
        self.restarted: list[str] = []
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
        then every interval; at once for a worker taking over a lapsed lease) or a worker is gone."""
        tick = min(t for t in (self.settings.heartbeat, self.settings.sweep_interval) if t > 0)
        next_sweep = time.monotonic() + self.settings.sweep_interval
        held = False
        while not self._stop.wait(tick):
            try:
                if not self.tracker.elect(self.hostname, tick * 3):
                    held = False
                    self._missing_since.clear()  # observations from before a lease are not consecutive
                    continue
                if not held:  # a lease taken over: its holder may have died with repairs to make
                    held, next_sweep = True, time.monotonic()
                gone = self.gone_workers()
                if gone or self.restarted or time.monotonic() >= next_sweep:
                    for repair in self.sweep(self._lease_keeper(tick)):
                        logger.warning("wfcelery reconciler: %s", repair)
                    next_sweep = time.monotonic() + self.settings.sweep_interval
                    self.tracker.forget_workers(gone)  # their nodes are repaired: stop watching them
            except Exception as e:
                self._missing_since.clear()  # what we saw of heartbeats during an outage proves nothing
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
        """Workers on the watch list whose heartbeat this reconciler has seen missing for a whole TTL
        (patient) or now (not patient): two Redis calls, whatever the number of live runs. Workers whose
        heartbeat carries a boot other than the one last seen (restarted under the same name: their
        heartbeat never lapses) are left in :attr:`restarted`, for a sweep now."""
        beats = self.tracker.heartbeats(self.tracker.workers())
        gone: list[str] = []
        self.restarted = []
        for host, value in beats.items():
            if value is not None:
                self._missing_since.pop(host, None)
                boot = WorkerBeat.decode(value).boot_ms
                if self._boots.setdefault(host, boot) != boot:
                    self.restarted.append(host)
                    self._boots[host] = boot
            elif self._gone(host, None, 0) is not None:
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
        self.tracker.unwatch(ended)
        return repairs

    def sweep_run(self, run_id: str, now_ms: int, ended: list[str]) -> list[Repair]:
        record, nodes, _ = self.tracker.read_run(run_id)
        running = {i: n for i, n in nodes.items() if n.code == NodeStatus.RUNNING.code}
        if record.status.finished and not running:
            ended.append(run_id)
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
            why = self._gone(host, beat.boot_ms if beat else None, started_ms)
            if why is None and beat is not None:
                why = self._not_running(host, beat, task_id(run_id, index, node.epoch), now_ms - started_ms)
            name = _name(plan, index)
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
        if queued and record.status.value == "RUNNING" and self.settings.queued_timeout > 0:
            repairs += self._stale_queued(run_id, plan, {i: nodes[i] for i in queued})
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
                repairs.append(Repair(run_id, _name(plan, index), "failed", error["message"]))
        waits = sweep_waits(self.tracker, self.side.dispatch, run_id, record, nodes, self._waits)
        repairs += [Repair(run_id, name, action, why) for name, action, why in waits]
        if record.done >= record.total and record.status.value == "RUNNING":
            out = self.tracker.repair(run_id, "finish")
            if out.finish:
                self.side.ended(plan, run_id, out.finish)
                repairs.append(Repair(run_id, None, "finished", f"every node was done: {out.finish.status}"))
        return repairs

    def _stale_queued(self, run_id: str, plan: Any, queued: dict[Slot, NodeRecord]) -> list[Repair]:
        """QUEUED nodes this reconciler has seen at the same epoch for ``wfcelery_queued_timeout``: their
        message may be lost (a worker died between recording a release and publishing it)."""
        now, repairs = time.monotonic(), []
        for index, node in queued.items():
            seen = (run_id, index, node.epoch)
            first = self._queued_since.setdefault(seen, now)
            if now - first < self.settings.queued_timeout or seen in self._queued_requeued:
                continue  # this epoch is our own re-send: a node waiting in a backlog longer than the timeout
                # is not sent to the back of it again and again (its previous message dropped as stale)
            timeout = self.settings.queued_timeout
            why = f"QUEUED {timeout:g} s (wfcelery_queued_timeout): its message may be lost"
            repairs += self._requeue(run_id, index, _name(plan, index), node, why, self._queued_requeued)
        if len(self._queued_since) > 100_000:
            self._queued_since.clear()
        if len(self._queued_requeued) > 100_000:
            self._queued_requeued.clear()
        return repairs

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

    def _gone(self, host: str, boot_ms: int | None, started_ms: int) -> str | None:
        """Why the worker that started a node at ``started_ms`` is gone, or None while it lives."""
        if boot_ms is not None:
            self._missing_since.pop(host, None)
            if boot_ms > started_ms:
                return f"worker {host} restarted since the node started"
            return None
        if self.patient:
            first = self._missing_since.setdefault(host, time.monotonic())
            if time.monotonic() - first < self.settings.heartbeat * HEARTBEAT_BEATS:
                return None
        return f"worker {host or '?'} is gone (no heartbeat)"

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


def _name(plan: Any, slot: Slot) -> str:
    """A node's name, or ``name[i]`` for instance i of a mapped node."""
    index, instance = split_slot(slot)
    name: str = plan.nodes[index].name
    return name if instance is None else f"{name}[{instance}]"


def _map_parent(plan: Any, slot: Slot) -> bool:
    index, instance = split_slot(slot)
    return instance is None and plan.nodes[index].map is not None
