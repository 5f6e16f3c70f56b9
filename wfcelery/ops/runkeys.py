"""Run keys: at most one run per key among the runs the tracker keeps, decided atomically in Redis.

``submit(wf, run_key=K)`` writes the claim ``runkey:<K> -> <run id>|<claimed at>`` in the same atomic step
as the run (a single Redis: one Lua script, ``create_keyed.lua``, with both in its KEYS). On a Redis
Cluster the claim's key cannot share the run's slot (every key of a run carries the run id's hash tag, and
the id is not known before the key is decided), so the claim comes first (``SET NX`` in ``runkey.lua``),
then the run is created. A submitter that dies between the two leaves a claim naming a run that does not
exist: the next submit with the key sees the run missing and the claim older than :data:`CLAIM_GRACE`
seconds (Redis's clock) and takes the key over with a compare-and-set; a younger claim is waited for (its
run is being created). A claimer that was only slow checks, after creating its run, that it still holds
the key, and deletes its run if it lost it. The same takeover frees a key whose run expired or was cleaned
up (cleanup deletes the key with the run; a key outlives its run's TTL by ``KEY_MARGIN`` at most).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from enum import Enum
from typing import TYPE_CHECKING

from wfcelery.errors import SchemaError
from wfcelery.tracker.records import RunKeyClaim

if TYPE_CHECKING:
    from wfcelery.plan.compiler import Plan
    from wfcelery.tracker.store import Tracker

#: Seconds a claim whose run does not exist is left to its claimer before another submit takes it over.
CLAIM_GRACE = 5.0
#: Longest run key (characters).
MAX_KEY_LENGTH = 512


class OnConflict(str, Enum):
    """What ``submit(run_key=K)`` does when a run already holds K."""

    USE_EXISTING = "use_existing"  #: return the run holding the key, whatever its state
    FAIL = "fail"  #: raise RunKeyConflict (its .run_id is the holder)
    RETRY_FAILED = "retry_failed"  #: a FAILED or CANCELLED holder is retried (the same run); else used

    @classmethod
    def parse(cls, value: OnConflict | str) -> OnConflict:
        try:
            return cls(value)
        except ValueError:
            choices = ", ".join(repr(c.value) for c in cls)
            raise SchemaError(f"on_conflict: unknown policy {value!r}; choose one of {choices}") from None


def check_run_key(key: object) -> str:
    """A run key: a non-empty string of printable characters, at most :data:`MAX_KEY_LENGTH` long."""
    if not isinstance(key, str) or not key.strip():
        raise SchemaError(f"run_key: must be a non-empty string, not {key!r}")
    if len(key) > MAX_KEY_LENGTH:
        raise SchemaError(f"run_key: at most {MAX_KEY_LENGTH} characters, got {len(key)}")
    if not key.isprintable():
        raise SchemaError(f"run_key: {key!r} has control characters")
    return key


def create_keyed(
    tracker: Tracker,
    key: str,
    run_id: str,
    record: Mapping[str, str | int],
    plan: Plan,
    now_ms: int | None = None,
    roots: Sequence[int] | None = None,
) -> tuple[str | None, bool]:
    """Create run ``run_id`` holding ``key``, unless a run holds it already. ``now_ms``: Redis's clock as
    the caller just read it (spares a round trip); ``roots``: the nodes queued at creation (default the
    plan's; none for a run created QUEUED under max_active_runs).

    Returns (the run holding the key -- None when this call created its run --, whether this call created
    the plan key)."""
    expected: RunKeyClaim | None = None
    roots = plan.roots if roots is None else roots
    while True:
        claim = RunKeyClaim(run_id, now_ms or tracker.server_ms())
        now_ms = None
        if tracker.settings.redis_cluster:
            holder = tracker.claim_key(key, claim, expected)
            created_plan = False
            if holder is None:
                bound = tracker.settings.unconfirmed_bound  # start_run confirms it once its roots are sent
                created = tracker.create_run(run_id, record, roots, plan.digest, plan.blob, bound)
                created_plan = created.plan_created
                if tracker.key_holder(key) == claim:
                    return None, created_plan
                # taken over while we were slow: our run must not exist beside the key's
                tracker.delete_run(run_id, plan.digest if created_plan else None)
                continue
        else:
            holder, created_plan = tracker.create_keyed(
                key, claim, expected, record, roots, plan.digest, plan.blob
            )
            if holder is None:
                return None, created_plan
        if tracker.run_exists(holder.run_id):
            return holder.run_id, False
        if tracker.server_ms() - holder.at_ms >= CLAIM_GRACE * 1000:
            expected = holder  # its claimer died before creating the run, or the run is gone: take over
        else:
            expected = None
            time.sleep(0.05)  # its run is being created: look again
