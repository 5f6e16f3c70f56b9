"""What the tracker keeps about the fleet rather than one run: the reconciler's list of live runs,
worker heartbeats, the reconciler's election, and the start gate's entries (with their pub/sub channel)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import redis

from wfcelery.tracker.base import TrackerBase, converted_errors
from wfcelery.tracker.records import GATE_SEQ_FIELD, HALTING, HALTING_EPOCH, GateEntry
from wfcelery.tracker.states import RunStatus

#: Most seconds a fence waits for leases to be acknowledged or lapse (a lease lapses after its own lease
#: time; this only bounds a clock gone wrong).
FENCE_TIMEOUT = 60.0


class Fleet(TrackerBase):
    """Live runs, heartbeats, election and the gate (see the module docstring)."""

    def watch(self, run_id: str) -> None:
        """Put a run (back) on the reconciler's list of live runs."""
        with converted_errors("list a live run"):
            self.client.sadd(self.keys.live, run_id)

    def live_runs(self) -> list[str]:
        with converted_errors("list live runs"):
            return sorted(self.client.smembers(self.keys.live))

    def unwatch(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            with converted_errors("drop ended runs from the live list"):
                self.client.srem(self.keys.live, *run_ids)

    def beat(self, hostname: str, boot_ms: int | None, active: Iterable[str], keep: float) -> int:
        """A worker's heartbeat (``records.WorkerBeat``, stamped with Redis's clock by ``lua/beat.lua``),
        kept ``keep`` seconds; the worker is (again) on the list the reconciler watches. ``boot_ms``: None
        on the first beat, whose time becomes the boot time. Returns the beat's time (ms, Redis clock).
        One round trip (two when Redis does not know the script yet)."""
        script = self.scripts["beat"]
        args = [boot_ms or "", ",".join(sorted(active)), int(keep * 1000)]
        with converted_errors("send a heartbeat"):
            for _ in range(2):
                pipe = self.client.pipeline(transaction=False)
                pipe.evalsha(script.sha, 1, self.keys.worker(hostname), *args)
                pipe.sadd(self.keys.workers, hostname)
                beat_ms, _added = pipe.execute(raise_on_error=False)
                if not isinstance(beat_ms, redis.exceptions.NoScriptError):
                    break
                script.sha = self.client.script_load(script.script)  # a restarted or new server
            for reply in (beat_ms, _added):
                if isinstance(reply, Exception):
                    raise reply
        return int(beat_ms)

    def workers(self) -> list[str]:
        """Hostnames of the workers that beat and were not forgotten since (``forget_workers``)."""
        with converted_errors("list workers"):
            return sorted(self.client.smembers(self.keys.workers))

    def forget_workers(self, hostnames: Sequence[str]) -> None:
        """Stop watching workers judged gone (a worker that beats again is back on the list)."""
        if hostnames:
            with converted_errors("forget gone workers"):
                self.client.srem(self.keys.workers, *hostnames)

    def heartbeats(self, hostnames: Sequence[str]) -> dict[str, str | None]:
        """Each worker's heartbeat value, None for a worker with no live heartbeat."""
        if not hostnames:
            return {}
        keys = [self.keys.worker(h) for h in hostnames]
        with converted_errors("read heartbeats"):
            # the heartbeat keys carry no hash tag: on a Redis Cluster they span slots, where MGET refuses
            mget_nonatomic = getattr(self.client, "mget_nonatomic", None)
            values = mget_nonatomic(keys) if mget_nonatomic is not None else self.client.mget(keys)
        return dict(zip(hostnames, values, strict=True))

    def watched_heartbeats(self) -> tuple[int, dict[str, str | None]]:
        """Redis's clock (ms) and the heartbeat of every worker on the watch list (:meth:`workers`), read
        after it: two round trips, whatever the number of workers and live runs."""
        if self.settings.redis_cluster:  # a cluster pipeline sends no command without a key
            return self.server_ms(), self.heartbeats(self.workers())
        with converted_errors("list workers"):
            pipe = self.client.pipeline(transaction=False)
            pipe.time()
            pipe.smembers(self.keys.workers)
            (sec, usec), hosts = pipe.execute()
        return int(sec) * 1000 + int(usec) // 1000, self.heartbeats(sorted(hosts))

    def elect(self, hostname: str, ttl: float, lease: str | None = None) -> bool:
        """Take or keep the reconciler's lease (or the ``lease`` key's: the scheduler's) for ``ttl``
        seconds; False when another worker holds it. One round trip (two for the holder, which renews
        it): every worker calls it every heartbeat."""
        key, ms = lease or self.keys.reconciler, int(ttl * 1000)
        with converted_errors("elect the reconciler"):
            pipe = self.client.pipeline(transaction=False)
            pipe.set(key, hostname, nx=True, px=ms)
            pipe.get(key)
            taken, holder = pipe.execute()
            if taken:
                return True
            if holder == hostname:
                self.client.pexpire(key, ms)
                return True
        return False

    def set_gate(self, run_id: str, status: RunStatus, epoch: int) -> int:
        """Tell every worker's message filter and local start gate about a run's new status (gate.lua:
        the table entry for resyncs, a numbered message on the gate channel). Returns the change number."""
        # A paused run's entry lasts until it is resumed or cancelled (its messages may wait in a queue for
        # as long as it stays paused); the others, as long as a finished run's keys.
        expires = 0 if status is RunStatus.PAUSED else int(time.time()) + self.settings.run_ttl
        return self._gate_change(run_id, GateEntry.of(status, epoch, expires))

    def fence_gate(self, run_id: str) -> None:
        """Mark a run as halting (``records.HALTING``) and wait until every worker process that holds a
        gate lease has applied it -- and recorded RUNNING for every body it let start before -- or its
        lease has lapsed: from then on no process starts a body of the run without asking the tracker
        (start.lua), so the transition that follows (pause, cancel) is strict."""
        entry = GateEntry(HALTING, HALTING_EPOCH, int(time.time()) + self.settings.run_ttl)
        seq = self._gate_change(run_id, entry)
        # Whatever this process's own setting: the workers' leases (each lapses after its own lease time).
        self.await_gate(seq, FENCE_TIMEOUT)

    def await_gate(self, seq: int, timeout: float) -> list[str]:
        """Wait until every live gate lease has applied change ``seq``; returns the leases still behind at
        ``timeout`` (none, unless a process stopped renewing: its lease lapses within the lease time)."""
        deadline = time.monotonic() + timeout
        pause = 0.0005
        while True:
            with converted_errors("wait for the workers' gate"):
                lagging = list(self.scripts["gate_lag"](keys=[self.keys.gate_leases], args=[seq]))
            if not lagging or time.monotonic() >= deadline:
                return lagging
            time.sleep(pause)
            pause = min(pause * 2, 0.02)

    def _gate_change(self, run_id: str, entry: GateEntry) -> int:
        with converted_errors("update the worker gate"):
            args = [run_id, entry.encode(), self.keys.gate_channel]
            return int(self.scripts["gate"](keys=[self.keys.gate], args=args))

    def gate_snapshot(self) -> tuple[dict[str, GateEntry], int]:
        """The whole gate table and the number of its last change, read together."""
        with converted_errors("read the worker gate"):
            table = self.client.hgetall(self.keys.gate)
        seq = int(table.pop(GATE_SEQ_FIELD, 0) or 0)
        return {run_id: GateEntry.decode(e) for run_id, e in table.items()}, seq

    def drop_gate_entries(self, run_ids: Sequence[str]) -> None:
        if run_ids:
            with converted_errors("prune the worker gate"):
                self.client.hdel(self.keys.gate, *run_ids)

    def renew_gate_lease(self, lease_id: str, ttl: float, applied: int) -> int:
        """Take or renew a process's gate lease for ``ttl`` seconds, saying it applied every gate change up
        to ``applied``; returns the number of the gate's last change (one round trip; two on a Redis Cluster,
        the lease first)."""
        keys, args = [self.keys.gate_leases], [lease_id, str(int(ttl * 1000)), str(applied)]
        with converted_errors("renew the gate lease"):
            if self.settings.redis_cluster:  # redis-py sends no script on a cluster pipeline
                self.scripts["gate_lease"](keys=keys, args=args)
                return int(self.client.hget(self.keys.gate, GATE_SEQ_FIELD) or 0)
            pipe = self.client.pipeline(transaction=False)
            pipe.hget(self.keys.gate, GATE_SEQ_FIELD)
            self.scripts["gate_lease"](keys=keys, args=args, client=pipe)
            seq, _ = pipe.execute()
        return int(seq or 0)

    def drop_gate_lease(self, lease_id: str) -> None:
        with converted_errors("drop the gate lease"):
            self.scripts["gate_lease"](keys=[self.keys.gate_leases], args=[lease_id, 0, 0])

    def subscribe_gate(self) -> Any:
        """A pub/sub subscribed to gate changes (``GateEntry.from_message`` reads its messages)."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.keys.gate_channel)
        return pubsub
