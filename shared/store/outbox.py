"""The chats' outboxes: a message and the updates it causes are written in one step.

A user's message reaches several bots' logs, and a chat and a bot live in different
hash slots, so no single script can store the message and append every update.
Instead one script in the chat's slot (``lua/chat_write.lua``) stores the message
and, beside it, an outbox entry holding the updates rendered for each recipient.
The writer then drains the entry: it appends each update to its bot's log and
deletes the entry. A crash anywhere in between leaves the entry in the outbox,
where two things find it:

* the next write in the same chat, which sees the outbox is not empty and drains
  every entry before its own, in order;
* :meth:`Outbox.replay`, which every REST process runs periodically over the chats
  an index names (written at most once a second per chat, before the entry).

Draining twice appends nothing twice: an entry's seq is strictly increasing per
chat, entries of a chat reach a log in seq order, and each log keeps the newest
seq it holds per chat (``append_update.lua``), so an entry at or below it is
skipped. Order per chat is kept in every bot's log, even for concurrent writers.

Other changes of a chat's state (a reaction, a pin, a poll's votes, a member) are
made by ``lua/chat_change.lua`` with their entry in the same way
(:meth:`Outbox.change`): the caller reads the hash it changes (a
:class:`Snapshot`), renders the updates from it, and the script writes only if the
hash is still as read. A membership also lives in the member's own set of chats,
in another slot: the entry carries a :data:`MEMBERSHIP` item, and the drain makes
that set agree with the chat's members, so a crash before it is repaired by the
next drain or the replay.

Updates of a new message are rendered before the message has its id: the id is
written as :data:`MESSAGE_ID_PLACEHOLDER`, which packs to nine fixed bytes that the
drain replaces with the id the script chose.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError, RedisError

from shared import keys
from shared.codecs import pack, unpack
from shared.ids import new_epoch
from shared.settings import Settings
from shared.store.fields import as_text
from shared.store.log import append_keys
from shared.store.scripts import Script
from shared.store.tails import Tails
from shared.store.userlog import user_append_args, user_append_keys
from shared.store.wire import Command, Wire

__all__ = [
    "MEMBERSHIP",
    "MESSAGE_ID_PLACEHOLDER",
    "OUTBOX_BUCKETS",
    "Outbox",
    "Pending",
    "Snapshot",
    "Written",
]

log = logging.getLogger("botgw.outbox")

OUTBOX_BUCKETS = 16
# A 63-bit value no real id reaches; msgpack writes it as 0xcf and 8 bytes
MESSAGE_ID_PLACEHOLDER = 0x7E5D_3C1B_A987_6543
_PLACEHOLDER_BYTES = b"\xcf" + MESSAGE_ID_PLACEHOLDER.to_bytes(8, "big")
# a chat is named in the index again at most this often by one process (s)
INDEX_REFRESH_SECONDS = 1.0
# the replay looks at chats not written for this long (ms): a live writer has long
# finished its drain or timed out by then
REPLAY_AFTER_MS = 10_000
REPLAY_BATCH = 200
REPLAY_INTERVAL_SECONDS = 2.0
# the kind of an entry's item that is no update: the drain makes the member's set
# of chats (``payload``: the member key) agree with the chat's members
MEMBERSHIP = "~membership"


@dataclass(frozen=True, slots=True)
class Pending:
    """An update waiting in an outbox for one bot (chat id as that bot sees it) or,
    with ``user``, an event for one user's log (``bot_id`` is then the user's id
    and ``chat_id`` the chat's internal id; shared/store/userlog.py)."""

    bot_id: int
    kind: str
    chat_id: int
    payload: bytes  # msgpack of the update body, without update_id
    user: bool = False


@dataclass(frozen=True, slots=True)
class Written:
    message_id: int
    seq: int  # the outbox entry's seq, 0 when the write queued nothing
    queued: int  # entries in the chat's outbox after the write
    replayed: bool  # an earlier write with the same idempotency key stored it
    wait_ms: int = 0  # > 0: the send bucket refused the write, which wrote nothing


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A hash of a chat as read before changing it: :meth:`Outbox.change` writes
    only if it is still the same."""

    key: str
    fields: dict[bytes, bytes]

    @property
    def fingerprint(self) -> str:
        """What ``lua/chat_change.lua`` computes of the hash to compare."""
        parts = [
            b"%d:%s%d:%s" % (len(name), name, len(self.fields[name]), self.fields[name])
            for name in sorted(self.fields)
        ]
        return hashlib.sha1(b"".join(parts)).hexdigest()


def _encode(pending: Sequence[Pending]) -> bytes:
    # a user's event carries a fifth item, 1 (entries written before have four)
    return pack(
        [
            [p.bot_id, p.kind, p.chat_id, p.payload, 1]
            if p.user
            else [p.bot_id, p.kind, p.chat_id, p.payload]
            for p in pending
        ]
    )


def _decode(raw: bytes) -> tuple[int, list[Pending]]:
    head, _, body = raw.partition(b"|")
    items = unpack(body)
    return int(head), [
        Pending(int(item[0]), str(item[1]), int(item[2]), bytes(item[3]), len(item) > 4)
        for item in items
    ]


def _with_id(payload: bytes, message_id: int) -> bytes:
    return payload.replace(_PLACEHOLDER_BYTES, b"\xcf" + message_id.to_bytes(8, "big"))


class Outbox:
    """Atomic message writes and the drain of their updates; ``store.outbox``."""

    def __init__(self, *, wire: Wire, scripts: dict[str, Script], settings: Settings) -> None:
        self._wire = wire
        self._settings = settings
        self._write = scripts["chat_write"]
        self._append = scripts["append_update"]
        self._forget = scripts["outbox_forget"]
        self._change = scripts["chat_change"]
        self._indexed: dict[int, float] = {}
        # the newest entry appended per bot, checked after a failover (tails.py)
        self.tails: Tails | None = None

    # -- writing ----------------------------------------------------------------

    async def write(
        self,
        chat_id: int,
        *,
        mode: str,
        message: bytes = b"",
        message_id: int = 0,
        pending: Sequence[Pending] = (),
        idempotency_key: str | None = None,
        idempotency_ttl: int = 86_400,
        send_rate: tuple[float, float] | None = None,
    ) -> Written:
        """Store a message (``mode`` ``new``: ``message`` is a map still lacking the
        value of its last key, the id; ``save``: under ``message_id``; ``none``) and
        queue ``pending`` in the chat's outbox, in one step. A new message also
        trims the chat's history to its cap and retention (settings
        ``chat_history_max_messages``, ``chat_history_retention_days``). With
        ``send_rate`` (tokens per second, capacity), the write first takes a token
        of the chat's users' send bucket; when there is none it writes nothing and
        ``Written.wait_ms`` says how long to wait."""
        settings = self._settings
        command = self._write.command(
            keys=[
                keys.chat_sequence(chat_id),
                keys.chat_messages(chat_id),
                keys.chat_outbox(chat_id),
                keys.chat_outbox_clock(chat_id),
                keys.chat_idempotency(chat_id, idempotency_key or "-"),
                keys.chat_history(chat_id),
                keys.chat_history_hours(chat_id),
                keys.chat_rate(chat_id),
                keys.chat_message_ids(chat_id),
            ],
            args=[
                mode,
                message,
                message_id,
                _encode(pending) if pending else b"",
                idempotency_ttl if idempotency_key else "",
                settings.chat_history_max_messages,
                settings.chat_history_retention_days * 86_400_000,
                "" if send_rate is None else send_rate[0],
                "" if send_rate is None else send_rate[1],
            ],
        )
        commands: list[Command] = [command]
        index = self._index_command(chat_id) if pending else None
        if index is not None:
            commands.insert(0, index)
        reply = (await self._calls(commands, self._write))[-1]
        return Written(
            message_id=int(reply[0]),
            seq=int(reply[1]) if reply[1] else 0,
            queued=int(reply[2]),
            replayed=bool(int(reply[3])),
            wait_ms=int(reply[4]),
        )

    async def read(self, key: str) -> Snapshot:
        """A hash of a chat, to compute a change from (:meth:`change`)."""
        flat = await self._wire.call("HGETALL", key, retry=True)
        pairs = zip(flat[::2], flat[1::2], strict=True)
        return Snapshot(key, {bytes(k): bytes(v) for k, v in pairs})

    async def change(
        self,
        chat_id: int,
        snapshot: Snapshot,
        writes: Sequence[tuple[str, str, str | int, bytes | str]],
        entries: Sequence[Sequence[Pending]],
    ) -> Written | None:
        """Make ``writes`` (``("set" | "del", key, field, value)`` on hashes of the
        chat) and queue ``entries`` (each a list of pending updates, at most one
        per log) in the chat's outbox, in one step, if the hash ``snapshot`` read
        is unchanged; None (nothing written) if it changed."""
        entries = [entry for entry in entries if entry]
        assert entries, "a change without updates needs no outbox"
        names = [keys.chat_outbox(chat_id), keys.chat_outbox_clock(chat_id), snapshot.key]
        args: list[Any] = [len(entries), *map(_encode, entries), snapshot.fingerprint]
        for op, key, field, value in writes:
            if key not in names:
                names.append(key)
            args += [f"{op}:{names.index(key) + 1}", field, value]
        commands: list[Command] = [self._change.command(keys=names, args=args)]
        index = self._index_command(chat_id)
        if index is not None:
            commands.insert(0, index)
        reply = (await self._calls(commands, self._change))[-1]
        if not int(reply[0]):
            return None
        return Written(message_id=0, seq=int(reply[1]), queued=int(reply[2]), replayed=False)

    def _index_command(self, chat_id: int) -> Command | None:
        """Name the chat in the index (refreshed at most once a second) before an
        entry is written, so that a crash right after the write leaves it findable."""
        now = time.monotonic()
        if now - self._indexed.get(chat_id, -INDEX_REFRESH_SECONDS) < INDEX_REFRESH_SECONDS:
            return None
        if len(self._indexed) > 100_000:
            self._indexed.clear()
        self._indexed[chat_id] = now
        bucket = keys.outbox_index(chat_id % OUTBOX_BUCKETS)
        return ("ZADD", bucket, int(time.time() * 1000), chat_id)

    # -- draining ---------------------------------------------------------------

    async def drain(self, chat_id: int, written: Written, pending: Sequence[Pending]) -> None:
        """Append the updates of a write just made (and of any entry before it that a
        crashed or concurrent writer left), then delete the entries."""
        if written.seq == 0:
            return
        if written.queued <= 1:
            entries = [(written.seq, written.message_id, list(pending))]
        else:
            entries = [e for e in await self.entries(chat_id) if e[0] <= written.seq]
        await self._append_entries(chat_id, entries)

    async def entries(self, chat_id: int) -> list[tuple[int, int, list[Pending]]]:
        """Every entry of a chat's outbox: (seq, message id, pending), in seq order."""
        flat = await self._wire.call("HGETALL", keys.chat_outbox(chat_id), retry=True)
        found = []
        for seq, raw in zip(flat[::2], flat[1::2], strict=True):
            message_id, pending = _decode(bytes(raw))
            found.append((int(seq), message_id, pending))
        found.sort(key=lambda entry: entry[0])
        return found

    async def _append_entries(
        self, chat_id: int, entries: Sequence[tuple[int, int, list[Pending]]]
    ) -> None:
        if not entries:
            return
        settings = self._settings
        commands: list[Command] = []
        bots: list[int] = []  # the bots' appends come first, the users' after them
        users: list[Command] = []
        members: list[str] = []
        for seq, message_id, pending in entries:
            for item in pending:
                if item.kind == MEMBERSHIP:
                    members.append(item.payload.decode())
                    continue
                if item.user:
                    users.append(
                        self._append.command(
                            keys=user_append_keys(item.bot_id, None, outbox=True),
                            args=user_append_args(
                                settings,
                                item.bot_id,
                                item.kind,
                                item.chat_id,
                                _with_id(item.payload, message_id),
                                outbox=(chat_id, seq),
                            ),
                        )
                    )
                    continue
                bots.append(item.bot_id)
                commands.append(
                    self._append.command(
                        keys=append_keys(item.bot_id, None, outbox=True),
                        args=[
                            new_epoch(),
                            settings.retention_seconds * 1000,
                            settings.log_maxlen,
                            _with_id(item.payload, message_id),
                            item.kind,
                            item.chat_id,
                            keys.bot_wakeup_channel(item.bot_id),
                            "0",
                            0,
                            chat_id,
                            seq,
                        ],
                    )
                )
        if commands or users:
            replies = (await self._calls(commands + users, self._append))[: len(commands)]
            if self.tails is not None:
                for bot_id, reply in zip(bots, replies, strict=True):
                    self.tails.note(bot_id, as_text(reply[1]), as_text(reply[0]), int(reply[4]))
        if members:
            await self._repair_memberships(chat_id, list(dict.fromkeys(members)))
        await self._wire.call("HDEL", keys.chat_outbox(chat_id), *[e[0] for e in entries])

    async def _repair_memberships(self, chat_id: int, members: list[str]) -> None:
        """Make each member's set of chats (in the member's slot) say what the chat's
        members say now: idempotent, whichever entry and however often it runs (a
        change racing it is repaired again by the drain of its own entry)."""
        found = await self._wire.call("HMGET", keys.chat_members(chat_id), *members, retry=True)
        commands: list[Command] = []
        for member, info in zip(members, found, strict=True):
            ident = int(member[1:])
            key = keys.user_chats(ident) if member[0] == "u" else keys.bot_chats(ident)
            commands.append(("SADD" if info is not None else "SREM", key, chat_id))
        await self._wire.calls(commands, retry=True)

    async def _calls(self, commands: list[Command], script: Any) -> list[Any]:
        try:
            return await self._wire.calls(commands)
        except NoScriptError:
            # Redis lost its scripts: load and run again (the write and the append
            # are safe to repeat, by idempotency key and by seq; a change made
            # already no longer matches its fingerprint and writes nothing)
            await script.load()
            return await self._wire.calls(commands)

    # -- replay -----------------------------------------------------------------

    async def replay(self, *, older_than_ms: int = REPLAY_AFTER_MS) -> int:
        """Drain the outboxes of chats not written for ``older_than_ms``: what a writer
        that crashed left. Returns how many entries were appended."""
        drained = 0
        horizon = int(time.time() * 1000) - older_than_ms
        for bucket in range(OUTBOX_BUCKETS):
            index = keys.outbox_index(bucket)
            flat = await self._wire.call(
                "ZRANGEBYSCORE", index, "-inf", horizon, "WITHSCORES", "LIMIT", 0, REPLAY_BATCH
            )
            for member, score in zip(flat[::2], flat[1::2], strict=True):
                chat_id = int(member)
                entries = await self.entries(chat_id)
                if entries:
                    log.warning(
                        "chat %d: appending %d outbox entries a writer left", chat_id, len(entries)
                    )
                    await self._append_entries(chat_id, entries)
                    drained += len(entries)
                # forget the chat unless it was named again meanwhile
                await self._forget(keys=[index], args=[member, score])
        return drained

    async def replay_forever(self, interval: float = REPLAY_INTERVAL_SECONDS) -> None:
        """:meth:`replay` every ``interval`` seconds until cancelled (each REST process
        runs one, so no extra process has to be deployed; concurrent replays are safe)."""
        while True:
            await asyncio.sleep(interval * (0.5 + random.random()))
            try:
                await self.replay()
            except (RedisError, OSError) as exc:
                log.warning("outbox replay failed, retrying: %s", exc)

    async def pending_count(self, chat_id: int) -> int:
        return int(await self._wire.call("HLEN", keys.chat_outbox(chat_id)))
