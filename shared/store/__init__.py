"""The store: the only code that talks to Redis.

``Store`` owns the :class:`Wire` (one pipelined connection per Redis node, on one
node, Sentinel or Cluster), ``store.redis`` (redis-py's commands on it) and the Lua
scripts (``scripts.py``, one file each under ``lua/``), and exposes the domain
operations as attributes: ``store.log`` (update logs and cursors),
``store.userlog`` (the users' event logs), ``store.webapps`` (mini apps),
``store.outbox`` (message writes and the updates they cause, in one step),
``store.entities`` (users, bots, chats, messages), ``store.readers`` (getUpdates
polls, webhooks and their dispatchers' leases), ``store.calls`` (results kept for
Idempotency-Key retries), ``store.challenges`` (Ed25519 sign-in),
``store.conversations`` (the system bot's) and ``Wakeups`` (one pub/sub
subscription per process for all bots). Each sub-store is handed only the pieces
it uses, never the ``Store``.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from redis.exceptions import RedisError

from shared import keys
from shared.redis_url import parse_redis_url
from shared.settings import Settings
from shared.store.backlog import Backlog, BacklogReader
from shared.store.calls import CallResults
from shared.store.challenges import Challenges
from shared.store.client import Client
from shared.store.conversations import Conversations
from shared.store.entities import Entities
from shared.store.log import AppendResult, LogInfo, StoredUpdate, UpdateLog
from shared.store.outbox import Outbox
from shared.store.readers import ReaderStore
from shared.store.scripts import Script, register_scripts
from shared.store.tails import Tails
from shared.store.userlog import UserLog
from shared.store.wakeups import Wakeup, Wakeups
from shared.store.webapps import WebApps
from shared.store.wire import NotReplicated, StoreMisconfigured, StoreTimeout, Wire

__all__ = [
    "AppendResult",
    "Backlog",
    "LogInfo",
    "NotReplicated",
    "Store",
    "StoreError",
    "StoreMisconfigured",
    "StoreTimeout",
    "StoredUpdate",
    "UpdateLog",
    "Wakeup",
    "Wakeups",
]

# Any failure of the store (the base class of the Redis client's errors): callers
# outside shared/ catch this instead of importing redis.
StoreError = RedisError


class Store:
    """The wire to Redis, its scripts and the domain operations built on them."""

    def __init__(self, settings: Settings, wire: Wire) -> None:
        self.settings = settings
        # every command goes through the wire; store.redis is redis-py's commands on it
        self.wire = wire
        self.redis = redis = Client(wire)
        self.scripts: dict[str, Script] = register_scripts(wire, redis)
        # each sub-store gets only the pieces it uses
        self.log = UpdateLog(redis=redis, wire=wire, scripts=self.scripts, settings=settings)
        self.tails = self.log.tails = Tails(wire, self.scripts["tail_check"])
        self.outbox = Outbox(wire=wire, scripts=self.scripts, settings=settings)
        self.outbox.tails = self.tails
        self.userlog = UserLog(redis=redis, wire=wire, scripts=self.scripts, settings=settings)
        self.webapps = WebApps(redis=redis)
        self.entities = Entities(redis=redis, wire=wire, outbox=self.outbox, scripts=self.scripts)
        self.readers = ReaderStore(redis=redis, scripts=self.scripts, log=self.log)
        self.calls = CallResults(wire=wire)
        self.challenges = Challenges(wire=wire)
        self.conversations = Conversations(wire=wire)
        self.backlog = BacklogReader(
            wire=wire,
            count_after=self.scripts["count_after"],
            live_reader=self.scripts["live_reader"],
        )

    @classmethod
    def connect(cls, settings: Settings, *, url: str | None = None, role: str = "botgw") -> Store:
        """The store of ``settings.redis_url`` (or ``url``); connections open lazily.
        ``role`` names the process in Redis (``CLIENT LIST`` shows
        ``botgw-<role>-<host>-<pid>``)."""
        text = url or settings.redis_url
        if not text:
            raise ValueError("no Redis URL: set BOTGW_REDIS_URL")
        name = f"botgw-{role}-{socket.gethostname()}-{os.getpid()}".replace(" ", "_")
        wire = Wire(
            parse_redis_url(text),
            timeout=settings.redis_timeout,
            name=name,
            wait_replicas=settings.redis_wait_replicas,
        )
        return cls(settings, wire)

    def wakeups(self) -> Wakeups:
        """A wake-up listener on pub/sub connections of its own."""
        return Wakeups(self.wire)

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

    async def unready(self) -> str | None:
        """None when the store can take writes now; else why not (readiness).
        Answers within the Redis timeout."""
        return await self.wire.writable()

    async def close(self) -> None:
        self.wire.close()
