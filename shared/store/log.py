"""The per-bot update log: append, read after a cursor, committed cursors
(docs/design.md, The update log).

One Redis stream per bot. Entry fields: ``d`` payload (msgpack, ids as integers,
the update as that bot sees it, without ``update_id``), ``t`` update type, ``c``
chat id as the bot sees it (for sharding without decoding), ``p`` the previous
entry id, which makes a trimmed gap exact to detect: if the first entry after a
cursor names a predecessor newer than the cursor, entries were lost in between;
``n`` the entry's ordinal in its epoch (1, 2, 3, ...), which makes the number lost
exact: the committed cursors keep their own ordinal beside them (field
``<consumer>#n``), so a reader that finds a gap knows how many it missed
(:func:`gap_before`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from shared import keys
from shared.codecs import pack
from shared.ids import Cursor, new_epoch, stream_id_from_update_id, update_id_from_stream_id
from shared.settings import Settings
from shared.store.client import Client
from shared.store.fields import as_text
from shared.store.scripts import Script
from shared.store.tails import Tails
from shared.store.wire import Command, Wire

__all__ = [
    "Gap",
    "LogInfo",
    "StoredUpdate",
    "UpdateLog",
    "append_keys",
    "contiguous",
    "gap_before",
    "marks_digest",
    "raw_entries",
    "reader_mark",
]

IDEMPOTENCY_TTL_SECONDS = 86_400
CLAIMED = "claimed"  # a lease just taken or changed: its marks are restored next renewal


@dataclass(frozen=True, slots=True)
class StoredUpdate:
    """One entry of a bot's log, payload still encoded."""

    update_id: int
    prev_id: int
    kind: str
    chat_id: int
    payload: bytes  # msgpack of the update body (without update_id)
    ordinal: int | None = None  # its place in the epoch (None: appended without one)


@dataclass(frozen=True, slots=True)
class Gap:
    """Updates a reader lost: every update with an id above ``after`` and at most
    ``through`` (``count`` of them; None when that cannot be known). ``reason``:
    ``trimmed`` (retention or the length cap took them) or ``tail_lost`` (a Redis
    failover or restart lost the newest entries; see tails.py)."""

    after: int
    through: int
    count: int | None
    reason: str = "trimmed"


def contiguous(entries: list[StoredUpdate]) -> list[StoredUpdate]:
    """``entries`` up to the first one that does not follow its predecessor: a hole
    that a lost tail left inside the log (trimming only ever takes the oldest). The
    reader's next read then starts at that entry, where :func:`gap_before` sees it."""
    for index in range(1, len(entries)):
        if entries[index].prev_id != entries[index - 1].update_id:
            return entries[:index]
    return entries


def gap_before(first: StoredUpdate, after: int, after_ordinal: int | None) -> Gap | None:
    """The gap between a reader's position ``after`` (whose ordinal is
    ``after_ordinal``, if known) and ``first``, the first entry it read after it."""
    if first.prev_id <= after:
        return None
    count = None
    if first.ordinal is not None and after_ordinal is not None:
        count = max(first.ordinal - 1 - after_ordinal, 0)
    return Gap(after=after, through=first.prev_id, count=count)


def append_keys(bot_id: int, idempotency_key: str | None, *, outbox: bool = False) -> list[str]:
    """The keys of one ``append_update.lua`` call (with ``outbox``: of an outbox drain)."""
    found = [
        keys.bot_log(bot_id),
        keys.bot_epoch(bot_id),
        keys.bot_last_id(bot_id),
        keys.bot_appended(bot_id),
        keys.bot_idempotency(bot_id, idempotency_key or "-"),
    ]
    if outbox:
        found.append(keys.bot_outbox_held(bot_id))
    return found


@dataclass(frozen=True, slots=True)
class AppendResult:
    update_id: int
    prev_id: int
    epoch: str
    replayed: bool


@dataclass(frozen=True, slots=True)
class LogInfo:
    epoch: str | None
    oldest: int | None
    newest: int | None
    length: int


def _entry(entry_id: Any, fields: dict[Any, Any]) -> StoredUpdate:
    get = fields.get
    return StoredUpdate(
        update_id=update_id_from_stream_id(as_text(entry_id)),
        prev_id=update_id_from_stream_id(as_text(get(b"p", b"0-0"))),
        kind=as_text(get(b"t", b"")),
        chat_id=int(get(b"c", b"0") or 0),
        payload=bytes(get(b"d", b"")),
        ordinal=int(ordinal) if (ordinal := get(b"n")) is not None else None,
    )


def _entries(raw: Any) -> list[StoredUpdate]:
    return [_entry(entry_id, fields or {}) for entry_id, fields in raw or ()]


def raw_entries(raw: Any) -> list[StoredUpdate]:
    """Entries of an XRANGE reply as RESP2 gives it: [id, [field, value, ...]]."""
    return [
        _entry(entry_id, dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {})
        for entry_id, flat in raw or ()
    ]


def _read_after(bot_id: int, after: int, count: int) -> Command:
    """The XRANGE of up to ``count`` entries with update id greater than ``after``."""
    start = "-" if after <= 0 else "(" + stream_id_from_update_id(after)
    return ("XRANGE", keys.bot_log(bot_id), start, "+", "COUNT", count)


def _mark_reader(bot_id: int, consumer: str, reader: str, ttl: float) -> Command:
    """The SET marking ``reader`` the consumer's live reader for ``ttl`` seconds."""
    return ("SET", keys.bot_reader(bot_id, consumer), reader, "PX", int(ttl * 1000))


def reader_mark(lease: str, reader: str) -> str:
    """A live-reader mark held under a gateway worker's lease (lua/_reader.lua)."""
    return f"{lease}|{reader}"


def marks_digest(marks: Iterable[tuple[str, str]]) -> str:
    """What a worker's lease on a bot's readers holds: a digest of its marks
    (consumer, mark), so that a renewal finds the lease of other marks, or none."""
    digest = hashlib.blake2b(digest_size=8)
    for consumer, mark in sorted(marks):
        digest.update(f"{consumer}={mark}\n".encode())
    return digest.hexdigest()


def _commit_keys(bot_id: int) -> list[str]:
    return [
        keys.bot_cursors(bot_id),
        keys.bot_epoch(bot_id),
        keys.bot_log(bot_id),
        keys.bot_appended(bot_id),
    ]


class UpdateLog:
    """Domain operations on the update logs; reached as ``store.log``."""

    def __init__(
        self, *, redis: Client, wire: Wire, scripts: dict[str, Script], settings: Settings
    ) -> None:
        self._redis = redis
        self._wire = wire
        self._scripts = scripts  # looked up at each call: the registry is the store's
        self._settings = settings
        # the newest entry appended per bot, checked after a failover (tails.py)
        self.tails: Tails | None = None

    async def append(
        self,
        bot_id: int,
        *,
        kind: str,
        chat_id: int,
        body: dict[str, Any],
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append one update; ``body`` is the update without ``update_id``."""
        settings = self._settings
        has_key = idempotency_key is not None
        reply = await self._scripts["append_update"](
            keys=append_keys(bot_id, idempotency_key),
            args=[
                new_epoch(),
                settings.retention_seconds * 1000,
                settings.log_maxlen,
                pack(body),
                kind,
                chat_id,
                keys.bot_wakeup_channel(bot_id),
                "1" if has_key else "0",
                IDEMPOTENCY_TTL_SECONDS,
            ],
        )
        stream_id, epoch = as_text(reply[0]), as_text(reply[1])
        if self.tails is not None:
            self.tails.note(bot_id, epoch, stream_id, int(reply[4]))
        return AppendResult(
            update_id=update_id_from_stream_id(stream_id),
            epoch=epoch,
            prev_id=update_id_from_stream_id(as_text(reply[2])),
            replayed=bool(int(reply[3])),
        )

    async def epoch(self, bot_id: int) -> str | None:
        value = await self._redis.get(keys.bot_epoch(bot_id))
        return None if value is None else as_text(value)

    async def ensure_epoch(self, bot_id: int) -> str:
        """The log's epoch, created now if the bot never had an update."""
        key = keys.bot_epoch(bot_id)
        await self._redis.set(key, new_epoch(), nx=True)
        value = await self._redis.get(key)
        assert value is not None
        return as_text(value)

    async def info(self, bot_id: int) -> LogInfo:
        log = keys.bot_log(bot_id)
        epoch, first, last, length = await self._wire.calls(
            [
                ("GET", keys.bot_epoch(bot_id)),
                ("XRANGE", log, "-", "+", "COUNT", 1),
                ("XREVRANGE", log, "+", "-", "COUNT", 1),
                ("XLEN", log),
            ],
            retry=True,
        )
        return LogInfo(
            epoch=None if epoch is None else as_text(epoch),
            oldest=update_id_from_stream_id(as_text(first[0][0])) if first else None,
            newest=update_id_from_stream_id(as_text(last[0][0])) if last else None,
            length=int(length),
        )

    async def read_after(self, bot_id: int, after: int, count: int) -> list[StoredUpdate]:
        """Up to ``count`` entries with update id greater than ``after``, oldest first."""
        reply = await self._wire.call(*_read_after(bot_id, after, count), retry=True)
        return contiguous(raw_entries(reply))

    async def read_last(self, bot_id: int, count: int) -> list[StoredUpdate]:
        """The newest ``count`` entries, oldest first."""
        entries = await self._redis.xrevrange(keys.bot_log(bot_id), "+", "-", count=count)
        return _entries(entries)[::-1]

    async def read_after_many(
        self, requests: Sequence[tuple[int, int]], count: int
    ) -> list[list[StoredUpdate]]:
        """Pipelined :meth:`read_after` for several (bot id, after) pairs."""
        replies = await self._wire.calls(
            [_read_after(bot_id, after, count) for bot_id, after in requests], retry=True
        )
        return [contiguous(raw_entries(reply)) for reply in replies]

    async def gap_reason(self, bot_id: int, after: int) -> str:
        """Why entries after ``after`` are missing: ``tail_lost`` when the log still
        holds an entry at or below ``after`` (so they were not trimmed: trimming
        takes the oldest first), else ``trimmed``."""
        if after <= 0:
            return "trimmed"
        below = await self._wire.call(
            "XREVRANGE", keys.bot_log(bot_id), stream_id_from_update_id(after), "-", "COUNT", 1
        )
        return "tail_lost" if below else "trimmed"

    async def head(self, bot_id: int) -> int:
        """The newest update id the log has handed out in its epoch (0: none)."""
        last = await self._wire.call("GET", keys.bot_last_id(bot_id), retry=True)
        return 0 if last is None else update_id_from_stream_id(as_text(last))

    async def heads(self, bot_ids: Sequence[int]) -> list[int | None]:
        """The newest update id of each bot's log (None when empty), pipelined."""
        replies = await self._wire.calls(
            [("XREVRANGE", keys.bot_log(bot_id), "+", "-", "COUNT", 1) for bot_id in bot_ids],
            retry=True,
        )
        return [
            update_id_from_stream_id(as_text(reply[0][0])) if reply else None for reply in replies
        ]

    async def cursor_ordinal(self, bot_id: int, consumer: str, cursor: Cursor) -> int | None:
        """The ordinal kept beside the consumer's committed cursor, if that cursor is
        still ``cursor`` (else None: not known)."""
        if cursor.update_id <= 0:
            return 0
        stored, ordinal = await self._wire.call(
            "HMGET", keys.bot_cursors(bot_id), consumer, consumer + "#n", retry=True
        )
        if stored is None or ordinal is None:
            return None
        if as_text(stored) != f"{cursor.epoch}:{cursor.update_id}":
            return None
        return int(ordinal)

    async def get_cursor(self, bot_id: int, consumer: str) -> Cursor | None:
        value = await self._redis.hget(keys.bot_cursors(bot_id), consumer)
        if value is None:
            return None
        epoch, _, update_id = as_text(value).partition(":")
        return Cursor(epoch=epoch, update_id=int(update_id))

    async def open_reader(
        self, bot_id: int, consumer: str, *, read_after: int | None = None, count: int = 0
    ) -> tuple[str, Cursor | None, int, list[StoredUpdate] | None]:
        """For a new live reader, in one round trip: the log's epoch (created if the
        bot never had an update), the consumer's committed cursor, the next
        generation (takeover order) and, when ``read_after`` is given (a resuming
        client's cursor), up to ``count`` entries after it."""
        epoch_key = keys.bot_epoch(bot_id)
        commands: list[Command] = [
            ("SET", epoch_key, new_epoch(), "NX"),
            ("GET", epoch_key),
            ("HGET", keys.bot_cursors(bot_id), consumer),
            ("INCR", keys.bot_generation(bot_id, consumer)),
        ]
        if read_after is not None:
            commands.append(_read_after(bot_id, read_after, count))
        replies = await self._wire.calls(commands)
        _, epoch, committed, generation = replies[:4]
        cursor = None
        if committed is not None:
            cursor_epoch, _, update_id = as_text(committed).partition(":")
            cursor = Cursor(epoch=cursor_epoch, update_id=int(update_id))
        entries = contiguous(raw_entries(replies[4])) if read_after is not None else None
        return as_text(epoch), cursor, int(generation), entries

    async def claim_reader(
        self, bot_id: int, consumer: str, mark: str, announcement: str, *, lease: str, ttl: float
    ) -> None:
        """Announce a takeover and mark the consumer's live reader (``mark``, see
        :func:`reader_mark`) under ``lease``, renewed for ``ttl`` s, in one round trip.

        The mark has no expiry of its own: it is live while the lease is, and the
        lease is renewed per bot, not per mark (:meth:`renew_reader_leases`).
        """
        await self._wire.calls(
            [
                (self._redis.publish_command, keys.bot_wakeup_channel(bot_id), announcement),
                ("SET", keys.bot_reader(bot_id, consumer), mark),
                ("SET", keys.bot_reader_lease(bot_id, lease), CLAIMED, "PX", int(ttl * 1000)),
            ]
        )

    async def renew_reader_leases(
        self, bots: Sequence[tuple[int, Sequence[tuple[str, str]]]], lease: str, ttl: float
    ) -> list[int]:
        """Renew ``lease`` on each bot's live readers for ``ttl`` s: one SET a bot,
        however many marks (consumer, mark) it holds, pipelined. Returns the bots
        whose lease held another digest or none: their marks may be missing or
        stale, for :meth:`restore_readers`."""
        ttl_ms = int(ttl * 1000)
        digests = [marks_digest(marks) for _, marks in bots]
        replies = await self._wire.calls(
            [
                ("SET", keys.bot_reader_lease(bot_id, lease), digest, "PX", ttl_ms, "GET")
                for (bot_id, _), digest in zip(bots, digests, strict=True)
            ],
            retry=True,
        )
        return [
            bot_id
            for (bot_id, _), digest, held in zip(bots, digests, replies, strict=True)
            if held is None or as_text(held) != digest
        ]

    async def restore_readers(
        self, bots: Sequence[tuple[int, Sequence[tuple[str, str]]]], lease: str, ttl: float
    ) -> None:
        """Write each bot's marks (consumer, mark) that are missing or stale (never
        one another live reader holds) and renew ``lease`` on them: a script a bot."""
        script = self._scripts["restore_readers"]
        ttl_ms = int(ttl * 1000)
        commands = [
            script.command(
                keys=[
                    keys.bot_reader_lease(bot_id, lease),
                    *(keys.bot_reader(bot_id, consumer) for consumer, _ in marks),
                ],
                args=[ttl_ms, marks_digest(marks), lease, *(mark for _, mark in marks)],
            )
            for bot_id, marks in bots
        ]
        try:
            await self._wire.calls(commands)
        except NoScriptError:
            await script.load()
            await self._wire.calls(commands)

    async def close_reader(
        self, bot_id: int, consumer: str, reader: str, cursor: Cursor | None
    ) -> None:
        """A live reader goes: commit its last cursor and clear its mark if still its,
        in one script call."""
        await self._scripts["commit_cursor"](
            keys=[*_commit_keys(bot_id), keys.bot_reader(bot_id, consumer)],
            args=[
                consumer,
                "" if cursor is None else cursor.epoch,
                0 if cursor is None else cursor.update_id,
                reader,
            ],
        )

    async def commit_cursor(self, bot_id: int, consumer: str, cursor: Cursor) -> int:
        """Move the committed cursor forward: 1 moved, 0 not newer, -1 other epoch."""
        reply = await self._scripts["commit_cursor"](
            keys=_commit_keys(bot_id), args=[consumer, cursor.epoch, cursor.update_id]
        )
        return int(reply)

    async def commit_cursors(self, commits: Sequence[tuple[int, str, Cursor]]) -> None:
        """Pipelined :meth:`commit_cursor` for several (bot id, consumer, cursor)."""
        if not commits:
            return
        script = self._scripts["commit_cursor"]
        commands = [
            script.command(
                keys=_commit_keys(bot_id), args=[consumer, cursor.epoch, cursor.update_id]
            )
            for bot_id, consumer, cursor in commits
        ]
        try:
            await self._wire.calls(commands)
        except NoScriptError:
            # Redis lost its scripts: load and commit again (commits only move forward)
            await script.load()
            await self._wire.calls(commands)

    async def set_reader(self, bot_id: int, consumer: str, reader: str, ttl: float) -> None:
        """Mark a live reader of a consumer for ``ttl`` seconds, with no lease (a mark
        that expires by itself; the gateway's are leased, see :meth:`claim_reader`)."""
        await self._wire.call(*_mark_reader(bot_id, consumer, reader, ttl))

    async def clear_reader(self, bot_id: int, consumer: str, reader: str) -> None:
        key = keys.bot_reader(bot_id, consumer)
        value = await self._redis.get(key)
        if value is not None and as_text(value) == reader:
            await self._redis.delete(key)

    async def reader(self, bot_id: int, consumer: str) -> str | None:
        """The consumer's live reader's mark, None when it has none (or its lease
        ran out)."""
        value = await self._scripts["live_reader"](
            keys=[keys.bot_reader(bot_id, consumer)], args=[]
        )
        return None if value is None else as_text(value)

    async def announce(self, bot_id: int, message: str) -> None:
        """A control message on the bot's wake-up channel (e.g. a takeover)."""
        await self._redis.publish(keys.bot_wakeup_channel(bot_id), message)
