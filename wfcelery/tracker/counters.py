"""Fleet-wide metrics kept by the tracker: what the Lua scripts count, in which key, and how it reads back.

The Lua scripts count as the transitions happen, in the same atomic call (``lua/_common.lua``, section
"metrics"), so every process reads the same numbers and a restarted exporter loses nothing. This module
owns the stored format (one encoder, one decoder) and the reading; ``wfcelery/metrics`` turns a
:class:`Snapshot` into Prometheus' text format.

**Where.** On a single Redis (or Sentinel) every script writes one hash, ``<prefix>:metrics``. A Lua script
on a Redis Cluster may only touch keys of its own slot, and every key of a run carries the run's hash tag,
so there the counters are sharded by slot: a run's scripts write ``<prefix>:metrics:{<tag>}`` where
``<tag>`` is the shortest string that hashes to the run's slot (:func:`slot_tag`). Counting stays exact
and atomic with the transition on a Cluster too; the reader sums the shards. Each shard holds only the
label sets its runs met, so the cost is at most (used slots) x (label sets) fields.

**What** (hash fields; ``\\t`` separates the parts, label values never contain a tab or a newline):

==============================  ======================================================================
``r\\t<workflow>\\t<STATUS>``     runs ended with that status (``wfcelery_runs_total``)
``a\\t<workflow>``               runs RUNNING or PAUSED now (``wfcelery_runs_active``): +1 at submit and
                                at the retry of an ended run, -1 when it ends or is deleted while live
``n\\t<task>\\t<queue>\\t<STATUS>`` node outcomes (``wfcelery_nodes_total``): SUCCEEDED, FAILED, SKIPPED,
                                REVOKED when a node (or an instance of a mapped node) settles,
                                RETRYING for every attempt that is retried
``d\\t<task>\\t<queue>\\t<le>``    attempts whose run time (start gate to report) was <= ``le`` ms and
                                above the bucket below (``le`` = ``inf`` past the last bucket)
``ds\\t<task>\\t<queue>``         sum of those run times, in ms (``wfcelery_node_duration_seconds``)
``w\\t<queue>\\t<le>``, ``ws\\t<queue>``  the same for the wait from QUEUED to the start gate
                                (``wfcelery_node_wait_seconds``)
``x\\t<kind>``                   the reconciler's repairs (``wfcelery_reconciler_repairs_total``):
                                requeued, revoked, quarantined, finished
==============================  ======================================================================

Histogram buckets are counted one field per bucket (not cumulative: one HINCRBY per observation), sums in
whole milliseconds, so sums read back exactly; the reader accumulates them for Prometheus.

**Labels.** A run carries its own label table (written at submit, run-record fields ``ml`` and ``mn``): the
distinct ``<task>\\t<queue>`` pairs of its plan, one per line, and one character per node (``chr(48 + i)``:
the node's line in ``ml``), so a script finds a node's labels without reading the plan. A run whose plan has
more than :data:`RUN_LABELS_MAX` distinct pairs counts the rest under ``other``. Cardinality is bounded
fleet-wide: each label kind (workflow, task, queue) keeps a registry of the values it has seen
(``<prefix>:metrics:values:<kind>``); past ``wfcelery_metrics_max_values`` new values count as ``other``.
``mw`` (the run's workflow label) is written only when it is ``other``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from redis.crc import key_slot

#: Upper bounds (ms) of the node duration and wait histograms' buckets: 5 ms to 1 hour. Integers so that
#: the Lua side compares exactly; ``wfcelery_node_*_seconds`` buckets are these / 1000, then +Inf.
BUCKETS_MS: tuple[int, ...] = (
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    1_800_000,
    3_600_000,
)

#: The label value a capped label falls back to.
OTHER = "other"
#: Distinct (task, queue) pairs one run's label table holds (``chr(48)`` .. ``chr(126)``).
RUN_LABELS_MAX = 79
#: Distinct values per label kind before new ones count as ``other`` (``wfcelery_metrics_max_values``).
DEFAULT_MAX_VALUES = 200

SEP = "\t"


class LabelKind(str, Enum):
    WORKFLOW = "workflow"
    TASK = "task"
    QUEUE = "queue"


def clean(value: str) -> str:
    """A label value as stored: no separator, no newline, never empty."""
    return value.replace("\t", " ").replace("\n", " ").replace("\r", " ") or "-"


def label_table(pairs: Sequence[tuple[str, str]]) -> tuple[str, str]:
    """The run-record fields ``ml`` and ``mn`` for nodes whose (task, queue) labels are ``pairs`` (in
    node order, already capped)."""
    lines: dict[str, int] = {}
    other = f"{OTHER}{SEP}{OTHER}"
    codes = []
    for task, queue in pairs:
        line = f"{clean(task)}{SEP}{clean(queue)}"
        if line not in lines and len(lines) >= RUN_LABELS_MAX - 1:
            line = other  # the last code is kept for it
        codes.append(chr(48 + lines.setdefault(line, len(lines))))
    return "\n".join(lines), "".join(codes)


# -- Redis Cluster: one shard per slot -------------------------------------------------------------------

_TAGS: list[str] | None = None
_TAGS_LOCK = threading.Lock()


def slot_tag(slot: int) -> str:
    """The shortest string (base 36, then by value) whose Redis Cluster slot is ``slot``: the hash tag of
    that slot's metrics shard. The table (16,384 tags) is built once per process, on first use."""
    global _TAGS
    if _TAGS is None:
        with _TAGS_LOCK:
            if _TAGS is None:
                _TAGS = _build_tags()
    return _TAGS[slot]


def _build_tags() -> list[str]:
    tags: list[str | None] = [None] * 16384
    missing, n = 16384, 0
    while missing:
        tag = _base36(n)
        slot = key_slot(tag.encode())
        if tags[slot] is None:
            tags[slot] = tag
            missing -= 1
        n += 1
    return [t or "" for t in tags]


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, d = divmod(n, 36)
        out = digits[d] + out
        if n == 0:
            return out


def run_slot(run_id: str) -> int:
    return int(key_slot(run_id.encode()))


# -- reading back ----------------------------------------------------------------------------------------


@dataclass
class Histogram:
    """Counts per bucket (``le`` ms, ``None`` for +Inf; not cumulative) and the sum in ms."""

    buckets: dict[int | None, int] = field(default_factory=dict)
    sum_ms: int = 0

    @property
    def count(self) -> int:
        return sum(self.buckets.values())

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound in seconds, observations <= it) for every bucket, +Inf last."""
        out, total = [], 0
        for le in BUCKETS_MS:
            total += self.buckets.get(le, 0)
            out.append((le / 1000, total))
        out.append((float("inf"), total + self.buckets.get(None, 0)))
        return out

    def add(self, other: Histogram) -> None:
        for le, n in other.buckets.items():
            self.buckets[le] = self.buckets.get(le, 0) + n
        self.sum_ms += other.sum_ms


@dataclass
class Snapshot:
    """Every counter, summed over the shards."""

    runs: dict[tuple[str, str], int] = field(default_factory=dict)  # (workflow, status)
    active: dict[str, int] = field(default_factory=dict)  # workflow
    nodes: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (task, queue, status)
    duration: dict[tuple[str, str], Histogram] = field(default_factory=dict)  # (task, queue)
    wait: dict[str, Histogram] = field(default_factory=dict)  # queue
    repairs: dict[str, int] = field(default_factory=dict)  # kind
    #: pool -> (slots used, nodes waiting): read from the pools' own keys (ops/pools.py), not counters
    pools: dict[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def decode(cls, shards: Iterable[Mapping[str, str]]) -> Snapshot:
        snap = cls()
        for shard in shards:
            for name, value in shard.items():
                snap._add(name.split(SEP), int(value))
        return snap

    def _add(self, parts: list[str], n: int) -> None:
        kind, rest = parts[0], parts[1:]
        if kind == "r" and len(rest) == 2:
            _inc(self.runs, (rest[0], rest[1]), n)
        elif kind == "a" and len(rest) == 1:
            _inc(self.active, rest[0], n)
        elif kind == "n" and len(rest) == 3:
            _inc(self.nodes, (rest[0], rest[1], rest[2]), n)
        elif kind == "x" and len(rest) == 1:
            _inc(self.repairs, rest[0], n)
        elif kind in ("d", "ds") and len(rest) == (3 if kind == "d" else 2):
            _observe(self.duration.setdefault((rest[0], rest[1]), Histogram()), kind, rest[2:], n)
        elif kind in ("w", "ws") and len(rest) == (2 if kind == "w" else 1):
            _observe(self.wait.setdefault(rest[0], Histogram()), kind, rest[1:], n)


def _inc(counts: dict[Any, int], key: Any, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


def _observe(h: Histogram, kind: str, le: list[str], n: int) -> None:
    if kind.endswith("s"):
        h.sum_ms += n
        return
    bound = None if le[0] == "inf" else int(le[0])
    h.buckets[bound] = h.buckets.get(bound, 0) + n
