"""One pipelined connection to one Redis node, and the node that keeps one open.

redis-py takes a connection from its pool, packs, writes, reads and gives the
connection back for every command, which costs about 80 µs of CPU per call. A
:class:`Connection` instead writes the commands of every coroutine in the order
they are issued (one write per event-loop turn); Redis answers in that order and
each reply resolves its caller's future. A caller that is cancelled leaves its
reply to be read and dropped, so the connection never gets out of step.

Three things ride on the flush:

* **timeouts**: a watchdog looks at the oldest unanswered command; once it waits
  longer than the timeout the connection is given up (its callers get redis-py's
  ``TimeoutError``) and the next call opens a new one, so a hung or vanished
  Redis costs a caller at most the timeout, never a hang;
* **durability**: with ``wait_replicas`` > 0 a flush that carries a durable write
  ends with one ``WAIT`` (group commit): those writes are acknowledged only once
  that many replicas have them;
* **redirects** (``ASKING`` before a command sent to a slot's importing node).

Replies are RESP2 as hiredis parses them (bytes, ints, lists, ``None``); error
replies raise redis-py's exception classes and a lost connection raises its
``ConnectionError``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, cast

import hiredis
from prometheus_client import Histogram
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.redis_url import Address, Target

__all__ = [
    "Command",
    "Connection",
    "Node",
    "NotReplicated",
    "StoreMisconfigured",
    "StoreTimeout",
    "replies",
    "reply_error",
]

log = logging.getLogger("botgw.redis")

# one reply in SAMPLE_EVERY is timed: the wire carries every command of the process
SAMPLE_EVERY = 16
COMMAND_SECONDS = Histogram(
    "botgw_redis_command_seconds",
    "from a command's write to its reply on the process's pipelined Redis connections "
    f"(one reply in {SAMPLE_EVERY} sampled)",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 2.5),
)

Command = Sequence[str | bytes | int | float]


class StoreTimeout(RedisTimeoutError):
    """Redis did not answer within the command timeout."""


class StoreMisconfigured(RedisError):
    """Redis refused a command for a reason no retry fixes (credentials, a
    cluster node named as a single node, keys across slots)."""


class NotReplicated(RedisError):
    """A write was applied by the primary but not confirmed by enough replicas."""


def reply_error(reply: Exception) -> ResponseError:
    """redis-py's exception for an error reply as hiredis parsed it."""
    message = str(reply)
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    if message.startswith("READONLY"):
        return ReadOnlyError(message)
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


def _drop(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # read, so an unawaited failure is not reported


class Connection(asyncio.Protocol):
    """A pipelined connection (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        timeout: float,
        wait_replicas: int = 0,
    ) -> None:
        self.loop = loop
        self.timeout = timeout
        self.wait_replicas = wait_replicas
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ResponseError)
        self.pending: deque[asyncio.Future[Any]] = deque()
        self.sent: deque[float] = deque()  # when each pending command was issued
        self.out: list[bytes] = []
        self.flushing = False
        self.closed = False
        self.commit: asyncio.Future[Any] | None = None  # the WAIT after this flush
        self._watchdog: asyncio.TimerHandle | None = None
        self._replies = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._watch()

    def _watch(self) -> None:
        if self.closed:
            return
        if self.sent and self.loop.time() - self.sent[0] > self.timeout:
            self.lose(StoreTimeout(f"Redis did not answer within {self.timeout:g} s"))
            return
        self._watchdog = self.loop.call_later(max(0.05, self.timeout / 10), self._watch)

    def send(self, command: Command, *, asking: bool = False) -> asyncio.Future[Any]:
        """Queue one command; its reply (or error) resolves the future."""
        if self.closed:
            raise RedisConnectionError("the connection to Redis was lost")
        if asking:
            ask = self._queue(("ASKING",))
            ask.add_done_callback(_drop)
        return self._queue(command)

    def _queue(self, command: Command) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self.loop.create_future()
        self.out.append(hiredis.pack_command(cast(Any, tuple(command))))
        self.pending.append(future)
        self.sent.append(self.loop.time())
        if not self.flushing:
            self.flushing = True
            self.loop.call_soon(self._flush)
        return future

    def durable(self) -> asyncio.Future[Any] | None:
        """The ``WAIT`` that follows the commands queued in this turn (None when no
        replicas are awaited); its reply is how many replicas have them."""
        if self.wait_replicas <= 0:
            return None
        if self.commit is None:
            self.commit = self.loop.create_future()
        return self.commit

    def _flush(self) -> None:
        self.flushing = False
        if self.commit is not None:
            # one WAIT for every durable write of this turn; it answers before the
            # watchdog would give up on it
            wait_ms = max(1, int(self.timeout * 500))
            command = ("WAIT", self.wait_replicas, wait_ms)
            self.out.append(hiredis.pack_command(cast(Any, command)))
            self.pending.append(self.commit)
            self.sent.append(self.loop.time())
            self.commit = None
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
                sent_at = self.sent.popleft()
                self._replies += 1
                if self._replies % SAMPLE_EVERY == 0:
                    COMMAND_SECONDS.observe(self.loop.time() - sent_at)
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
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self.transport is not None:
            self.transport.abort()
        futures = list(self.pending)
        if self.commit is not None:
            futures.append(self.commit)
            self.commit = None
        self.pending.clear()
        self.sent.clear()
        for future in futures:
            if not future.done():
                future.set_exception(error)
                future.add_done_callback(_drop)

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """Send ``commands`` together and await each reply (login, short sessions)."""
        futures = [self.send(command) for command in commands]
        return [await future for future in futures]


async def open_connection(
    address: Address,
    *,
    tls: bool,
    timeout: float,
    factory: Callable[[], asyncio.Protocol],
) -> asyncio.Protocol:
    """A new TCP (or unix socket) connection with ``factory``'s protocol."""
    loop = asyncio.get_running_loop()
    context = ssl.create_default_context() if tls else None
    try:
        if address.path is not None:
            _, proto = await asyncio.wait_for(
                loop.create_unix_connection(factory, address.path), timeout
            )
        else:
            _, proto = await asyncio.wait_for(
                loop.create_connection(factory, address.host, address.port, ssl=context),
                timeout,
            )
    except (OSError, TimeoutError) as exc:
        raise RedisConnectionError(f"cannot connect to Redis at {address}: {exc}") from exc
    return proto


def login_commands(target: Target, *, name: str | None, select: bool = True) -> list[Command]:
    """AUTH, CLIENT SETNAME and SELECT for a new connection to ``target``'s nodes."""
    setup: list[Command] = []
    if target.password:
        if target.username:
            setup.append(("AUTH", target.username, target.password))
        else:
            setup.append(("AUTH", target.password))
    if name:
        setup.append(("CLIENT", "SETNAME", name))
    if target.db and select:
        setup.append(("SELECT", target.db))
    return setup


Resolver = Callable[[], Awaitable[Address]]
# told (node, its new connection) when a node's server changed, before the
# connection is used for anything else
ServerListener = Callable[["Node", Connection], Awaitable[None]]


def _run_id(info: bytes) -> bytes | None:
    """The ``run_id`` line of ``INFO server``: a new one for every server start."""
    for line in info.splitlines():
        if line.startswith(b"run_id:"):
            return line[7:].strip()
    return None


class Node:
    """One Redis node of the store: its address (or how to find it, for the primary
    a sentinel names) and a lazily (re)opened :class:`Connection` to it."""

    def __init__(
        self,
        target: Target,
        address: Address,
        *,
        timeout: float,
        name: str | None,
        wait_replicas: int = 0,
        resolve: Resolver | None = None,
        on_new_server: Callable[[Node, Connection], Awaitable[None]] | None = None,
    ) -> None:
        self.target = target
        self.address = address
        self.timeout = timeout
        self.name = name
        self.wait_replicas = wait_replicas
        self._resolve = resolve  # asked for the address before every new connection
        self._on_new_server = on_new_server
        self._conn: Connection | None = None
        self._opening: asyncio.Future[Connection] | None = None
        self.run_id: bytes | None = None  # of the server behind the last connection
        # set when it took over slots of a failed node (a promoted replica)
        self.needs_check = False

    def __repr__(self) -> str:
        return f"Node({self.address})"

    @property
    def current(self) -> Connection | None:
        """The open connection of this event loop, if there is one."""
        conn = self._conn
        if conn is not None and not conn.closed and conn.loop is asyncio.get_running_loop():
            return conn
        return None

    async def locate(self) -> Address:
        """Where the node is now (the sentinels are asked for the primary)."""
        if self._resolve is not None:
            self.address = await self._resolve()
        return self.address

    async def ready(self) -> Connection:
        conn = self._conn
        if conn is not None and not conn.closed and conn.loop is asyncio.get_running_loop():
            return conn
        if self._opening is None or self._opening.done():
            self._opening = asyncio.ensure_future(self._open())
            self._opening.add_done_callback(_drop)
        return await asyncio.shield(self._opening)

    async def _open(self) -> Connection:
        if self._resolve is not None:
            self.address = await self._resolve()
        loop = asyncio.get_running_loop()
        proto = await open_connection(
            self.address,
            tls=self.target.tls,
            timeout=self.timeout,
            factory=lambda: Connection(
                loop, timeout=self.timeout, wait_replicas=self.wait_replicas
            ),
        )
        conn = cast(Connection, proto)
        try:
            await conn.run(login_commands(self.target, name=self.name))
            checks: list[Command] = [("INFO", "server")]
            if self._resolve is not None:
                checks.append(("ROLE",))
            info, *role = await conn.run(checks)
            if role and (not role[0] or role[0][0] != b"master"):
                raise RedisConnectionError(f"{self.address} is not the primary (yet)")
            run_id = _run_id(info)
            changed = self.run_id is not None and run_id != self.run_id
            if (changed or self.needs_check) and self._on_new_server:
                # a failover or a restart: whatever must happen before anything
                # else is sent to the new server happens here
                await self._on_new_server(self, conn)
            self.needs_check = False
            self.run_id = run_id
        except BaseException:
            conn.lose(RedisConnectionError("the connection to Redis was refused"))
            raise
        self._conn = conn
        return conn

    def reset(self) -> None:
        """Give up the current connection (the next call opens a new one, asking
        the sentinels again where the primary is)."""
        if self._conn is not None:
            self._conn.lose(RedisConnectionError("the connection to Redis was reset"))
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.lose(RedisConnectionError("closed"))
            self._conn = None
