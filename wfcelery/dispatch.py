"""What wfcelery sends to Celery: node messages, revoke broadcasts and a run's end callback.

Both sides send them -- the client API (submit, cancel, resume, retry) and the worker side (released
children, tracker-level retries, fail_fast revokes) -- and neither imports the other: both use this.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from celery import Celery, signature

from .compiler import Plan
from .keys import task_id
from .records import RESEND_HEADER

logger = logging.getLogger("wfcelery.dispatch")

#: Ids per revoke broadcast message.
REVOKE_CHUNK = 5_000


class Dispatcher:
    """Sends a run's messages through one Celery app."""

    def __init__(self, app: Celery, *, celery_results: bool) -> None:
        self.app = app
        self.ignore_result = not celery_results  # the tracker keeps every result anyway

    def publish(
        self,
        plan: Plan,
        run_id: str,
        items: Iterable[tuple[int, int, Sequence[Any]]],
        params: Mapping[str, Any],
        countdown: float | None = None,
        resend: bool = False,
    ) -> None:
        """Send node messages: ``items`` are (node index, epoch, parent results). ``resend`` marks a
        message sent again under the same id on purpose (a tracker-level retry), which a worker still
        running the first copy must not take for a duplicate."""
        app = self.app
        with app.producer_or_acquire() as producer:
            for index, epoch, parent_results in items:
                msg = plan.message(run_id, index, epoch, params, parent_results)
                if countdown:
                    msg["countdown"] = countdown
                if resend:
                    msg["headers"][RESEND_HEADER] = 1
                if self.ignore_result:
                    msg["ignore_result"] = True
                app.send_task(plan.nodes[index].task, producer=producer, add_to_parent=False, **msg)

    def revoke(self, run_id: str, nodes: Sequence[tuple[int, int]], terminate: bool = False) -> list[str]:
        """Broadcast a revoke of these (node index, epoch) messages; returns their task ids."""
        ids = [task_id(run_id, index, epoch) for index, epoch in nodes]
        for start in range(0, len(ids), REVOKE_CHUNK):
            self.app.control.revoke(ids[start : start + REVOKE_CHUNK], terminate=terminate)
        return ids

    def callback(self, run_id: str, status: str, callback_json: str | None) -> None:
        """Send the run's ``on_success`` / ``on_failure`` signature (the Lua script that ended the run
        returned it exactly once)."""
        if not callback_json:
            return
        try:
            signature(json.loads(callback_json), app=self.app).apply_async((run_id,))
        except Exception:
            logger.exception("wfcelery: could not send the %s callback of run %s", status, run_id)
