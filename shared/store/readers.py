"""Coordination of the HTTP readers of a bot's log: getUpdates and webhooks.

Reached as ``store.readers``. Three readers share a consumer's committed cursor
(docs/design.md, Readers and cursors): a live WebSocket marks its consumer
(``store.log.claim_reader``, under its worker's lease), an active webhook reads
consumer ``default``, and every ``getUpdates`` call takes a new *poll generation*
of its consumer so that a newer poll ends an older one.

This module keeps

* the poll state of each (bot, consumer): generation, the last poll's offset and
  times (the tight-loop guard) and the remembered ``allowed_updates``;
* the webhook configuration and delivery state of each bot;
* the bots with an active webhook, in :data:`shared.keys.INDEX_BUCKETS` sets by
  bot id (no slot holds them all), and the per-bot delivery leases that let any
  number of dispatchers share the work, one dispatcher per bot at a time;
* the live dispatchers (a heartbeat each, in one small sorted set) from which each
  dispatcher computes the bots it owns (webhooks/assignment.py), and the channel
  that tells them the index or the members changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared import keys
from shared.ids import new_epoch, stream_id_from_update_id
from shared.store.client import Client
from shared.store.fields import as_text
from shared.store.log import StoredUpdate, UpdateLog, contiguous, raw_entries
from shared.store.scripts import Script

__all__ = [
    "DISPATCHERS_BOTS",
    "DISPATCHERS_MEMBERS",
    "WEBHOOK_CONSUMER",
    "Membership",
    "PollStart",
    "ReaderStore",
    "WebhookConfig",
]

WEBHOOK_CONSUMER = "default"  # the consumer whose committed cursor a webhook moves

# Tight-loop guard (as Telegram does): a poll that repeats the previous poll of its
# consumer (same offset) within REPEAT_WINDOW_MS waits at least REPEAT_TIMEOUT_MS for
# new updates, and is answered no sooner than REPEAT_PACE_MS after the previous one.
REPEAT_WINDOW_MS = 3000
REPEAT_TIMEOUT_MS = 3000
REPEAT_PACE_MS = 1000
POLL_STATE_TTL_S = 7 * 86_400

# the messages on keys.webhook_dispatchers_channel()
DISPATCHERS_BOTS = "bots"  # a webhook was set, deleted or gave up: the index changed
DISPATCHERS_MEMBERS = "members"  # a dispatcher joined or left


@dataclass(frozen=True, slots=True)
class PollStart:
    """The outcome of starting a ``getUpdates`` call.

    ``status`` is ``ok``, ``webhook`` (an active webhook reads the consumer) or
    ``reader`` (a live WebSocket does). For ``ok``: the poll reads the log after
    ``after``; ``timeout_s`` may be raised and ``pace_s`` set by the tight-loop guard.
    """

    status: str
    generation: int = 0
    epoch: str = ""
    after: int = 0
    allowed: frozenset[str] | None = None
    timeout_s: float = 0.0
    pace_s: float = 0.0
    repeated: bool = False
    reader: str | None = None
    entries: list[StoredUpdate] | None = None  # the first read, when asked for
    # how many updates of the epoch are at or below ``after`` (None: not known)
    after_ordinal: int | None = None


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """A bot's webhook as set by ``setWebhook`` plus its delivery state."""

    url: str
    secret: str | None
    max_connections: int
    allowed_updates: frozenset[str] | None
    id_format: str  # "string" (native dialect) or "number" (Telegram dialect)
    active: bool
    version: int
    set_date: int
    last_error_date: int | None = None
    last_error_message: str | None = None
    ip_address: str | None = None

    @classmethod
    def from_hash(cls, raw: dict[Any, Any]) -> WebhookConfig | None:
        data = {as_text(k): as_text(v) for k, v in raw.items()}
        if not data.get("url"):
            return None
        allowed = data.get("allowed")
        error_date = data.get("last_error_date")
        return cls(
            url=data["url"],
            secret=data.get("secret") or None,
            max_connections=int(data.get("max_connections") or 1),
            allowed_updates=frozenset(allowed.split(",")) if allowed else None,
            id_format=data.get("id_format") or "string",
            active=data.get("active") == "1",
            version=int(data.get("version") or 0),
            set_date=int(data.get("set_date") or 0),
            last_error_date=int(error_date) if error_date else None,
            last_error_message=data.get("last_error_message") or None,
            ip_address=data.get("ip_address") or None,
        )


@dataclass(frozen=True, slots=True)
class Membership:
    """The live webhook dispatchers after a heartbeat (sorted), and whether the beat
    made this one a member again (it was not: it just started, or its membership
    ran out without a beat)."""

    members: tuple[str, ...]
    joined: bool


def _listed(bot_id: int) -> str:
    """The bucket of the webhook index that lists ``bot_id``."""
    return keys.webhook_index(keys.index_bucket(bot_id))


class ReaderStore:
    """Poll generations, webhook configuration and state, dispatcher leases."""

    def __init__(self, *, redis: Client, scripts: dict[str, Script], log: UpdateLog) -> None:
        self._redis = redis
        self._scripts = scripts
        self._log = log

    # -- getUpdates ----------------------------------------------------------------

    async def begin_poll(
        self,
        bot_id: int,
        consumer: str,
        *,
        offset: int | None,
        timeout_s: float,
        allowed: Sequence[str] | None,
        read: int = 0,
        read_filtered: int = 0,
    ) -> PollStart:
        """Start a poll: check the other readers, confirm ``offset``, take a generation.

        ``allowed`` None keeps the consumer's remembered ``allowed_updates``; an empty
        sequence means every type. A positive ``offset`` commits the cursor to
        ``offset - 1`` (never beyond the newest update, never backwards). With
        ``read``, the poll's first read comes back too: that many entries after the
        committed position, or ``read_filtered`` when allowed_updates filters types.
        """
        reply = await self._scripts["begin_poll"](
            keys=[
                keys.poll_state(bot_id, consumer),
                keys.bot_cursors(bot_id),
                keys.bot_epoch(bot_id),
                keys.bot_last_id(bot_id),
                keys.bot_reader(bot_id, consumer),
                keys.bot_webhook(bot_id),
                keys.bot_log(bot_id),
                keys.bot_appended(bot_id),
            ],
            args=[
                consumer,
                "" if offset is None else str(offset),
                new_epoch(),
                int(timeout_s * 1000),
                "-" if allowed is None else ",".join(sorted(set(allowed))),
                "1" if consumer == WEBHOOK_CONSUMER else "0",
                REPEAT_WINDOW_MS,
                REPEAT_TIMEOUT_MS,
                REPEAT_PACE_MS,
                keys.bot_wakeup_channel(bot_id),
                POLL_STATE_TTL_S,
                read,
                read_filtered,
            ],
        )
        status = as_text(reply[0])
        if status == "webhook":
            return PollStart(status="webhook")
        if status == "reader":
            return PollStart(status="reader", reader=as_text(reply[1]))
        allowed_text = as_text(reply[4])
        return PollStart(
            status="ok",
            generation=int(reply[1]),
            epoch=as_text(reply[2]),
            after=int(as_text(reply[3])),
            allowed=frozenset(allowed_text.split(",")) if allowed_text else None,
            timeout_s=int(reply[5]) / 1000,
            pace_s=int(reply[6]) / 1000,
            repeated=bool(int(reply[7])),
            entries=contiguous(raw_entries(reply[8])) if read else None,
            after_ordinal=int(as_text(reply[9])) if as_text(reply[9]) else None,
        )

    async def poll_current(self, bot_id: int, consumer: str, generation: int) -> str:
        """``ok`` while a poll of ``generation`` still owns the consumer, else who took
        it: ``poll`` (a newer poll), ``reader`` (a WebSocket) or ``webhook``."""
        reply = await self._scripts["poll_current"](
            keys=[
                keys.poll_state(bot_id, consumer),
                keys.bot_reader(bot_id, consumer),
                keys.bot_webhook(bot_id),
            ],
            args=[generation, "1" if consumer == WEBHOOK_CONSUMER else "0"],
        )
        return as_text(reply)

    # -- webhook configuration -------------------------------------------------------

    async def set_webhook(
        self,
        bot_id: int,
        *,
        url: str,
        secret: str | None,
        max_connections: int,
        allowed_updates: Sequence[str] | None,
        id_format: str,
        drop_pending: bool,
    ) -> int:
        """Store the configuration (active, errors cleared) and list the bot for the
        dispatchers; returns the configuration version. Delivery resumes from the
        committed cursor of consumer ``default`` unless ``drop_pending``."""
        fields = [
            "url",
            url,
            "max_connections",
            str(max_connections),
            "id_format",
            id_format,
        ]
        if secret:
            fields += ["secret", secret]
        if allowed_updates:
            fields += ["allowed", ",".join(sorted(set(allowed_updates)))]
        version = await self._config_script("set", bot_id, drop_pending, fields)
        await self._redis.sadd(_listed(bot_id), str(bot_id))
        # the dispatchers read the index again at once instead of polling it
        await self._redis.publish(keys.webhook_dispatchers_channel(), DISPATCHERS_BOTS)
        return int(version)

    async def delete_webhook(self, bot_id: int, *, drop_pending: bool) -> bool:
        """Remove the webhook; True when there was one."""
        existed = await self._config_script("delete", bot_id, drop_pending, [])
        await self._unlist(bot_id)
        return bool(int(existed))

    async def _unlist(self, bot_id: int) -> None:
        """Take a bot off the dispatchers' list, unless a webhook was set meanwhile:
        the list and the configuration live in different slots, so a concurrent
        setWebhook may have listed it between our script and the removal."""
        await self._redis.srem(_listed(bot_id), str(bot_id))
        if await self._redis.hget(keys.bot_webhook(bot_id), "active") == b"1":
            await self._redis.sadd(_listed(bot_id), str(bot_id))
        await self._redis.publish(keys.webhook_dispatchers_channel(), DISPATCHERS_BOTS)

    async def _config_script(
        self, mode: str, bot_id: int, drop_pending: bool, fields: list[str]
    ) -> Any:
        return await self._scripts["webhook_config"](
            keys=[
                keys.bot_webhook(bot_id),
                keys.bot_cursors(bot_id),
                keys.bot_epoch(bot_id),
                keys.bot_last_id(bot_id),
                keys.bot_appended(bot_id),
            ],
            args=[
                mode,
                "1" if drop_pending else "0",
                new_epoch(),
                keys.bot_wakeup_channel(bot_id),
                WEBHOOK_CONSUMER,
                *fields,
            ],
        )

    async def get_webhook(self, bot_id: int) -> WebhookConfig | None:
        raw = await self._redis.hgetall(keys.bot_webhook(bot_id))
        return WebhookConfig.from_hash(raw) if raw else None

    async def pending_count(
        self, bot_id: int, consumer: str = WEBHOOK_CONSUMER, *, limit: int = 1_000_000
    ) -> int:
        """Updates in the log after the consumer's committed cursor (at most ``limit``)."""
        cursor = await self._log.get_cursor(bot_id, consumer)
        epoch = await self._log.epoch(bot_id)
        start = "-"
        if cursor is not None and cursor.epoch == epoch and cursor.update_id > 0:
            start = "(" + stream_id_from_update_id(cursor.update_id)
        return int(
            await self._scripts["count_after"](keys=[keys.bot_log(bot_id)], args=[start, limit])
        )

    # -- delivery state ------------------------------------------------------------

    async def record_error(self, bot_id: int, version: int, when: int, message: str) -> bool:
        """Note a failed attempt (getWebhookInfo shows it); False if the webhook changed."""
        return await self._state(bot_id, version, "error", when, message)

    async def deactivate(self, bot_id: int, version: int, when: int, message: str) -> bool:
        """Give up after the last retry: inactive with the reason; the updates stay in
        the log and setting the webhook again resumes from the committed cursor."""
        done = await self._state(bot_id, version, "inactive", when, message)
        if done:
            await self._unlist(bot_id)
        return done

    async def record_address(self, bot_id: int, version: int, address: str) -> bool:
        """The IP address deliveries currently go to (getWebhookInfo ``ip_address``)."""
        return await self._state(bot_id, version, "ip", 0, address)

    async def _state(self, bot_id: int, version: int, kind: str, when: int, text: str) -> bool:
        reply = await self._scripts["webhook_state"](
            keys=[keys.bot_webhook(bot_id)], args=[version, kind, when, text]
        )
        return bool(int(reply))

    # -- dispatchers ---------------------------------------------------------------

    async def active_bots(self) -> list[int]:
        """Ids of the bots with an active webhook (every bucket, one round trip)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in range(keys.INDEX_BUCKETS):
                pipe.smembers(keys.webhook_index(bucket))
            replies = await pipe.execute()
        out = []
        for members in replies:
            for member in members:
                text = as_text(member)
                if text.isdigit():
                    out.append(int(text))
        return sorted(out)

    async def heartbeat(self, holder: str, ttl_s: float) -> Membership:
        """Renew ``holder``'s membership of the live dispatchers for ``ttl_s``; the
        members whose membership ran out are dropped. One command on one small key."""
        reply = await self._scripts["dispatchers"](
            keys=[keys.webhook_dispatchers()], args=["beat", holder, int(ttl_s * 1000)]
        )
        return Membership(members=tuple(as_text(m) for m in reply[1:]), joined=bool(int(reply[0])))

    async def leave(self, holder: str) -> tuple[str, ...]:
        """End ``holder``'s membership now; the members left."""
        reply = await self._scripts["dispatchers"](
            keys=[keys.webhook_dispatchers()], args=["leave", holder, 0]
        )
        return tuple(as_text(m) for m in reply[1:])

    async def announce_dispatchers(self, message: str) -> None:
        """Tell every dispatcher (``DISPATCHERS_BOTS`` or ``DISPATCHERS_MEMBERS``)."""
        await self._redis.publish(keys.webhook_dispatchers_channel(), message)

    async def acquire_leases(self, bot_ids: Sequence[int], holder: str, ttl_s: float) -> list[int]:
        """Take the free delivery leases among ``bot_ids``; returns the ones taken."""
        if not bot_ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for bot_id in bot_ids:
                pipe.set(keys.bot_webhook_lease(bot_id), holder, nx=True, px=int(ttl_s * 1000))
            replies = await pipe.execute()
        return [bot_id for bot_id, ok in zip(bot_ids, replies, strict=True) if ok]

    async def renew_leases(self, bot_ids: Sequence[int], holder: str, ttl_s: float) -> list[int]:
        """Extend the leases ``holder`` still has; returns the ones it has lost."""
        if not bot_ids:
            return []
        script = self._scripts["lease"]
        async with self._redis.pipeline(transaction=False) as pipe:
            for bot_id in bot_ids:
                await script.queue(
                    pipe,
                    keys=[keys.bot_webhook_lease(bot_id)],
                    args=["renew", holder, int(ttl_s * 1000)],
                )
            replies = await pipe.execute()
        return [bot_id for bot_id, ok in zip(bot_ids, replies, strict=True) if not int(ok)]

    async def release_lease(self, bot_id: int, holder: str) -> bool:
        """Give a lease back (so another dispatcher can take the bot at once)."""
        reply = await self._scripts["lease"](
            keys=[keys.bot_webhook_lease(bot_id)], args=["release", holder, 0]
        )
        return bool(int(reply))

    async def lease_holder(self, bot_id: int) -> str | None:
        value = await self._redis.get(keys.bot_webhook_lease(bot_id))
        return None if value is None else as_text(value)
