"""The reference agent client for the gateway protocol (``docs/protocol.md``).

::

    async with GatewayClient(url, token) as client:
        async for update in client:
            await handle(update)      # acked once the loop asks for the next one

Leaving the loop with ``break`` does not ack the current update; call
``client.ack(update_id)`` first if it counts as processed.

It reconnects by itself with jittered exponential backoff and resumes after its
last acked update, so a dropped socket, a crashed worker or a deploy loses
nothing; updates that arrive twice (a replay after a reconnect, or the overlap of
the old and new sockets during a drain) are dropped by ``update_id``. Terminal
closes (4500-4999) end the iteration with :class:`GatewayError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import CloseCode as WebSocketCloseCode

from gateway.frames import CloseCode, is_terminal
from shared.codecs import json_dumps, json_loads, pack, unpack

__all__ = ["GapError", "GatewayClient", "GatewayError"]

log = logging.getLogger("botgw.client")

GapPolicy = Literal["fail", "oldest", "newest"]


class GatewayError(Exception):
    """The server closed the connection for good (a terminal close code)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"gateway closed the connection: {int(code)} {reason}")
        self.code = int(code)  # a plain int, also when given a CloseCode
        self.reason = reason


class GapError(GatewayError):
    """The cursor is no longer in the log and the gap policy is ``fail``."""


@dataclass(eq=False)
class _Link:
    """One socket and what we learnt from it."""

    ws: ClientConnection
    epoch: str = ""
    high: int = 0  # the newest update id this socket delivered (or started after)
    heartbeat_s: float = 30.0
    draining: bool = False


_END = object()


class GatewayClient:
    """An auto-resuming stream of updates for one bot (consumer, shard)."""

    def __init__(
        self,
        url: str | Sequence[str],
        token: str,
        *,
        consumer: str = "default",
        shard: tuple[int, int] | None = None,
        encoding: Literal["json", "msgpack"] = "json",
        allowed_updates: Sequence[str] | None = None,
        on_gap: GapPolicy = "fail",
        cursor: tuple[str, int] | None = None,
        auto_ack: bool = True,
        max_backoff: float = 10.0,
        queue_size: int = 1000,
    ) -> None:
        # several URLs (workers, regions) are tried in turn on each reconnect
        self.urls = [url] if isinstance(url, str) else list(url)
        self._next_url = 0
        self.token = token
        self.consumer = consumer
        self.shard = shard
        self.encoding = encoding
        self.allowed_updates = list(allowed_updates) if allowed_updates else None
        self.on_gap = on_gap
        self.auto_ack = auto_ack
        self.max_backoff = max_backoff
        # the resume point: (epoch, last acked update id); None = the committed cursor
        self.cursor: tuple[str, int] | None = cursor
        self.last_seen = cursor[1] if cursor else 0
        self.reconnects = 0
        self.duplicates_dropped = 0  # updates received twice on the wire, not yielded
        self.gaps: list[dict[str, Any]] = []  # every gap frame the server sent, in order
        self._queue: asyncio.Queue[Any] = asyncio.Queue(queue_size)
        self._pending_ack: int | None = None  # processed, not yet sent
        self._sent_ack = cursor[1] if cursor else 0
        self._yielded: int | None = None
        self._runner: asyncio.Task[None] | None = None
        self._links: set[_Link] = set()
        self._current: _Link | None = None
        self._requests: dict[str, asyncio.Future[Any]] = {}
        self._current_changed = asyncio.Event()  # set whenever _current changes
        self._closed = False
        self._ack_wakeup = asyncio.Event()
        self._draining_tasks: set[asyncio.Task[None]] = set()

    # -- public API -------------------------------------------------------------

    async def __aenter__(self) -> GatewayClient:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name="gateway-client")

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        self.start()
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            update: dict[str, Any] = item
            self._yielded = int(update["update_id"])
            yield update
            # the loop body (the handler) returned: this update is processed
            if self.auto_ack:
                self.ack(self._yielded)

    def ack(self, update_id: int) -> None:
        """Mark everything up to ``update_id`` as processed (sent within ~20 ms)."""
        if self._pending_ack is None or update_id > self._pending_ack:
            self._pending_ack = update_id
            self._ack_wakeup.set()

    async def request(self, method: str, **params: Any) -> Any:
        """Call a Bot API method over the socket; raises GatewayError on an error result.

        The request carries an ``idempotency_key``: if its connection closes before
        the result comes (no result ever comes then, docs/protocol.md §13), it is
        sent again on the next connection with the same key, so it takes effect once.
        """
        key = secrets.token_hex(16)
        while True:
            link = self._current
            if link is None or link.ws.close_code is not None:
                if self._closed or (self._runner is not None and self._runner.done()):
                    raise GatewayError(CloseCode.INTERNAL_ERROR, "not connected")
                await self._next_link()
                continue
            request_id = secrets.token_hex(6)
            future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            self._requests[request_id] = future
            closed = asyncio.ensure_future(link.ws.wait_closed())
            try:
                frame = {
                    "op": "request",
                    "id": request_id,
                    "method": method,
                    "params": params,
                    "idempotency_key": key,
                }
                with contextlib.suppress(ConnectionClosed):
                    await self._send(link, frame)
                await asyncio.wait((future, closed), return_when=asyncio.FIRST_COMPLETED)
                if future.done():
                    return future.result()
            finally:
                closed.cancel()
                self._requests.pop(request_id, None)
            await self._next_link()

    async def _next_link(self) -> None:
        """Wait until the current connection changes (or a second passes)."""
        self._current_changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._current_changed.wait(), 1.0)

    async def close(self) -> None:
        """Send the last ack, then close every socket."""
        self._closed = True
        current = self._current
        if current is not None:
            with contextlib.suppress(Exception):
                await self._flush_ack(current)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner
            self._runner = None
        for link in tuple(self._links):
            with contextlib.suppress(Exception):
                await self._flush_ack(link)
                await link.ws.close()

    # -- connection management ------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._connect_loop()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must end the iteration, not hang it
            log.exception("gateway client failed")
            await self._queue.put(exc)

    async def _connect_loop(self) -> None:
        backoff = 0.1
        ack_task = asyncio.create_task(self._ack_loop())
        try:
            while not self._closed:
                try:
                    link = await self._open()
                except (OSError, InvalidStatus, ConnectionClosed, TimeoutError) as exc:
                    if isinstance(exc, InvalidStatus) and exc.response.status_code == 401:
                        error = GatewayError(CloseCode.AUTH_FAILED, "invalid bot token")
                        await self._queue.put(error)
                        return
                    delay = random.uniform(0, backoff)
                    log.info("connect failed (%s); retrying in %.2f s", exc, delay)
                    await asyncio.sleep(delay)
                    backoff = min(backoff * 2, self.max_backoff)
                    continue
                backoff = 0.1
                outcome = await self._serve(link)
                if outcome is not None:  # terminal
                    await self._queue.put(outcome)
                    return
                self.reconnects += 1
                if not link.draining:
                    await asyncio.sleep(random.uniform(0, 0.05))
        finally:
            ack_task.cancel()

    async def _open(self) -> _Link:
        url = self.urls[self._next_url % len(self.urls)]
        self._next_url += 1
        ws = await websockets.connect(
            url,
            additional_headers={"Authorization": f"Bot {self.token}"},
            open_timeout=10,
            max_size=8 * 1024 * 1024,
            ping_interval=20,
        )
        link = _Link(ws=ws)
        try:
            hello = await asyncio.wait_for(self._recv(link), timeout=10)
            if hello.get("op") != "hello":
                raise ConnectionError(f"expected hello, got {hello.get('op')}")
            link.heartbeat_s = float(hello.get("heartbeat_interval_ms", 30000)) / 1000
            identify: dict[str, Any] = {
                "op": "identify",
                "consumer": self.consumer,
                "encoding": self.encoding,
                "on_gap": self.on_gap,
            }
            if self.cursor is not None:
                # resume after what the application has processed, acked or not yet
                processed = max(self.cursor[1], self._pending_ack or 0)
                identify["cursor"] = {"epoch": self.cursor[0], "update_id": str(processed)}
            if self.shard is not None:
                identify["shard"] = list(self.shard)
            if self.allowed_updates:
                identify["allowed_updates"] = self.allowed_updates
            await self._send(link, identify)
        except BaseException:
            await ws.close()
            raise
        self._links.add(link)
        return link

    async def _serve(self, link: _Link) -> GatewayError | None:
        """Read one socket until it closes; a GatewayError when we must stop."""
        heartbeat = asyncio.create_task(self._heartbeats(link))
        try:
            while True:
                try:
                    frame = await self._recv(link)
                except ConnectionClosed as closed:
                    return self._after_close(link, closed)
                op = frame.get("op")
                if op == "updates":
                    for update in frame.get("updates", ()):
                        update_id = int(update["update_id"])
                        link.high = max(link.high, update_id)
                        if update_id <= self.last_seen:
                            self.duplicates_dropped += 1
                            continue  # already delivered by this or an earlier socket
                        self.last_seen = update_id
                        await self._queue.put(update)
                elif op == "ready":
                    link.epoch = str(frame["epoch"])
                    start = int(frame["cursor"]["update_id"])
                    link.high = start
                    if self.cursor is None or self.cursor[0] != link.epoch:
                        if self.cursor is not None:
                            self.last_seen = 0  # ids of another epoch mean nothing here
                            self._sent_ack = start
                            self._pending_ack = None
                        self.cursor = (link.epoch, start)
                        self.last_seen = max(self.last_seen, start)
                    self._current = link
                    self._current_changed.set()
                    self._ack_wakeup.set()
                elif op == "gap":
                    log.warning("gap in the update log: %s", frame)
                    self.gaps.append(frame)
                    if frame.get("action") == "fail":
                        reason = f"cursor not in the log ({frame.get('reason')})"
                        return GapError(CloseCode.CURSOR_GAP, reason)
                elif op == "reconnect":
                    # the worker is going away: connect anew now, keep reading this one
                    link.draining = True
                    return None
                elif op == "result":
                    future = self._requests.get(str(frame.get("id")))
                    if future is not None and not future.done():
                        if frame.get("ok"):
                            future.set_result(frame.get("result"))
                        else:
                            error = frame.get("error") or {}
                            future.set_exception(
                                GatewayError(
                                    int(error.get("error_code", 400)),
                                    str(error.get("description", "")),
                                )
                            )
                elif op == "close":
                    code = int(frame.get("code", CloseCode.INTERNAL_ERROR))
                    if not frame.get("resumable", False) and not (
                        code == CloseCode.TAKEN_OVER and link is not self._current
                    ):
                        return GatewayError(code, str(frame.get("reason", "")))
        finally:
            heartbeat.cancel()
            if link.draining:
                # keep the old socket until the server closes it; updates it still
                # sends are de-duplicated by update_id
                self._draining_tasks.add(asyncio.create_task(self._drain_old(link)))
            else:
                self._links.discard(link)
                if self._current is link:
                    self._current = None
                    self._current_changed.set()

    def _after_close(self, link: _Link, closed: ConnectionClosed) -> GatewayError | None:
        received = closed.rcvd
        code = received.code if received is not None else WebSocketCloseCode.ABNORMAL_CLOSURE
        reason = received.reason if received is not None else ""
        if is_terminal(code):
            if code == CloseCode.TAKEN_OVER and link is not self._current:
                return None  # our own newer socket took over
            if code == CloseCode.CURSOR_GAP:
                return GapError(code, reason)
            return GatewayError(code, reason)
        return None

    async def _drain_old(self, link: _Link) -> None:
        try:
            while True:
                frame = await self._recv(link)
                if frame.get("op") == "updates":
                    for update in frame.get("updates", ()):
                        update_id = int(update["update_id"])
                        if update_id > self.last_seen:
                            self.last_seen = update_id
                            await self._queue.put(update)
                        else:
                            self.duplicates_dropped += 1
        except (ConnectionClosed, Exception):
            pass
        finally:
            self._links.discard(link)
            task = asyncio.current_task()
            if task is not None:
                self._draining_tasks.discard(task)

    # -- framing --------------------------------------------------------------

    async def _recv(self, link: _Link) -> dict[str, Any]:
        data = await link.ws.recv()
        value = json_loads(data) if isinstance(data, str) else unpack(data)
        if not isinstance(value, dict):
            raise ConnectionError("server sent a frame that is not an object")
        return value

    async def _send(self, link: _Link, frame: dict[str, Any]) -> None:
        if self.encoding == "msgpack" and frame.get("op") != "identify":
            await link.ws.send(pack(frame))
        else:
            await link.ws.send(json_dumps(frame).decode())

    async def _heartbeats(self, link: _Link) -> None:
        with contextlib.suppress(ConnectionClosed, asyncio.CancelledError):
            while True:
                await asyncio.sleep(link.heartbeat_s * random.uniform(0.8, 0.95))
                frame: dict[str, Any] = {"op": "heartbeat"}
                await self._send(link, frame)

    async def _flush_ack(self, link: _Link) -> None:
        pending = self._pending_ack
        if pending is None or not link.epoch:
            return
        # a socket accepts acks only of what it delivered itself: during a drain the
        # new socket is still replaying what the old one already sent
        value = min(pending, link.high)
        if pending > value:
            self._ack_wakeup.set()  # the rest once this socket has caught up
        if value <= self._sent_ack:
            return
        await self._send(link, {"op": "ack", "update_id": str(value)})
        self._sent_ack = value
        self.cursor = (link.epoch, value)

    async def _ack_loop(self) -> None:
        """Send the newest processed id, coalescing acks to one per ~20 ms."""
        while True:
            await self._ack_wakeup.wait()
            self._ack_wakeup.clear()
            await asyncio.sleep(0.02)
            link = self._current
            if link is None:
                continue
            with contextlib.suppress(ConnectionClosed):
                await self._flush_ack(link)
