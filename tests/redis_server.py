"""The tests' throwaway redis-server: the same one `wfcelery demo` uses (wfcelery/_redis_server.py)."""

from wfcelery._redis_server import RedisServer, free_port, redis_binary

__all__ = ["RedisServer", "free_port", "redis_binary"]
