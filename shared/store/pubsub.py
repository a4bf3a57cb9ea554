"""A Redis pub/sub connection of our own, read with hiredis.

redis-py's ``PubSub.get_message`` costs tens of microseconds per message (a lock, a
health check, a timeout and a coroutine per read); at thousands of wake-ups a
second that is a good part of a core. :class:`Subscriber` is an asyncio protocol:
each chunk of bytes Redis sends is parsed at once and every message in it goes to
one callback, synchronously, in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, cast

import hiredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from shared.store.connection import Command, replies, reply_error

__all__ = ["Subscriber"]

log = logging.getLogger("botgw.pubsub")

# (kind: b"subscribe" / b"unsubscribe" / b"message", or their shard forms
# b"ssubscribe" / b"sunsubscribe" / b"smessage"; channel; data or count)
OnEvent = Callable[[bytes, bytes, Any], None]

_PUSH_KINDS = frozenset(
    {b"subscribe", b"unsubscribe", b"message", b"ssubscribe", b"sunsubscribe", b"smessage"}
)


class Subscriber(asyncio.Protocol):
    """One subscribed connection: ``command`` writes, ``on_event`` gets every push."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_event: OnEvent) -> None:
        self.loop = loop
        self.on_event = on_event
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ResponseError)
        self._replies: deque[asyncio.Future[Any]] = deque()  # login, before subscribing
        # resolved with the error once the connection is gone
        self.lost: asyncio.Future[Exception] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    async def login(self, commands: Sequence[Command]) -> None:
        """Run AUTH and the like, each awaited (before any SUBSCRIBE)."""
        for command in commands:
            future: asyncio.Future[Any] = self.loop.create_future()
            self._replies.append(future)
            self.command(*command)
            await future

    def command(self, *command: str | bytes | int | float) -> None:
        if self.transport is None or self.lost.done():
            raise RedisConnectionError("the pub/sub connection to Redis was lost")
        self.transport.write(hiredis.pack_command(cast(Any, command)))

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            for reply in replies(self.reader):
                self._reply(reply)
                if self.lost.done():
                    return
        except RedisConnectionError as exc:
            self._lose(exc)

    def _reply(self, reply: Any) -> None:
        if self._replies:  # logging in, before any SUBSCRIBE
            future = self._replies.popleft()
            if isinstance(reply, ResponseError):
                future.set_exception(reply_error(reply))
            else:
                future.set_result(reply)
        elif (
            isinstance(reply, list)
            and len(reply) == 3
            and reply[0] in _PUSH_KINDS
            and isinstance(reply[1], bytes)
        ):
            try:
                self.on_event(reply[0], reply[1], reply[2])
            except Exception:  # a broken callback must not drop everyone's wake-ups
                log.exception("pub/sub message handler failed")
        elif isinstance(reply, ResponseError):
            self._lose(ResponseError(f"pub/sub command refused: {reply}"))
        # anything else (a pong, pattern replies nobody asked for) is ignored

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose(RedisConnectionError(f"the pub/sub connection was lost ({exc or 'closed'})"))

    def _lose(self, error: Exception) -> None:
        if not self.lost.done():
            self.lost.set_result(error)
        while self._replies:
            future = self._replies.popleft()
            if not future.done():
                future.set_exception(error)
        if self.transport is not None:
            self.transport.abort()

    def close(self) -> None:
        self._lose(RedisConnectionError("closed"))
