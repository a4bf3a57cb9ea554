"""Fan-out: one feed per bot per worker, fed by wake-ups, shared by its sessions.

A feed reads each bot's stream once per wake-up, encodes each update once per
encoding and sends the same frame bytes to every live session that wants them.
A session is *live* when its position equals the feed's; otherwise (replaying
after identify, or fallen behind with a full send buffer) it reads the log at its
own pace in :meth:`Session.catch_up` and rejoins the feed once it has caught up.
The log is durable, so falling behind costs no memory and slows nobody else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from websockets.asyncio.server import broadcast

from gateway import metrics
from gateway.protocol import Encoding
from shared.codecs import json_dumps, pack, unpack
from shared.dialect import native_ids
from shared.store import Store, StoredUpdate, Wakeup, Wakeups

if TYPE_CHECKING:
    from gateway.session import Session

__all__ = ["Feed", "Hub", "encode_update", "frames_for"]

log = logging.getLogger("botgw.gateway.hub")

READ_BATCH = 500
FRAME_MAX_UPDATES = 100
FRAME_MAX_BYTES = 256 * 1024
SWEEP_SECONDS = 1.0

_JSON_HEAD = b'{"op":"updates","updates":['
_JSON_TAIL = b"]}"


def encode_update(entry: StoredUpdate, encoding: Encoding) -> bytes:
    """One update object in the native dialect (string ids), encoded."""
    body = unpack(entry.payload)
    update = native_ids({"update_id": entry.update_id, **body})
    return json_dumps(update) if encoding == "json" else pack(update)


class EncodedBatch:
    """Entries read together, each encoded at most once per encoding."""

    def __init__(self, entries: list[StoredUpdate]) -> None:
        self.entries = entries
        self._encoded: dict[tuple[int, Encoding], bytes] = {}

    def encoded(self, index: int, encoding: Encoding) -> bytes:
        key = (index, encoding)
        data = self._encoded.get(key)
        if data is None:
            data = self._encoded[key] = encode_update(self.entries[index], encoding)
        return data


def frames_for(items: list[bytes], encoding: Encoding) -> list[bytes]:
    """``updates`` frames of at most FRAME_MAX_UPDATES / FRAME_MAX_BYTES each."""
    from gateway.protocol import encode_updates_frame

    frames: list[bytes] = []
    start = 0
    size = 0
    for i, item in enumerate(items):
        if i > start and (i - start >= FRAME_MAX_UPDATES or size + len(item) > FRAME_MAX_BYTES):
            frames.append(_frame(items[start:i], encoding, encode_updates_frame))
            start, size = i, 0
        size += len(item) + 1
    if start < len(items):
        frames.append(_frame(items[start:], encoding, encode_updates_frame))
    return frames


def _frame(items: list[bytes], encoding: Encoding, build: Callable[..., str | bytes]) -> bytes:
    if encoding == "json":
        return _JSON_HEAD + b",".join(items) + _JSON_TAIL
    frame = build(items, encoding)
    assert isinstance(frame, bytes)
    return frame


@dataclass(eq=False)
class Feed:
    """A bot's live stream on this worker."""

    bot_id: int
    position: int = 0
    sessions: set[Session] = field(default_factory=set)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reading: bool = False
    again: bool = False
    failed: BaseException | None = None


class Hub:
    """Feeds by bot id; the registry used for fan-out."""

    def __init__(self, store: Store, wakeups: Wakeups, *, send_buffer_bytes: int) -> None:
        self.store = store
        self.wakeups = wakeups
        self.send_buffer_bytes = send_buffer_bytes
        self.feeds: dict[int, Feed] = {}
        self._sweeper: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="hub-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper

    async def attach(self, session: Session) -> Feed:
        """Join the bot's feed, creating it (subscribed, positioned at the head)."""
        bot_id = session.bot_id
        feed = self.feeds.get(bot_id)
        if feed is None:
            feed = self.feeds[bot_id] = Feed(bot_id=bot_id)
            self.wakeups.add(bot_id, self._on_wakeup)
            try:
                # subscribed first, head second: any append after the head read
                # wakes us, so the feed misses nothing
                await self.wakeups.subscribed(bot_id)
                info = await self.store.log.info(bot_id)
                feed.position = info.newest or 0
            except BaseException as exc:
                feed.failed = exc
                self._drop(feed)
                feed.ready.set()
                raise
            feed.ready.set()
        else:
            await feed.ready.wait()
            if feed.failed is not None:
                raise RuntimeError("the feed could not start") from feed.failed
        feed.sessions.add(session)
        return feed

    def detach(self, session: Session) -> None:
        feed = self.feeds.get(session.bot_id)
        if feed is None:
            return
        feed.sessions.discard(session)
        if not feed.sessions and feed.ready.is_set():
            self._drop(feed)

    def _drop(self, feed: Feed) -> None:
        if self.feeds.get(feed.bot_id) is feed:
            del self.feeds[feed.bot_id]
            self.wakeups.remove(feed.bot_id, self._on_wakeup)

    def _on_wakeup(self, wakeup: Wakeup) -> None:
        feed = self.feeds.get(wakeup.bot_id)
        if feed is None:
            return
        if wakeup.control is not None:
            for session in tuple(feed.sessions):
                session.on_control(wakeup.control)
            return
        if wakeup.update_id is not None and wakeup.update_id <= feed.position:
            return
        self._schedule(feed)

    def _schedule(self, feed: Feed) -> None:
        if feed.reading:
            feed.again = True
            return
        feed.reading = True
        asyncio.get_running_loop().create_task(self._read(feed))

    async def _read(self, feed: Feed) -> None:
        try:
            while True:
                feed.again = False
                entries = await self.store.log.read_after(feed.bot_id, feed.position, READ_BATCH)
                if entries:
                    self.deliver(feed, entries)
                if len(entries) < READ_BATCH and not feed.again:
                    break
        except Exception as exc:  # Redis trouble: the sweep retries within a second
            log.warning("feed read failed for bot %s: %s", feed.bot_id, exc)
        finally:
            feed.reading = False

    def deliver(self, feed: Feed, entries: list[StoredUpdate]) -> None:
        """Send a contiguous run of entries after ``feed.position`` to live sessions."""
        prev = feed.position
        last = entries[-1].update_id
        if prev and entries[0].prev_id == 0:
            # the log was lost and began a new epoch: cursors of the old one mean
            # nothing now; clients resume and get the explicit gap signal
            for session in tuple(feed.sessions):
                session.log_replaced()
            feed.position = last
            return
        batch = EncodedBatch(entries)
        groups: dict[tuple[Encoding, tuple[int, int], frozenset[str] | None, int], list[Session]]
        groups = {}
        for session in feed.sessions:
            if not session.live:
                continue
            if session.position < prev or session.buffered() > self.send_buffer_bytes:
                session.fall_behind()
                continue
            start = max(session.position, prev)
            key = (session.encoding, session.shard, session.allowed, start)
            groups.setdefault(key, []).append(session)
        feed.position = last
        for (encoding, _, _, start), sessions in groups.items():
            first = sessions[0]
            indexes = [
                i
                for i, entry in enumerate(entries)
                if entry.update_id > start and first.wants(entry)
            ]
            if indexes:
                items = [batch.encoded(i, encoding) for i in indexes]
                frames = frames_for(items, encoding)
                sent_last = entries[indexes[-1]].update_id
                open_sessions = [s for s in sessions if s.can_send()]
                sockets = [s.ws for s in open_sessions]
                text = encoding == "json"
                for frame in frames:
                    # one call writes the same bytes to every socket of the group
                    broadcast(sockets, frame, text=text)
                for session in open_sessions:
                    session.core.updates_sent(sent_last)
                metrics.DELIVERIES.inc(len(indexes) * len(open_sessions))
            for session in sessions:
                session.position = max(session.position, last)
        metrics.FEED_READS.inc()

    async def _sweep(self) -> None:
        """Pub/sub is at-most-once: look at every feed's head once a second."""
        while True:
            await asyncio.sleep(SWEEP_SECONDS)
            feeds = [f for f in self.feeds.values() if f.ready.is_set() and not f.reading]
            if not feeds:
                continue
            try:
                heads = await self.store.log.heads([f.bot_id for f in feeds])
            except Exception as exc:
                log.warning("sweep failed: %s", exc)
                continue
            for feed, head in zip(feeds, heads, strict=True):
                if head is not None and head > feed.position:
                    self._schedule(feed)
