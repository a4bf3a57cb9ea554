"""One pipelined Redis connection shared by every coroutine of a process: the hot path.

redis-py takes a connection from its pool, packs, writes, reads and gives the
connection back for every command, which costs about 80 µs of CPU per call. The
calls every REST request and every gateway read make (Lua scripts, record and log
reads) go through a :class:`Wire` instead: commands from all coroutines are written
to one connection in the order they are issued (one write per event-loop turn),
Redis answers in that order, and each reply resolves its caller's future. A caller
that is cancelled leaves its reply to be read and dropped, so the connection never
gets out of step.

Replies are RESP2 as hiredis parses them (bytes, ints, lists, ``None``); error
replies raise redis-py's exception classes and a lost connection raises its
``ConnectionError``, so callers handle failures as they do for redis-py. Blocking
commands, transactions and pub/sub stay on redis-py.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar, cast

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError

__all__ = ["Command", "Endpoint", "Wire", "replies", "reply_error"]

Command = Sequence[str | bytes | int | float]
P = TypeVar("P", bound=asyncio.BaseProtocol)


def reply_error(reply: Exception) -> ResponseError:
    """redis-py's exception for an error reply as hiredis parsed it."""
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    return ResponseError(message)


def replies(reader: hiredis.Reader) -> Iterator[Any]:
    """Every complete reply fed to ``reader`` so far, in order; bytes that are not
    RESP raise redis-py's ``ConnectionError`` (the connection is out of step)."""
    while True:
        try:
            reply = reader.gets()
        except hiredis.ProtocolError as exc:
            raise RedisConnectionError(f"unreadable reply from Redis: {exc}") from None
        if reply is False:
            return
        yield reply


class _Protocol(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.pending: deque[asyncio.Future[Any]] = deque()
        self.out: list[bytes] = []
        self.flushing = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, command: Command) -> asyncio.Future[Any]:
        if self.closed:
            raise RedisConnectionError("the connection to Redis was lost")
        future: asyncio.Future[Any] = self.loop.create_future()
        self.out.append(hiredis.pack_command(cast(Any, tuple(command))))
        self.pending.append(future)
        if not self.flushing:
            self.flushing = True
            self.loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self.flushing = False
        if self.out and not self.closed and self.transport is not None:
            data = b"".join(self.out)
            self.out.clear()
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            for reply in replies(self.reader):
                if not self.pending:
                    raise RedisConnectionError("a reply from Redis nobody asked for")
                future = self.pending.popleft()
                if future.done():
                    continue  # its caller gave up
                if isinstance(reply, ResponseError):
                    future.set_exception(reply_error(reply))
                else:
                    future.set_result(reply)
        except RedisConnectionError as exc:
            self.lose(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lose(RedisConnectionError(f"the connection to Redis was lost ({exc or 'closed'})"))

    def lose(self, error: Exception) -> None:
        self.closed = True
        self.out.clear()
        if self.transport is not None:
            self.transport.abort()
        while self.pending:
            future = self.pending.popleft()
            if not future.done():
                future.set_exception(error)


class Endpoint:
    """Where a Redis URL points and how to log in there, for connections of our own."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        options = parse_url(url)
        self.host = str(options.get("host") or "localhost")
        self.port = int(options.get("port") or 6379)
        kind = options.get("connection_class")
        self.path = str(options["path"]) if kind is UnixDomainSocketConnection else None
        self.ssl = ssl.create_default_context() if kind is SSLConnection else None
        self.db = int(options.get("db") or 0)
        self.username = options.get("username")
        self.password = options.get("password")
        self.connect_timeout = connect_timeout

    async def connect(self, factory: Callable[[], P]) -> P:
        """A new connection with ``factory``'s protocol (not yet logged in)."""
        loop = asyncio.get_running_loop()
        try:
            if self.path is not None:
                _, proto = await asyncio.wait_for(
                    loop.create_unix_connection(factory, self.path), self.connect_timeout
                )
            else:
                _, proto = await asyncio.wait_for(
                    loop.create_connection(factory, self.host, self.port, ssl=self.ssl),
                    self.connect_timeout,
                )
        except (OSError, TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {exc}") from exc
        return proto

    def login(self, *, select: bool = True) -> list[Command]:
        """The commands that log a new connection in (AUTH, SELECT)."""
        setup: list[Command] = []
        if self.password:
            if self.username:
                setup.append(("AUTH", self.username, self.password))
            else:
                setup.append(("AUTH", self.password))
        if self.db and select:
            setup.append(("SELECT", self.db))
        return setup


class Wire:
    """A lazily (re)connected pipelined connection to the Redis of ``url``."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self.endpoint = Endpoint(url, connect_timeout=connect_timeout)
        self._proto: _Protocol | None = None
        self._opening: asyncio.Future[_Protocol] | None = None

    async def call(self, *command: str | bytes | int | float, retry: bool = False) -> Any:
        """One command's reply; ``retry``: once more on a new connection if it was lost
        (only for commands that are safe to repeat)."""
        try:
            return await (await self._ready()).send(command)
        except RedisConnectionError:
            if not retry:
                raise
            return await (await self._ready()).send(command)

    async def calls(self, commands: Sequence[Command], *, retry: bool = False) -> list[Any]:
        """Several commands written together; their replies in order (the first error
        is raised once every reply is in). ``retry``: all once more on a new connection
        if it was lost (only for commands that are safe to repeat)."""
        try:
            return await self._calls(commands)
        except RedisConnectionError:
            if not retry:
                raise
            return await self._calls(commands)

    async def _calls(self, commands: Sequence[Command]) -> list[Any]:
        proto = await self._ready()
        futures = [proto.send(command) for command in commands]
        replies: list[Any] = []
        failure: BaseException | None = None
        for future in futures:
            try:
                replies.append(await future)
            except Exception as exc:  # keep reading the others' replies first
                failure = failure or exc
        if failure is not None:
            raise failure
        return replies

    async def _ready(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.closed and proto.loop is asyncio.get_running_loop():
            return proto
        if self._opening is None or self._opening.done():
            self._opening = asyncio.ensure_future(self._open())
        return await asyncio.shield(self._opening)

    async def _open(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        proto = await self.endpoint.connect(lambda: _Protocol(loop))
        try:
            for future in [proto.send(command) for command in self.endpoint.login()]:
                await future
        except BaseException:
            proto.lose(RedisConnectionError("the connection to Redis was refused"))
            raise
        self._proto = proto
        return proto

    def close(self) -> None:
        if self._proto is not None:
            self._proto.lose(RedisConnectionError("closed"))
            self._proto = None
