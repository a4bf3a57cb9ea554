"""The store's way to Redis: one pipelined connection per node, shared by every
coroutine of a process, on one node, behind Sentinel or across a Redis Cluster.

Every command of the store goes through a :class:`Wire` (``store.wire``, and the
redis-py-like ``store.redis`` built on it). It

* routes each command to the node that serves its key: the one node, the primary
  the sentinels name (asked again whenever a connection is lost or answers
  ``READONLY``), or the primary of the key's slot in the cluster's slot map
  (learnt from ``CLUSTER SLOTS``, corrected by ``MOVED``, ``ASK`` followed with
  ``ASKING``);
* retries, within the command timeout, what Redis did not carry out: redirects,
  ``READONLY``, ``LOADING``, ``TRYAGAIN``, ``CLUSTERDOWN``, and any command not
  yet sent when its connection failed; a command whose connection failed after it
  was sent is retried only when the caller says it is safe to repeat;
* gives every caller an answer within ``timeout`` (:class:`StoreTimeout`);
* with ``wait_replicas`` > 0 makes durable writes wait for that many replicas
  (``WAIT``, one per flush; :class:`NotReplicated` when they do not confirm);
* tells configuration errors (credentials, a cluster node named as one node,
  keys across slots) from outages: they raise :class:`StoreMisconfigured`, are
  logged once a minute and fail readiness.

Replies are RESP2 as hiredis parses them; errors are redis-py's exception classes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from shared.redis_url import Address, Target, parse_redis_url
from shared.store.cluster import SlotMap, command_key, parse_redirect, slot_of
from shared.store.connection import (
    Command,
    Connection,
    Node,
    NotReplicated,
    ServerListener,
    StoreMisconfigured,
    StoreTimeout,
    open_connection,
    replies,
    reply_error,
)

__all__ = [
    "Command",
    "NotReplicated",
    "StoreMisconfigured",
    "StoreTimeout",
    "Wire",
    "replies",
    "reply_error",
]

log = logging.getLogger("botgw.redis")

PAUSE_S = 0.05  # between retries of what Redis did not carry out
SENTINEL_POLL_S = 1.0  # how often the sentinels are asked where the primary is
PROBLEM_S = 60.0  # how long a configuration error fails readiness (and is not logged again)
_TRANSIENT = ("LOADING", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "NOREPLICAS")
_CONFIG = (
    "NOAUTH",
    "WRONGPASS",
    "NOPERM",
    "CROSSSLOT",
    "ERR unknown command",
    "ERR AUTH",
    "ERR invalid password",
    "ERR DB index is out of range",
)

# commands that change data: with wait_replicas, their replies wait for replicas
WRITES = frozenset(
    {
        b"SET",
        b"DEL",
        b"UNLINK",
        b"EXPIRE",
        b"PEXPIRE",
        b"PERSIST",
        b"INCR",
        b"INCRBY",
        b"HSET",
        b"HSETNX",
        b"HDEL",
        b"HINCRBY",
        b"SADD",
        b"SREM",
        b"ZADD",
        b"ZREM",
        b"ZREMRANGEBYSCORE",
        b"XADD",
        b"XTRIM",
        b"XDEL",
        b"EXEC",
    }
)


class _Retry(Exception):
    """Internal: send again (to ``node``, with ASKING when ``asking``)."""

    def __init__(self, node: Node, asking: bool = False) -> None:
        self.node = node
        self.asking = asking


class Wire:
    """See the module docstring. ``target`` is a :class:`Target` or a Redis URL."""

    def __init__(
        self,
        target: Target | str,
        *,
        timeout: float = 2.0,
        name: str | None = None,
        wait_replicas: int = 0,
    ) -> None:
        self.target = parse_redis_url(target) if isinstance(target, str) else target
        self.timeout = timeout
        self.name = name
        self.wait_replicas = wait_replicas
        self.problem: tuple[float, str] | None = None  # the last configuration error
        # scripts that write nothing that must survive a failover (reads, rate
        # buckets, leases): their replies do not wait for replicas
        self.volatile_scripts: set[bytes] = set()
        # told (node, its new connection) when a node's server changed
        self.server_listeners: list[ServerListener] = []
        self._sentinels = list(self.target.addresses)
        self._background: set[asyncio.Future[Any]] = set()
        self.cluster: SlotMap | None = None
        self.node: Node | None = None
        self._watching: asyncio.Future[None] | None = None  # Sentinel: see _watch_sentinels
        if self.target.kind == "cluster":
            self.cluster = SlotMap(self.target.addresses, self._make_node)
        elif self.target.kind == "sentinel":
            self.node = self._make_node(self.target.addresses[0], resolve=True)
        else:
            self.node = self._make_node(self.target.addresses[0])

    @property
    def sharded(self) -> bool:
        """Whether keys (and shard channels) are spread over several primaries."""
        return self.cluster is not None

    def _make_node(self, address: Address, *, resolve: bool = False) -> Node:
        return Node(
            self.target if self.target.kind == "node" else self.target.at(address),
            address,
            timeout=self.timeout,
            name=self.name,
            wait_replicas=self.wait_replicas,
            resolve=self._find_primary if resolve else None,
            on_new_server=self._new_server,
        )

    async def _new_server(self, node: Node, conn: Connection) -> None:
        log.warning("a new Redis server is behind %s (a failover or a restart)", node.address)
        for listener in self.server_listeners:
            await listener(node, conn)

    def serves(self, node: Node, key: str) -> bool:
        """Whether ``key`` lives on ``node`` (as far as the slot map knows)."""
        if self.cluster is None:
            return node is self.node
        return self.cluster.slots[slot_of(key)] is node

    # -- where a command goes -------------------------------------------------------

    async def node_for(self, command: Command) -> Node:
        """The node that serves ``command`` (its key's, or any for keyless ones)."""
        if self.cluster is None:
            assert self.node is not None
            return self.node
        key = command_key(command)
        if key is None:
            return self.cluster.any_node()
        return await self.cluster.route(slot_of(key))

    async def primaries(self) -> list[Node]:
        """Every primary (one but on a cluster)."""
        if self.cluster is None:
            assert self.node is not None
            return [self.node]
        if not self.cluster.primaries():
            await self.cluster.refresh(force=True)
        return self.cluster.primaries()

    async def _find_primary(self) -> Address:
        """The primary's address as the first sentinel that knows it says."""
        master = self.target.master
        failures = []
        loop = asyncio.get_running_loop()
        for sentinel in list(self._sentinels):
            try:
                proto = await open_connection(
                    sentinel,
                    tls=False,
                    timeout=self.timeout,
                    factory=lambda: Connection(loop, timeout=self.timeout),
                )
            except RedisError as exc:
                failures.append(str(exc))
                continue
            conn = proto
            assert isinstance(conn, Connection)
            try:
                setup: list[Command] = []
                if self.target.sentinel_password:
                    setup.append(("AUTH", self.target.sentinel_password))
                setup.append(("SENTINEL", "get-master-addr-by-name", str(master)))
                reply = (await conn.run(setup))[-1]
            except RedisError as exc:
                failures.append(f"sentinel {sentinel}: {exc}")
                continue
            finally:
                conn.lose(RedisConnectionError("closed"))
            if reply:
                self._sentinels.remove(sentinel)
                self._sentinels.insert(0, sentinel)  # ask the one that answered first
                return Address(host=reply[0].decode(), port=int(reply[1]))
            failures.append(f"sentinel {sentinel} does not know a primary named {master!r}")
        raise RedisConnectionError("no sentinel named the primary: " + "; ".join(failures))

    async def _watch_sentinels(self) -> None:
        """Ask the sentinels once a second where the primary is, and leave the old
        one as soon as they name another: after a failover the old primary goes on
        taking writes until the sentinels turn it into a replica, which can take
        many seconds, and those writes are lost."""
        while True:
            await asyncio.sleep(SENTINEL_POLL_S)
            node = self.node
            if node is None or node.current is None:
                continue
            try:
                named = await self._find_primary()
            except RedisError:
                continue
            if named != node.address:
                log.warning("the sentinels name %s the primary now, not %s", named, node.address)
                node.reset()

    # -- sending --------------------------------------------------------------------

    def _durable(self, command: Command) -> bool:
        """Whether ``command`` changes data that must survive a failover."""
        name = command[0]
        name = (name if isinstance(name, bytes) else str(name).encode()).upper()
        if name in (b"EVALSHA", b"EVAL"):
            script = command[1]
            script = script if isinstance(script, bytes) else str(script).encode()
            return script not in self.volatile_scripts
        return name in WRITES

    async def call(self, *command: str | bytes | int | float, retry: bool = False) -> Any:
        """One command's reply. ``retry``: it is safe to repeat, so it is sent again
        if its connection was lost after sending. A write waits for replicas."""
        durable = self.wait_replicas > 0 and self._durable(command)
        node = self.node if self.node is not None else await self.node_for(command)
        asking = False
        deadline: float | None = None
        while True:
            conn = node.current  # the fast path: no coroutine of its own
            if conn is None:
                try:
                    conn = await self._connection(node)
                except RedisConnectionError as exc:  # nothing was sent: again, in time
                    self._lost(node)
                    deadline = await self._pause(deadline, exc)
                    continue
            future = conn.send(command, asking=asking)
            commit = conn.durable() if durable else None
            try:
                reply = await future
            except ResponseError as exc:
                node, asking, wait = await self._recover(exc, node)
                if wait:
                    deadline = await self._pause(deadline, exc)
                continue
            except StoreTimeout:
                node.reset()
                raise
            except RedisConnectionError as exc:
                self._lost(node)
                if not retry:
                    raise
                deadline = await self._pause(deadline, exc)
                continue
            if commit is not None:
                await self._committed(commit)
            return reply

    async def calls(self, commands: Sequence[Command], *, retry: bool = False) -> list[Any]:
        """Several commands written together; their replies in order (the first error
        is raised once every reply is in). ``retry`` as for :meth:`call`. Each
        command is carried out once; on a cluster they may go to different nodes."""
        if not commands:
            return []
        durable = self.wait_replicas > 0 and any(self._durable(c) for c in commands)
        try:
            if self.node is not None:
                nodes = [self.node] * len(commands)
            else:
                nodes = [await self.node_for(command) for command in commands]
            conns: dict[int, Connection] = {}
            for node in nodes:
                if id(node) not in conns:
                    conns[id(node)] = node.current or await self._connection(node)
        except (RedisConnectionError, ResponseError):
            # not sent: one by one, each with its own retries
            return await self._one_by_one(commands, retry=retry)
        futures = [
            conns[id(node)].send(command) for node, command in zip(nodes, commands, strict=True)
        ]
        commits = [conn.durable() for conn in conns.values()] if durable else []
        results: list[Any] = []
        failure: BaseException | None = None
        for index, future in enumerate(futures):
            try:
                results.append(await future)
            except ResponseError as exc:
                if _not_carried_out(exc):
                    results.append(await self.call(*commands[index]))
                else:
                    results.append(None)
                    failure = failure or exc
            except Exception as exc:  # keep reading the others' replies first
                results.append(None)
                failure = failure or exc
        if isinstance(failure, RedisConnectionError) and retry:
            for node in nodes:
                self._lost(node)
            return await self._one_by_one(commands, retry=True)
        if isinstance(failure, StoreTimeout):
            for node in nodes:
                node.reset()
        if failure is not None:
            raise failure
        for commit in commits:
            if commit is not None:
                await self._committed(commit)
        return results

    async def _one_by_one(self, commands: Sequence[Command], *, retry: bool) -> list[Any]:
        return list(await asyncio.gather(*(self.call(*c, retry=retry) for c in commands)))

    async def transaction(self, commands: Sequence[Command]) -> list[Any]:
        """``MULTI`` ... ``EXEC`` on the node of the first command's key (all keys must
        share its slot); the replies of the commands, in order. Retried when Redis
        did not carry it out (a redirect, a failover)."""
        durable = self.wait_replicas > 0 and any(self._durable(c) for c in commands)
        node = await self.node_for(commands[0])
        deadline: float | None = None
        while True:
            try:
                conn = await self._connection(node)
                unit = [("MULTI",), *commands, ("EXEC",)]
                futures = [conn.send(command) for command in unit]
                commit = conn.durable() if durable else None
                queued: list[BaseException] = []
                for future in futures[:-1]:
                    try:
                        await future
                    except ResponseError as exc:
                        queued.append(exc)
                try:
                    result = await futures[-1]
                except ResponseError:
                    if queued:
                        raise queued[0] from None
                    raise
                if commit is not None:
                    await self._committed(commit)
                return list(result)
            except ResponseError as exc:
                node, _, wait = await self._recover(exc, node)
                if wait:
                    deadline = await self._pause(deadline, exc)
            except StoreTimeout:
                node.reset()
                raise
            except RedisConnectionError:
                self._lost(node)
                raise

    async def each_primary(self, command: Command) -> list[Any]:
        """``command``'s reply from every primary (keyless commands: SCRIPT LOAD...)."""
        out = []
        for node in await self.primaries():
            conn = await self._connection(node)
            out.append(await conn.send(command))
        return out

    # -- failures -------------------------------------------------------------------

    async def _connection(self, node: Node) -> Connection:
        conn = node.current
        if conn is not None:
            return conn
        if self.target.kind == "sentinel" and self._watching is None:
            self._watching = asyncio.ensure_future(self._watch_sentinels())
        try:
            return await asyncio.wait_for(node.ready(), self.timeout)
        except ResponseError as exc:  # refused while logging in: AUTH, SELECT
            if str(exc).startswith(_CONFIG):
                raise self.misconfigured(
                    f"Redis at {node.address} refused the login: {exc}"
                ) from None
            raise RedisConnectionError(f"Redis at {node.address} refused the login: {exc}") from exc
        except TimeoutError:
            raise StoreTimeout(
                f"Redis at {node.address} did not answer within {self.timeout:g} s"
            ) from None

    async def _pause(self, deadline: float | None, error: BaseException) -> float:
        """Wait a little before the next attempt (the deadline starts at the first
        failure); re-raise the failure being handled once the timeout is spent."""
        now = asyncio.get_running_loop().time()
        if deadline is None:
            deadline = now + self.timeout
        if now >= deadline:
            raise error
        await asyncio.sleep(min(PAUSE_S, deadline - now))
        return deadline

    def _lost(self, node: Node) -> None:
        node.reset()
        if self.cluster is not None:
            self._spawn(self.cluster.refresh())

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _committed(self, commit: asyncio.Future[Any]) -> None:
        acked = await asyncio.shield(commit)
        if int(acked) < self.wait_replicas:
            raise NotReplicated(
                f"written, but {acked} of the {self.wait_replicas} replicas asked for "
                f"confirmed it within {self.timeout / 2:g} s"
            )

    async def _recover(self, exc: ResponseError, node: Node) -> tuple[Node, bool, bool]:
        """(node, with ASKING, after a pause) to send a command to again that Redis
        did not carry out; raises the error when it is not of that kind."""
        message = str(exc)
        redirect = parse_redirect(message)
        if redirect is not None:
            if self.cluster is None:
                raise self.misconfigured(
                    "BOTGW_REDIS_URL names one node of a Redis Cluster "
                    f"({message}); name the cluster: redis+cluster://host:port[,host:port...]"
                ) from None
            kind, slot, address = redirect
            if kind == "ASK":
                return self.cluster.node(address), True, False
            self.cluster.moved(slot, address)
            self._spawn(self.cluster.refresh())
            return self.cluster.node(address), False, False
        if message.startswith("READONLY"):
            # a replica now: the primary moved (Sentinel asks again, a cluster re-learns)
            self._lost(node)
            return node, False, True
        if message.startswith(_TRANSIENT):
            return node, False, True
        if message.startswith(_CONFIG):
            raise self.misconfigured(f"Redis refused a command: {message}") from None
        raise exc

    def misconfigured(self, message: str) -> StoreMisconfigured:
        """Note a configuration error (logged once a minute, fails readiness)."""
        now = time.monotonic()
        if self.problem is None or self.problem[1] != message or now - self.problem[0] > PROBLEM_S:
            log.error("Redis configuration error: %s", message)
            self.problem = (now, message)
        return StoreMisconfigured(message)

    def configuration_problem(self) -> str | None:
        """The configuration error seen in the last minute, if any."""
        if self.problem is not None and time.monotonic() - self.problem[0] < PROBLEM_S:
            return self.problem[1]
        return None

    # -- readiness ------------------------------------------------------------------

    async def writable(self) -> str | None:
        """None when every primary takes a write now (and, with ``wait_replicas``,
        its replicas confirm it); else what is wrong. Answers within the timeout."""
        problem = self.configuration_problem()
        if problem is not None:
            return problem
        try:
            async with asyncio.timeout(self.timeout * 1.5):
                for node in await self.primaries():
                    key = self._key_on(node)
                    await self.call("SET", key, str(time.time()), "PX", 60_000)
        except TimeoutError:
            return f"Redis did not take a write within {self.timeout:g} s"
        except RedisError as exc:
            return f"Redis does not take writes: {exc}"
        return None

    def _key_on(self, node: Node) -> str:
        """A key that lives on ``node`` (its first slot's)."""
        name = f"botgw:{{ready:{self.name or 'store'}}}"
        if self.cluster is None:
            return name
        owned = {slot for slot, owner in enumerate(self.cluster.slots) if owner is node}
        for n in range(100_000):
            key = f"botgw:{{ready{n}}}"
            if slot_of(key) in owned:
                return key
        return name

    def close(self) -> None:
        nodes = [self.node] if self.node is not None else []
        if self.cluster is not None:
            nodes = list(self.cluster.nodes.values())
        for node in nodes:
            if node is not None:
                node.close()
        for task in list(self._background):
            task.cancel()
        if self._watching is not None:
            self._watching.cancel()
            self._watching = None


def _not_carried_out(exc: ResponseError) -> bool:
    """Whether Redis refused ``exc``'s command before running it (safe to resend)."""
    message = str(exc)
    return parse_redirect(message) is not None or message.startswith(("READONLY", *_TRANSIENT))
