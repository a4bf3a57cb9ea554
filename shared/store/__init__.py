"""The store: the only code that talks to Redis.

``Store`` owns the connection pool, the pipelined :class:`Wire` and the Lua
scripts (``scripts.py``, one file each under ``lua/``), and exposes the domain
operations as attributes: ``store.log`` (update logs and cursors),
``store.outbox`` (message writes and the updates they cause, in one step),
``store.entities`` (users, bots, chats, messages), ``store.readers`` (getUpdates
polls, webhooks and their dispatchers' leases), ``store.calls`` (results kept for
Idempotency-Key retries) and ``Wakeups`` (one pub/sub subscription per process
for all bots). Each sub-store is handed only the pieces it uses, never the
``Store``.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Redis
from redis.exceptions import RedisError

from shared import keys
from shared.settings import Settings
from shared.store.calls import CallResults
from shared.store.entities import Entities
from shared.store.log import AppendResult, LogInfo, StoredUpdate, UpdateLog
from shared.store.outbox import Outbox
from shared.store.readers import ReaderStore
from shared.store.scripts import Script, register_scripts
from shared.store.wakeups import Wakeup, Wakeups
from shared.store.wire import Wire

__all__ = [
    "AppendResult",
    "LogInfo",
    "Store",
    "StoreError",
    "StoredUpdate",
    "UpdateLog",
    "Wakeup",
    "Wakeups",
]

# Any failure of the store (the base class of the Redis client's errors): callers
# outside shared/ catch this instead of importing redis.
StoreError = RedisError


class Store:
    """Connection pool, scripts and the domain operations built on them."""

    def __init__(self, redis: Redis, settings: Settings, wire: Wire) -> None:
        self.redis = redis
        self.settings = settings
        # the hot path (scripts, record and log reads); redis-py does everything else
        self.wire = wire
        self.scripts: dict[str, Script] = register_scripts(redis, wire)
        # each sub-store gets only the pieces it uses
        self.log = UpdateLog(redis=redis, wire=wire, scripts=self.scripts, settings=settings)
        self.outbox = Outbox(wire=wire, scripts=self.scripts, settings=settings)
        self.entities = Entities(redis=redis, wire=wire, outbox=self.outbox)
        self.readers = ReaderStore(redis=redis, scripts=self.scripts, log=self.log)
        self.calls = CallResults(wire=wire)

    @classmethod
    def connect(cls, settings: Settings, *, url: str | None = None) -> Store:
        """Create the pool (connections open lazily, at most ``redis_pool_size``)."""
        target = url or settings.redis_url
        if not target:
            raise ValueError("no Redis URL: set BOTGW_REDIS_URL")
        pool = aioredis.BlockingConnectionPool.from_url(
            target,
            max_connections=settings.redis_pool_size,
            timeout=10,
            socket_connect_timeout=5,
            health_check_interval=30,
        )
        return cls(aioredis.Redis(connection_pool=pool), settings, Wire(target))

    def wakeups(self) -> Wakeups:
        """A wake-up listener on a dedicated pub/sub connection."""
        return Wakeups(self.wire.endpoint)

    async def take_tokens(self, bot_id: int, buckets: list[tuple[str, float, float]]) -> int:
        """Take one token from every (scope, rate per second, capacity) bucket of a bot,
        or from none of them; returns 0 when allowed, else the milliseconds to wait."""
        args: list[Any] = []
        for _, rate, capacity in buckets:
            args.extend([rate, capacity])
        bucket_keys = [keys.bot_rate(bot_id, scope) for scope, _, _ in buckets]
        return int(await self.scripts["rate_limit"](keys=bucket_keys, args=args))

    async def take_token(self, key: str, rate: float, capacity: float) -> int:
        """Take one token from the bucket ``key`` (a key builder's, e.g.
        :func:`shared.keys.user_rate`): 0 when allowed, else the ms to wait."""
        return int(await self.scripts["rate_limit"](keys=[key], args=[rate, capacity]))

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except RedisError:
            return False
        except OSError:
            return False

    async def close(self) -> None:
        # the pool was passed in explicitly, so aclose() alone would leave it open
        await self.redis.aclose(close_connection_pool=True)
        self.wire.close()
