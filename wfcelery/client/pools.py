"""Pools and rate limits from the client: read them, resize them at run time (docs: pools and rate limits)."""

from __future__ import annotations

from typing import Any

from wfcelery.client.audit import audited
from wfcelery.client.base import EngineBase
from wfcelery.errors import PoolError
from wfcelery.ops.pool_flow import publish_granted
from wfcelery.ops.pools import PoolInfo, pools_of
from wfcelery.plan.compiler import Plan


def _pool(engine: Any, name: str, *args: Any, result: Any = None, **kwargs: Any) -> str:
    return f"pool {name}"


class PoolControl(EngineBase):
    """``engine.pools()``, ``engine.pool(name)`` and ``engine.set_pool(name, slots=..., rate=...)``."""

    def pools(self) -> list[PoolInfo]:
        """Every pool (the ``wfcelery_pools`` setting's and those set at run time): its slots, rate, slots
        used and nodes waiting, by name."""
        return pools_of(self.tracker).infos()

    def pool(self, name: str) -> PoolInfo:
        """One pool; :class:`PoolError` when no setting and no ``set_pool`` made it."""
        pools = pools_of(self.tracker)
        if name not in pools.names():
            raise PoolError(f"unknown pool {name!r} (pools: {', '.join(pools.names()) or 'none'})")
        return pools.info(name)

    @audited("set_pool", _pool)
    def set_pool(self, name: str, *, slots: int | None = None, rate: str | None = None) -> PoolInfo:
        """Set a pool's slots and/or rate (``"10/s"``, ``"60/m"``, ``"500/h"``; ``"none"``: no rate) for
        every worker and run, from the next release on. A resize down never stops a running node: the pool
        hands out no slot until fewer than ``slots`` hold one. A resize up releases waiting nodes now.

        Raises:
            PoolError: a bad name, slots < 1 or a malformed rate (nothing changed).
        """
        pools = pools_of(self.tracker)
        info = pools.set_pool(name, slots, rate)
        publish_granted(self.tracker, self.dispatch, pools.release(name))
        return info

    def check_pools(self, plan: Plan) -> None:
        """Refuse (:class:`PoolError`) a plan with a node in an unknown pool, before anything is written."""
        if plan.pools:
            pools_of(self.tracker).check_plan(plan)
