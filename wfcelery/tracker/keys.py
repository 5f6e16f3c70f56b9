"""Every Redis key wfcelery uses is built here and nowhere else.

A run's keys share the hash tag ``{<run_id>}`` so they live in one Redis Cluster slot and one Lua script
can touch them all. What each key holds -- every field and value format -- is described once, in the
key layout on the design page of the docs; values are encoded and decoded by
``records.py``. The keys, by builder::

    <prefix>:{<run>}:run       run()           the run record
    <prefix>:{<run>}:nodes     nodes()         node records
    <prefix>:{<run>}:deps      deps()          fan-in counts of the nodes still waiting
    <prefix>:{<run>}:results   results()       results
    <prefix>:{<run>}:errors    errors()        errors and skip reasons
    <prefix>:{<run>}:events    events()        the capped transition log
    <prefix>:{<run>}:done      done_channel()  the run's end (pub/sub)
    <prefix>:{<run>}:void      void()          tombstone of a submit that gave up: the run is never created

    <prefix>:runs              index           the run index behind `engine.runs()`
    <prefix>:gate              gate            the gate table, read by workers' message filters
    <prefix>:gate:changes      gate_channel    gate changes (pub/sub)
    <prefix>:gate:leases       gate_leases     worker processes' gate leases (lease id -> expiry:applied)
    <prefix>:plan:<sha1>       plan()          a compiled definition, shared by every run of it
    <prefix>:live              live            runs the reconciler watches
    <prefix>:worker:<hostname> worker()        a worker's heartbeat
    <prefix>:workers           workers         the workers the reconciler watches
    <prefix>:reconciler        reconciler      the reconciler's lease

    <prefix>:metrics           metrics()       fleet-wide counters (counters.py); on a Redis Cluster one
    <prefix>:metrics:{<tag>}   metrics(tag)    shard per slot, tagged to share the slot of its runs
    <prefix>:metrics:values:<kind>  metric_values()  label values seen, per kind (the cardinality cap)
    <prefix>:runs:wf:<name>    runs_of()       the history index: runs of one workflow, by creation time
    <prefix>:runs:ended:<STATUS> runs_ended()  runs that ended FAILED / CANCELLED, by creation time
    <prefix>:tokens            tokens          API tokens by name (hash of the token, role, times)
    <prefix>:tokens:by-hash    token_hashes    token hash -> name (a request's lookup)
    <prefix>:audit             audit           the audit trail (a capped stream)

    <prefix>:runkey:<key>      run_key()       the run holding a run key (records.RunKeyClaim)
    <prefix>:schedules         schedules       schedule definitions by name (ops.store.ScheduleRecord)
    <prefix>:schedules:next    schedules_next  each active schedule's next slot (ZSET, ms)
    <prefix>:schedules:last    schedules_last  each schedule's last fired slot (HASH, ms)
    <prefix>:schedule:<name>:runs    schedule_runs()    the schedule's recent slots (ZSET, slot ms)
    <prefix>:schedule:<name>:active  schedule_active()  slots admitted under max_active_runs (ZSET)
    <prefix>:scheduler         scheduler       the scheduler loop's lease

A run key's and a schedule's keys carry no hash tag: a run key's index key cannot share the slot of the
run it names (the run id is not known before the key is decided), so on a Redis Cluster the key is
claimed first, then the run created (``ops.runkeys``).
    <prefix>:timers            timers          due times of durable sleeps and wait timeouts (ZSET, ms)
    <prefix>:timers:lease      timers_lease    the timer loop's lease
    <prefix>:signals           signals         nodes waiting for a signal (ZSET, since ms): "Waiting for you"

    <prefix>:adm:{<group>}:active  admission_active()  runs admitted under max_active_runs (ZSET, ms)
    <prefix>:adm:{<group>}:queue   admission_queue()   QUEUED runs waiting for their turn (ZSET, order)
    <prefix>:deadlines         deadlines       runs with a deadline (ZSET, the deadline, ms)

An admission group is one workflow's runs with one concurrency key value (ops/admission.py: the group id
is a digest of both); its two keys share the group's hash tag, so one script decides an admission. The
deadlines' key has none: it indexes every run's deadline, beside the run's own scripts (ops/deadlines.py).

The timers' and signals' keys carry no hash tag (they index nodes of every run): on a Redis Cluster they
are written beside a run's transition, never inside its Lua script (``ops/waits.py``).

    <prefix>:pools                   pools             names of the pools set at run time or used (SET)
    <prefix>:pools:lease             pools_lease       the pool loop's lease
    <prefix>:pool:{<name>}           pool()            limits set at run time, token bucket, sequence (HASH)
    <prefix>:pool:{<name>}:held      pool_held()       nodes holding a slot: '<run>|<slot>' -> since ms (HASH)
    <prefix>:pool:{<name>}:waiting   pool_waiting()    nodes waiting for the pool, in release order (ZSET)

A pool's three keys share the hash tag ``{<name>}`` (one pool script touches them all); they never share a
run's slot, so a node's pool step and its run's transition are two scripts (``ops/pools.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The per-run keys, in the order Lua scripts receive them as KEYS.
RUN_KEYS = ("run", "nodes", "deps", "results", "errors", "events")


@dataclass(frozen=True)
class Keys:
    prefix: str = "wfcelery"

    def run(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:run"

    def nodes(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:nodes"

    def deps(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:deps"

    def results(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:results"

    def errors(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:errors"

    def events(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:events"

    def done_channel(self, run_id: str) -> str:
        return f"{self.prefix}:{{{run_id}}}:done"

    def void(self, run_id: str) -> str:
        """The tombstone a submit writes when it gives up on a run whose creation it could not confirm:
        create.lua refuses to write a run while it exists (lives ``wfcelery_run_ttl``)."""
        return f"{self.prefix}:{{{run_id}}}:void"

    def run_keys(self, run_id: str) -> list[str]:
        """All keys of one run, in RUN_KEYS order (the KEYS of every per-run script)."""
        return [getattr(self, name)(run_id) for name in RUN_KEYS]

    def run_pattern(self, run_id: str) -> str:
        """SCAN pattern matching every key of one run (used by tests and cleanup checks)."""
        return f"{self.prefix}:{{{run_id}}}:*"

    @property
    def index(self) -> str:
        return f"{self.prefix}:runs"

    @property
    def gate(self) -> str:
        return f"{self.prefix}:gate"

    @property
    def gate_channel(self) -> str:
        return f"{self.prefix}:gate:changes"

    @property
    def gate_leases(self) -> str:
        return f"{self.prefix}:gate:leases"

    def plan(self, digest: str) -> str:
        return f"{self.prefix}:plan:{digest}"

    @property
    def live(self) -> str:
        return f"{self.prefix}:live"

    def worker(self, hostname: str) -> str:
        return f"{self.prefix}:worker:{hostname}"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def reconciler(self) -> str:
        return f"{self.prefix}:reconciler"

    def metrics(self, tag: str | None = None) -> str:
        """The counters' hash; ``tag``: the hash tag of a Redis Cluster slot's shard (counters.slot_tag)."""
        return f"{self.prefix}:metrics" if tag is None else f"{self.prefix}:metrics:{{{tag}}}"

    @property
    def metrics_pattern(self) -> str:
        """SCAN pattern of the Cluster shards of the counters."""
        return f"{self.prefix}:metrics:{{*}}"

    def metric_values(self, kind: str) -> str:
        return f"{self.prefix}:metrics:values:{kind}"

    def runs_of(self, workflow: str) -> str:
        return f"{self.prefix}:runs:wf:{workflow}"

    def runs_ended(self, status: str) -> str:
        return f"{self.prefix}:runs:ended:{status}"

    @property
    def timers(self) -> str:
        return f"{self.prefix}:timers"

    def admission_active(self, group: str) -> str:
        return f"{self.prefix}:adm:{{{group}}}:active"

    def admission_queue(self, group: str) -> str:
        return f"{self.prefix}:adm:{{{group}}}:queue"

    @property
    def deadlines(self) -> str:
        return f"{self.prefix}:deadlines"

    @property
    def timers_lease(self) -> str:
        return f"{self.prefix}:timers:lease"

    @property
    def signals(self) -> str:
        return f"{self.prefix}:signals"

    @property
    def pools(self) -> str:
        return f"{self.prefix}:pools"

    @property
    def pools_lease(self) -> str:
        return f"{self.prefix}:pools:lease"

    def pool(self, name: str) -> str:
        return f"{self.prefix}:pool:{{{name}}}"

    def pool_held(self, name: str) -> str:
        return f"{self.prefix}:pool:{{{name}}}:held"

    def pool_waiting(self, name: str) -> str:
        return f"{self.prefix}:pool:{{{name}}}:waiting"

    def pool_keys(self, name: str) -> list[str]:
        """The KEYS of every pool script: the pool, its holders, its waiting nodes."""
        return [self.pool(name), self.pool_held(name), self.pool_waiting(name)]

    @property
    def tokens(self) -> str:
        return f"{self.prefix}:tokens"

    @property
    def token_hashes(self) -> str:
        return f"{self.prefix}:tokens:by-hash"

    @property
    def audit(self) -> str:
        return f"{self.prefix}:audit"

    def run_key(self, key: str) -> str:
        return f"{self.prefix}:runkey:{key}"

    @property
    def schedules(self) -> str:
        return f"{self.prefix}:schedules"

    @property
    def schedules_next(self) -> str:
        return f"{self.prefix}:schedules:next"

    @property
    def schedules_last(self) -> str:
        return f"{self.prefix}:schedules:last"

    def schedule_runs(self, name: str) -> str:
        return f"{self.prefix}:schedule:{name}:runs"

    def schedule_active(self, name: str) -> str:
        return f"{self.prefix}:schedule:{name}:active"

    @property
    def scheduler(self) -> str:
        return f"{self.prefix}:scheduler"


#: A wfcelery task id: run id (uuid4 hex), node index (``<node>.<instance>`` for an instance of a mapped
#: node), epoch. ASCII digits only: "²".isdigit() is True.
_TASK_ID = re.compile(r"([0-9a-f]{32})-(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?-(0|[1-9][0-9]*)")

#: Where a unit of work is recorded in a run's hashes: a node index, or ``"<node>:<i>"`` for instance i
#: of a mapped node (the field name the Lua scripts use in the nodes, results and errors hashes).
Slot = int | str

# Instance i of mapped node n has three spellings, each with one format/parse pair, all here:
#   its slot          "3:12"         instance_slot / split_slot   (tracker hashes, Lua replies)
#   its task id part  "3.12"         task_id / parse_task_id      (Celery task ids: no ':' in an id)
#   its name          "resize[12]"   instance_name / parse_instance  (what users see and type)


def instance_slot(node_index: int, instance: int) -> str:
    """The slot of instance ``instance`` of node ``node_index``: ``"3:12"``."""
    return f"{node_index}:{instance}"


def split_slot(slot: Slot | str) -> tuple[int, int | None]:
    """``3`` or ``"3"`` -> (3, None); ``"3:12"`` -> (3, 12)."""
    if isinstance(slot, int):
        return slot, None
    node, _, instance = slot.partition(":")
    return int(node), int(instance) if instance else None


def task_id(run_id: str, node_index: Slot, epoch: int) -> str:
    """Celery task id of a node (or instance): derived, so the tracker never stores ids and every id is
    known up front. The epoch changes on resume and retry, so a re-published node always gets a fresh id.
    """
    node, instance = split_slot(node_index)
    return f"{run_id}-{node}-{epoch}" if instance is None else f"{run_id}-{node}.{instance}-{epoch}"


def canvas_task_id(run_id: str, epoch: int, serial: int) -> str:
    """Id of a ``celery.accumulate`` barrier or pass-through of a canvas-executor run: not a node's
    (:func:`parse_task_id` refuses it), but :func:`run_of` finds its run."""
    return f"{run_id}-x{serial}-{epoch}"


_RUN_PREFIX = re.compile(r"([0-9a-f]{32})-")


def run_of(task_id_: str) -> str | None:
    """The run of a node's id or of a canvas barrier's (:func:`canvas_task_id`), else None."""
    m = _RUN_PREFIX.match(task_id_)
    return m.group(1) if m else None


def parse_task_id(task_id_: str) -> tuple[str, Slot, int] | None:
    """Inverse of :func:`task_id`; None for ids that are not wfcelery's."""
    m = _TASK_ID.fullmatch(task_id_)
    if m is None:
        return None
    node = int(m.group(2))
    slot: Slot = node if m.group(3) is None else instance_slot(node, int(m.group(3)))
    return m.group(1), slot, int(m.group(4))


_INSTANCE = re.compile(r"^(?P<node>.+)\[(?P<i>\d+)\]$")


def instance_name(node: str, index: int) -> str:
    """The name an instance is tracked and shown under: ``resize[3]``."""
    return f"{node}[{index}]"


def parse_instance(name: str) -> tuple[str, int] | None:
    """``resize[3]`` -> ``("resize", 3)``; a plain node name -> None."""
    match = _INSTANCE.match(name)
    return (match["node"], int(match["i"])) if match else None
