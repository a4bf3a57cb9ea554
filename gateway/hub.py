"""Fan-out: one feed per bot per worker, fed by wake-ups, shared by its sessions.

A feed reads each bot's stream once per wake-up, encodes each update once per
encoding and sends the same frame bytes to every live session that wants them.
A session is *live* when its position equals the feed's; otherwise (replaying
after identify, or fallen behind with a full send buffer) it reads the log at its
own pace (``Session.catch_up``) and rejoins the feed once it has caught up. The
log is durable, so falling behind costs no memory and slows nobody else.

What the hub needs of a session is :class:`Subscriber`; feeds and the hub are
generic in the session type, so that their users get their own sessions back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from websockets.asyncio.server import ServerConnection as WebSocket
from websockets.asyncio.server import broadcast

from gateway import metrics
from gateway.frames import Encoding, frames_for
from gateway.protocol import ServerConnection
from shared.codecs import json_dumps, pack, unpack
from shared.control import Control, Takeover
from shared.dialect import native_ids
from shared.ids import SEQ_PER_MS
from shared.store import Store, StoredUpdate, Wakeup, Wakeups

__all__ = ["Feed", "Hub", "Subscriber", "encode_update"]

log = logging.getLogger("botgw.gateway.hub")

READ_BATCH = 500
READ_PIPELINE = 256  # feeds read in one pipelined round trip
SWEEP_SECONDS = 30.0  # every quiet feed's head is looked at once this often (the default)
SWEEP_SLICE = 256
READ_RETRY_S = (0.1, 2.0)  # a failed read is tried again after this, doubling up to that

_NONE: set[Any] = set()  # shared empty set: never added to


class Subscriber(Protocol):
    """What the hub needs of a session: its bot, consumer and filter, its position
    in the feed, its socket and core to send to, and its reactions to the feed."""

    live: bool  # at the feed's position, delivered to by the feed
    position: int  # the last log entry handled (sent or filtered out)

    @property
    def bot_id(self) -> int: ...
    @property
    def consumer_key(self) -> str: ...
    @property
    def encoding(self) -> Encoding: ...
    @property
    def shard(self) -> tuple[int, int]: ...
    @property
    def allowed(self) -> frozenset[str] | None: ...
    @property
    def ws(self) -> WebSocket: ...
    @property
    def core(self) -> ServerConnection: ...

    def wants(self, entry: StoredUpdate) -> bool:
        """Whether the update goes to this session (its shard and update types)."""
        ...

    def buffered(self) -> int:
        """Bytes waiting in the socket's send buffer."""
        ...

    def can_send(self) -> bool:
        """Whether update frames may go out on the socket."""
        ...

    def fall_behind(self) -> None:
        """Stop being live: read the log at the session's own pace."""
        ...

    def log_replaced(self) -> None:
        """The bot's log began a new epoch under the session."""
        ...

    def on_control(self, message: Control) -> None:
        """A control message on the bot's channel."""
        ...


S = TypeVar("S", bound=Subscriber)


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


@dataclass(eq=False)
class Feed(Generic[S]):
    """A bot's live stream on this worker."""

    bot_id: int
    position: int = 0
    sessions: set[S] = field(default_factory=set)
    # the same sessions by consumer key: a takeover or a close looks at the few of
    # its consumer, not at every connection of a bot that fans out to thousands
    by_consumer: dict[str, set[S]] = field(default_factory=dict)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    reading: bool = False

    def of_consumer(self, key: str) -> set[S]:
        """The sessions of one consumer key (do not change the set)."""
        return self.by_consumer.get(key, _NONE)

    again: bool = False
    woken: bool = False  # a wake-up came since the last sweep
    early: bool = False  # an update's wake-up came before the feed had its position
    failed: BaseException | None = None


class Hub(Generic[S]):
    """Feeds by bot id; the registry used for fan-out."""

    def __init__(
        self,
        store: Store,
        wakeups: Wakeups,
        *,
        send_buffer_bytes: int,
        sweep_seconds: float = SWEEP_SECONDS,
        on_look_again: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.wakeups = wakeups
        self.send_buffer_bytes = send_buffer_bytes
        self.sweep_seconds = sweep_seconds
        # told the bot id of each "look again" (its channel was subscribed again:
        # anything published on it meanwhile, control messages too, was lost)
        self.on_look_again = on_look_again
        self.feeds: dict[int, Feed[S]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._due: list[Feed[S]] = []
        self._due_event = asyncio.Event()

    def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep(), name="hub-sweep")
        self._reader = asyncio.create_task(self._read_loop(), name="hub-reader")

    async def stop(self) -> None:
        for task in (self._sweeper, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def attach(self, session: S) -> Feed[S]:
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
            if feed.early:  # woken while the head was read: it may be newer than that
                self._schedule(feed)
        else:
            await feed.ready.wait()
            if feed.failed is not None:
                raise RuntimeError("the feed could not start") from feed.failed
        feed.sessions.add(session)
        feed.by_consumer.setdefault(session.consumer_key, set()).add(session)
        return feed

    def detach(self, session: S) -> None:
        feed = self.feeds.get(session.bot_id)
        if feed is None:
            return
        feed.sessions.discard(session)
        same = feed.by_consumer.get(session.consumer_key)
        if same is not None:
            same.discard(session)
            if not same:
                del feed.by_consumer[session.consumer_key]
        if not feed.sessions and feed.ready.is_set():
            self._drop(feed)

    def _drop(self, feed: Feed[S]) -> None:
        if self.feeds.get(feed.bot_id) is feed:
            del self.feeds[feed.bot_id]
            self.wakeups.remove(feed.bot_id, self._on_wakeup)

    def _on_wakeup(self, wakeup: Wakeup) -> None:
        feed = self.feeds.get(wakeup.bot_id)
        if feed is None:
            return
        feed.woken = True
        control = wakeup.control
        if control is None and wakeup.update_id is None and self.on_look_again is not None:
            self.on_look_again(feed.bot_id)
        if control is not None:
            targets: set[S] = feed.sessions
            if isinstance(control, Takeover):
                targets = feed.of_consumer(control.consumer_key)  # its consumer only
            for session in tuple(targets):
                session.on_control(control)
            return
        if not feed.ready.is_set():
            # no position yet: a read now would start at the log's beginning (and
            # take its first entry for a new epoch); look once the head is known
            feed.early = True
            return
        if wakeup.update_id is not None and wakeup.update_id <= feed.position:
            return
        self._schedule(feed)

    def _schedule(self, feed: Feed[S]) -> None:
        if feed.reading:
            feed.again = True
            return
        feed.reading = True
        self._due.append(feed)
        self._due_event.set()

    async def _read_loop(self) -> None:
        """Read every woken feed in one pipelined round trip, deliver, repeat.

        One read is in flight at a time: wake-ups that arrive meanwhile are read
        together by the next one, so the number of Redis round trips per second
        stays flat however many bots are busy.
        """
        retry_s = READ_RETRY_S[0]
        while True:
            await self._due_event.wait()
            self._due_event.clear()
            while self._due:
                feeds = self._due[:READ_PIPELINE]
                del self._due[:READ_PIPELINE]
                for feed in feeds:
                    feed.again = False
                try:
                    batches = await self.store.log.read_after_many(
                        [(f.bot_id, f.position) for f in feeds], READ_BATCH
                    )
                except Exception as exc:
                    # Redis trouble: the same feeds are read again (still marked as
                    # reading) after a pause, not left to the slow sweep; behind the
                    # others, so that one failing read does not hold them all up
                    log.warning("feed read failed for %d bots: %s", len(feeds), exc)
                    self._due.extend(f for f in feeds if self.feeds.get(f.bot_id) is f)
                    for feed in feeds:
                        if self.feeds.get(feed.bot_id) is not feed:
                            feed.reading = False
                    await asyncio.sleep(retry_s)
                    retry_s = min(retry_s * 2, READ_RETRY_S[1])
                    continue
                retry_s = READ_RETRY_S[0]
                for feed, entries in zip(feeds, batches, strict=True):
                    if entries:
                        try:
                            self.deliver(feed, entries)
                        except Exception:  # a bug must not stop every other feed
                            log.exception("delivery failed for bot %s", feed.bot_id)
                            feed.reading = False
                            continue
                    if len(entries) >= READ_BATCH or feed.again:
                        self._due.append(feed)  # more to read: stays marked as reading
                    else:
                        feed.reading = False

    def deliver(self, feed: Feed[S], entries: list[StoredUpdate]) -> None:
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
        if prev and entries[0].prev_id > prev:
            # a hole after our position (a failover lost the newest entries, see
            # shared/store/tails.py): each live session reads the log itself, and
            # its catch-up tells the client the gap
            for session in tuple(feed.sessions):
                if session.live:
                    session.fall_behind()
            feed.position = last
            return
        batch = EncodedBatch(entries)
        groups: dict[tuple[Encoding, tuple[int, int], frozenset[str] | None, int], list[S]]
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
        delivered: set[int] = set()  # entries sent to at least one connection
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
                if open_sessions:
                    delivered.update(indexes)
            for session in sessions:
                session.position = max(session.position, last)
        if delivered:  # once per update, however many connections it went to
            now_ms = time.time() * 1000
            for i in delivered:
                appended_ms = entries[i].update_id // SEQ_PER_MS
                metrics.DELIVERY_LATENCY.observe(max(now_ms - appended_ms, 0) / 1000)
        metrics.FEED_READS.inc()

    async def _sweep(self) -> None:
        """A safety net: look at the head of every quiet feed, every ``sweep_seconds``.

        Pub/sub is at-most-once, but what it loses it loses with its connection:
        after every re-subscription each channel's readers are told to look again
        (``Wakeups``), which reads every feed of the worker at once. This slow
        sweep is for anything else; it costs one command per quiet feed per
        period (docs/operations.md, Redis cost model), not per connection.

        A feed woken since the last sweep needs no look: its next wake-up reads
        everything after its position, so only a wake-up lost before a quiet
        spell could leave it behind; that one is found by the next sweep. Heads
        are read in pipelined slices so that a worker with thousands of feeds
        does not stall its deliveries parsing one huge reply.
        """
        while True:
            await asyncio.sleep(self.sweep_seconds)
            feeds = []
            for feed in self.feeds.values():
                if feed.ready.is_set() and not feed.reading and not feed.woken:
                    feeds.append(feed)
                feed.woken = False
            for start in range(0, len(feeds), SWEEP_SLICE):
                part = feeds[start : start + SWEEP_SLICE]
                try:
                    heads = await self.store.log.heads([f.bot_id for f in part])
                except Exception as exc:
                    log.warning("sweep failed: %s", exc)
                    break
                for feed, head in zip(part, heads, strict=True):
                    if head is not None and head > feed.position:
                        self._schedule(feed)
