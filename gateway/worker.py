"""A gateway worker's state: admission, the sessions, commits, reader marks, pings,
the credentials recheck and the drain.

Upgrades are refused before any socket opens (:func:`gateway.server.process_request`)
when too many sockets wait for identify from one address (429) or on the worker
(503); identified sockets are then held to the limits per bot. Open sockets'
tokens are compared with the store when a rotation or revocation is announced on
their bot's channel, for the bots whose channel was subscribed again (an
announcement may have been lost meanwhile), and, for all of them in one pipelined
sweep, every ``ws_credentials_recheck_seconds``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import http
import logging
import secrets
import time
from collections.abc import Coroutine
from typing import Any, cast

import httpx
from websockets.asyncio.server import ServerConnection as WebSocket
from websockets.datastructures import Headers
from websockets.http11 import Response
from websockets.protocol import State as WsState

from gateway import metrics
from gateway.frames import CloseCode
from gateway.hub import Hub
from gateway.protocol import Limits, State
from gateway.session import Session
from gateway.timers import Deadlines
from gateway.wsconn import Connection
from shared import keys, logs
from shared.codecs import json_dumps
from shared.errors import error_envelope
from shared.ids import SEQ_PER_MS, Cursor
from shared.settings import Settings
from shared.store import Store
from shared.store.log import reader_mark

__all__ = ["Worker", "http_response", "json_response"]

log = logging.getLogger("botgw.gateway")

COMMIT_INTERVAL = 0.05
PING_SLICE = 256  # pings sent between two yields to the event loop
READER_LEASES_SLICE = 500  # bots whose reader lease is renewed per round trip
GC_FULL_SECONDS = 600.0
GC_NO_AUTOMATIC_FULL = 1 << 30
# Subscribed by every worker for its confirmation only: it is sent after those of
# the bots' channels (subscriptions go out sorted and "{idx}" sorts after "{b<id>}"),
# so it says that announcements reach this worker again.
GATEWAY_CHANNEL = keys.PREFIX + "{idx}:gateway"
UNIDENTIFIED_RETRY_S = 1


def http_response(
    status: int,
    body: bytes,
    content_type: str = "application/json",
    retry_after: int | None = None,
) -> Response:
    """An HTTP answer to a request that is not (or may not become) a WebSocket."""
    phrase = http.HTTPStatus(status).phrase
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Response(status, phrase, headers, body)


def json_response(status: int, value: Any, retry_after: int | None = None) -> Response:
    """An HTTP answer with a JSON body (an error envelope or a status)."""
    return http_response(status, json_dumps(value), retry_after=retry_after)


def _log_fields(session: Session) -> dict[str, Any]:
    """A connection's fields in the log, as they are when a record is made."""
    return {
        "connection_id": session.connection_id,
        "bot_id": session.bot_id or None,
        "consumer": session.consumer_key if session.epoch else None,
    }


def _peer(connection: WebSocket) -> str:
    """The address a connection comes from, as counted for the unidentified cap."""
    address = connection.remote_address
    return str(address[0]) if isinstance(address, tuple) and address else ""


class Worker:
    """State of one gateway process: its sessions, the hub, the committer, drain."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.wakeups = store.wakeups()
        store.entities.enable_cache(self.wakeups)
        self.hub: Hub[Session] = Hub(
            store,
            self.wakeups,
            send_buffer_bytes=settings.ws_send_buffer_bytes,
            sweep_seconds=settings.ws_wakeup_sweep_seconds,
            on_look_again=self.request_recheck,
        )
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
        self._recheck_bots: set[int] = set()  # ... of these bots
        self._recheck_all = False  # ... of every bot
        self.reader_ttl = settings.ws_reader_ttl_seconds or max(
            30.0, settings.heartbeat_interval * 3
        )
        # this worker's lease on the live-reader marks of its sockets (one key a bot)
        self.reader_lease = secrets.token_hex(8)
        self._restore: set[int] = set()  # bots whose marks the next renewal restores
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
            return json_response(
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
            return json_response(
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

    # -- the connection's session ----------------------------------------------

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
        # what this task and the connection's tasks log says which connection
        logs.bind_scope(functools.partial(_log_fields, session))
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

    def reader_marks(self) -> dict[int, list[tuple[str, str]]]:
        """The live-reader marks (consumer, mark) of the delivering sessions, by bot:
        the newest session of each consumer (an older one is being taken over)."""
        newest: dict[tuple[int, str], Session] = {}
        for session in self.sessions:
            key = (session.bot_id, session.consumer_key)
            other = newest.get(key)
            if other is None or other.generation < session.generation:
                newest[key] = session
        marks: dict[int, list[tuple[str, str]]] = {}
        for (bot_id, consumer), session in newest.items():
            mark = reader_mark(self.reader_lease, session.connection_id)
            marks.setdefault(bot_id, []).append((consumer, mark))
        return marks

    async def renew_readers(self) -> None:
        """Renew this worker's lease on its live readers: one command a bot, however
        many sockets it has here, pipelined; then restore the marks of the bots
        whose lease did not hold them (ran out, or lost with a failover)."""
        log_ = self.store.log
        marks = self.reader_marks()
        bots = list(marks.items())
        for start in range(0, len(bots), READER_LEASES_SLICE):
            part = bots[start : start + READER_LEASES_SLICE]
            try:
                self._restore.update(
                    await log_.renew_reader_leases(part, self.reader_lease, self.reader_ttl)
                )
            except Exception as exc:  # restored by the next round: the lease may be gone
                log.warning("reader leases not renewed: %s", exc)
                self._restore.update(bot_id for bot_id, _ in part)
        self._restore.intersection_update(marks)
        restore = [(bot_id, marks[bot_id]) for bot_id in self._restore]
        for start in range(0, len(restore), READER_LEASES_SLICE):
            part = restore[start : start + READER_LEASES_SLICE]
            try:
                await log_.restore_readers(part, self.reader_lease, self.reader_ttl)
            except Exception as exc:  # kept in _restore for the next round
                log.warning("reader marks not restored: %s", exc)
            else:
                self._restore.difference_update(bot_id for bot_id, _ in part)

    async def _reader_loop(self) -> None:
        """Keep this worker's live-reader lease fresh (every third of its ttl)."""
        while True:
            await asyncio.sleep(self.reader_ttl / 3)
            await self.renew_readers()
            metrics.FEEDS.set(len(self.hub.feeds))
            horizon = time.monotonic() - 60
            for key, (_, stamp) in tuple(self.recent_acks.items()):
                if stamp < horizon:
                    del self.recent_acks[key]

    def request_recheck(self, bot_id: int | None = None) -> None:
        """Compare the tokens of a bot's sessions (None: of every session) with the
        stored ones soon; requests made meanwhile are served by one sweep."""
        if bot_id is None:
            self._recheck_all = True
        else:
            self._recheck_bots.add(bot_id)
        self._recheck.set()

    def _on_gateway_channel(self, live: bool) -> None:
        if live:  # (re)subscribed: announcements made while it was down were lost
            self.request_recheck()

    async def _credentials_loop(self) -> None:
        """Close sessions whose token was rotated away or whose bot was revoked.

        Rotations and revocations are announced on the bots' wake-up channels, and
        pub/sub is at-most-once: an announcement made while this worker was not
        subscribed never arrives. So the tokens of a bot's open sessions are
        compared with the stored ones after every announcement and every time its
        channel is subscribed again (``Hub.on_look_again``), and all of them every
        ``ws_credentials_recheck_seconds`` (one command per bot, pipelined).
        """
        interval = self.settings.ws_credentials_recheck_seconds
        loop = asyncio.get_running_loop()
        full_at = loop.time() + interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(full_at - loop.time(), 0)):
                    await self._recheck.wait()
            self._recheck.clear()
            bots: set[int] | None = self._recheck_bots
            self._recheck_bots = set()
            if self._recheck_all or loop.time() >= full_at:
                self._recheck_all = False
                full_at = loop.time() + interval
                bots = None
            try:
                await self.recheck_credentials(bots)
            except Exception as exc:  # Redis trouble: looked at again by the next sweep
                log.warning("credentials recheck failed: %s", exc)
                if bots is None:
                    self._recheck_all = True
                else:
                    self._recheck_bots |= bots
                await asyncio.sleep(0.5)
                self._recheck.set()

    async def recheck_credentials(self, bots: set[int] | None = None) -> int:
        """One sweep: a pipelined read of the token hash and state of ``bots`` (None:
        of every bot with an open session), one round trip for all their sessions;
        returns how many sessions it closed."""
        by_bot: dict[int, list[Session]] = {}
        for session in self.all_sessions:
            bot = session.bot
            if (
                bot is not None
                and session.core.state is not State.CLOSED
                and (bots is None or bot.id in bots)
            ):
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
