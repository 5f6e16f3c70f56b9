"""Engine (one per Celery app): submit, runs, definitions; control comes from :mod:`.control`, the
connections and state reads from :mod:`.base`, :class:`~wfcelery.client.run.Run` from :mod:`.run`.

Control operations act on the tracker first (one atomic Lua call decides), then on Celery (revoke
broadcasts, the workers' gate, publishing re-planned nodes). Each returns the run's new state and is
idempotent; a refusal raises :class:`ControlError` saying why.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from celery import Celery, signature

from wfcelery.client.access import Access
from wfcelery.client.audit import current_actor, record_audit
from wfcelery.client.control import Control
from wfcelery.client.history import History
from wfcelery.client.pools import PoolControl
from wfcelery.client.run import Run, RunSummary
from wfcelery.client.schedules import Schedules
from wfcelery.definition.executor import Executor
from wfcelery.definition.loader import from_data, load, read_data
from wfcelery.definition.model import Workflow, check_executor
from wfcelery.definition.params import RUN_KEY_PARAM
from wfcelery.definition.runlimits import check_deadline
from wfcelery.definition.waits import check_nesting
from wfcelery.errors import (
    ConfigurationError,
    ControlError,
    NoWorkerError,
    RunKeyConflict,
    TaskImportError,
    TrackerUnavailable,
    WfCeleryError,
)
from wfcelery.messaging.consumers import describe, describe_shared, unconsumed
from wfcelery.messaging.dispatch import broker_errors, ensure_connected
from wfcelery.messaging.release import publish_released
from wfcelery.ops.runkeys import OnConflict, check_run_key
from wfcelery.ops.submit import limit_fields, plan_labels, run_record, start_run
from wfcelery.ops.subruns import check_child_params, compile_subplans
from wfcelery.plan.compiler import Plan, compile_workflow
from wfcelery.plan.segments import has_chord
from wfcelery.settings import check_not_eager
from wfcelery.tracker.access import AuditEntry
from wfcelery.tracker.base import never_executed
from wfcelery.tracker.outcomes import CreateResult
from wfcelery.tracker.records import Event
from wfcelery.tracker.states import RunStatus

logger = logging.getLogger("wfcelery.engine")

#: Seconds between a submit's attempts to settle or confirm a run while the tracker does not answer.
SETTLE_POLL = 0.25


class Engine(Schedules, Control, History, Access, PoolControl):
    """wfcelery for one Celery app. Get it from :func:`wfcelery.install`."""

    # -- submitting -------------------------------------------------------------------------------------

    def submit(
        self,
        workflow: Workflow | str | Path | Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        *,
        on_success: Any = None,
        on_failure: Any = None,
        require_workers: bool = False,
        executor: Executor | str | None = None,
        run_key: str | None = None,
        on_conflict: OnConflict | str = OnConflict.USE_EXISTING,
        progress: Callable[[int, int], None] | None = None,
        deadline: str | float | None = None,
    ) -> Run:
        """Validate, compile and start a run. Returns at once with a :class:`Run`.

        With ``run_key``, at most one run holds the key among the runs the tracker keeps (until their
        cleanup or TTL), decided atomically in Redis however many submit it at once; ``on_conflict`` says
        what a submit of a key already held does: ``"use_existing"`` returns the run holding it, whatever
        its state (``run.created`` is False); ``"fail"`` raises :class:`RunKeyConflict`;
        ``"retry_failed"`` retries the holder if it FAILED or was CANCELLED (the same run), else uses it.

        Before anything is written, the live workers are asked which queues they consume (cached
        briefly): each node whose queue nobody reads is named in a warning (logged, and kept in
        ``run.warnings``), or, with ``require_workers=True``, the run is refused.

        Args:
            workflow: a Workflow, a path to a YAML/JSON definition, or a definition dict.
            params: values for ``${name}`` placeholders.
            on_success: A Celery signature sent once when the run succeeds, with the run id as first
                argument.
            on_failure: A Celery signature sent once when the run fails or is cancelled, with the run id
                as first argument.
            require_workers: refuse (:class:`NoWorkerError`) when a node's queue has no live consumer,
                or when the workers cannot be asked.
            executor: ``"counters"`` (one message per node) or ``"canvas"`` (native Celery canvas per
                segment); default: the definition's ``executor``, else the ``wfcelery_executor`` setting.
            run_key: the run's idempotency key (also the param ``run_key``, and shown in Flower's kwargs).
            on_conflict: ``"use_existing"`` (default), ``"fail"`` or ``"retry_failed"``.
            deadline: a duration (``"10m"``, ``"2h"``, seconds) from now: the run FAILS with the error
                "deadline exceeded" if it has not ended by then; overrides the workflow's ``deadline``.

        A workflow with ``max_active_runs`` limits its runs RUNNING at once (per ``concurrency_key``
        value): a run over the limit is accepted and waits QUEUED, then starts in submit order when one
        ends (docs: operations, runs).

        Raises:
            DefinitionError: the definition or the params are wrong (nothing was written).
            ConfigurationError: the app cannot run workflows (``task_always_eager``, no JSON accepted).
            NoWorkerError: ``require_workers=True`` and a queue has no consumer.
            RunKeyConflict: ``on_conflict="fail"`` and a run holds ``run_key`` (its ``.run_id``).
            BrokerUnavailable / TrackerUnavailable: the broker or the tracker's Redis cannot be reached:
                nothing was submitted, and nothing of the run ever runs. A write that got no answer (a
                hung Redis) is settled first, for up to ``wfcelery_submit_settle`` seconds: if it landed,
                the run is started and returned after all; if not, a tombstone makes sure it never lands.
        """
        check_not_eager(self.app)
        run_deadline = check_deadline(deadline, "submit: deadline")
        policy = OnConflict.parse(on_conflict)
        key = None if run_key is None else check_run_key(run_key)
        wf = self._workflow(workflow)
        limits = self.settings.limits
        wf.validate(self.app if self.settings.check_tasks else None, limits)
        given = dict(params or {}) if key is None else {**(params or {}), RUN_KEY_PARAM: key}
        resolved = wf.resolve_params(given, limits)  # ${run_key} is known before the check
        executor = check_executor(executor, "submit") or wf.executor or self.settings.executor
        subplans = self._subplans(wf, resolved)
        plan = self.plans.remember(compile_workflow(wf, self.settings.routes, limits, executor, subplans))
        self.check_pools(plan)
        if executor is Executor.CANVAS:
            check_canvas_app(self.app, plan)
        warnings = self._check_workers(plan, require_workers)
        run_id = uuid.uuid4().hex
        run_limits = limit_fields(self.tracker, wf.name, wf.limits, resolved, run_deadline)
        record = run_record(
            self.tracker,
            plan,
            run_id,
            resolved,
            key,
            _sig_dict(on_success),
            _sig_dict(on_failure),
            run_limits,
        )
        with broker_errors(self.app, "submit a run"), self.app.producer_or_acquire() as producer:
            # connect before writing anything: a broker that is down or refuses us leaves no key behind
            ensure_connected(self.app, producer.connection)
            sent = None if progress is None else (lambda n: progress(n, len(plan.roots)))
            if key is None and run_limits is None:
                try:  # the metrics' label table: a read, before anything is written
                    labels, new_labels = plan_labels(self.tracker, plan, self.app)
                except TrackerUnavailable as e:
                    raise TrackerUnavailable(f"could not submit: {e}; nothing was submitted") from e
                record.update(labels)
                created_plan = self._create(run_id, record, plan)
                try:
                    roots = [(i, 0) for i in plan.roots]
                    finishes = publish_released(
                        self.tracker,
                        self.dispatch,
                        plan,
                        run_id,
                        roots,
                        resolved,
                        producer=producer,
                        sent=sent,
                    )
                except Exception:
                    created = int(record["created"])
                    self._discard(run_id, plan.digest if created_plan else None, created, plan.name)
                    raise
                self.tracker.register_labels(new_labels)  # the run is out: its new label values count
            else:  # a keyed submit is idempotent: a caller whose submit raised submits the key again;
                # a limited run is created QUEUED first, then admitted (ops/admission.py)
                started = start_run(
                    self.tracker,
                    self.dispatch,
                    plan,
                    run_id,
                    record,
                    resolved,
                    key,
                    producer=producer,
                    sent=sent,
                )
                if not started.created:
                    assert key is not None  # a run without a key is always created
                    return self._held(key, started.run_id, policy)
                finishes = started.finishes
        if key is None and run_limits is None:
            self._confirm(run_id)
        else:
            record_audit(self, "submit", f"run {run_id}", "ok")
        for finish in finishes:  # every root skipped by its condition, and nothing else to run
            self._ended(run_id, finish)
        run = Run(self, run_id)
        run.warnings = warnings
        return run

    def _subplans(self, wf: Workflow, params: Mapping[str, Any]) -> dict[str, str]:
        """The plans of ``wf``'s sub-workflows (and theirs), checked (known, not recursive, nested at most
        ``wfcelery_max_nesting`` deep, their params complete), compiled and stored: by node name."""
        if not any(n.subworkflow for n in wf.nodes.values()):
            return {}
        known = self.definitions()
        limits, routes = self.settings.limits, self.settings.routes

        def compile_one(child: Workflow, subplans: Mapping[str, str]) -> Plan:
            executor = child.executor or self.settings.executor
            return compile_workflow(child, routes, limits, executor, subplans)

        check_nesting(wf, known.get, self.settings.max_nesting)
        check_child_params(wf, params, known.get, limits)
        return compile_subplans(self.tracker, wf, known.get, compile_one)

    def _create(self, run_id: str, record: dict[str, str | int], plan: Plan) -> bool:
        """Write the run (unconfirmed); returns whether this wrote the shared plan key. A write that got no
        answer is settled (:meth:`_settle`)."""
        try:
            out = self.tracker.create_run(
                run_id, record, plan.roots, plan.digest, plan.blob, self.settings.unconfirmed_bound
            )
        except TrackerUnavailable as e:
            if never_executed(e.__cause__):  # refused or never sent: nothing to settle
                raise TrackerUnavailable(f"could not submit: {e}; nothing was submitted") from e
            self._settle(run_id, e)
            return False  # written by a delivery whose answer was lost: the plan's creator is unknown
        if out.result is CreateResult.VOID:  # only a settle writes the tombstone, and only after a failure
            raise TrackerUnavailable(f"run {run_id} is refused by the tracker: nothing was submitted")
        return out.plan_created

    def _settle(self, run_id: str, unanswered: TrackerUnavailable) -> None:
        """The run's write got no answer: it may have reached Redis, now or later. Ask Redis (settle.lua)
        until ``settle_seconds`` pass: written -> return, the caller sends its messages; not written -> its
        tombstone makes sure it never will be. Raises TrackerUnavailable saying nothing was submitted."""
        deadline = time.monotonic() + self.settings.settle_seconds
        last = unanswered
        while True:
            try:
                result = self.tracker.settle_run(run_id)
            except TrackerUnavailable as e:
                last = e
                if time.monotonic() >= deadline:
                    break
                time.sleep(min(SETTLE_POLL, max(0.0, deadline - time.monotonic())))
                continue
            if result is CreateResult.EXISTS:
                logger.info("wfcelery: run %s was written although its write got no answer", run_id)
                return
            raise TrackerUnavailable(
                f"could not submit: {unanswered}; nothing was submitted (the tracker now refuses run "
                f"{run_id} for good)"
            ) from unanswered
        raise TrackerUnavailable(
            f"could not submit: {unanswered}; the tracker's Redis still did not answer "
            f"{self.settings.settle_seconds:g} s later ({last}); nothing was submitted: run {run_id} never "
            "runs (if its write reaches Redis late, the reconciler cancels it unrun)"
        ) from last

    def _confirm(self, run_id: str) -> None:
        """The roots' messages are out: tell the tracker (the run is no longer unconfirmed), in the same
        round trip as the submit's audit entry. Retried for ``settle_seconds``; a run the reconciler
        cancelled first raises (none of it runs)."""
        entry = AuditEntry(time.time(), current_actor(), "submit", f"run {run_id}", "ok")
        deadline = time.monotonic() + self.settings.settle_seconds
        while True:
            try:
                status = self.tracker.confirm_run(run_id, entry, self.settings.audit_maxlen)
                break
            except TrackerUnavailable as e:
                if time.monotonic() >= deadline:
                    logger.warning(
                        "wfcelery: run %s was sent, but the tracker could not be told (%s; audit entry not "
                        "written): it runs once a worker starts it, unless it is still waiting %g s after "
                        "it was written (then the reconciler cancels it as unconfirmed)",
                        run_id,
                        e,
                        self.settings.unconfirmed_bound,
                    )
                    return
                time.sleep(SETTLE_POLL)
        if status is RunStatus.CANCELLED:
            error = TrackerUnavailable(
                f"could not submit: run {run_id} was cancelled as unconfirmed before its submit completed "
                f"(the tracker's Redis took over {self.settings.unconfirmed_bound:g} s); none of it ran"
            )
            record_audit(self, "submit", f"run {run_id}", f"error: {error}")
            raise error

    def _discard(self, run_id: str, plan_digest: str | None, created_ms: int, workflow: str) -> None:
        """Delete a run whose first messages could not be sent: nothing ran, so leave no trace. The plan
        goes too when this submit created it (``plan_digest``) and no run submitted since uses it (runs
        of one definition share the key; a minute of margin covers clients whose clocks differ). A failed
        cleanup is logged: the caller re-raises the publish error, which says what went wrong."""
        try:
            if plan_digest is not None and self.tracker.plan_in_use(plan_digest, created_ms - 60_000, run_id):
                plan_digest = None
            self.tracker.delete_run(run_id, plan_digest, workflow=workflow)
        except WfCeleryError as e:
            logger.warning("wfcelery: could not delete run %s after its publish failed: %s", run_id, e)

    def _held(self, key: str, holder: str, policy: OnConflict) -> Run:
        """``submit(run_key=key)`` found run ``holder`` holding the key: apply ``on_conflict``."""
        run = Run(self, holder, created=False)
        if policy is OnConflict.USE_EXISTING:
            return run
        status = self.tracker.run_record(holder).status
        if policy is OnConflict.FAIL:
            raise RunKeyConflict(key, holder, status.value)
        if status in (RunStatus.FAILED, RunStatus.CANCELLED):
            with contextlib.suppress(ControlError):  # a concurrent submit of the key retried it: use it
                self.retry(holder)
        return run

    def run_by_key(self, run_key: str) -> Run | None:
        """The run holding ``run_key`` (None when no kept run holds it)."""
        claim = self.tracker.key_holder(check_run_key(run_key))
        if claim is None or not self.tracker.run_exists(claim.run_id):
            return None
        return Run(self, claim.run_id, created=False)

    def _check_workers(self, plan: Plan, require: bool) -> list[str]:
        queues = self.node_queues(plan)
        cached = self.consumers.get()
        if require and (not cached.known or unconsumed(cached, queues)):
            self.consumers.get(refresh=True)  # refuse on a fresh answer only (a worker may have started)
        consumers = self.consumers.confirm(queues.values())  # warn or refuse on a confirmed answer only
        if require and not consumers.known:
            raise NoWorkerError(f"cannot check which queues the workers consume: {consumers.reason}")
        warnings = describe(unconsumed(consumers, queues))
        if warnings and require:
            raise NoWorkerError("; ".join(warnings) + " (require_workers: nothing was submitted)")
        warnings += describe_shared(consumers)
        for warning in warnings:
            logger.warning("wfcelery: workflow %r: %s", plan.name, warning)
        return warnings

    def _workflow(self, workflow: Workflow | str | Path | Mapping[str, Any]) -> Workflow:
        if isinstance(workflow, Workflow):
            return workflow
        if isinstance(workflow, str | Path):
            return load(workflow, self.settings.limits.max_plan_bytes)
        return from_data(workflow)

    # -- reading ----------------------------------------------------------------------------------------

    def run(self, run_id: str) -> Run:
        """The run with this id. Raises :class:`RunNotFound`."""
        self.tracker.run_record(run_id)
        return Run(self, run_id)

    def events_of(self, cursors: Mapping[str, int]) -> dict[str, tuple[int, list[Event]]]:
        """:meth:`Run.events` of many runs in one go, without waiting: ``{run id: offset}`` -> ``{run id:
        (next offset, events)}`` (a few round trips to Redis however many runs)."""
        return self.tracker.events_many(cursors)

    def summaries(self, run_ids: Sequence[str]) -> dict[str, RunSummary | None]:
        """:meth:`Run.summary` of many runs in one round trip; None for a run that is gone."""
        records = self.tracker.records(run_ids)
        return {
            i: RunSummary.of(i, r) if r is not None else None for i, r in zip(run_ids, records, strict=True)
        }

    # -- definitions known by name (the web dashboard's and REST API's catalogue) -----------------------

    def register(self, workflow: Workflow | str | Path | Mapping[str, Any]) -> Workflow:
        """Make a definition known by its name (``engine.definitions()``); validated first.

        A registered definition wins over a file of the same name in the ``wfcelery_definitions`` folder.
        """
        wf = self._workflow(workflow)
        wf.validate(self.app if self.settings.check_tasks else None)
        known = {**self.definitions(), wf.name: wf}
        check_nesting(wf, known.get, self.settings.max_nesting, strict=False)  # unknown ones: at submit
        self._registered[wf.name] = wf
        return wf

    def definitions(self) -> dict[str, Workflow]:
        """Definitions by name: those registered, and every valid ``*.yaml|*.yml|*.json`` file of the
        ``wfcelery_definitions`` folder (read on each call, so new files show up; an invalid file, and
        anything but a regular file inside the folder -- a link out of it, a FIFO, a device -- is logged
        and left out)."""
        found: dict[str, Workflow] = {}
        skipped: dict[str, str] = {}
        folder = self.settings.definitions
        for path in sorted(Path(folder).glob("*")) if folder else []:
            if path.suffix.lower() not in (".yaml", ".yml", ".json"):
                continue
            data: Any = None
            try:
                limits = self.settings.limits
                data = read_data(path, limits.max_plan_bytes, folder=folder)
                wf = from_data(data, str(path)).validate(
                    self.app if self.settings.check_tasks else None, limits
                )
            except TaskImportError:
                raise  # the app's own modules, not this file: every definition would be skipped
            except WfCeleryError as e:
                logger.warning("wfcelery: skipping definition %s: %s", path, e)
                message = str(e) if str(e).startswith(str(path)) else f"{path}: {e}"
                skipped[_declared_name(data) or path.stem] = message  # starting it by name says why
                continue
            found.setdefault(wf.name, wf)
        self.skipped_definitions = {k: v for k, v in skipped.items() if k not in found}
        return {**found, **self._registered}


def check_canvas_app(app: Celery, plan: Plan) -> None:
    """The canvas executor publishes chords where the plan has joins: Celery needs a result backend
    for them. Raises :class:`ConfigurationError` naming the setting."""
    from celery.backends.base import DisabledBackend

    if isinstance(app.backend, DisabledBackend) and has_chord(plan):
        raise ConfigurationError(
            f"workflow {plan.name!r} runs chords under the canvas executor, and Celery needs a result "
            "backend for chords: set result_backend (or submit with executor='counters')"
        )


def _declared_name(data: Any) -> str | None:
    """The ``name`` a definition's data declares, if any (for a skipped file's reason)."""
    name = data.get("name") if isinstance(data, Mapping) else None
    return name if isinstance(name, str) else None


def _sig_dict(sig: Any) -> dict[str, Any] | None:
    if sig is None:
        return None
    return dict(signature(sig))


def _name(workflow: Any) -> str:
    return f"workflow {getattr(workflow, 'name', workflow)}"
