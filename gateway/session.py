"""One WebSocket connection: the I/O around a :class:`ServerConnection` core.

The session feeds received frames and ticks to the core, performs what its events
ask (identify, acks, requests), sends its control frames, and delivers updates:
replayed from the log after identify, then live from the bot's feed, falling back
to reading the log whenever its send buffer is full. What it needs of the worker
that hosts it is :class:`gateway.host.Host`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from websockets.asyncio.server import ServerConnection as WebSocket
from websockets.exceptions import ConnectionClosed

from gateway import metrics
from gateway.frames import CloseCode, Encoding, GapReason, frames_for
from gateway.host import Host
from gateway.hub import Feed, encode_update
from gateway.protocol import (
    AckReceived,
    CloseConnection,
    Identify,
    RequestReceived,
    ServerConnection,
    State,
)
from gateway.resume import Gap, after_gap, lost, resume_point
from shared.control import Control, CredentialsChanged, Takeover
from shared.control import encode as encode_control
from shared.ids import Cursor, tokens_equal
from shared.models import BotRecord
from shared.store import StoredUpdate
from shared.store.log import reader_mark
from shared.updates import consumer_key

__all__ = ["Session"]

log = logging.getLogger("botgw.gateway.session")

CATCH_UP_BATCH = 200


class Session:
    """A connection of one bot: its core, its position in the log, its delivery mode.

    An idle session owns no task of its own: frames are read in the connection's
    handler task (:meth:`run`), deadlines live in the worker's ``Deadlines``
    and anything else that changes the core ticks it in a short-lived task.
    """

    # thousands of these live per worker: slots keep idle connections small
    __slots__ = (
        "_catching_up",
        "_closing",
        "_prefetched",
        "_tasks",
        "_ticker",
        "_woken",
        "allowed",
        "bot",
        "bot_id",
        "consumer",
        "consumer_key",
        "core",
        "counted",
        "deadline_entry",
        "epoch",
        "feed",
        "generation",
        "live",
        "loop",
        "position",
        "shard",
        "token",
        "worker",
        "ws",
    )

    def __init__(
        self, worker: Host[Session], ws: WebSocket, *, bot: BotRecord | None, token: str | None
    ) -> None:
        self.worker = worker
        self.ws = ws
        self.bot = bot
        self.token = token
        self.loop = asyncio.get_running_loop()
        self.core = ServerConnection(
            connection_id=secrets.token_hex(8),
            limits=worker.limits,
            authenticated=bot is not None,
            now=self.loop.time(),
        )
        self.bot_id = bot.id if bot is not None else 0
        self.consumer = "default"
        self.consumer_key = "default"
        self.shard: tuple[int, int] = (0, 1)
        self.allowed: frozenset[str] | None = None
        self.epoch = ""
        self.generation = 0
        self.position = 0  # last log entry handled (sent or filtered out)
        self.live = False
        self.feed: Feed[Session] | None = None
        self._catching_up: asyncio.Task[None] | None = None
        # created with the first task and dropped with the last: most idle
        # connections have none
        self._tasks: set[asyncio.Task[Any]] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._woken = False
        self.deadline_entry: list[Any] | None = None  # this session's entry in Deadlines
        # (position, entries after it) read while identifying, for the first catch-up
        self._prefetched: tuple[int, list[StoredUpdate]] | None = None
        self._closing = False
        self.counted = False  # counted in the worker's connections per bot

    @property
    def encoding(self) -> Encoding:
        return self.core.encoding

    @property
    def connection_id(self) -> str:
        return self.core.connection_id

    # -- delivery -------------------------------------------------------------

    def wants(self, entry: StoredUpdate) -> bool:
        if self.allowed is not None and entry.kind not in self.allowed:
            return False
        index, count = self.shard
        return count == 1 or entry.chat_id % count == index

    def buffered(self) -> int:
        transport = self.ws.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    @property
    def closed(self) -> bool:
        return self.core.state is State.CLOSED

    def can_send(self) -> bool:
        """Whether update frames may go out (ready sent, no close yet)."""
        return self.core.state in (State.ACTIVE, State.DRAINING)

    def fall_behind(self) -> None:
        """The send buffer is full or a batch was missed: read the log at our pace."""
        if not self.live:
            return
        self.live = False
        metrics.SLOW.inc()
        self._start_catch_up()

    def _start_catch_up(self) -> None:
        if self._catching_up is None or self._catching_up.done():
            self._catching_up = self._spawn(self.catch_up())

    async def catch_up(self) -> None:
        """Send the log after ``position`` with flow control, then go live."""
        feed = self.feed
        assert feed is not None
        log_ = self.worker.store.log
        prefetched, self._prefetched = self._prefetched, None
        while self.core.state in (State.ACTIVE, State.DRAINING):
            if prefetched is not None and prefetched[0] == self.position:
                entries = prefetched[1]  # read with identify, entries after our position
            else:
                entries = await log_.read_after(self.bot_id, self.position, CATCH_UP_BATCH)
            prefetched = None
            if entries and lost(self.position, entries[0].prev_id):
                # entries between our position and the next one are gone: trimmed,
                # or lost with a failover (tails.py) when older ones are still there
                position = await self._gap(
                    "retention", position=self.position, hole_end=entries[0].prev_id
                )
                if position is None:
                    return
                self.position = position
                continue
            if not entries:
                if self.position >= feed.position:
                    self.live = True
                    return
                # the feed is ahead of what the log holds after us: nothing to send
                self.position = feed.position
                continue
            selected = [e for e in entries if self.wants(e)]
            if selected:
                items = [encode_update(e, self.encoding) for e in selected]
                for frame in frames_for(items, self.encoding):
                    await self.ws.send(frame, text=self.encoding == "json")
                if self.core.state not in (State.ACTIVE, State.DRAINING):
                    return
                self.core.updates_sent(selected[-1].update_id)
                metrics.REPLAYED.inc(len(selected))
            self.position = max(self.position, entries[-1].update_id)
            if self.position >= feed.position and len(entries) < CATCH_UP_BATCH:
                self.live = True  # no await since the check: the feed cannot slip past
                return

    async def _gap(
        self, reason: GapReason, *, epoch: str = "", position: int = 0, hole_end: int = 0
    ) -> int | None:
        """Signal a gap; where delivery goes on (``after_gap``), None when closing. A
        ``retention`` gap after ``position`` whose log still holds older entries is
        ``tail_lost`` (trimming takes the oldest first): it ends at ``hole_end``."""
        log_ = self.worker.store.log
        if reason == "retention" and await log_.gap_reason(self.bot_id, position) != "trimmed":
            reason = "tail_lost"
        info = await log_.info(self.bot_id)
        epoch = epoch or info.epoch or self.epoch
        policy = self.core.signal_gap(
            reason=reason, oldest=info.oldest, newest=info.newest, epoch=epoch
        )
        await self.flush()
        if reason == "epoch":
            self.epoch = epoch
            position = 0  # ids of the old epoch mean nothing in the new one
        return after_gap(
            policy,
            oldest=info.oldest,
            newest=info.newest,
            position=position,
            reason=reason,
            hole_end=hole_end,
        )

    def log_replaced(self) -> None:
        """The bot's log began a new epoch under us: tell the client the gap (§8) and,
        unless its ``on_gap`` is ``fail``, go on in the new epoch on this connection."""
        self.live = False
        self._spawn(self._go_on_in_new_epoch())

    async def _go_on_in_new_epoch(self) -> None:
        position = await self._gap("epoch")
        if position is None:
            self.wake()  # closing (4504): send the close
            return
        self.position = position
        self._start_catch_up()

    def wake(self) -> None:
        """Tick the core and flush soon (after an outside state change or a deadline)."""
        self._woken = True
        if self._ticker is None and not self._closing:
            self._ticker = self._spawn(self._tick())

    async def _tick(self) -> None:
        # one ticker at a time, looping while woken: frames keep their order
        try:
            while self._woken and not self._closing:
                self._woken = False
                self.core.tick(self.loop.time())
                await self.flush()
        finally:
            # here, not in the done callback: a wake-up between the end of this
            # coroutine and that callback would be lost
            self._ticker = None
        self._arm()

    def deadline_reached(self) -> None:
        """Called by :class:`Deadlines`: tick if something is due, else wait for it."""
        deadline = self.core.next_deadline()
        if deadline is not None and deadline > self.loop.time():
            # moved later since it was armed (the client was heard from): a
            # heartbeating connection costs no task here
            self._arm()
        else:
            self.wake()

    def _arm(self) -> None:
        """Put the core's next deadline (identify, heartbeat, drain) on the shared timer."""
        if self._closing:
            return
        deadline = self.core.next_deadline()
        if deadline is not None:
            self.worker.deadlines.arm(self, deadline)

    # -- control --------------------------------------------------------------

    def on_control(self, message: Control) -> None:
        """A control message on the bot's channel, e.g. another worker's takeover."""
        if isinstance(message, CredentialsChanged):
            # the owner rotated the token or revoked the bot: one sweep of the
            # worker checks this bot's sessions together (one round trip)
            self.worker.request_recheck(self.bot_id)
            return
        if (
            isinstance(message, Takeover)
            and message.consumer_key == self.consumer_key
            and message.connection_id != self.connection_id
            and message.generation > self.generation
        ):
            self.core.take_over()
            self.wake()

    def check_credentials(self, credentials: tuple[str, bool] | None) -> int:
        """Close if the stored credentials no longer admit this session's token.

        ``credentials`` is the bot's stored (token hash, active), None for a bot
        that no longer exists. A rotated token closes 4501, a revoked bot 4505.
        Returns 1 when this closed the session, else 0 (for the sweep's count).
        """
        core = self.core
        if self.bot is None or core.state is State.CLOSED:
            return 0  # not authenticated yet (identify checks it), or closing anyway
        token_hash, active = credentials if credentials is not None else ("", False)
        if self.token is None or not tokens_equal(self.token, token_hash):
            core.close(CloseCode.AUTH_FAILED, "the bot token was rotated or revoked")
        elif not active:
            core.close(CloseCode.BOT_INACTIVE, "this bot was revoked by its owner")
        else:
            return 0
        self.wake()
        return 1

    def control_frame(self) -> None:
        """The client sent a WebSocket ping or pong: charge it to the frame budget.

        Called from the connection's protocol callback, outside any task of ours:
        a flood that empties the bucket closes the core, and the session is woken
        to send the close and end the socket.
        """
        if self.closed:
            return
        self.core.receive_control(self.loop.time())
        if self.closed:
            self.wake()

    # -- the connection's life ---------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = self.loop.create_task(coro)
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        tasks = self._tasks
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                self._tasks = None
        # finished tasks are dead weight on an idle connection
        if task is self._catching_up:
            self._catching_up = None
        if task is self._ticker:
            self._ticker = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and not isinstance(exc, ConnectionClosed):
            log.warning("connection %s: %r", self.connection_id, exc)
            self.core.close(CloseCode.INTERNAL_ERROR, "internal error")
            self.wake()

    async def flush(self) -> None:
        """Send the core's control frames; close the socket after a close event."""
        for frame in self.core.data_to_send():
            with contextlib.suppress(ConnectionClosed):
                await self.ws.send(frame)
        for event in self.core.events_received():
            await self._handle(event)

    async def _handle(self, event: object) -> None:
        if isinstance(event, Identify):
            self._spawn(self._identify(event))
        elif isinstance(event, AckReceived):
            self.worker.commits_pending.add(self)
            self.worker.note_ack(self, event.update_id)
            metrics.ACKS.inc()
        elif isinstance(event, RequestReceived):
            self._spawn(self._request(event))
        elif isinstance(event, CloseConnection) and not self._closing:
            self._closing = True
            metrics.CLOSES.labels(str(event.code)).inc()
            with contextlib.suppress(Exception):
                await self.ws.close(event.code, event.reason)

    async def run(self) -> None:
        """Serve the connection until it closes, reading frames in this task."""
        worker = self.worker
        worker.all_sessions.add(self)
        metrics.CONNECTIONS.inc()
        try:
            await self.flush()  # hello
            self._arm()
            # recv(), not ``async for``: no async generator kept per connection
            while True:
                frame = await self.ws.recv()
                self.core.receive_frame(frame, self.loop.time())
                if self.core.internal_error is not None:
                    # the core closed 4000 over a defect of its own: the only trace of it
                    log.error(
                        "connection %s: internal error in the protocol core",
                        self.connection_id,
                        exc_info=self.core.internal_error,
                    )
                await self.flush()
                if self._closing:
                    break
                self._arm()
        except ConnectionClosed:
            pass
        except Exception as exc:
            log.warning("connection %s: %r", self.connection_id, exc)
            self.core.close(CloseCode.INTERNAL_ERROR, "internal error")
            with contextlib.suppress(Exception):
                await self.flush()
        finally:
            worker.deadlines.disarm(self)
            for task in tuple(self._tasks or ()):
                task.cancel()
            try:
                await self.finish()
            finally:
                worker.all_sessions.discard(self)
                metrics.CONNECTIONS.dec()

    async def finish(self) -> None:
        """Detach and commit the last ack (also after a crash of this connection)."""
        worker = self.worker
        if self.feed is not None:
            worker.hub.detach(self)
            self.feed = None
        worker.commits_pending.discard(self)
        # the slot is free with the socket: a client that reconnects at once must
        # not find its closed connection still counted while Redis answers
        worker.release(self)
        cursor = self.commit_value()
        mark = reader_mark(worker.reader_lease, self.connection_id)
        if self.epoch:
            with contextlib.suppress(Exception):
                await worker.store.log.close_reader(self.bot_id, self.consumer_key, mark, cursor)
        elif cursor is not None:
            with contextlib.suppress(Exception):
                await worker.store.log.commit_cursor(self.bot_id, self.consumer_key, cursor)
        worker.sessions.discard(self)
        # the bot's other sessions, not every session of the worker: a scan of all
        # of them per closed connection made a reconnect storm O(connections^2)
        feed = worker.hub.feeds.get(self.bot_id)
        if self.epoch and not any(
            s in worker.sessions
            for s in (feed.of_consumer(self.consumer_key) if feed is not None else ())
        ):
            with contextlib.suppress(KeyError):
                metrics.LAG.remove(str(self.bot_id), self.consumer_key)

    # -- identify -------------------------------------------------------------

    async def _authenticate(self, token: str | None) -> BotRecord | None:
        found = await self.worker.store.entities.bot_for_token(token)
        if found is None:
            return None
        bot, self.token = found
        return bot

    async def _identify(self, event: Identify) -> None:
        worker = self.worker
        store = worker.store
        if self.bot is None:
            self.bot = await self._authenticate(event.token)
            if self.bot is None:
                self.core.reject(CloseCode.AUTH_FAILED, "invalid bot token")
                await self.flush()
                return
            self.bot_id = self.bot.id
        if not self.bot.active:
            self.core.reject(CloseCode.BOT_INACTIVE, "this bot was revoked by its owner")
            await self.flush()
            return
        refusal = worker.admit(self)
        if refusal is not None:
            code, reason, retry_ms = refusal
            self.core.reject(code, reason, retry_after_ms=retry_ms)
            await self.flush()
            return
        self.consumer = event.consumer
        self.shard = event.shard
        self.consumer_key = consumer_key(event.consumer, event.shard)
        self.allowed = event.allowed_updates
        self.feed = await worker.hub.attach(self)
        # epoch, committed cursor and generation in one round trip (a generation
        # taken and not used is harmless: they only need to increase)
        # a resuming client names its cursor: the entries after it come in the same
        # round trip, for the retention check and as the catch-up's first read
        resume_at = event.cursor.update_id if event.cursor is not None else None
        if resume_at is not None and resume_at <= 0:
            resume_at = None  # nothing delivered yet: no retention to check
        # subscribed now: a rotation from here on is announced, an earlier one read here
        opened, (credentials,) = await asyncio.gather(
            store.log.open_reader(
                self.bot_id, self.consumer_key, read_after=resume_at, count=CATCH_UP_BATCH
            ),
            store.entities.bot_credentials([self.bot_id]),
        )
        epoch, committed, generation, after = opened
        if self.closed or self.check_credentials(credentials):
            return
        self.epoch = epoch
        cursor = event.cursor or committed
        if event.cursor is None:
            # an ack this worker received but has not committed yet (coalescing)
            # must not repeat for a client that reconnects here at once
            cursor = worker.newest_ack(self.bot_id, self.consumer_key, cursor)
        resumed = cursor is not None
        if (
            cursor is not None
            and cursor.epoch == epoch
            and cursor.update_id > 0
            and (cursor.update_id != resume_at or after is None)
        ):
            # not the cursor read with the reader's opening: read after this one
            after = await store.log.read_after(self.bot_id, cursor.update_id, CATCH_UP_BATCH)
        next_prev_id = after[0].prev_id if after else None
        head = None if after or cursor is None else await store.log.head(self.bot_id)
        found = resume_point(cursor, epoch=epoch, next_prev_id=next_prev_id, head=head)
        if isinstance(found, Gap):
            gap: GapReason = found.reason
            hole_end = cursor.update_id if cursor is not None else 0
            if (
                gap == "retention"
                and await store.log.gap_reason(self.bot_id, hole_end) != "trimmed"
            ):
                gap, hole_end = "tail_lost", next_prev_id or hole_end  # not trimmed: lost
            start = await self._gap(gap, epoch=epoch, hole_end=hole_end)
            if start is None:
                return
            resumed = False  # delivery does not continue the previous position (§6.2)
        else:
            start = found.update_id
            if start > 0 and after:
                # only a non-empty read may stand in for the catch-up's first: an
                # empty one would let it skip to the feed's (newer) position
                self._prefetched = (start, after)
        if self.closed:
            # closed while identifying (e.g. identify timed out and the client is
            # already back on a newer socket): a takeover now would end that one
            return
        self.generation = generation
        # one live reader per (bot, consumer, shard): newer takes over, everywhere;
        # only this consumer's sessions (of the bot's feed), not every session
        same = self.feed.of_consumer(self.consumer_key) if self.feed is not None else ()
        for other in tuple(same):
            if (
                other is not self
                and other in worker.sessions
                and other.generation < self.generation
            ):
                other.core.take_over()
                other.wake()
        await store.log.claim_reader(
            self.bot_id,
            self.consumer_key,
            reader_mark(worker.reader_lease, self.connection_id),
            encode_control(Takeover(self.consumer_key, self.generation, self.connection_id)),
            lease=worker.reader_lease,
            ttl=worker.reader_ttl,
        )
        if committed is None and event.cursor is None and start == 0:
            # a consumer new to the log: its empty position is committed, so its
            # backlog is measured even if it never acks (gateway/backlog.py)
            await store.log.commit_cursor(self.bot_id, self.consumer_key, Cursor(epoch, 0))
        self.core.accept(
            bot_id=self.bot_id,
            bot_username=self.bot.username,
            epoch=epoch,
            cursor=Cursor(epoch, start),
            head=self.feed.position,
            resumed=resumed,
        )
        await self.flush()
        if self.core.state is not State.ACTIVE:
            return
        self.position = start
        worker.sessions.add(self)
        self._start_catch_up()

    async def _request(self, event: RequestReceived) -> None:
        ok, payload = await self.worker.call_bot_api(
            self.token, event.method, event.params, idempotency_key=event.idempotency_key
        )
        if ok:
            self.core.send_result(event.request_id, ok=True, result=payload)
        else:
            self.core.send_result(event.request_id, ok=False, error=payload)
        await self.flush()

    def commit_value(self) -> Cursor | None:
        # the core's epoch, not ours: a gap into a new epoch moves it
        last = self.core.take_commit()
        epoch = self.core.epoch
        return None if last is None or not epoch else Cursor(epoch, last)
