"""The tracker's Redis client, from the settings: a plain Redis (``redis://``, ``rediss://``, ``unix://``),
a Redis Cluster (``wfcelery_redis_cluster``), or the master behind Redis Sentinel.

Sentinel follows the convention of Celery's broker and result backend: the URL lists the sentinels,
``sentinel://[:password@]host:port[/db];sentinel://host2:port2``, and the master's name comes from the
transport options (``wfcelery_redis_transport_options = {"master_name": "mymaster"}``; when the tracker
follows a ``sentinel://`` result backend, from ``result_backend_transport_options``). redis-py's
:class:`~redis.sentinel.Sentinel` asks the sentinels for the current master on every new connection and
drops connections to a master that was demoted (READONLY), so clients, workers, the reconciler, pub/sub
followers and the web server all follow a failover on their own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlparse

import redis
from redis.cluster import RedisCluster
from redis.sentinel import Sentinel

from wfcelery.errors import ConfigurationError

SENTINEL_SCHEME = "sentinel://"


def is_sentinel(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME)


def sentinel_hosts(url: str) -> tuple[list[tuple[str, int]], int, str | None, str | None]:
    """``sentinel://[[user]:password@]h:p[/db];sentinel://h2:p2`` -> (sentinels, db, username, password):
    db and credentials from the first URL that gives them."""
    hosts: list[tuple[str, int]] = []
    db, username, password = 0, None, None
    for chunk in filter(None, (c.strip() for c in url.split(";"))):
        if not is_sentinel(chunk):
            raise ConfigurationError(
                f"wfcelery_redis_url: {chunk!r} in a sentinel list is not a sentinel:// URL"
            )
        part = urlparse(chunk)
        if not part.hostname:
            raise ConfigurationError(f"wfcelery_redis_url: {chunk!r} names no sentinel host")
        hosts.append((part.hostname, part.port or 26379))
        path = part.path.strip("/")
        if path and not db:
            if not path.isdigit():
                raise ConfigurationError(f"wfcelery_redis_url: {chunk!r}: the database must be a number")
            db = int(path)
        username = username or (unquote(part.username) if part.username else None)
        password = password or (unquote(part.password) if part.password else None)
    return hosts, db, username, password


def connect(
    url: str, cluster: bool, transport_options: dict[str, Any], timeout: float | None
) -> redis.Redis | RedisCluster:
    """A client that decodes replies to ``str``; ``timeout`` bounds connecting and every call."""
    timeouts: dict[str, Any] = {"socket_connect_timeout": timeout, "socket_timeout": timeout}
    if cluster:
        return RedisCluster.from_url(url, decode_responses=True, **timeouts)
    if not is_sentinel(url):
        return redis.Redis.from_url(url, decode_responses=True, health_check_interval=30, **timeouts)
    master = transport_options.get("master_name")
    if not master:
        raise ConfigurationError(
            "wfcelery_redis_url is a sentinel:// URL: name the master in "
            "wfcelery_redis_transport_options = {'master_name': '...'}"
        )
    hosts, db, username, password = sentinel_hosts(url)
    sentinels = Sentinel(
        hosts,
        min_other_sentinels=int(transport_options.get("min_other_sentinels", 0)),
        sentinel_kwargs={**timeouts, **transport_options.get("sentinel_kwargs", {})},
        **timeouts,
    )
    client: redis.Redis = sentinels.master_for(
        master,
        db=db,
        username=username,
        password=password,
        decode_responses=True,
        health_check_interval=30,
    )
    return client


def topology(client: Any) -> dict[str, Any]:
    """What ``doctor`` reports of the tracker's Redis: its role, and for a master its replicas and how far
    each lags (``INFO replication``)."""
    info = client.info("replication")
    replicas = [
        {"address": f"{v.get('ip')}:{v.get('port')}", "state": v.get("state"), "lag": v.get("lag")}
        for k, v in info.items()
        if k.startswith("slave") and isinstance(v, dict)
    ]
    return {"role": info.get("role"), "replicas": replicas}
