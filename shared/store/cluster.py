"""What a Redis Cluster client needs to know: the slot of a command, and who
serves each slot.

The slot map is learnt from ``CLUSTER SLOTS`` of any reachable node (the seeds of
the URL first) and corrected by ``MOVED`` replies; a refresh runs at most once at
a time and not more often than :data:`REFRESH_MIN_S`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from shared.redis_url import Address
from shared.store.connection import Command, Node

__all__ = ["SLOTS", "SlotMap", "command_key", "parse_redirect", "slot_of"]

log = logging.getLogger("botgw.redis")

SLOTS = 16384
REFRESH_MIN_S = 0.1

# commands whose key is not their first argument, or that have none
_KEYLESS = frozenset(
    {
        b"PING",
        b"ECHO",
        b"INFO",
        b"TIME",
        b"WAIT",
        b"SCRIPT",
        b"CLIENT",
        b"CLUSTER",
        b"ROLE",
        b"DBSIZE",
        b"CONFIG",
        b"DEBUG",
        b"FLUSHALL",
        b"FLUSHDB",
        b"PUBLISH",
        b"MULTI",
        b"EXEC",
        b"DISCARD",
        b"ASKING",
        b"READONLY",
        b"MEMORY",
        b"SLOWLOG",
        b"COMMAND",
        b"LASTSAVE",
        b"SAVE",
        b"BGSAVE",
    }
)
_SCRIPTS = frozenset({b"EVAL", b"EVALSHA", b"EVAL_RO", b"EVALSHA_RO", b"FCALL", b"FCALL_RO"})


def _bytes(value: str | bytes | int | float) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def command_key(command: Command) -> bytes | None:
    """The key (or shard channel) that decides where ``command`` runs; None when
    any node will do."""
    name = _bytes(command[0]).upper()
    if name in _KEYLESS:
        return None
    if name in _SCRIPTS:
        if len(command) > 3 and int(command[2]) > 0:
            return _bytes(command[3])
        return None
    if name in (b"XREAD", b"XREADGROUP"):
        words = [_bytes(part).upper() for part in command]
        if b"STREAMS" in words:
            at = words.index(b"STREAMS") + 1
            return _bytes(command[at]) if at < len(command) else None
        return None
    return _bytes(command[1]) if len(command) > 1 else None


def slot_of(key: bytes | str) -> int:
    return int(key_slot(key if isinstance(key, bytes) else key.encode()))


def parse_redirect(message: str) -> tuple[str, int, Address] | None:
    """(``MOVED``/``ASK``, slot, address) of a redirect error; None otherwise."""
    kind, _, rest = message.partition(" ")
    if kind not in ("MOVED", "ASK"):
        return None
    slot_text, _, where = rest.partition(" ")
    host, _, port_text = where.rpartition(":")
    if not slot_text.isdigit() or not port_text.isdigit():
        return None
    return kind, int(slot_text), Address(host=host.strip("[]") or "127.0.0.1", port=int(port_text))


class SlotMap:
    """The primary of every slot, learnt from the cluster; nodes made by ``make``."""

    def __init__(self, seeds: Iterable[Address], make: Callable[[Address], Node]) -> None:
        self._make = make
        self.seeds = tuple(seeds)
        self.nodes: dict[Address, Node] = {}
        self.slots: list[Node | None] = [None] * SLOTS
        self._refreshing: asyncio.Future[None] | None = None
        self._last_refresh = -REFRESH_MIN_S
        for seed in self.seeds:
            self.node(seed)

    def node(self, address: Address) -> Node:
        node = self.nodes.get(address)
        if node is None:
            node = self.nodes[address] = self._make(address)
        return node

    def any_node(self) -> Node:
        for node in self.slots:
            if node is not None:
                return node
        return self.node(self.seeds[0])

    def primaries(self) -> list[Node]:
        """Every node that serves a slot, in address order."""
        seen = {id(node): node for node in self.slots if node is not None}
        return sorted(seen.values(), key=lambda node: str(node.address))

    def moved(self, slot: int, address: Address) -> None:
        """A ``MOVED``: the slot is served elsewhere now (the rest is refreshed soon)."""
        self.slots[slot] = self.node(address)

    async def route(self, slot: int) -> Node:
        node = self.slots[slot]
        if node is None:
            await self.refresh()
            node = self.slots[slot]
            if node is None:
                raise RedisConnectionError(f"no node of the Redis Cluster serves slot {slot}")
        return node

    async def refresh(self, *, force: bool = False) -> None:
        """Learn the slot map again (shared by concurrent callers)."""
        loop = asyncio.get_running_loop()
        if self._refreshing is not None and not self._refreshing.done():
            await asyncio.shield(self._refreshing)
            return
        if not force and loop.time() - self._last_refresh < REFRESH_MIN_S:
            return
        self._refreshing = asyncio.ensure_future(self._refresh())
        try:
            await asyncio.shield(self._refreshing)
        finally:
            self._last_refresh = loop.time()

    async def _refresh(self) -> None:
        failures = []
        candidates = list(dict.fromkeys([*self.primaries(), *map(self.node, self.seeds)]))
        candidates += [node for node in self.nodes.values() if node not in candidates]
        for node in candidates:
            try:
                conn = await node.ready()
                (reply,) = await conn.run([("CLUSTER", "SLOTS")])
            except RedisError as exc:
                failures.append(f"{node.address}: {exc}")
                continue
            self._learn(reply, node.address)
            return
        raise RedisConnectionError(
            "no node of the Redis Cluster answered CLUSTER SLOTS: " + "; ".join(failures)
        )

    def _learn(self, reply: Any, asked: Address) -> None:
        slots: list[Node | None] = [None] * SLOTS
        for entry in reply:
            start, end, primary = int(entry[0]), int(entry[1]), entry[2]
            host = primary[0].decode() if primary[0] else asked.host
            if host == "?":
                continue
            node = self.node(Address(host=host, port=int(primary[1])))
            for slot in range(start, end + 1):
                slots[slot] = node
        for old, new in zip(self.slots, slots, strict=True):
            if old is not None and new is not None and new is not old and new.current is None:
                # a slot went to a node we do not talk to yet: a replica promoted
                # when its primary failed (a reshard goes to a primary we already
                # talk to). It may lack the newest writes: check before using it.
                new.needs_check = True
        self.slots = slots
        missing = sum(1 for node in slots if node is None)
        if missing:
            log.warning("the Redis Cluster serves %d of %d slots", SLOTS - missing, SLOTS)
