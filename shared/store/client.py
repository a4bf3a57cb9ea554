"""``store.redis``: the redis-py style commands the sub-stores use, on the :class:`Wire`.

The names, arguments and reply types are redis-py's (bytes, not decoded), for the
subset the store needs, so code reads as it would with redis-py; but every command
goes through the store's one connection per node, with its routing (one node,
Sentinel, Cluster), timeouts, retries and durability. Writes are durable (they
wait for ``BOTGW_REDIS_WAIT_REPLICAS`` replicas); ``publish`` is ``SPUBLISH`` on a
cluster, so a message goes to the shard of its channel only.

``pipeline(transaction=True)`` is ``MULTI``/``EXEC`` on one node, so all its keys
must share one slot; ``pipeline(transaction=False)`` sends its commands together,
to whichever nodes serve them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from shared.store.connection import Command
from shared.store.wire import Wire

__all__ = ["Client", "Pipeline"]

Convert = Callable[[Any], Any]


def _same(reply: Any) -> Any:
    return reply


def _ok(reply: Any) -> bool | None:
    return True if reply == b"OK" else None


def _bool(reply: Any) -> bool:
    return bool(reply)


def _pairs(reply: Any) -> dict[Any, Any]:
    return dict(zip(reply[::2], reply[1::2], strict=True))


def _set(reply: Any) -> set[Any]:
    return set(reply)


def _entries(reply: Any) -> list[tuple[bytes, dict[Any, Any]]]:
    return [(entry[0], _pairs(entry[1] or [])) for entry in reply or []]


def _streams(reply: Any) -> list[list[Any]]:
    return [[stream, _entries(entries)] for stream, entries in reply or []]


def _scored(reply: Any) -> list[tuple[Any, float]]:
    return [(member, float(score)) for member, score in zip(reply[::2], reply[1::2], strict=True)]


def _info(reply: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for line in reply.decode().splitlines():
        if not line or line.startswith("#") or ":" not in line:
            continue
        name, _, value = line.partition(":")
        out[name] = int(value) if value.lstrip("-").isdigit() else value
    return out


def _flatten(mapping: Mapping[Any, Any]) -> list[Any]:
    flat: list[Any] = []
    for name, value in mapping.items():
        flat.extend((name, value))
    return flat


class _Commands(ABC):
    """The commands, each built once; how they run is the subclass's ``_run``."""

    @abstractmethod
    def _run(self, command: Command, convert: Convert = _same) -> Any:
        """Run ``command`` (Client) or queue it (Pipeline)."""

    def execute_command(self, *command: Any) -> Any:
        return self._run(command)

    # -- strings and keys -----------------------------------------------------------

    def get(self, key: str) -> Any:
        return self._run(("GET", key))

    def set(
        self,
        key: str,
        value: Any,
        *,
        nx: bool = False,
        xx: bool = False,
        ex: int | None = None,
        px: int | None = None,
    ) -> Any:
        command: list[Any] = ["SET", key, value]
        if ex is not None:
            command += ["EX", int(ex)]
        if px is not None:
            command += ["PX", int(px)]
        if nx:
            command.append("NX")
        if xx:
            command.append("XX")
        return self._run(command, _ok)

    def incr(self, key: str) -> Any:
        return self._run(("INCR", key))

    def expire(self, key: str, seconds: int) -> Any:
        return self._run(("EXPIRE", key, int(seconds)), _bool)

    def pexpire(self, key: str, ms: int) -> Any:
        return self._run(("PEXPIRE", key, int(ms)), _bool)

    def ttl(self, key: str) -> Any:
        return self._run(("TTL", key))

    def pttl(self, key: str) -> Any:
        return self._run(("PTTL", key))

    # -- hashes ---------------------------------------------------------------------

    def hget(self, key: str, field: Any) -> Any:
        return self._run(("HGET", key, field))

    def hset(
        self,
        key: str,
        field: Any = None,
        value: Any = None,
        mapping: Mapping[Any, Any] | None = None,
    ) -> Any:
        flat: list[Any] = [] if field is None else [field, value]
        if mapping:
            flat += _flatten(mapping)
        return self._run(("HSET", key, *flat))

    def hsetnx(self, key: str, field: Any, value: Any) -> Any:
        return self._run(("HSETNX", key, field, value), _bool)

    def hgetall(self, key: str) -> Any:
        return self._run(("HGETALL", key), _pairs)

    def hmget(self, key: str, fields: Iterable[Any], *more: Any) -> Any:
        return self._run(("HMGET", key, *fields, *more))

    def hdel(self, key: str, *fields: Any) -> Any:
        return self._run(("HDEL", key, *fields))

    def hlen(self, key: str) -> Any:
        return self._run(("HLEN", key))

    def hincrby(self, key: str, field: Any, amount: int = 1) -> Any:
        return self._run(("HINCRBY", key, field, amount))

    # -- sets and sorted sets -------------------------------------------------------

    def sadd(self, key: str, *members: Any) -> Any:
        return self._run(("SADD", key, *members))

    def srem(self, key: str, *members: Any) -> Any:
        return self._run(("SREM", key, *members))

    def smembers(self, key: str) -> Any:
        return self._run(("SMEMBERS", key), _set)

    def sismember(self, key: str, member: Any) -> Any:
        return self._run(("SISMEMBER", key, member), _bool)

    def scard(self, key: str) -> Any:
        return self._run(("SCARD", key))

    def zadd(self, key: str, mapping: Mapping[Any, float], *, nx: bool = False) -> Any:
        flat: list[Any] = []
        for member, score in mapping.items():
            flat.extend((score, member))
        return self._run(("ZADD", key, *(["NX"] if nx else []), *flat))

    def zrem(self, key: str, *members: Any) -> Any:
        return self._run(("ZREM", key, *members))

    def zcard(self, key: str) -> Any:
        return self._run(("ZCARD", key))

    def zrange(self, key: str, start: int, end: int, *, withscores: bool = False) -> Any:
        if withscores:
            return self._run(("ZRANGE", key, start, end, "WITHSCORES"), _scored)
        return self._run(("ZRANGE", key, start, end))

    def zrangebyscore(
        self,
        key: str,
        min: Any,
        max: Any,
        start: int | None = None,
        num: int | None = None,
        *,
        withscores: bool = False,
    ) -> Any:
        command: list[Any] = ["ZRANGEBYSCORE", key, min, max]
        if withscores:
            command.append("WITHSCORES")
        if start is not None and num is not None:
            command += ["LIMIT", start, num]
        return self._run(command, _scored if withscores else _same)

    # -- streams --------------------------------------------------------------------

    def xadd(self, key: str, fields: Mapping[Any, Any], id: str = "*") -> Any:
        return self._run(("XADD", key, id, *_flatten(fields)))

    def xlen(self, key: str) -> Any:
        return self._run(("XLEN", key))

    def xrange(self, key: str, min: str = "-", max: str = "+", count: int | None = None) -> Any:
        extra: list[Any] = ["COUNT", count] if count is not None else []
        return self._run(("XRANGE", key, min, max, *extra), _entries)

    def xrevrange(
        self,
        key: str,
        max: str = "+",
        min: str = "-",
        count: int | None = None,
    ) -> Any:
        extra: list[Any] = ["COUNT", count] if count is not None else []
        return self._run(("XREVRANGE", key, max, min, *extra), _entries)

    def xread(self, streams: Mapping[str, Any], count: int | None = None) -> Any:
        extra: list[Any] = ["COUNT", count] if count is not None else []
        names = list(streams)
        ids = [streams[name] for name in names]
        return self._run(("XREAD", *extra, "STREAMS", *names, *ids), _streams)

    def xtrim(
        self,
        key: str,
        maxlen: int | None = None,
        *,
        approximate: bool = True,
        minid: str | None = None,
    ) -> Any:
        strategy: list[Any] = ["MAXLEN", maxlen] if minid is None else ["MINID", minid]
        if approximate:
            strategy.insert(1, "~")
        return self._run(("XTRIM", key, *strategy))


class Pipeline(_Commands):
    """Commands queued, then sent together by :meth:`execute` (see the module)."""

    def __init__(self, client: Client, *, transaction: bool) -> None:
        self._client = client
        self._transaction = transaction
        self._commands: list[Command] = []
        self._converts: list[Convert] = []

    async def __aenter__(self) -> Pipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._commands.clear()
        self._converts.clear()

    def __len__(self) -> int:
        return len(self._commands)

    def _run(self, command: Command, convert: Convert = _same) -> Pipeline:
        self._commands.append(command)
        self._converts.append(convert)
        return self

    def publish(self, channel: str, message: Any) -> Pipeline:
        return self._run((self._client.publish_command, channel, message))

    async def execute(self) -> list[Any]:
        commands, converts = list(self._commands), list(self._converts)
        self._commands.clear()
        self._converts.clear()
        if not commands:
            return []
        wire = self._client.wire
        if self._transaction:
            replies = await wire.transaction(commands)
            for reply in replies:
                if isinstance(reply, ResponseError):
                    raise reply
        else:
            replies = await self._client.run_scripts(commands)
        return [convert(reply) for convert, reply in zip(converts, replies, strict=True)]


class Client(_Commands):
    """redis-py's commands (a subset) on a :class:`Wire` (see the module docstring)."""

    def __init__(self, wire: Wire) -> None:
        self.wire = wire
        self.sources: dict[str, str] = {}  # sha -> Lua source, for NOSCRIPT
        self.publish_command = "SPUBLISH" if wire.sharded else "PUBLISH"

    async def _call(self, command: Command, convert: Convert) -> Any:
        return convert(await self.wire.call(*command))

    def _run(self, command: Command, convert: Convert = _same) -> Any:
        return self._call(command, convert)

    def pipeline(self, transaction: bool = True) -> Pipeline:
        return Pipeline(self, transaction=transaction)

    async def run_scripts(self, commands: Sequence[Command]) -> list[Any]:
        """Commands together, each EVALSHA whose script Redis lost sent again as EVAL."""
        try:
            return await self.wire.calls(commands)
        except NoScriptError:
            pass
        out = []
        for command in commands:
            if str(command[0]).upper() == "EVALSHA" and str(command[1]) in self.sources:
                command = ("EVAL", self.sources[str(command[1])], *command[2:])
            out.append(await self.wire.call(*command))
        return out

    async def delete(self, *names: str) -> int:
        """DEL, one key at a time on a cluster (keys of several slots)."""
        if not names:
            return 0
        if self.wire.sharded and len(names) > 1:
            counts = await self.wire.calls([("DEL", name) for name in names])
            return sum(int(count) for count in counts)
        return int(await self.wire.call("DEL", *names))

    async def exists(self, *names: str) -> int:
        counts = await self.wire.calls([("EXISTS", name) for name in names])
        return sum(int(count) for count in counts)

    async def publish(self, channel: str, message: Any) -> int:
        return int(await self.wire.call(self.publish_command, channel, message))

    async def ping(self) -> bool:
        return bool(await self.wire.call("PING") == b"PONG")

    async def info(self, section: str | None = None) -> dict[str, Any]:
        return _info(await self.wire.call("INFO", *([section] if section else [])))

    async def script_load(self, source: str) -> str:
        """Load a script into every primary; its sha."""
        shas = await self.wire.each_primary(("SCRIPT", "LOAD", source))
        sha = shas[0].decode()
        self.sources[sha] = source
        return str(sha)

    async def hscan_iter(
        self, key: str, match: str | None = None, count: int | None = None
    ) -> AsyncIterator[tuple[bytes, bytes]]:
        cursor = b"0"
        extra: list[Any] = []
        if match is not None:
            extra += ["MATCH", match]
        if count is not None:
            extra += ["COUNT", count]
        while True:
            cursor, flat = await self.wire.call("HSCAN", key, cursor, *extra, retry=True)
            for name, value in zip(flat[::2], flat[1::2], strict=True):
                yield name, value
            if cursor in (b"0", 0):
                return

    async def aclose(self, close_connection_pool: bool = True) -> None:
        """Nothing to do: the wire is closed with the store."""
