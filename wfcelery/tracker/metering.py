"""The tracker's side of the metrics: the label table a run is submitted with (capped label values), and
reading every counter back (summed over the shards of a Redis Cluster). Formats: ``counters.py``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

from wfcelery.errors import TrackerError
from wfcelery.tracker.base import TrackerBase, converted_errors
from wfcelery.tracker.counters import OTHER, LabelKind, Snapshot, clean, label_table

_VALUES_LUA = (resources.files("wfcelery.tracker") / "lua" / "values.lua").read_text()


class Metering(TrackerBase):
    """Label capping and counter reads (see the module docstring)."""

    _verdicts: dict[tuple[LabelKind, str], bool]
    _verdicts_lock = threading.Lock()

    def metric_fields(
        self, workflow: str, pairs: Sequence[tuple[str, str]]
    ) -> tuple[dict[str, str], list[tuple[LabelKind, str]]]:
        """Run-record fields for a run of ``workflow`` whose nodes have these (task, queue) labels, in node
        order: ``ml`` and ``mn`` (the label table), and ``mw`` when the workflow counts as "other"; and
        the label values that are new, for :meth:`register_labels` once the run is written. Empty when
        metrics are off. A label value is looked up in Redis once per process."""
        if not self.settings.metrics:
            return {}, []
        new: list[tuple[LabelKind, str]] = []
        wf = self._capped(LabelKind.WORKFLOW, [clean(workflow)], new)[0]
        tasks = self._capped(LabelKind.TASK, [clean(t) for t, _ in pairs], new)
        queues = self._capped(LabelKind.QUEUE, [clean(q) for _, q in pairs], new)
        ml, mn = label_table(list(zip(tasks, queues, strict=True)))
        fields = {"ml": ml}
        if mn.strip("0"):  # left out when every node has the first line (_common.lua node_label)
            fields["mn"] = mn
        if wf != workflow:
            fields["mw"] = wf
        return fields, new

    def plan_labels(
        self, digest: str, workflow: str, pairs: Callable[[], Sequence[tuple[str, str]]]
    ) -> tuple[dict[str, str], list[tuple[LabelKind, str]]]:
        """:meth:`metric_fields` for the plan ``digest``, computed once per plan and process (the label
        registries only ever grow, so a verdict holds); the new values are handed out until registered.
        Best effort: when the registries cannot be read, no label table (the run's nodes count as
        "other"), and the submit goes on to fail, or not, on its own writes."""
        cache: dict[str, tuple[dict[str, str], list[tuple[LabelKind, str]]]]
        cache = self.__dict__.setdefault("_plan_labels", {})
        entry = cache.get(digest)
        if entry is None:
            try:
                entry = cache[digest] = self.metric_fields(workflow, pairs())
            except TrackerError:
                return {}, []
            if len(cache) > 1000:
                cache.pop(next(iter(cache)))
        return entry

    def register_labels(self, new: list[tuple[LabelKind, str]]) -> None:
        """Add the values :meth:`metric_fields` found new to their registries (one round trip). Two
        submitters admitting values at once may pass the cap by the few they add: a soft bound."""
        if new:
            with converted_errors("register metric label values"):
                pipe = self.client.pipeline(transaction=False)
                for kind, value in new:
                    pipe.sadd(self.keys.metric_values(kind.value), value)
                pipe.execute()
            new.clear()  # the cached entry's (plan_labels): the next run of the plan has none to register

    def _capped(self, kind: LabelKind, values: list[str], new: list[tuple[LabelKind, str]]) -> list[str]:
        if not hasattr(self, "_verdicts"):
            self._verdicts = {}
        unknown = sorted({v for v in values if (kind, v) not in self._verdicts})
        if unknown:
            script = self.client.register_script(_VALUES_LUA)
            with converted_errors("read metric label values"):
                reply = script(
                    keys=[self.keys.metric_values(kind.value)],
                    args=[self.settings.metrics_max_values, *unknown],
                )
            with self._verdicts_lock:
                self._verdicts.update({(kind, v): bool(ok) for v, ok in zip(unknown, reply, strict=True)})
            new += [(kind, v) for v, ok in zip(unknown, reply, strict=True) if int(ok) == 2]
        return [v if self._verdicts[(kind, v)] else OTHER for v in values]

    def snapshot(self) -> Snapshot:
        """Every counter, summed over the shards. Raises TrackerUnavailable / TrackerError."""
        with converted_errors("read the metrics"):
            if not self.settings.redis_cluster:
                return Snapshot.decode([self.client.hgetall(self.keys.metrics())])
            return Snapshot.decode(self._shards())

    def _shards(self) -> list[dict[str, Any]]:
        keys = list(self.client.scan_iter(match=self.keys.metrics_pattern, count=1000))
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        return list(pipe.execute()) if keys else []
