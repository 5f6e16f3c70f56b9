"""How nodes move through their pools: the gate before publishing, the wake-up when a slot or a token
frees, the audit that gives back what no report will, and the elected loop that hands out tokens.

* **Gate** (:func:`gate`, called by the release path for plans with pools): a node whose pool has a free
  slot and a token takes them and is published; otherwise it is parked -- WAITING for the pool, no message
  out (pool_park.lua) -- then listed in the pool's waiting set (pool_enqueue.lua).
* **Wake** (:func:`publish_granted`): a node granted a slot goes WAITING -> QUEUED (pool_wake.lua) and is
  published. A grant that finds its node gone, revoked or paused gives the slot back at once.
* **Release** (:func:`node_ended`): the worker that reports a pooled node's end gives its slot back and
  publishes what that grants. On one Redis server a success gives it back in its own script
  (``Pools.release_step``, ``tracker/lua/_succeed_pool.lua``); the worker publishes what that granted.
* **Audit** (:func:`audit`, every :data:`AUDIT_EVERY` seconds in the elected :class:`PoolLoop`): a slot
  whose node is no longer QUEUED, RUNNING or RETRYING (it ended, its run was cancelled, paused or cleaned
  up, its report was lost) is given back; a slot granted to a node still WAITING after
  :data:`GRACE_MS` (the process that was waking it died) wakes it; waiting entries of nodes that no longer
  wait are dropped. A node RUNNING on a dead worker keeps its slot: the reconciler publishes it again
  under a new epoch, as the same member, and the slot comes back when that attempt ends.
* **Sweep** (:func:`sweep_pool_waits`, from the reconciler's sweep of each live run): a node WAITING for a
  pool that its pool does not list (the parker died between its two scripts) is listed again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from wfcelery.errors import RunNotFound, TrackerUnavailable
from wfcelery.ops.elected import ElectedLoop
from wfcelery.ops.pools import Acquired, Granted, Pools, Woken, member, parse_member, pools_of
from wfcelery.tracker.keys import Slot, split_slot

if TYPE_CHECKING:
    from wfcelery.messaging.dispatch import Dispatcher
    from wfcelery.plan.compiler import Plan
    from wfcelery.tracker.records import NodeRecord, RunRecord
    from wfcelery.tracker.store import Tracker

logger = logging.getLogger("wfcelery.pools")

#: Seconds between two audits of the pools' slots by the elected loop.
AUDIT_EVERY = 2.0
#: A slot granted this long ago (ms) to a node still WAITING is a wake that died: the audit wakes it.
GRACE_MS = 5_000
#: Longest sleep of the loop between two grants of a rate's tokens (seconds).
MAX_SLEEP = 0.25
#: Waiting entries the audit checks per pool, from the head (the ones a grant reaches next).
AUDIT_WAITING = 500
#: Node statuses that hold a slot: published, running, or between two attempts.
HOLDING = frozenset({"Q", "R", "Y"})

Ready = tuple[Slot, int, list[Any]]


def gate(
    tracker: Tracker, dispatch: Dispatcher, plan: Plan, run_id: str, ready: Sequence[Ready]
) -> list[Ready]:
    """Of the messages about to be published, those that may go now; the others wait for their pool
    (parked and listed). Nodes of other runs that the listing granted are woken and published here."""
    pools = pools_of(tracker)
    pooled = [(item, plan.nodes[split_slot(item[0])[0]]) for item in ready]
    out = [item for item, node in pooled if node.pool is None]
    pooled = [(item, node) for item, node in pooled if node.pool is not None]
    wanted = [(str(node.pool), member(run_id, item[0])) for item, node in pooled]
    verdicts = pools.acquire_many(wanted) if wanted else []
    parking = []
    for (item, node), (pool, who), verdict in zip(pooled, wanted, verdicts, strict=True):
        if verdict is Acquired.WAIT:
            parking.append((item[0], item[1], pool, who, int(node.options.get("priority") or 0)))
        else:
            out.append(item)
    parked = pools.park_many(run_id, [(slot, epoch, pool) for slot, epoch, pool, _, _ in parking])
    # not parked: stale, paused or gone -- nothing to send (resume re-plans a paused run's nodes)
    listing = [(pool, who, prio) for (_, _, pool, who, prio), ok in zip(parking, parked, strict=True) if ok]
    granted = pools.enqueue_many(listing)
    for grant in granted:
        publish_granted(tracker, dispatch, grant)
    return out


def gate_one(tracker: Tracker, dispatch: Dispatcher, plan: Plan, run_id: str, slot: Slot, epoch: int) -> bool:
    """:func:`gate` for one message re-published (the reconciler, a tracker-level retry): True when it
    may go now."""
    return bool(gate(tracker, dispatch, plan, run_id, [(slot, epoch, [])]))


def publish_granted(tracker: Tracker, dispatch: Dispatcher, granted: Granted) -> None:
    """Wake and publish the members a pool granted; a slot granted to a node that no longer waits (or
    whose run is paused) is given back at once, which may grant the next ones."""
    pools = pools_of(tracker)
    members = list(granted.members)
    while members:
        back = [who for who in members if not _wake_one(tracker, dispatch, pools, who)]
        members = list(pools.release(granted.pool, back).members) if back else []


def _wake_one(tracker: Tracker, dispatch: Dispatcher, pools: Pools, who: str) -> bool:
    """Wake and publish one granted member; False when its slot must be given back."""
    run_id, slot = parse_member(who)
    index, instance = split_slot(slot)
    digest = pools.digests.get(run_id)
    fetch = pools.plans.get(digest).nodes[index].parents if digest and instance is None else ()
    out = pools.wake(run_id, slot, fetch)
    if out.verdict is Woken.WOKEN:
        plan = pools.plans.get(out.plan)
        try:
            if out.results is not None:  # the parents' results came with the wake
                dispatch.publish(plan, run_id, [(slot, out.epoch, out.results)], out.params)
            else:
                publish_node(tracker, dispatch, plan, run_id, slot, out.epoch, out.params)
        except (RunNotFound, TrackerUnavailable):
            raise
        except Exception:  # the broker: QUEUED with its slot, the reconciler's lost-message check sends it
            logger.exception("wfcelery: could not publish %s of run %s (granted by its pool)", slot, run_id)
        return True
    return out.verdict is Woken.STALE and out.code in HOLDING  # woken by another process meanwhile


def publish_node(
    tracker: Tracker,
    dispatch: Dispatcher,
    plan: Plan,
    run_id: str,
    slot: Slot,
    epoch: int,
    params: dict[str, Any],
) -> None:
    """Publish one node (or instance) at ``epoch`` with its parents' stored results (an instance: its
    element) and its run's params."""
    from wfcelery.messaging.release import map_elements  # release.py imports this module lazily too

    index, instance = split_slot(slot)
    parents = plan.nodes[index].parents
    if instance is None:
        results = tracker.results(run_id, parents)
        inputs = [results.get(p) for p in parents]
    else:
        inputs = [map_elements(tracker, plan, run_id, index)[instance]]
    dispatch.publish(plan, run_id, [(slot, epoch, inputs)], params)


def node_ended(tracker: Tracker, dispatch: Dispatcher, plan: Plan, run_id: str, slot: Slot) -> None:
    """A worker recorded a pooled node's end (its success, its failure for good): give its slot back
    and publish what that grants. A retry keeps its slot; a stale report calls nothing (the audit
    judges)."""
    pool = plan.nodes[split_slot(slot)[0]].pool
    if pool is not None:
        pools = pools_of(tracker)
        publish_granted(tracker, dispatch, pools.release(pool, [member(run_id, slot)]))


def audit(tracker: Tracker, dispatch: Dispatcher, now_ms: int) -> int:
    """One audit of every pool (see the module docstring); returns the slots given back."""
    pools = pools_of(tracker)
    freed = 0
    for pool in pools.names():
        holders = pools.holders(pool)
        back, wake = _judge_holders(pools, holders, now_ms)
        for who in wake:
            publish_granted(tracker, dispatch, Granted(pool, (who,)))
        waiting = pools.waiting(pool, AUDIT_WAITING)
        states = pools.node_states(waiting)
        pools.unlist(pool, [w for w, (_, n) in zip(waiting, states, strict=True) if n.code != "W"])
        grant = pools.release(pool, back)
        freed += grant.released
        publish_granted(tracker, dispatch, grant)
    return freed


def _judge_holders(pools: Pools, holders: dict[str, int], now_ms: int) -> tuple[list[str], list[str]]:
    """Holders to give back (their node holds no slot any more) and to wake (granted, never woken)."""
    back: list[str] = []
    wake: list[str] = []
    # a slot taken within the grace is not judged yet (its node is being published or woken): a busy
    # pool's many young slots cost the audit no read
    members = [who for who, since in holders.items() if now_ms - since > GRACE_MS]
    for who, (status, node) in zip(members, pools.node_states(members), strict=True):
        if status is None or (node.code not in HOLDING and node.code != "W"):
            back.append(who)
        elif node.code == "W":
            wake.append(who)
        elif status == "PAUSED" and node.code in ("Q", "Y"):
            back.append(who)  # resume publishes it again, through the gate
    return back, wake


def forget_pool_waits(tracker: Tracker, record: RunRecord, run_id: str) -> None:
    """Unlist a cancelled or deleted run's nodes from the pools they waited for: a grant would only give
    their slots back, but a rate's token it spends on one is gone."""
    pools = pools_of(tracker)
    by_pool: dict[str, list[str]] = {}
    for slot, pool in record.pool_waits.items():
        by_pool.setdefault(pool, []).append(member(run_id, slot))
    for pool, members in by_pool.items():
        pools.unlist(pool, members)


def sweep_pool_waits(
    tracker: Tracker,
    dispatch: Dispatcher,
    run_id: str,
    record: RunRecord,
    nodes: dict[Slot, NodeRecord],
    plan: Plan,
) -> list[tuple[str, str, str]]:
    """The reconciler's check of one live run: a node WAITING for a pool that neither lists it as waiting
    nor as holding a slot is listed again. Returns (node, action, why) of each repair."""
    if not record.pool_waits:
        return []
    pools = pools_of(tracker)
    done: list[tuple[str, str, str]] = []
    for raw_slot, pool in record.pool_waits.items():
        slot: Slot = int(raw_slot) if raw_slot.isdigit() else raw_slot
        node = nodes.get(slot)
        if node is None or node.code != "W":
            continue
        who = member(run_id, slot)
        if any(pools.listed(pool, who)):
            continue
        priority = int(plan.nodes[split_slot(slot)[0]].options.get("priority") or 0)
        publish_granted(tracker, dispatch, pools.enqueue(pool, who, priority))
        done.append((str(slot), "listed", f"it waited for pool {pool} without being listed"))
    return done


class PoolLoop(ElectedLoop):
    """The elected loop inside the workers (lease ``<prefix>:pools:lease``, renewed as the timer loop's):
    grants the tokens of rate-limited pools as they come, and audits the slots every
    :data:`AUDIT_EVERY` seconds. ``start()`` runs it in a daemon thread; ``step()`` is one pass."""

    name = "wfcelery pools"
    LEASE_TICK = 1.0

    def __init__(self, tracker: Tracker, dispatch: Dispatcher, hostname: str, outage: Any = None) -> None:
        super().__init__(tracker, hostname, tracker.keys.pools_lease, self.LEASE_TICK, outage)
        self.dispatch = dispatch
        self._audit_at = 0.0

    def step(self) -> float:
        """One pass: seconds to sleep before the next."""
        pools = pools_of(self.tracker)
        if not pools.names() or not self.lead():
            return self.LEASE_TICK
        now = time.monotonic()
        if now >= self._audit_at:
            self._audit_at = now + AUDIT_EVERY
            audit(self.tracker, self.dispatch, self.tracker.server_ms())
        return self.tick(pools.names())

    def tick(self, names: Iterable[str]) -> float:
        """Grant what the pools have free (a rate's new tokens); seconds until the next token is due."""
        pools = pools_of(self.tracker)
        wait = MAX_SLEEP
        for pool in names:
            grant = pools.release(pool)
            publish_granted(self.tracker, self.dispatch, grant)
            if grant.next_token_ms:
                wait = min(wait, grant.next_token_ms / 1000)
        return max(0.005, wait)
