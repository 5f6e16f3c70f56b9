"""Pools and rate limits as data: a pool's name, its slots and its rate (``wfcelery_pools``,
``engine.set_pool``), parsed and checked once where they enter. The tracker side is ``ops/pools.py``."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from wfcelery.errors import PoolError

#: What a pool name may be made of (as a node name: it is part of Redis keys and of member strings).
POOL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")

#: Seconds per rate unit: ``n/s``, ``n/m``, ``n/h``.
RATE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}

#: The token bucket holds the starts of this many seconds at the rate (at least one start): the burst a
#: pool allows after an idle spell. Starts are otherwise spaced evenly, ``1 / rate`` apart.
BURST_SECONDS = 0.1

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*([smh])\s*$")


@dataclass(frozen=True)
class Rate:
    """A start rate: ``count`` starts per ``unit`` (``s``, ``m`` or ``h``)."""

    count: float
    unit: str

    @property
    def per_second(self) -> float:
        return self.count / RATE_UNITS[self.unit]

    @property
    def burst(self) -> int:
        """Starts the bucket holds when full (:data:`BURST_SECONDS` worth, at least 1)."""
        return max(1, math.floor(self.per_second * BURST_SECONDS))

    def __str__(self) -> str:
        count = int(self.count) if self.count == int(self.count) else self.count
        return f"{count}/{self.unit}"


def parse_rate(value: Any, where: str) -> Rate:
    """``"60/m"`` -> Rate(60, "m"); anything else: :class:`PoolError` naming ``where`` and the value."""
    match = _RATE.match(value) if isinstance(value, str) else None
    if match is None or float(match.group(1)) <= 0:
        raise PoolError(
            f"{where}: malformed rate {value!r}: give starts per second, minute or hour, "
            "as '10/s', '60/m' or '500/h' (a number > 0)"
        )
    return Rate(float(match.group(1)), match.group(2))


def check_pool_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not POOL_NAME.match(name):
        raise PoolError(f"{where}: bad pool name {name!r} (letters, digits, _ . -; at most 100)")
    return name


def check_slots(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PoolError(f"{where}: slots must be a whole number >= 1, got {value!r}")
    return value


@dataclass(frozen=True)
class PoolSpec:
    """A pool's limits: at most ``slots`` nodes RUNNING at once (None: no bound) and at most ``rate``
    starts (None: no bound)."""

    name: str
    slots: int | None = None
    rate: Rate | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"slots": self.slots, "rate": None if self.rate is None else str(self.rate)}


def parse_pool(name: Any, value: Any) -> PoolSpec:
    """One entry of ``wfcelery_pools``: ``5`` (slots) or ``{"slots": 20, "rate": "60/m"}`` (either)."""
    where = f"wfcelery_pools[{name!r}]"
    check_pool_name(name, where)
    if isinstance(value, int) and not isinstance(value, bool):
        return PoolSpec(name, check_slots(value, where))
    if not isinstance(value, dict) or not value or set(value) - {"slots", "rate"}:
        raise PoolError(
            f"{where}: give a number of slots or {{'slots': n, 'rate': 'n/s|m|h'}}, got {value!r}"
        )
    slots = None if value.get("slots") is None else check_slots(value["slots"], where)
    rate = None if value.get("rate") is None else parse_rate(value["rate"], where)
    return PoolSpec(name, slots, rate)


def parse_pools(value: Any) -> dict[str, PoolSpec]:
    """The ``wfcelery_pools`` setting: a dict of pool name -> slots or ``{"slots", "rate"}``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PoolError(f"wfcelery_pools must be a dict of pool name -> slots, got {value!r}")
    return {name: parse_pool(name, spec) for name, spec in value.items()}
