"""Messages and what hangs off them, as stored in Redis: reactions, poll votes,
files and the messages that carry them, callback queries.

Messages are msgpack blobs in one hash per chat, keyed by the message id, and
their ids are in a sorted set beside it, which orders, pages and trims the
history. A new message is written through the chat's outbox with the updates it
causes (``lua/chat_write.lua``), which gives it its id: strictly increasing per
chat and time-ordered (``ms * 1024 + n``), so sparse, and never issued twice,
even by a primary that lost the newest writes in a failover. Reactions and poll
votes live in their own hashes (one field per voter) so concurrent voters never
overwrite each other; a change to them is written with the updates it causes in
one step (``read_*`` then ``change_*``, :meth:`Outbox.change`). :class:`Messages`
is the part of ``store.entities`` that
keeps them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from typing import Any

from redis.exceptions import NoScriptError

from shared import keys
from shared.codecs import json_dumps, json_loads, pack, pack_open_map, unpack
from shared.models import CallbackRecord, FileRecord, MessageRecord
from shared.store.client import Client
from shared.store.fields import as_bytes, as_text, text_fields
from shared.store.outbox import Outbox, Pending, Snapshot, Written
from shared.store.scripts import lua_source
from shared.store.wire import Wire

__all__ = ["Messages"]

POLL_CLOSED_FIELD = "~closed"
_CAST_VOTE = lua_source("cast_vote")
_CAST_VOTE_SHA = hashlib.sha1(_CAST_VOTE.encode()).hexdigest()


class Messages:
    """Messages, reactions, polls, files and callback queries; the base of
    :class:`~shared.store.entities.Entities`."""

    def __init__(self, *, redis: Client, wire: Wire, outbox: Outbox) -> None:
        self._redis = redis
        self._wire = wire
        self._outbox = outbox

    async def _hget(self, key: str, field: str | int) -> Any:
        return await self._wire.call("HGET", key, field, retry=True)

    # -- messages -------------------------------------------------------------

    async def last_message_id(self, chat_id: int) -> int:
        """The newest id the chat has issued (0 before its first message)."""
        return int(await self._redis.get(keys.chat_sequence(chat_id)) or 0)

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
        """Store an edited message, unless it was trimmed or deleted meanwhile."""
        await self._outbox.write(
            message.chat_id, mode="save", message=pack(message.to_storage()), message_id=message.id
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
        pipe = self._redis.pipeline(transaction=True)
        pipe.hdel(keys.chat_messages(chat_id), message_id)
        pipe.zrem(keys.chat_message_ids(chat_id), message_id)
        deleted, _ = await pipe.execute()
        return bool(deleted)

    async def message_ids(
        self,
        chat_id: int,
        first: int,
        last: int,
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[int]:
        """The ids from ``first`` to ``last`` (inclusive) of the chat's stored
        messages, oldest first (or ``newest_first``), at most ``limit`` of them."""
        key = keys.chat_message_ids(chat_id)
        if newest_first:
            command: list[str | int] = ["ZREVRANGEBYSCORE", key, last, first]
        else:
            command = ["ZRANGEBYSCORE", key, first, last]
        if limit is not None:
            command += ["LIMIT", 0, limit]
        return [int(member) for member in await self._wire.call(*command, retry=True)]

    async def get_message_range(
        self,
        chat_id: int,
        first: int,
        last: int,
        *,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[MessageRecord]:
        """The stored messages with ids ``first`` to ``last`` (inclusive), oldest
        first (or ``newest_first``), at most ``limit`` of them."""
        if last < first:
            return []
        ids = await self.message_ids(chat_id, first, last, limit=limit, newest_first=newest_first)
        return await self.get_messages(chat_id, ids)

    # -- reactions ------------------------------------------------------------

    async def set_reaction(
        self, chat_id: int, message_id: int, member: str, reaction: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Replace ``member``'s reaction on a message; returns the previous one."""
        key, field_name = keys.chat_reactions(chat_id), f"{message_id}:{member}"
        per_message = keys.message_reactions(chat_id, message_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hget(key, field_name)
            if reaction:
                pipe.hset(key, field_name, json_dumps(reaction))
                pipe.hset(per_message, member, json_dumps(reaction))
            else:
                pipe.hdel(key, field_name)
                pipe.hdel(per_message, member)
            old = (await pipe.execute())[0]
        return list(json_loads(old)) if old else []

    async def read_reactions(
        self, chat_id: int, message_id: int
    ) -> tuple[Snapshot, dict[str, list[dict[str, Any]]]]:
        """A message's reactions (member -> list), to change them from."""
        snapshot = await self._outbox.read(keys.message_reactions(chat_id, message_id))
        found = {as_text(k): list(json_loads(v)) for k, v in snapshot.fields.items()}
        return snapshot, found

    async def change_reaction(
        self,
        snapshot: Snapshot,
        chat_id: int,
        message_id: int,
        member: str,
        reaction: list[dict[str, Any]],
        entries: list[list[Pending]],
    ) -> Written | None:
        """Replace ``member``'s reaction on the message ``snapshot`` read and queue
        ``entries`` (:meth:`Outbox.change`), in one step; None if its reactions
        changed since the read."""
        chat_key, field = keys.chat_reactions(chat_id), f"{message_id}:{member}"
        if reaction:
            value = json_dumps(reaction)
            return await self._outbox.change(
                chat_id,
                snapshot,
                [("set", snapshot.key, member, value), ("set", chat_key, field, value)],
                entries,
            )
        return await self._outbox.change(
            chat_id,
            snapshot,
            [("del", snapshot.key, member, ""), ("del", chat_key, field, "")],
            entries,
        )

    async def reactions_of(
        self, chat_id: int, message_ids: list[int]
    ) -> dict[int, dict[str, list[dict[str, Any]]]]:
        """Every member's reactions to each of ``message_ids`` (member -> list), in
        one round trip; messages nobody reacted to are left out."""
        if not message_ids:
            return {}
        replies = await self._wire.calls(
            [("HGETALL", keys.message_reactions(chat_id, mid)) for mid in message_ids], retry=True
        )
        found: dict[int, dict[str, list[dict[str, Any]]]] = {}
        for mid, flat in zip(message_ids, replies, strict=True):
            if flat:
                found[mid] = {
                    as_text(k): list(json_loads(v))
                    for k, v in zip(flat[::2], flat[1::2], strict=True)
                }
        return found

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

    async def read_poll(
        self, chat_id: int, message_id: int
    ) -> tuple[Snapshot, dict[str, list[int]], bool]:
        """(snapshot, member -> chosen option ids, closed) of a poll, to change it from."""
        snapshot = await self._outbox.read(keys.poll_votes(chat_id, message_id))
        votes = {
            as_text(k): list(json_loads(v))
            for k, v in snapshot.fields.items()
            if k != POLL_CLOSED_FIELD.encode()
        }
        return snapshot, votes, POLL_CLOSED_FIELD.encode() in snapshot.fields

    async def change_poll(
        self,
        snapshot: Snapshot,
        chat_id: int,
        entries: list[list[Pending]],
        *,
        member: str | None = None,
        option_ids: list[int] | None = None,
    ) -> Written | None:
        """Record ``member``'s vote (none: retract it), or with no ``member`` close
        the poll ``snapshot`` read, and queue ``entries`` (:meth:`Outbox.change`),
        in one step; None if the poll changed since the read (the caller checked
        that it was open)."""
        write: tuple[str, str, str, bytes | str]
        if member is None:
            write = ("set", snapshot.key, POLL_CLOSED_FIELD, "1")
        elif option_ids:
            write = ("set", snapshot.key, member, json_dumps(option_ids))
        else:
            write = ("del", snapshot.key, member, "")
        return await self._outbox.change(chat_id, snapshot, [write], entries)

    async def cast_vote(
        self, chat_id: int, message_id: int, member: str, option_ids: list[int]
    ) -> tuple[bool, list[int]]:
        """Record a vote unless the poll is closed: (accepted, previous option ids)."""
        args = [member, json_dumps(option_ids) if option_ids else "", POLL_CLOSED_FIELD]
        command = (1, keys.poll_votes(chat_id, message_id), *args)
        try:
            accepted, old = await self._wire.call("EVALSHA", _CAST_VOTE_SHA, *command)
        except NoScriptError:  # Redis restarted or was flushed: EVAL loads it again
            accepted, old = await self._wire.call("EVAL", _CAST_VOTE, *command)
        if not int(accepted):
            return False, []
        return True, list(json_loads(old)) if old else []

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

    async def note_file_uploader(self, file_id: str, uploader: str) -> None:
        """Note that ``uploader`` (``b<id>``) uploaded a file no message carries yet
        (the first uploader stays)."""
        await self._wire.call("SET", keys.file_uploader(file_id), uploader, "NX", retry=True)

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
