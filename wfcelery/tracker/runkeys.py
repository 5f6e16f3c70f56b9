"""Run keys in Redis: the claim that maps a key to the run holding it (``records.RunKeyClaim``).

The policy (who wins, taking over a stale claim, ``on_conflict``) is :mod:`wfcelery.ops.runkeys`'s; these
are its atomic steps. A claim lives as long as its run: ``wfcelery_run_ttl`` plus :data:`KEY_MARGIN`,
set when it is written, again when the run ends and on every sweep of the reconciler while the run lives,
so the key never expires before its run (it may outlive it by the margin: then it names a run that is
gone, and the next submit with the key takes it over).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from wfcelery.tracker.base import TrackerBase, converted_errors
from wfcelery.tracker.records import NodeRecord, RunKeyClaim, first_events

#: Seconds a run key's claim outlives its run's TTL (the run's keys get theirs a little later than the
#: claim: when the run ends, after late writes).
KEY_MARGIN = 3600


class RunKeys(TrackerBase):
    """The run-key steps of the :class:`~wfcelery.tracker.store.Tracker`."""

    @property
    def key_ttl_ms(self) -> int:
        return (self.settings.run_ttl + KEY_MARGIN) * 1000

    def key_holder(self, key: str) -> RunKeyClaim | None:
        with converted_errors("read a run key"):
            raw = self.client.get(self.keys.run_key(key))
        return RunKeyClaim.decode(raw) if raw else None

    def key_holders(self, keys: Sequence[str]) -> list[RunKeyClaim | None]:
        """Claims of many keys (one round trip on a single Redis; per slot on a Cluster)."""
        if not keys:
            return []
        names = [self.keys.run_key(k) for k in keys]
        with converted_errors("read run keys"):
            mget_nonatomic = getattr(self.client, "mget_nonatomic", None)
            raws = mget_nonatomic(names) if mget_nonatomic is not None else self.client.mget(names)
        return [RunKeyClaim.decode(r) if r else None for r in raws]

    def claim_key(
        self, key: str, claim: RunKeyClaim, expected: RunKeyClaim | None = None
    ) -> RunKeyClaim | None:
        """Write ``claim`` if the key is free (or still holds ``expected``: a takeover). Returns None when
        written, else the claim holding the key."""
        args: list[Any] = ["claim", claim.encode(), self.key_ttl_ms, expected.encode() if expected else ""]
        with converted_errors("claim a run key"):
            raw = self.scripts["runkey"](keys=[self.keys.run_key(key)], args=args)
        return RunKeyClaim.decode(raw) if raw else None

    def release_key(self, key: str, run_id: str) -> bool:
        """Delete the key if ``run_id`` holds it (cleanup, a submit that could not publish)."""
        with converted_errors("release a run key"):
            return bool(self.scripts["runkey"](keys=[self.keys.run_key(key)], args=["release", run_id]))

    def keep_key(self, key: str, run_id: str) -> bool:
        """Give the key a full TTL again if ``run_id`` holds it (the run ended, or still lives)."""
        args: list[Any] = ["expire", run_id, self.key_ttl_ms]
        with converted_errors("refresh a run key"):
            return bool(self.scripts["runkey"](keys=[self.keys.run_key(key)], args=args))

    def run_exists(self, run_id: str) -> bool:
        with converted_errors(f"read run {run_id}"):
            return bool(self.client.exists(self.keys.run(run_id)))

    def runs_exist(self, run_ids: Sequence[str]) -> list[bool]:
        with converted_errors("read runs"):
            pipe = self.client.pipeline(transaction=False)
            for run_id in run_ids:
                pipe.exists(self.keys.run(run_id))
            return [bool(n) for n in pipe.execute()] if run_ids else []

    def create_keyed(
        self,
        key: str,
        claim: RunKeyClaim,
        expected: RunKeyClaim | None,
        record: Mapping[str, str | int],
        roots: Sequence[int],
        plan_digest: str,
        plan_blob: str,
    ) -> tuple[RunKeyClaim | None, bool]:
        """Claim ``key`` for the run ``claim.run_id`` and create that run, in one atomic script (a single
        Redis). Returns (the claim holding the key, None when this call took it; whether it created the
        plan key)."""
        keys, args = self._create_call(key, claim, expected, record, roots, plan_digest, plan_blob)
        with converted_errors("create the run"):
            return _created(self.scripts["create_keyed"](keys=keys, args=args))

    def create_keyed_many(self, runs: Sequence[KeyedRun]) -> list[tuple[RunKeyClaim | None, bool]]:
        """:meth:`create_keyed` for many runs (no takeover: ``expected`` None), pipelined: one round trip.
        Each script call is atomic on its own."""
        if not runs:
            return []
        with converted_errors("create runs"):
            pipe = self.client.pipeline(transaction=False)
            sent: set[str] = set()
            for key, claim, expected, record, roots, digest, blob in runs:
                if digest in sent:  # a plan goes over the wire once per pipeline: its first run writes it
                    blob = ""
                sent.add(digest)
                keys, args = self._create_call(key, claim, expected, record, roots, digest, blob)
                self.scripts["create_keyed"](keys=keys, args=args, client=pipe)
            return [_created(reply) for reply in pipe.execute()]

    def _create_call(
        self,
        key: str,
        claim: RunKeyClaim,
        expected: RunKeyClaim | None,
        record: Mapping[str, str | int],
        roots: Sequence[int],
        plan_digest: str,
        plan_blob: str,
    ) -> tuple[list[str], list[Any]]:
        k, run_id, ttl = self.keys, claim.run_id, self.settings.run_ttl
        fields = json.dumps([str(v) for item in record.items() for v in item])
        queued = NodeRecord("Q", queued_ms=0).encode()  # queued at the run's creation
        nodes = json.dumps([str(v) for i in roots for v in (i, queued)])
        events = first_events(record, roots)
        keys = [k.run_key(key), k.run(run_id), k.nodes(run_id), k.events(run_id), k.index, k.live]
        gauge = f"a\t{record.get('mw') or record['name']}" if self.settings.metrics else ""
        args: list[Any] = [
            claim.encode(),
            self.key_ttl_ms,
            expected.encode() if expected else "",
            run_id,
            record["created"],
            plan_blob,
            ttl * 2,
            events,
            fields,
            nodes,
            gauge,
        ]
        # a single Redis: the counters are one hash (counters.py)
        return [*keys, k.plan(plan_digest), k.runs_of(str(record["name"])), k.metrics()], args


#: What :meth:`RunKeys.create_keyed_many` takes per run: :meth:`RunKeys.create_keyed`'s arguments.
KeyedRun = tuple[str, RunKeyClaim, None, Mapping[str, str | int], Sequence[int], str, str]


def _created(reply: Any) -> tuple[RunKeyClaim | None, bool]:
    created, extra = reply
    if not created:
        return RunKeyClaim.decode(extra), False
    return None, bool(extra)
