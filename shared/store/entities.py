"""Users, bots, chats, members, messages, files, callbacks and polls as stored in Redis.

Records are hashes of strings (bots, users, chats) so that two concurrent edits of
different fields never overwrite each other; messages are msgpack blobs in one hash
per chat, keyed by the per-chat message id. Reactions and poll votes live in their
own hashes (one field per voter) so concurrent voters never overwrite each other.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from redis.asyncio.client import Redis
from redis.exceptions import WatchError

from shared import keys
from shared.codecs import json_dumps, json_loads, pack, pack_open_map, unpack
from shared.ids import parse_bot_token, tokens_equal
from shared.models import (
    BotRecord,
    CallbackRecord,
    ChatRecord,
    FileRecord,
    MessageRecord,
    UserRecord,
)
from shared.store.cache import ABSENT, RecordCache
from shared.store.fields import Fields, as_bytes, as_text, text_fields
from shared.store.outbox import Outbox
from shared.store.wire import Wire

if TYPE_CHECKING:
    from shared.store.wakeups import Wakeups

__all__ = ["Entities"]


POLL_CLOSED_FIELD = "~closed"


def _bot(h: dict[str, str]) -> BotRecord:
    return BotRecord(
        id=int(h["id"]),
        username=h["username"],
        name=h["name"],
        description=h.get("description", ""),
        short_description=h.get("short_description", ""),
        owner_id=int(h["owner_id"]),
        token_hash=h["token_hash"],
        privacy_mode=h.get("privacy_mode", "1") == "1",
        active=h.get("active", "1") == "1",
        created=int(h.get("created", "0")),
        commands=json_loads(h["commands"]) if h.get("commands") else [],
        command_sets=json_loads(h["command_sets"]) if h.get("command_sets") else {},
        texts=json_loads(h["texts"]) if h.get("texts") else {},
    )


def _user(h: dict[str, str]) -> UserRecord:
    return UserRecord(
        id=int(h["id"]),
        username=h["username"],
        name=h["name"],
        token_hash=h["token_hash"],
        created=int(h.get("created", "0")),
    )


def _chat(h: dict[str, str]) -> ChatRecord:
    return ChatRecord(
        id=int(h["id"]),
        type=h["type"],
        title=h.get("title", ""),
        created=int(h.get("created", "0")),
        user_id=int(h.get("user_id", "0")),
        bot_id=int(h.get("bot_id", "0")),
        pinned=json_loads(h["pinned"]) if h.get("pinned") else [],
    )


def _pair(a: int, b: int) -> int:
    """One cache key for two ids (both below 2**63)."""
    return (a << 64) | (b & ((1 << 64) - 1))


class Entities:
    """Persistence of the messenger's objects; reached as ``store.entities``."""

    def __init__(self, *, redis: Redis, wire: Wire, outbox: Outbox) -> None:
        self._redis = redis
        self._wire = wire
        self._outbox = outbox
        self.cache: RecordCache | None = None

    def enable_cache(self, wakeups: Wakeups) -> RecordCache:
        """Keep bots, users, chats and members in this process (see shared.store.cache)."""
        if self.cache is None:
            self.cache = RecordCache()
            wakeups.watch(keys.entities_channel(), self.cache.on_message, self.cache.on_state)
        return self.cache

    async def _changed(self, kind: str, ident: int, *commands: tuple[str, tuple[Any, ...]]) -> Any:
        """Run ``commands`` and announce the change in the same round trip; the local
        copy is dropped before and after (a read racing the write is not kept)."""
        if self.cache is not None:
            self.cache.forget(kind, ident)
        async with self._redis.pipeline(transaction=True) as pipe:
            for name, args in commands:
                getattr(pipe, name)(*args)
            pipe.publish(keys.entities_channel(), f"{kind} {ident}")
            replies = await pipe.execute()
        if self.cache is not None:
            self.cache.forget(kind, ident)
        return replies[0] if commands else None

    async def _hgetall_many(self, keys_: list[str]) -> list[dict[Any, Any]]:
        """HGETALL of several hashes in one round trip."""
        flats = await self._wire.calls([("HGETALL", key) for key in keys_])
        return [dict(zip(flat[::2], flat[1::2], strict=True)) for flat in flats]

    async def _hgetall(self, key: str) -> dict[Any, Any]:
        return (await self._hgetall_many([key]))[0]

    async def _hget(self, key: str, field: str | int) -> Any:
        return await self._wire.call("HGET", key, field, retry=True)

    def _cached(self, kind: str, ident: int) -> tuple[Any, int]:
        """(cached value or None, generation to keep a fresh read under)."""
        cache = self.cache
        if cache is None or not cache.live:
            return None, -1
        return cache.get((kind, ident)), cache.generation

    def _keep(self, kind: str, ident: int, value: Any, generation: int) -> None:
        if self.cache is not None and generation >= 0:
            self.cache.put((kind, ident), value, generation)

    # -- server secret --------------------------------------------------------

    async def server_secret(self, configured: str | None) -> bytes:
        """The secret behind scoped user ids: configured, or made once and kept in Redis."""
        if configured:
            return configured.encode()
        await self._redis.set(keys.server_secret(), secrets.token_hex(32), nx=True)
        value = await self._redis.get(keys.server_secret())
        assert value is not None
        return as_bytes(value)

    # -- usernames ------------------------------------------------------------

    async def claim_username(self, username: str, owner: str) -> bool:
        """Reserve ``username`` for ``owner`` (``u<id>``/``b<id>``); False if taken."""
        return bool(await self._redis.hsetnx(keys.usernames(), username, owner))

    async def resolve_username(self, username: str) -> str | None:
        value = await self._redis.hget(keys.usernames(), username)
        return None if value is None else as_text(value)

    # -- users ----------------------------------------------------------------

    async def create_user(self, *, user_id: int, username: str, name: str, token_hash: str) -> None:
        await self._redis.hset(
            keys.user_info(user_id),
            mapping={
                "id": user_id,
                "username": username,
                "name": name,
                "token_hash": token_hash,
                "created": int(time.time()),
            },
        )

    async def get_user(self, user_id: int) -> UserRecord | None:
        hit, _ = self._cached("u", user_id)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        return (await self.get_users((user_id,))).get(user_id)

    async def get_users(self, user_ids: Iterable[int]) -> dict[int, UserRecord]:
        found: dict[int, UserRecord] = {}
        missing: list[int] = []
        generation = -1
        for user_id in dict.fromkeys(user_ids):
            hit, generation = self._cached("u", user_id)
            if hit is not None:
                found[user_id] = hit
            else:
                missing.append(user_id)
        if not missing:
            return found
        replies = await self._hgetall_many([keys.user_info(user_id) for user_id in missing])
        for user_id, raw in zip(missing, replies, strict=True):
            if raw:
                found[user_id] = record = _user(text_fields(raw))
                self._keep("u", user_id, record, generation)
        return found

    async def set_user_token(self, user_id: int, token_hash: str) -> None:
        await self._changed(
            "u", user_id, ("hset", (keys.user_info(user_id), "token_hash", token_hash))
        )

    # -- bots -----------------------------------------------------------------

    async def create_bot(
        self,
        *,
        bot_id: int,
        username: str,
        name: str,
        description: str,
        owner_id: int,
        token_hash: str,
    ) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                keys.bot_info(bot_id),
                mapping={
                    "id": bot_id,
                    "username": username,
                    "name": name,
                    "description": description,
                    "owner_id": owner_id,
                    "token_hash": token_hash,
                    "privacy_mode": "1",
                    "active": "1",
                    "created": int(time.time()),
                },
            )
            pipe.sadd(keys.bots_by_owner(owner_id), bot_id)
            await pipe.execute()

    async def get_bot(self, bot_id: int) -> BotRecord | None:
        hit, _ = self._cached("b", bot_id)
        if hit is not None:
            return hit  # type: ignore[no-any-return]
        return (await self.get_bots((bot_id,))).get(bot_id)

    async def get_bots(self, bot_ids: Iterable[int]) -> dict[int, BotRecord]:
        found: dict[int, BotRecord] = {}
        missing: list[int] = []
        generation = -1
        for bot_id in dict.fromkeys(bot_ids):
            hit, generation = self._cached("b", bot_id)
            if hit is not None:
                found[bot_id] = hit
            else:
                missing.append(bot_id)
        if not missing:
            return found
        replies = await self._hgetall_many([keys.bot_info(bot_id) for bot_id in missing])
        for bot_id, raw in zip(missing, replies, strict=True):
            if raw:
                found[bot_id] = record = _bot(text_fields(raw))
                self._keep("b", bot_id, record, generation)
        return found

    async def all_bot_ids(self) -> list[int]:
        """Every bot ever created (from the username index), in id order."""
        ids = []
        async for _username, owner in self._redis.hscan_iter(keys.usernames(), count=1000):
            text = as_text(owner)
            if text.startswith("b"):
                ids.append(int(text[1:]))
        return sorted(ids)

    async def bots_of_owner(self, owner_id: int) -> list[int]:
        members = await self._redis.smembers(keys.bots_by_owner(owner_id))
        return sorted(int(m) for m in members)

    async def update_bot(self, bot_id: int, fields: dict[str, Any]) -> None:
        """Set some fields of a bot (``commands`` is stored as JSON, booleans as 1/0)."""
        mapping: Fields = {}
        for name, value in fields.items():
            if isinstance(value, bool):
                mapping[name] = "1" if value else "0"
            elif isinstance(value, list | dict):
                mapping[name] = json_dumps(value).decode()
            else:
                mapping[name] = value
        if mapping:
            await self._changed("b", bot_id, ("hset", (keys.bot_info(bot_id), None, None, mapping)))

    # -- chats ----------------------------------------------------------------

    async def create_chat(self, chat: ChatRecord) -> None:
        mapping: Fields = {
            "id": chat.id,
            "type": chat.type,
            "title": chat.title,
            "created": chat.created,
        }
        if chat.type == "private":
            mapping["user_id"] = chat.user_id
            mapping["bot_id"] = chat.bot_id
        # announced too: other processes may remember that this id was not a chat
        await self._changed("c", chat.id, ("hset", (keys.chat_info(chat.id), None, None, mapping)))

    async def get_chat(self, chat_id: int) -> ChatRecord | None:
        hit, generation = self._cached("c", chat_id)
        if hit is not None:
            return None if hit is ABSENT else hit
        raw = await self._hgetall(keys.chat_info(chat_id))
        chat = _chat(text_fields(raw)) if raw else None
        self._keep("c", chat_id, ABSENT if chat is None else chat, generation)
        return chat

    async def update_chat(self, chat_id: int, fields: dict[str, Any]) -> None:
        mapping: Fields = {
            k: json_dumps(v).decode() if isinstance(v, list | dict) else v
            for k, v in fields.items()
        }
        await self._changed("c", chat_id, ("hset", (keys.chat_info(chat_id), None, None, mapping)))

    async def private_chat_of(self, bot_id: int, scoped_user: int) -> int | None:
        # a link never changes once made: only found ones are kept
        hit, generation = self._cached("p", _pair(bot_id, scoped_user))
        if hit is not None:
            return int(hit)
        value = await self._hget(keys.bot_private_chats(bot_id), scoped_user)
        if value is None:
            return None
        self._keep("p", _pair(bot_id, scoped_user), int(value), generation)
        return int(value)

    async def link_private_chat(
        self, *, bot_id: int, scoped_user: int, user_id: int, chat_id: int
    ) -> int:
        """Record the private chat; returns the chat id that won if two raced."""
        await self._redis.hsetnx(keys.bot_private_chats(bot_id), scoped_user, chat_id)
        winner = int(await self._redis.hget(keys.bot_private_chats(bot_id), scoped_user) or 0)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(keys.bot_seen_users(bot_id), scoped_user, user_id)
            pipe.sadd(keys.user_chats(user_id), winner)
            await pipe.execute()
        return winner

    async def note_seen_users(self, bot_id: int, users: dict[int, int]) -> None:
        """Remember users a bot has seen: scoped id -> real id."""
        if users:
            mapping: Fields = dict(users)
            await self._redis.hset(keys.bot_seen_users(bot_id), mapping=mapping)

    async def seen_user(self, bot_id: int, scoped_user: int) -> int | None:
        # scoped id -> real id never changes once noted: only found ones are kept
        hit, generation = self._cached("s", _pair(bot_id, scoped_user))
        if hit is not None:
            return int(hit)
        value = await self._hget(keys.bot_seen_users(bot_id), scoped_user)
        if value is None:
            return None
        self._keep("s", _pair(bot_id, scoped_user), int(value), generation)
        return int(value)

    async def chats_of_user(self, user_id: int) -> list[int]:
        return sorted(int(m) for m in await self._redis.smembers(keys.user_chats(user_id)))

    # -- members --------------------------------------------------------------

    async def add_member(self, chat_id: int, member: str, info: dict[str, Any]) -> bool:
        """Add ``u<id>``/``b<id>`` to a chat; False if it was already a member."""
        added = await self._changed(
            "m", chat_id, ("hsetnx", (keys.chat_members(chat_id), member, json_dumps(info)))
        )
        kind, member_id = member[0], int(member[1:])
        if kind == "u":
            await self._redis.sadd(keys.user_chats(member_id), chat_id)
        else:
            await self._redis.sadd(keys.bot_chats(member_id), chat_id)
        return bool(added)

    async def remove_member(self, chat_id: int, member: str) -> bool:
        removed = await self._changed("m", chat_id, ("hdel", (keys.chat_members(chat_id), member)))
        kind, member_id = member[0], int(member[1:])
        if kind == "u":
            await self._redis.srem(keys.user_chats(member_id), chat_id)
        else:
            await self._redis.srem(keys.bot_chats(member_id), chat_id)
        return bool(removed)

    async def members(self, chat_id: int) -> dict[str, dict[str, Any]]:
        hit, generation = self._cached("m", chat_id)
        if hit is None:
            raw = await self._hgetall(keys.chat_members(chat_id))
            hit = {as_text(k): json_loads(v) for k, v in raw.items()}
            self._keep("m", chat_id, hit, generation)
        return {member: dict(info) for member, info in hit.items()}

    async def member(self, chat_id: int, member: str) -> dict[str, Any] | None:
        if self.cache is not None and self.cache.live:
            return (await self.members(chat_id)).get(member)
        raw = await self._redis.hget(keys.chat_members(chat_id), member)
        return None if raw is None else dict(json_loads(raw))

    # -- messages -------------------------------------------------------------

    async def next_message_id(self, chat_id: int) -> int:
        return int(await self._redis.incr(keys.chat_sequence(chat_id)))

    async def last_message_id(self, chat_id: int) -> int:
        return int(await self._redis.get(keys.chat_sequence(chat_id)) or 0)

    async def history_bounds(self, chat_id: int) -> tuple[int, int]:
        """(lowest, highest) message id the chat's history may hold, in one round
        trip; (1, 0) when it holds none (never written, or expired)."""
        floor, last, held = await self._wire.calls(
            [
                ("HGET", keys.chat_history(chat_id), "floor"),
                ("GET", keys.chat_sequence(chat_id)),
                ("EXISTS", keys.chat_messages(chat_id)),
            ],
            retry=True,
        )
        if not int(held):
            return 1, 0
        return int(floor or 1), int(last or 0)

    async def add_message(
        self, message: MessageRecord, *, idempotency_key: str | None = None
    ) -> MessageRecord:
        """Store a new message under the chat's next id (set on ``message``) at once.
        With ``idempotency_key`` (unique per sender), a message stored under that key
        before is returned instead, and nothing is written."""
        fields = message.to_storage()
        del fields["i"]
        written = await self._outbox.write(
            message.chat_id,
            mode="new",
            message=pack_open_map(fields, "i"),
            idempotency_key=idempotency_key,
        )
        if written.replayed:
            stored = await self.get_message(message.chat_id, written.message_id)
            if stored is not None:
                return stored
        message.id = written.message_id
        return message

    async def save_message(self, message: MessageRecord) -> None:
        await self._redis.hset(
            keys.chat_messages(message.chat_id), message.id, pack(message.to_storage())
        )

    async def get_message(self, chat_id: int, message_id: int) -> MessageRecord | None:
        raw = await self._hget(keys.chat_messages(chat_id), message_id)
        return None if raw is None else MessageRecord.from_storage(unpack(as_bytes(raw)))

    async def get_messages(self, chat_id: int, message_ids: list[int]) -> list[MessageRecord]:
        if not message_ids:
            return []
        raws = await self._redis.hmget(keys.chat_messages(chat_id), message_ids)
        return [MessageRecord.from_storage(unpack(as_bytes(r))) for r in raws if r is not None]

    async def delete_message(self, chat_id: int, message_id: int) -> bool:
        return bool(await self._redis.hdel(keys.chat_messages(chat_id), message_id))

    async def get_message_range(self, chat_id: int, first: int, last: int) -> list[MessageRecord]:
        """The messages with ids ``first`` to ``last`` (inclusive) that exist, in id order."""
        if last < first:
            return []
        ids = list(range(first, last + 1))
        raws = await self._redis.hmget(keys.chat_messages(chat_id), ids)
        return [MessageRecord.from_storage(unpack(as_bytes(r))) for r in raws if r is not None]

    # -- reactions ------------------------------------------------------------

    async def set_reaction(
        self, chat_id: int, message_id: int, member: str, reaction: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Replace ``member``'s reaction on a message; returns the previous one."""
        key, field_name = keys.chat_reactions(chat_id), f"{message_id}:{member}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(key, field_name)
            if reaction:
                pipe.hset(key, field_name, json_dumps(reaction))
            else:
                pipe.hdel(key, field_name)
            old, _ = await pipe.execute()
        return list(json_loads(old)) if old else []

    async def reaction(self, chat_id: int, message_id: int, member: str) -> list[dict[str, Any]]:
        raw = await self._redis.hget(keys.chat_reactions(chat_id), f"{message_id}:{member}")
        return list(json_loads(raw)) if raw else []

    # -- polls ----------------------------------------------------------------

    async def poll_votes(self, chat_id: int, message_id: int) -> tuple[dict[str, list[int]], bool]:
        """(member -> chosen option ids, closed) of the poll in a message."""
        raw = await self._redis.hgetall(keys.poll_votes(chat_id, message_id))
        votes: dict[str, list[int]] = {}
        closed = False
        for k, v in raw.items():
            name = as_text(k)
            if name == POLL_CLOSED_FIELD:
                closed = True
            else:
                votes[name] = list(json_loads(v))
        return votes, closed

    async def cast_vote(
        self, chat_id: int, message_id: int, member: str, option_ids: list[int]
    ) -> tuple[bool, list[int]]:
        """Record a vote unless the poll is closed: (accepted, previous option ids)."""
        key = keys.poll_votes(chat_id, message_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    closed, old = await pipe.hmget(key, [POLL_CLOSED_FIELD, member])
                    if closed is not None:
                        await pipe.reset()  # type: ignore[no-untyped-call]
                        return False, []
                    pipe.multi()  # type: ignore[no-untyped-call]
                    if option_ids:
                        pipe.hset(key, member, json_dumps(option_ids))
                    else:
                        pipe.hdel(key, member)
                    await pipe.execute()
                    return True, list(json_loads(old)) if old else []
                except WatchError:
                    continue  # a concurrent vote or close: look again

    async def close_poll(self, chat_id: int, message_id: int) -> bool:
        """Close a poll; False if it was closed already."""
        return bool(
            await self._redis.hsetnx(keys.poll_votes(chat_id, message_id), POLL_CLOSED_FIELD, "1")
        )

    # -- files ----------------------------------------------------------------

    async def save_file(self, record: FileRecord) -> None:
        await self._redis.hset(
            keys.files(record.file_id),
            mapping={
                "file_id": record.file_id,
                "file_unique_id": record.file_unique_id,
                "sha256": record.sha256,
                "size": record.size,
                "kind": record.kind,
                "mime_type": record.mime_type,
                "file_name": record.file_name,
                "extension": record.extension,
                "width": record.width,
                "height": record.height,
                "created": record.created or int(time.time()),
            },
        )

    async def note_file_chat(self, file_id: str, chat_id: int) -> None:
        """Remember that a file was sent to a chat (so its members may download it)."""
        await self._redis.sadd(keys.file_chats(file_id), chat_id)

    async def file_chats(self, file_id: str) -> list[int]:
        return sorted(int(m) for m in await self._redis.smembers(keys.file_chats(file_id)))

    async def get_file(self, file_id: str) -> FileRecord | None:
        raw = await self._redis.hgetall(keys.files(file_id))
        if not raw:
            return None
        h = text_fields(raw)
        return FileRecord(
            file_id=h["file_id"],
            file_unique_id=h["file_unique_id"],
            sha256=h["sha256"],
            size=int(h["size"]),
            kind=h["kind"],
            mime_type=h.get("mime_type", ""),
            file_name=h.get("file_name", ""),
            extension=h.get("extension", ""),
            width=int(h.get("width", "0")),
            height=int(h.get("height", "0")),
            created=int(h.get("created", "0")),
        )

    # -- file carriers --------------------------------------------------------

    async def note_file_carriers(
        self,
        file_ids: Iterable[str],
        chat_id: int,
        message_id: int,
        *,
        uploader: str | None = None,
    ) -> None:
        """Note that message ``message_id`` of ``chat_id`` carries these files and,
        with ``uploader`` (``b<id>``), who uploaded them (the first uploader stays).
        One round trip; both writes are idempotent."""
        carrier = f"{chat_id}:{message_id}"
        commands: list[tuple[str, ...]] = []
        for file_id in dict.fromkeys(file_ids):
            commands.append(("SADD", keys.file_carriers(file_id), carrier))
            if uploader is not None:
                commands.append(("SET", keys.file_uploader(file_id), uploader, "NX"))
        if commands:
            await self._wire.calls(commands, retry=True)

    async def file_access(self, file_id: str) -> tuple[str | None, list[tuple[int, int]]]:
        """(uploader ``b<id>`` or None, the (chat id, message id) of every message
        noted as carrying the file, in order) in one round trip."""
        uploader, carriers = await self._wire.calls(
            [("GET", keys.file_uploader(file_id)), ("SMEMBERS", keys.file_carriers(file_id))],
            retry=True,
        )
        found = []
        for carrier in carriers:
            chat_id, _, message_id = as_text(carrier).partition(":")
            found.append((int(chat_id), int(message_id)))
        return (None if uploader is None else as_text(uploader)), sorted(found)

    # -- callback queries -----------------------------------------------------

    async def create_callback(self, record: CallbackRecord, ttl: int) -> None:
        key = keys.callback_answers(record.id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                key,
                mapping={
                    "bot_id": record.bot_id,
                    "user_id": record.user_id,
                    "chat_id": record.chat_id,
                    "message_id": record.message_id,
                    "data": record.data,
                    "created": record.created,
                },
            )
            pipe.expire(key, ttl)
            await pipe.execute()

    async def get_callback(self, query_id: str) -> CallbackRecord | None:
        raw = await self._redis.hgetall(keys.callback_answers(query_id))
        if not raw or b"bot_id" not in raw:
            return None
        h = text_fields(raw)
        return CallbackRecord(
            id=query_id,
            bot_id=int(h["bot_id"]),
            user_id=int(h["user_id"]),
            chat_id=int(h["chat_id"]),
            message_id=int(h["message_id"]),
            data=h.get("data", ""),
            created=int(h.get("created", "0")),
            answer=json_loads(h["answer"]) if h.get("answer") else None,
        )

    async def answer_callback(self, query_id: str, answer: dict[str, Any]) -> bool:
        """Store the one answer of a callback query; False if it was answered already."""
        key = keys.callback_answers(query_id)
        return bool(await self._redis.hsetnx(key, "answer", json_dumps(answer)))

    # -- credentials ----------------------------------------------------------

    async def bot_for_token(self, token: str | None) -> tuple[BotRecord, str] | None:
        """The bot a token names (``bot_<id>:<secret>`` or Telegram's ``<id>:<secret>``)
        and the token in its native form, if the token is the bot's (revoked bots
        included: callers decide what an inactive bot may do); else None. The one
        place a bot token is checked."""
        parsed = parse_bot_token(token) if token else None
        if parsed is None:
            return None
        bot = await self.get_bot(parsed.bot_id)
        if bot is None or not tokens_equal(parsed.token, bot.token_hash):
            return None
        return bot, parsed.token

    async def bot_credentials(self, bot_ids: Iterable[int]) -> list[tuple[str, bool] | None]:
        """(token hash, active) of each bot, None for a bot that does not exist.

        Read from Redis in one round trip for all of them, never from the record
        cache: this is how open connections find out that a token was rotated or
        a bot revoked when the announcement of it was lost.
        """
        replies = await self._wire.calls(
            [("HMGET", keys.bot_info(bot_id), "token_hash", "active") for bot_id in bot_ids],
            retry=True,
        )
        return [
            None
            if token_hash is None
            else (as_text(token_hash), active is None or as_text(active) == "1")
            for token_hash, active in replies
        ]
