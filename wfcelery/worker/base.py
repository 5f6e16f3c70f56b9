"""What the worker side stands on: the tracker, settings, plan cache, dispatcher, message filter and
outbox of this worker process, the start gate, and re-publishing a node."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from celery import Celery

from wfcelery.errors import TrackerError, TrackerUnavailable
from wfcelery.messaging.dispatch import Dispatcher
from wfcelery.messaging.release import map_elements, publish_released
from wfcelery.ops.pool_flow import gate_one
from wfcelery.ops.submit import ended
from wfcelery.ops.subruns import after_end
from wfcelery.plan.compiler import Plan, PlanCache
from wfcelery.settings import Settings
from wfcelery.tracker.keys import Slot, split_slot
from wfcelery.tracker.outcomes import FailAction, Finish, StartOutcome
from wfcelery.tracker.states import RunStatus
from wfcelery.tracker.store import Tracker
from wfcelery.worker.gate import LocalGate
from wfcelery.worker.message_filter import MessageFilter
from wfcelery.worker.outage import Outage
from wfcelery.worker.outbox import Outbox, with_retry

Parsed = tuple[str, Slot, int]  # (run id, node index or instance slot, epoch) from a wfcelery task id


@dataclass(frozen=True)
class Failed:
    """What recording a node's failure decided: fail.lua's action, and for a tracker-level retry the
    seconds until the node is published again and how many tries it has had since its retries were given."""

    action: FailAction
    countdown: float | None = None
    tries: int = 0


logger = logging.getLogger("wfcelery.worker")


class WorkerBase:
    """wfcelery inside one worker process: its connections and the start gate (see :class:`WorkerSide
    <wfcelery.worker.side.WorkerSide>`)."""

    def __init__(self, app: Celery, tracker: Callable[[], Tracker]) -> None:
        self.app = app
        self._tracker = tracker  # lazy: settings are read on first use, after the app is configured
        self.hostname = ""  # the worker's node name (set by hooks and the bootstep; names the outbox)
        #: starts a success report recorded with it (succeed.lua), by task id, until its hook reads them
        self.starts_reported: dict[str, StartOutcome] = {}

    @cached_property
    def tracker(self) -> Tracker:
        return self._tracker()

    @property
    def settings(self) -> Settings:
        return self.tracker.settings

    @cached_property
    def outage(self) -> Outage:
        """The tracker outage, if any: one WARNING when it starts, one INFO when it ends."""
        return Outage(pending=self._pending)

    def _pending(self) -> int:
        """Reports this worker still keeps in its outbox (0 when it never needed one)."""
        return len(self.outbox) if "outbox" in vars(self) else 0

    @property
    def message_filter(self) -> MessageFilter:
        """This process's filter (a pool child forked from the worker makes its own: threads do not
        survive a fork)."""
        found: MessageFilter = self._made_here("message_filter") or self._remember(
            "message_filter", MessageFilter(self.tracker, self.outage)
        )
        return found

    @property
    def gate(self) -> LocalGate:
        """This process's local start gate (gate.py), on this process's filter."""
        found: LocalGate = self._made_here("gate") or self._remember(
            "gate", LocalGate(self.tracker, self.message_filter)
        )
        return found

    def _made_here(self, name: str) -> Any:
        """The ``name`` object (a filter or gate: they have threads) if this process made one, else None."""
        found = self.__dict__.get(name)
        return found if found is not None and found.pid == os.getpid() else None

    def _remember(self, name: str, made: Any) -> Any:
        self.__dict__[name] = made
        return made

    @cached_property
    def plans(self) -> PlanCache:
        return PlanCache(self.tracker.plan_blob)

    @cached_property
    def dispatch(self) -> Dispatcher:
        return Dispatcher(self.app, celery_results=self.tracker.settings.celery_results)

    def close_gate(self) -> None:
        """Give this process's gate lease back (writing the RUNNING records it owes) and stop its
        filter's thread: a worker or pool child shutting down. Creates neither; a later use makes new ones
        (a test's second in-thread worker)."""
        gate, found = self._made_here("gate"), self._made_here("message_filter")
        self.__dict__.pop("gate", None)
        self.__dict__.pop("message_filter", None)
        if gate is not None:
            gate.close()
        if found is not None:
            found.stop()

    def write_owed_starts(self) -> None:
        """Write the RUNNING records this process's local gate still owes (before a failure report, so a
        failed node shows its worker and start time); a tracker error leaves them to the report."""
        gate = self._made_here("gate")
        if gate is not None:
            try:
                gate.flush()
            except (TrackerError, OSError) as e:
                logger.debug("wfcelery: RUNNING records not written before a failure report (%s)", e)

    def plan_for(self, run_id: str, digest: str | None) -> Plan:
        """The run's plan: ``digest`` comes from the message's ``wf_plan`` header when the hook has it
        (in the pool), else from the run record (main process, e.g. a lost worker process)."""
        try:
            return self.plans.get(digest or self.tracker.run_record(run_id).plan)
        except TrackerError:
            self.tracker.run_record(run_id)  # plans outlive their runs: a missing one means the run is gone
            raise

    def start(self, parsed: Parsed, worker: str) -> StartOutcome:
        """The authoritative start gate: whether the body may run, and its attempt number.

        Strict: when the tracker cannot be reached it retries for ``wfcelery_gate_wait`` seconds, then
        raises :class:`TrackerUnavailable` (the hook gives the message back to the broker; no body runs
        unchecked, so pause holds during an outage and a later resume does not run it twice)."""
        waited = False

        def attempt() -> StartOutcome:
            nonlocal waited
            try:
                return self.tracker.start(parsed[0], parsed[1], parsed[2], worker)
            except TrackerUnavailable as e:
                if not waited:  # one deferred transition, however many tries it takes
                    waited = True
                    self.outage.down(e)
                    self.outage.deferred()
                raise

        verdict: StartOutcome = with_retry(attempt, (TrackerUnavailable,), self.settings.gate_wait)
        self.outage.up()
        return verdict

    @cached_property
    def outbox(self) -> Outbox:
        return Outbox.for_worker(self.settings.outbox_dir, self.hostname or socket.gethostname())

    def ended(self, plan: Plan, run_id: str, finish: Finish) -> None:
        """A transition this worker reported ended the run: keep the plan, close the gate, call back."""
        if finish.status != RunStatus.SUCCEEDED.value:
            self.tracker.set_gate(run_id, RunStatus(finish.status), finish.epoch)
        # the plan must outlive the run's keys: kept in the history index's round trip
        ended(self.tracker, self.dispatch, run_id, finish, plan.name, plan.digest)
        after_end(self.tracker, self.dispatch, run_id, finish, plan)  # its parent run, its child runs

    def republish(
        self, run_id: str, slot: Slot, epoch: int, countdown: float | None = None, retries: int = 0
    ) -> None:
        """Publish node (or instance) ``slot`` again at ``epoch`` with its stored parent results (an
        instance: its element) and the run's params; ``retries``: the message's retry count (a
        tracker-level retry: Flower shows it as Celery's own retries)."""
        record = self.tracker.run_record(run_id)
        plan = self.plans.get(record.plan)
        index, instance = split_slot(slot)
        if not plan.nodes[index].has_task:  # a wait, a sleep, a sub-workflow: armed, not published
            for finish in publish_released(
                self.tracker, self.dispatch, plan, run_id, [(index, epoch)], record.params
            ):
                self.ended(plan, run_id, finish)
            return
        parents = plan.nodes[index].parents
        if instance is None:
            results = self.tracker.results(run_id, parents)
            inputs = [results.get(p) for p in parents]
        else:
            inputs = [map_elements(self.tracker, plan, run_id, index)[instance]]
        if plan.nodes[index].pool is not None and not gate_one(
            self.tracker, self.dispatch, plan, run_id, slot, epoch
        ):
            return  # it waits for its pool now (a node that held its slot keeps it: published)
        items = [(slot, epoch, inputs)]
        self.dispatch.publish(
            plan, run_id, items, record.params, countdown=countdown, resend=True, retries=retries
        )
