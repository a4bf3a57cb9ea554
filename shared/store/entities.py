"""Users, bots, chats and members as stored in Redis, and the bot token check.

Records are hashes of strings (bots, users, chats) so that two concurrent edits of
different fields never overwrite each other. ``store.entities`` also keeps the
messages and what hangs off them (:mod:`shared.store.messages`, its base class).

Every operation touches one hash slot, so creating an account is several steps,
in an order chosen so that a crash between any two leaves nothing visible that
cannot be managed:

1. the record (``{u<id>}``/``{b<id>}``): nobody knows the new id, nothing lists
   it and its token was not handed out yet, so a record left here is invisible;
2. the claim of the username (``{n<name>}``, SET NX through ``claim_username.lua``):
   from here on the account exists. Its record is already there, so a claim
   never names a missing record unless that record's write was lost (a
   failover); such a claim is taken over, once older than
   :data:`CLAIM_GRACE_MS`, by the next creation that wants the name (a compare
   and set, so two never both win). If the name is taken, the record is deleted;
3. bots only: the owner's list (``{u<owner>}``) and the bot index (one of
   ``{bi<n>}``), in one pipelined round trip. A bot left before this step is
   named and manageable (by name from the CLI, by id by its owner) but not yet
   listed; creating it again with the same name answers "taken" and lists it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from shared import keys
from shared.codecs import json_dumps, json_loads
from shared.ids import parse_bot_token, tokens_equal
from shared.models import BotRecord, ChatRecord, UserRecord
from shared.store.cache import ABSENT, RecordCache
from shared.store.client import Client
from shared.store.fields import Fields, as_bytes, as_text, text_fields
from shared.store.messages import Messages
from shared.store.outbox import MEMBERSHIP, Outbox, Pending, Snapshot, Written
from shared.store.scripts import lua_source
from shared.store.wire import Wire

if TYPE_CHECKING:
    from shared.store.scripts import Script
    from shared.store.wakeups import Wakeups

__all__ = ["CLAIM_GRACE_MS", "Entities"]

# A username claim whose record does not exist is taken over only once it is
# this old. A claim is made only after its record, so a missing record means its
# write was lost; the grace is a margin against giving a name away on one read
# of a record taken while its slot moves or its primary fails over.
CLAIM_GRACE_MS = 60_000


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
        avatar=h.get("avatar", ""),
        webapp_key=h.get("webapp_key", ""),
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


def _record_key(owner: str) -> str | None:
    """The record a claim's owner (``u<id>``/``b<id>``) names; None if malformed."""
    kind, digits = owner[:1], owner[1:]
    if not digits.isdigit():
        return None
    if kind == "u":
        return keys.user_info(int(digits))
    if kind == "b":
        return keys.bot_info(int(digits))
    return None


_CLAIM_SOURCE = lua_source("claim_username")


def _pair(a: int, b: int) -> int:
    """One cache key for two ids (both below 2**63)."""
    return (a << 64) | (b & ((1 << 64) - 1))


class Entities(Messages):
    """Persistence of the messenger's objects; reached as ``store.entities``."""

    def __init__(
        self,
        *,
        redis: Client,
        wire: Wire,
        outbox: Outbox,
        scripts: Mapping[str, Script] | None = None,
    ) -> None:
        super().__init__(redis=redis, wire=wire, outbox=outbox)
        self.cache: RecordCache | None = None
        self._claim_script = None if scripts is None else scripts["claim_username"]

    def enable_cache(self, wakeups: Wakeups) -> RecordCache:
        """Keep bots, users, chats and members in this process (see shared.store.cache)."""
        if self.cache is None:
            self.cache = RecordCache()
            wakeups.watch(keys.entities_channel(), self.cache.on_message, self.cache.on_state)
        return self.cache

    async def _changed(self, kind: str, ident: int, *commands: tuple[str, tuple[Any, ...]]) -> Any:
        """Run ``commands`` (keys of one slot: one record) in a transaction, then
        announce the change; the local copy is dropped before and after (a read
        racing the write is not kept). The announcement is a call of its own: on a
        cluster the channel lives in another slot. Should it be lost, other
        processes keep their copy for the cache's TTL at most."""
        if self.cache is not None:
            self.cache.forget(kind, ident)
        replies: list[Any] = []
        if commands:
            async with self._redis.pipeline(transaction=True) as pipe:
                for name, args in commands:
                    getattr(pipe, name)(*args)
                replies = await pipe.execute()
        await self._redis.publish(keys.entities_channel(), f"{kind} {ident}")
        if self.cache is not None:
            self.cache.forget(kind, ident)
        return replies[0] if commands else None

    async def _hgetall_many(self, keys_: list[str]) -> list[dict[Any, Any]]:
        """HGETALL of several hashes in one round trip."""
        flats = await self._wire.calls([("HGETALL", key) for key in keys_])
        return [dict(zip(flat[::2], flat[1::2], strict=True)) for flat in flats]

    async def _hgetall(self, key: str) -> dict[Any, Any]:
        return (await self._hgetall_many([key]))[0]

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
        """Give ``username`` to ``owner`` (``u<id>``/``b<id>``, whose record is
        written already); False if it is taken. A claim naming a record that does
        not exist is taken over once older than :data:`CLAIM_GRACE_MS`."""
        won, current = await self._claim(username, owner, "")
        if won:
            return True
        record = _record_key(current.partition(" ")[0])
        if record is not None and await self._redis.exists(record):
            return False
        won, _ = await self._claim(username, owner, current)
        return won

    async def _claim(self, username: str, owner: str, stale: str) -> tuple[bool, str]:
        """(won, the claim now held) from ``claim_username.lua``."""
        key = keys.username_owner(username)
        args: list[str | int] = [owner, stale, CLAIM_GRACE_MS]
        if self._claim_script is not None:
            reply = await self._claim_script(keys=[key], args=args)
        else:  # run by source: accounts are created rarely
            reply = await self._wire.call("EVAL", _CLAIM_SOURCE, 1, key, *args)
        return bool(int(reply[0])), as_text(reply[1])

    async def resolve_username(self, username: str) -> str | None:
        """The owner (``u<id>``/``b<id>``) of a username, or None."""
        value = await self._redis.get(keys.username_owner(username))
        return None if value is None else as_text(value).partition(" ")[0]

    # -- users ----------------------------------------------------------------

    async def create_user(
        self, *, user_id: int, username: str, name: str, token_hash: str, public_key: str = ""
    ) -> bool:
        """Create a user named ``username`` (signing in with ``public_key``, if given);
        False (and nothing kept) if the name is taken. The record first, then the
        claim (see the module docstring)."""
        mapping: Fields = {
            "id": user_id,
            "username": username,
            "name": name,
            "token_hash": token_hash,
            "created": int(time.time()),
        }
        if public_key:
            mapping["public_key"] = public_key
        await self._redis.hset(keys.user_info(user_id), mapping=mapping)
        if await self.claim_username(username, f"u{user_id}"):
            return True
        await self._redis.delete(keys.user_info(user_id))
        return False

    async def user_public_key(self, user_id: int) -> str | None:
        """The Ed25519 key a user signs in with, if it has one."""
        value = await self._redis.hget(keys.user_info(user_id), "public_key")
        return None if value is None else as_text(value)

    async def forget_new_user(self, user_id: int, username: str) -> None:
        """Take back a user just created that lost a race (its token was never
        handed out): its name, if it still holds it, then its record."""
        holder = await self.resolve_username(username)
        if holder == f"u{user_id}":
            await self._redis.delete(keys.username_owner(username))
        await self._changed("u", user_id, ("delete", (keys.user_info(user_id),)))

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
        webapp_key: str = "",
    ) -> bool:
        """Create a bot owned by ``owner_id``; False (and nothing kept) if the name
        is taken. The record, the claim, then the lists (see the module docstring)."""
        await self._redis.hset(
            keys.bot_info(bot_id),
            mapping={
                "id": bot_id,
                "username": username,
                "name": name,
                "description": description,
                "owner_id": owner_id,
                "token_hash": token_hash,
                "webapp_key": webapp_key,
                "privacy_mode": "1",
                "active": "1",
                "created": int(time.time()),
            },
        )
        if await self.claim_username(username, f"b{bot_id}"):
            await self._list_bot(bot_id, owner_id)
            return True
        await self._redis.delete(keys.bot_info(bot_id))
        # a creation of this bot that stopped before listing it: list it now
        holder = await self.resolve_username(username)
        if holder is not None and holder[:1] == "b" and holder[1:].isdigit():
            existing = int(holder[1:])
            owner = await self._redis.hget(keys.bot_info(existing), "owner_id")
            if owner is not None and as_text(owner) == str(owner_id):
                await self._list_bot(existing, owner_id)
        return False

    async def _list_bot(self, bot_id: int, owner_id: int) -> None:
        """Put a bot in its owner's list and in the bot index (idempotent)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sadd(keys.bots_by_owner(owner_id), bot_id)
            pipe.sadd(keys.bot_index(keys.index_bucket(bot_id)), bot_id)
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

    async def is_system_bot(self, bot_id: int) -> bool:
        """Whether an operator made this bot the system bot (it may act for the
        users who write to it: rest/methods/manage.py)."""
        value = await self._redis.hget(keys.bot_info(bot_id), "system")
        return value is not None and as_text(value) == "1"

    async def all_bot_ids(self) -> list[int]:
        """Every bot ever created (every bucket of the bot index), in id order."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for bucket in range(keys.INDEX_BUCKETS):
                pipe.smembers(keys.bot_index(bucket))
            replies = await pipe.execute()
        return sorted(int(member) for members in replies for member in members)

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

    async def create_chat(self, chat: ChatRecord, *, announce: bool = False) -> None:
        """Store a new chat; ``announce``: its ``chat`` event is still to be queued
        (:meth:`announce_chat`)."""
        mapping: Fields = {
            "id": chat.id,
            "type": chat.type,
            "title": chat.title,
            "created": chat.created,
        }
        if announce:
            mapping["announced"] = 0
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

    async def read_chat(self, chat_id: int) -> tuple[Snapshot, ChatRecord | None]:
        """A chat as stored, to change its pins from."""
        snapshot = await self._outbox.read(keys.chat_info(chat_id))
        return snapshot, _chat(text_fields(snapshot.fields)) if snapshot.fields else None

    async def change_pins(
        self, snapshot: Snapshot, chat_id: int, pinned: list[int], entries: list[list[Pending]]
    ) -> Written | None:
        """Set the chat's pins and queue ``entries`` (:meth:`Outbox.change`), in
        one step; None if the chat changed since ``snapshot`` read it."""
        write = ("set", snapshot.key, "pinned", json_dumps(pinned))
        written = await self._outbox.change(chat_id, snapshot, [write], entries)
        if written is not None:
            await self._changed("c", chat_id)
        return written

    async def announce_chat(self, chat_id: int, entries: list[list[Pending]]) -> Written | None:
        """Queue ``entries`` (a new chat's ``chat`` event) and mark the chat as
        announced, in one step, if it was made with ``announce`` and is not marked
        yet; None when nothing was to be queued."""
        while True:  # (a change of the chat meanwhile: read it again)
            snapshot = await self._outbox.read(keys.chat_info(chat_id))
            if snapshot.fields.get(b"announced") != b"0":
                return None
            write = ("set", snapshot.key, "announced", "1")
            written = await self._outbox.change(chat_id, snapshot, [write], entries)
            if written is not None:
                return written

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

    async def read_members(self, chat_id: int) -> tuple[Snapshot, dict[str, dict[str, Any]]]:
        """A chat's members as stored, to change them from."""
        snapshot = await self._outbox.read(keys.chat_members(chat_id))
        return snapshot, {as_text(k): json_loads(v) for k, v in snapshot.fields.items()}

    async def change_member(
        self,
        snapshot: Snapshot,
        chat_id: int,
        member: str,
        info: dict[str, Any] | None,
        entries: list[list[Pending]],
    ) -> Written | None:
        """Add ``member`` with ``info`` (None: remove it) and queue ``entries``, in one
        step; None if the members changed since ``snapshot`` read them. ``entries``
        hold a :data:`MEMBERSHIP` item for ``member``: the drain brings the
        member's own set of chats (another slot) in line."""
        items = [p for entry in entries for p in entry]
        assert any(p.kind == MEMBERSHIP and p.payload == member.encode() for p in items)
        write: tuple[str, str, str, bytes | str]
        if info is None:
            write = ("del", snapshot.key, member, "")
        else:
            write = ("set", snapshot.key, member, json_dumps(info))
        written = await self._outbox.change(chat_id, snapshot, [write], entries)
        if written is not None:
            await self._changed("m", chat_id)
        return written

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
