"""The gateway worker: ``GET /bot/ws`` plus ``/healthz``, ``/readyz``, ``/metrics``.

One asyncio process; any number of them on any hosts (they share nothing but
Redis). SIGTERM drains: stop accepting, send ``reconnect`` with a deadline, keep
delivering until it, then close 1012; a second SIGTERM closes at once.

Upgrades are refused over HTTP before any socket opens: a bad token (401), a
revoked bot (412), too many sockets waiting for identify from one address (429) or
on the worker (503). Open sockets' tokens are compared with the store in one
sweep for all of them, after every re-subscription of the announcements and every
``ws_credentials_recheck_seconds``, since an announced rotation can be lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import gc
import http
import logging
import signal
import time
from collections.abc import Coroutine, Iterable
from typing import Any, ClassVar, cast

import httpx
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from websockets.asyncio.server import ServerConnection as WebSocket
from websockets.asyncio.server import serve as ws_serve
from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import Event
from websockets.protocol import State as WsState

from gateway import metrics
from gateway.hub import Hub
from gateway.protocol import CloseCode, Limits, State
from gateway.session import Deadlines, Session
from shared import keys
from shared.codecs import json_dumps
from shared.errors import error_envelope
from shared.ids import SEQ_PER_MS, Cursor
from shared.models import BotRecord
from shared.settings import Settings
from shared.store import Store

__all__ = ["Connection", "FrameQueue", "Worker", "serve", "serve_worker"]

log = logging.getLogger("botgw.gateway")

COMMIT_INTERVAL = 0.05
PING_SLICE = 256  # pings sent between two yields to the event loop
READER_MARKS_SLICE = 500  # live-reader marks refreshed per round trip
GC_FULL_SECONDS = 600.0
GC_NO_AUTOMATIC_FULL = 1 << 30
# Subscribed by every worker for its confirmation only: it is sent after those of
# the bots' channels (subscriptions go out sorted and "{idx}" sorts after "{b<id>}"),
# so it says that announcements reach this worker again.
GATEWAY_CHANNEL = keys.PREFIX + "{idx}:gateway"
UNIDENTIFIED_RETRY_S = 1


def _response(
    status: int,
    body: bytes,
    content_type: str = "application/json",
    retry_after: int | None = None,
) -> Response:
    phrase = http.HTTPStatus(status).phrase
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Response(status, phrase, headers, body)


def _json(status: int, value: Any, retry_after: int | None = None) -> Response:
    return _response(status, json_dumps(value), retry_after=retry_after)


def _peer(connection: WebSocket) -> str:
    """The address a connection comes from, as counted for the unidentified cap."""
    address = connection.remote_address
    return str(address[0]) if isinstance(address, tuple) and address else ""


class FrameQueue:
    """The part of a deque that websockets' queue of received frames uses, on a list.

    An empty deque takes 760 bytes, an empty list 56, and an idle connection's
    queue is empty. Popped slots are dropped in bulk, so a burst of frames costs
    amortized O(1) per frame as with a deque.

    A ``recv()`` cancelled halfway through a fragmented message puts the frames
    it took back: with ``extend`` into the emptied queue (``SimpleQueue.reset``,
    websockets 14.1 to 17.0), with ``extendleft`` at its front
    (``SimpleQueue.put_back``, later 17.x). The pinned range of websockets in
    pyproject.toml is the one these methods are checked against.
    """

    __slots__ = ("_head", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._head = 0  # index of the first frame in _items

    def __len__(self) -> int:
        return len(self._items) - self._head

    def append(self, item: Any) -> None:
        self._items.append(item)

    def extend(self, items: Iterable[Any]) -> None:
        """Like ``deque.extend``: the items go to the back, in order."""
        self._items.extend(items)

    def popleft(self) -> Any:
        items = self._items
        head = self._head
        if head >= len(items):
            raise IndexError("pop from an empty queue")
        item = items[head]
        head += 1
        if head == len(items):
            items.clear()  # frees the list's storage too
            head = 0
        elif head >= 32 and 2 * head >= len(items):
            del items[:head]
            head = 0
        else:
            items[head - 1] = None  # the frame is not kept until the next compaction
        self._head = head
        return item

    def extendleft(self, items: Iterable[Any]) -> None:
        """Like ``deque.extendleft``: each item goes to the front in turn."""
        front = list(items)
        front.reverse()
        self._items[: self._head] = front
        self._head = 0


class Connection(WebSocket):
    """websockets' server connection, lighter while idle, and what the worker keeps
    per socket outside its session.

    Two deques per connection become lists (760 bytes each when empty against
    56), on every one of thousands of idle connections: the drain waiters (one
    per send blocked on a full buffer; only appended, removed and iterated) and
    the queue of received frames (:class:`FrameQueue`). Where a websockets
    version lays these out differently they are left alone.

    Besides: the bot and token the upgrade authenticated, the address under
    which the socket counts as unidentified, and its session, which is charged
    for every ping and pong the client sends (websockets answers pings by
    itself, so they never reach the session's reads).
    """

    #: the worker of this process; set on the class by :meth:`Worker.connection_class`
    worker: ClassVar[Worker | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.drain_waiters, collections.deque):
            self.drain_waiters = []  # type: ignore[assignment]
        self.upgrade: tuple[BotRecord, str] | None = None
        self.peer: str | None = None  # counted as unidentified under this address
        self.session: Session | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        frames = getattr(self.recv_messages, "frames", None)
        if isinstance(getattr(frames, "queue", None), collections.deque):
            frames.queue = FrameQueue()  # type: ignore[union-attr]

    def process_event(self, event: Event) -> None:
        super().process_event(event)
        session = self.session
        if (
            session is not None
            and isinstance(event, Frame)
            and (event.opcode is Opcode.PING or event.opcode is Opcode.PONG)
        ):
            session.control_frame()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # no cycle with the session outlives the socket: full collections are rare
        self.session = None
        self.upgrade = None
        if self.peer is not None and self.worker is not None:
            self.worker.release_unidentified(self)


class Worker:
    """State of one gateway process: its sessions, the hub, the committer, drain."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.wakeups = store.wakeups()
        store.entities.enable_cache(self.wakeups)
        self.hub = Hub(store, self.wakeups, send_buffer_bytes=settings.ws_send_buffer_bytes)
        self.limits = Limits(
            heartbeat_interval_s=settings.heartbeat_interval,
            identify_timeout_s=settings.identify_timeout,
            max_frame_bytes=settings.ws_max_frame_bytes,
            max_frames_per_s=settings.ws_max_frames_per_second,
            frame_burst=max(10, int(settings.ws_max_frames_per_second * 2)),
            max_connections_per_bot=settings.ws_max_connections_per_bot,
            identify_per_minute=settings.ws_identify_per_minute,
            retention_s=settings.retention_seconds,
        )
        self.sessions: set[Session] = set()
        self.all_sessions: set[Session] = set()
        self.deadlines = Deadlines()
        self.commits_pending: set[Session] = set()
        self.per_bot: dict[int, int] = {}
        self.recent_acks: dict[tuple[int, str], tuple[Cursor, float]] = {}
        self.identify_buckets: dict[int, tuple[float, float]] = {}
        # sockets that have not identified yet, in all and by peer address
        self.unidentified = 0
        self.unidentified_by_peer: dict[str, int] = {}
        self._recheck = asyncio.Event()  # set: compare the sessions' tokens now
        self.reader_ttl = max(30.0, settings.heartbeat_interval * 3)
        self.draining = False
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None

    # -- admission ------------------------------------------------------------

    def connection_class(self) -> type[Connection]:
        """:class:`Connection` for this worker's server (the worker on the class only)."""
        return cast(type[Connection], type("Connection", (Connection,), {"worker": self}))

    def hold_unidentified(self, connection: WebSocket) -> Response | None:
        """Count an upgrade as unidentified, or refuse it: per peer 429, per worker 503.

        The socket stays counted until it identifies (:meth:`admit`) or closes.
        """
        if not isinstance(connection, Connection):
            return None
        peer = _peer(connection)
        settings = self.settings
        held = self.unidentified_by_peer.get(peer, 0)
        per_peer = settings.ws_max_unidentified_per_peer
        if per_peer and held >= per_peer:
            metrics.REFUSED.labels("TOO_MANY_UNIDENTIFIED").inc()
            return _json(
                429,
                error_envelope(
                    429,
                    "TOO_MANY_UNIDENTIFIED",
                    f"at most {per_peer} sockets per address may wait for identify",
                    {"retry_after": UNIDENTIFIED_RETRY_S},
                ),
                retry_after=UNIDENTIFIED_RETRY_S,
            )
        if self.unidentified >= settings.ws_max_unidentified:
            metrics.REFUSED.labels("WORKER_BUSY").inc()
            return _json(
                503,
                error_envelope(
                    503,
                    "WORKER_BUSY",
                    f"at most {settings.ws_max_unidentified} sockets may wait for identify "
                    "on this worker",
                    {"retry_after": UNIDENTIFIED_RETRY_S},
                ),
                retry_after=UNIDENTIFIED_RETRY_S,
            )
        self.unidentified += 1
        self.unidentified_by_peer[peer] = held + 1
        connection.peer = peer
        metrics.UNIDENTIFIED.set(self.unidentified)
        return None

    def release_unidentified(self, connection: WebSocket) -> None:
        """The socket identified or closed: it no longer counts as unidentified."""
        if not isinstance(connection, Connection) or connection.peer is None:
            return
        peer, connection.peer = connection.peer, None
        self.unidentified -= 1
        metrics.UNIDENTIFIED.set(self.unidentified)
        left = self.unidentified_by_peer.get(peer, 1) - 1
        if left > 0:
            self.unidentified_by_peer[peer] = left
        else:
            self.unidentified_by_peer.pop(peer, None)

    def admit(self, session: Session) -> tuple[CloseCode, str, int] | None:
        """Connections per bot and identify rate, per worker; None when admitted.

        The socket has identified with a valid token either way: from here on the
        limits per bot apply to it, not the cap on unidentified sockets.
        """
        self.release_unidentified(session.ws)
        bot_id = session.bot_id
        now = time.monotonic()
        rate = self.limits.identify_per_minute / 60.0
        tokens, stamp = self.identify_buckets.get(
            bot_id, (float(self.limits.identify_per_minute), now)
        )
        tokens = min(float(self.limits.identify_per_minute), tokens + (now - stamp) * rate)
        if tokens < 1:
            wait_ms = int((1 - tokens) / rate * 1000) + 1
            return CloseCode.IDENTIFY_RATE_LIMITED, "too many identify attempts", wait_ms
        self.identify_buckets[bot_id] = (tokens - 1, now)
        if self.per_bot.get(bot_id, 0) >= self.limits.max_connections_per_bot:
            return (
                CloseCode.TOO_MANY_CONNECTIONS,
                f"at most {self.limits.max_connections_per_bot} connections per bot",
                5000,
            )
        self.per_bot[bot_id] = self.per_bot.get(bot_id, 0) + 1
        session.counted = True
        return None

    def note_ack(self, session: Session, update_id: int) -> None:
        epoch = session.core.epoch
        if epoch:
            self.recent_acks[(session.bot_id, session.consumer_key)] = (
                Cursor(epoch, update_id),
                time.monotonic(),
            )

    def newest_ack(self, bot_id: int, consumer_key: str, committed: Cursor | None) -> Cursor | None:
        """The committed cursor, or a newer ack seen here that may not be committed yet."""
        local = self.recent_acks.get((bot_id, consumer_key))
        if local is None:
            return committed
        cursor = local[0]
        if committed is None or (
            committed.epoch == cursor.epoch and committed.update_id < cursor.update_id
        ):
            return cursor
        return committed

    def release(self, session: Session) -> None:
        if getattr(session, "counted", False):
            session.counted = False
            left = self.per_bot.get(session.bot_id, 1) - 1
            if left > 0:
                self.per_bot[session.bot_id] = left
            else:
                self.per_bot.pop(session.bot_id, None)

    # -- HTTP side ------------------------------------------------------------

    async def process_request(self, connection: WebSocket, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return _json(200, {"ok": True, "result": {"status": "alive"}})
        if path == "/readyz":
            if self.draining:
                return _json(503, error_envelope(503, "DRAINING", "this worker is draining"))
            if not await self.store.ping():
                return _json(503, error_envelope(503, "BACKEND_UNAVAILABLE", "Redis unreachable"))
            return _json(200, {"ok": True, "result": {"status": "ready"}})
        if path == "/metrics":
            return _response(200, generate_latest(), CONTENT_TYPE_LATEST)
        if path != "/bot/ws":
            return _json(404, error_envelope(404, "NOT_FOUND", f"no route {path}; use /bot/ws"))
        if self.draining:
            return _json(503, error_envelope(503, "DRAINING", "this worker is draining"))
        refusal = self.hold_unidentified(connection)
        if refusal is not None:
            return refusal
        header = request.headers.get("Authorization")
        if header is None:
            return None  # a browser: the token comes in identify
        scheme, _, token = header.strip().partition(" ")
        found = None
        if scheme.lower() in ("bot", "bearer") and token.strip():
            try:
                found = await self.store.entities.bot_for_token(token.strip())
            except Exception:
                log.exception("token lookup failed")
                self.release_unidentified(connection)
                return _json(
                    503, error_envelope(503, "BACKEND_UNAVAILABLE", "the store is unavailable")
                )
        if found is None:
            self.release_unidentified(connection)
            metrics.REFUSED.labels("UNAUTHORIZED").inc()
            return _json(
                401,
                error_envelope(
                    401,
                    "UNAUTHORIZED",
                    "a valid bot token is required: 'Authorization: Bot bot_<id>:<secret>'",
                ),
            )
        bot, _ = found
        if not bot.active:
            # the token is right but the bot is gone for good: the REST API's 412
            self.release_unidentified(connection)
            metrics.REFUSED.labels("BOT_INACTIVE").inc()
            return _json(
                412, error_envelope(412, "BOT_INACTIVE", "this bot was revoked by its owner")
            )
        if isinstance(connection, Connection):
            connection.upgrade = found
        return None

    def handler(self, ws: WebSocket) -> Coroutine[Any, Any, None]:
        """The connection's session, to be awaited by websockets' handler task.

        A plain function returning the session's coroutine: no frame of ours
        stays suspended between websockets and the session for the life of
        every connection.
        """
        upgrade = None
        if isinstance(ws, Connection):
            upgrade, ws.upgrade = ws.upgrade, None
        bot, token = upgrade if upgrade is not None else (None, None)
        # the handshake's headers are not read again: about 4 KiB per idle
        # connection. Cleared in place: websockets' parser generator keeps its
        # own reference to the request for the life of the connection.
        if ws.request is not None:
            ws.request.headers.clear()
        ws.response = None
        session = Session(self, ws, bot=bot, token=token)
        if isinstance(ws, Connection):
            ws.session = session
        if self.draining:
            session.core.start_drain(deadline_ms=0, now=session.loop.time())
        return session.run()

    # -- background -------------------------------------------------------------

    async def _commit_loop(self) -> None:
        """Coalesced commits: the newest ack of each session, pipelined."""
        retry: dict[tuple[int, str], Cursor] = {}
        while True:
            await asyncio.sleep(COMMIT_INTERVAL)
            sessions = tuple(self.commits_pending)
            self.commits_pending.clear()
            for session in sessions:
                cursor = session.commit_value()
                if cursor is not None:
                    retry[(session.bot_id, session.consumer_key)] = cursor
            if not retry:
                continue
            commits = [(bot_id, key, cursor) for (bot_id, key), cursor in retry.items()]
            try:
                await self.store.log.commit_cursors(commits)
            except Exception as exc:  # kept in `retry` and sent again next round
                log.warning("commit failed, retrying: %s", exc)
                await asyncio.sleep(0.5)
            else:
                retry.clear()
                for bot_id, key, cursor in commits:
                    feed = self.hub.feeds.get(bot_id)
                    if feed is not None:
                        # update ids are ms * 1024 + seq: their difference is an age
                        lag = max(0, feed.position - cursor.update_id) / SEQ_PER_MS / 1000
                        metrics.LAG.labels(str(bot_id), key).set(lag)

    async def _gc_loop(self) -> None:
        """Full collections on a timer only, never on allocation counts.

        A worker holds thousands of connections whose objects live for hours. The
        collector's automatic full collections walk all of them and stall every
        delivery: 100-300 ms at 1 000 connections under load, seconds during a
        reconnect storm of 10 000. Young collections still run as usual (they
        only walk new objects); cycles among long-lived objects are collected
        here, rarely.
        """
        young, middle, _ = gc.get_threshold()
        gc.set_threshold(young, middle, GC_NO_AUTOMATIC_FULL)
        while True:
            await asyncio.sleep(GC_FULL_SECONDS)
            gc.collect()

    async def _ping_loop(self) -> None:
        """WebSocket pings to every open connection, from one task for all of them.

        websockets' own keepalive costs a task and a timer per connection. Dead
        peers need no pings here: a client that sends nothing for two heartbeat
        intervals is closed 4001 by its session's deadline. The pings keep quiet
        paths through proxies and NATs open, as the protocol promises.
        """
        interval = max(self.settings.heartbeat_interval, 1.0)
        while True:
            await asyncio.sleep(interval)
            for i, session in enumerate(tuple(self.all_sessions)):
                if i and i % PING_SLICE == 0:
                    await asyncio.sleep(0)  # thousands of sockets: let deliveries through
                ws = session.ws
                # closing, or data queued: a ping would wait behind the close or
                # the drain (and a busy socket needs no keepalive)
                if ws.protocol.state is not WsState.OPEN or session.buffered():
                    continue
                with contextlib.suppress(Exception):
                    await ws.ping()  # the pong is not awaited: liveness is the deadline's

    async def _reader_loop(self) -> None:
        """Keep the 'live reader' marks of this worker's consumers fresh."""
        while True:
            await asyncio.sleep(self.reader_ttl / 3)
            marks = [(s.bot_id, s.consumer_key, s.connection_id) for s in tuple(self.sessions)]
            for start in range(0, len(marks), READER_MARKS_SLICE):
                with contextlib.suppress(Exception):
                    await self.store.log.set_readers(
                        marks[start : start + READER_MARKS_SLICE], self.reader_ttl
                    )
            metrics.FEEDS.set(len(self.hub.feeds))
            horizon = time.monotonic() - 60
            for key, (_, stamp) in tuple(self.recent_acks.items()):
                if stamp < horizon:
                    del self.recent_acks[key]

    def request_recheck(self) -> None:
        """Compare every session's token with the stored one soon (one sweep for all)."""
        self._recheck.set()

    def _on_gateway_channel(self, live: bool) -> None:
        if live:  # (re)subscribed: announcements made while it was down were lost
            self._recheck.set()

    async def _credentials_loop(self) -> None:
        """Close sessions whose token was rotated away or whose bot was revoked.

        Rotations and revocations are announced on the bots' wake-up channels, and
        pub/sub is at-most-once: an announcement made while this worker was not
        subscribed never arrives. So the tokens of all open sessions are compared
        with the stored ones after every announcement, every time the
        subscriptions come back, and every ``ws_credentials_recheck_seconds``.
        """
        interval = self.settings.ws_credentials_recheck_seconds
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._recheck.wait()
            self._recheck.clear()
            try:
                await self.recheck_credentials()
            except Exception as exc:  # Redis trouble: the next sweep tries again
                log.warning("credentials recheck failed: %s", exc)

    async def recheck_credentials(self) -> int:
        """One sweep: a pipelined read of every bot's token hash and state, one round
        trip for all sessions of the worker; returns how many sessions it closed."""
        by_bot: dict[int, list[Session]] = {}
        for session in self.all_sessions:
            bot = session.bot
            if bot is not None and session.core.state is not State.CLOSED:
                same = by_bot.get(bot.id)
                if same is None:
                    by_bot[bot.id] = [session]
                else:
                    same.append(session)
        if not by_bot:
            return 0
        metrics.CREDENTIAL_CHECKS.inc()
        stored = await self.store.entities.bot_credentials(by_bot)
        closed = 0
        for sessions, credentials in zip(by_bot.values(), stored, strict=True):
            for session in sessions:
                closed += session.check_credentials(credentials)
        return closed

    async def call_bot_api(
        self,
        token: str | None,
        method: str,
        params: dict[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> tuple[bool, Any]:
        """A Bot API call made over the socket, forwarded to the REST service (with
        the request's ``idempotency_key`` as its ``Idempotency-Key``)."""
        if self._http is None:
            base = f"http://{self.settings.rest_host}:{self.settings.rest_port}"
            if self.settings.public_rest_url:
                base = self.settings.public_rest_url
            self._http = httpx.AsyncClient(base_url=base, timeout=30.0)
        if method in ("getUpdates", "setWebhook"):
            return False, error_envelope(
                400, "METHOD_NOT_ALLOWED_HERE", f"{method} cannot be called over the gateway"
            )
        headers = {"Authorization": f"Bot {token}"}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        try:
            response = await self._http.post(f"/bot/{method}", json=params, headers=headers)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return False, error_envelope(503, "BACKEND_UNAVAILABLE", f"REST unavailable: {exc}")
        if isinstance(body, dict) and body.get("ok") is True:
            return True, body.get("result")
        return False, body

    # -- lifecycle ------------------------------------------------------------

    async def start(self) -> None:
        self.wakeups.watch(GATEWAY_CHANNEL, lambda _data: None, self._on_gateway_channel)
        self.wakeups.start()
        self.hub.start()
        self._tasks = [
            asyncio.create_task(self._commit_loop(), name="commits"),
            asyncio.create_task(self._reader_loop(), name="readers"),
            asyncio.create_task(self._gc_loop(), name="gc"),
            asyncio.create_task(self._ping_loop(), name="pings"),
            asyncio.create_task(self._credentials_loop(), name="credentials"),
        ]

    async def drain(self, deadline: float) -> None:
        """Stop accepting; ask every connection to reconnect before ``deadline`` s."""
        if self.draining:
            return
        self.draining = True
        metrics.DRAINS.inc()
        # keep listening: load balancers must see /readyz answer 503, and new
        # upgrades are refused with 503 DRAINING (process_request)
        now_ms = int(deadline * 1000)
        for session in tuple(self.all_sessions):
            session.core.start_drain(deadline_ms=now_ms, now=session.loop.time())
            session.wake()

    def close_all(self) -> None:
        for session in tuple(self.all_sessions):
            session.core.close(CloseCode.SERVICE_RESTART, "service restart")
            session.wake()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.hub.stop()
        await self.wakeups.stop()
        if self._http is not None:
            await self._http.aclose()


async def serve_worker(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """Run a worker until SIGTERM/SIGINT, then drain."""
    store = Store.connect(settings)
    worker = Worker(settings, store)
    await worker.start()
    stop = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            stop.set()
        else:
            worker.close_all()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    server = await ws_serve(
        worker.handler,
        settings.gateway_host,
        settings.gateway_port,
        process_request=worker.process_request,
        create_connection=worker.connection_class(),
        max_size=max(4 * settings.ws_max_frame_bytes, 1 << 20),
        compression="deflate" if settings.ws_compression else None,
        # no keepalive task per connection: Worker._ping_loop pings them all, and
        # the sessions' heartbeat deadlines drop peers that went away
        ping_interval=None,
        ping_timeout=None,
        close_timeout=2,
        server_header=None,
        # a reconnect storm brings thousands of SYNs at once: with the default
        # backlog of 100 the kernel drops them and clients wait 1-3 s to retry
        backlog=4096,
    )
    log.info("gateway listening on %s:%s", settings.gateway_host, settings.gateway_port)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("draining %d connections for %.1f s", len(worker.all_sessions), settings.drain_seconds)
    await worker.drain(settings.drain_seconds)
    deadline = loop.time() + settings.drain_seconds + 5
    while worker.all_sessions and loop.time() < deadline:  # noqa: ASYNC110 - a bounded poll
        await asyncio.sleep(0.05)
    server.close(close_connections=True)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), timeout=5)
    await worker.stop()
    await store.close()


def serve(settings: Settings, *, log_level: str = "info") -> int:
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("websockets").setLevel(logging.WARNING)
    try:
        import uvloop  # a faster event loop where it is available
    except ImportError:
        asyncio.run(serve_worker(settings))
    else:
        uvloop.run(serve_worker(settings))
    return 0
