"""A minimal HTTP/1.1 keep-alive client for the load generators.

A :class:`Pool` hands each worker coroutine its own :class:`Connection`: one
request in flight per connection, no pipelining. Requests are prebuilt bytes
(:meth:`Pool.build`); responses are parsed with ``httptools`` and must say how
long their body is (``Content-Length`` or chunked). A connection the server
closed is reopened before the next request, and a request whose connection drops
before any byte of its response arrived is sent once more on a new connection.
Requests slower than the pool's ``timeout`` fail with :class:`TimeoutError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import cast
from urllib.parse import urlsplit

import httptools

__all__ = ["Connection", "ConnectionDropped", "HttpError", "Pool", "ProtocolError", "Response"]

Response = tuple[int, bytes]

_FRAMING = frozenset((b"content-length", b"transfer-encoding"))


class HttpError(Exception):
    """Base of this module's own errors (socket errors stay ``OSError``)."""


class ProtocolError(HttpError):
    """A response this client cannot read."""


class ConnectionDropped(ConnectionResetError):
    """The connection closed before any byte of the response arrived."""


class _Protocol(asyncio.Protocol):
    """One TCP connection: at most one response awaited at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.waiter: asyncio.Future[Response] | None = None
        self.deadline = 0.0
        self.received = False
        self.parser = httptools.HttpResponseParser(self)
        self.body: list[bytes] = []
        self.framed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def send(self, data: bytes, timeout: float) -> asyncio.Future[Response]:
        """Write one request; the future gets its ``(status, body)``."""
        if self.transport is None or self.waiter is not None:
            raise RuntimeError("connection not ready for a request")
        waiter = self.loop.create_future()
        self.waiter = waiter
        self.received = False
        self.deadline = self.loop.time() + timeout
        self.transport.write(data)
        return waiter

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            self._fail(ProtocolError("data received without a request"))
            return
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            self._fail(cause if isinstance(cause, ProtocolError) else ProtocolError(str(exc)))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"bad response: {exc}"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in _FRAMING:
            self.framed = True

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            raise ProtocolError(f"unexpected interim response {status}")
        if not self.framed and status not in (204, 304):
            raise ProtocolError(f"{status} response without Content-Length")

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        parts = self.body
        body = parts[0] if len(parts) == 1 else b"".join(parts)
        self.body = []
        self.framed = False
        waiter = self.waiter
        self.waiter = None
        if not self.parser.should_keep_alive():
            self.close()
        if waiter is None:
            raise ProtocolError("response without a request")
        if not waiter.done():
            waiter.set_result((self.parser.get_status_code(), body))

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        self.waiter = None
        if waiter is None or waiter.done():
            return
        error: ConnectionResetError
        if self.received:
            error = ConnectionResetError("connection closed in the middle of a response")
        else:
            error = ConnectionDropped("connection closed before the response")
        error.__cause__ = exc
        waiter.set_exception(error)

    def expire(self, now: float) -> None:
        """Fail the awaited response if it is past its deadline."""
        waiter = self.waiter
        if waiter is not None and now > self.deadline:
            self._fail(TimeoutError("no response before the request timeout"))

    def _fail(self, exc: Exception) -> None:
        waiter = self.waiter
        self.waiter = None
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Connection:
    """A keep-alive connection of a pool, reopened when the server has closed it."""

    __slots__ = ("pool", "proto")

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.proto: _Protocol | None = None

    async def request(self, data: bytes) -> Response:
        """Send one prebuilt request and read its response: ``(status, body)``."""
        proto = self.proto
        if proto is None or proto.closed:
            proto = await self._open()
        try:
            return await proto.send(data, self.pool.timeout)
        except ConnectionDropped:
            pass
        proto = await self._open()
        return await proto.send(data, self.pool.timeout)

    async def _open(self) -> _Protocol:
        if self.proto is not None:
            self.proto.close()
            self.proto = None
        pool = self.pool
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: _Protocol(loop), pool.host, pool.port),
            timeout=pool.timeout,
        )
        self.proto = proto
        return proto

    def close(self) -> None:
        if self.proto is not None:
            self.proto.close()
            self.proto = None


class Pool:
    """Keep-alive connections to one ``http://host:port`` base URL."""

    def __init__(self, base: str, *, timeout: float = 120.0) -> None:
        url = urlsplit(base)
        if url.scheme != "http" or not url.hostname:
            raise ValueError(f"not an http:// base URL: {base!r}")
        self.host = url.hostname
        self.port = url.port or 80
        self.prefix = url.path.rstrip("/")
        self.host_header = url.netloc
        self.timeout = timeout
        self._idle: list[Connection] = []
        self._all: list[Connection] = []
        self._watchdog: asyncio.TimerHandle | None = None

    def build(self, path: str, body: bytes, authorization: str | None = None) -> bytes:
        """A ``POST`` of a JSON ``body`` to ``path``, ready to send."""
        head = (
            f"POST {self.prefix}{path} HTTP/1.1\r\n"
            f"Host: {self.host_header}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
        )
        if authorization is not None:
            head += f"Authorization: {authorization}\r\n"
        return (head + "\r\n").encode("latin-1") + body

    def acquire(self) -> Connection:
        """An idle connection, or a new one (it connects on its first request)."""
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().call_later(1.0, self._tick)
        if self._idle:
            return self._idle.pop()
        conn = Connection(self)
        self._all.append(conn)
        return conn

    def release(self, conn: Connection) -> None:
        self._idle.append(conn)

    def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in self._all:
            if conn.proto is not None:
                conn.proto.expire(now)
        self._watchdog = loop.call_later(1.0, self._tick)

    async def close(self) -> None:
        """Close every connection and stop the timeout watchdog."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        for conn in self._all:
            conn.close()
        self._all.clear()
        self._idle.clear()
        await asyncio.sleep(0)
