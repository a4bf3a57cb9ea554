"""Wake-ups: one pub/sub connection per process (per primary, on a cluster) for
every bot it serves.

The append script publishes ``"<id> <prev>"`` on the bot's channel. Readers (the
gateway hub, long-polls) register a callback per bot; no reader holds a blocking
Redis connection. Pub/sub is at-most-once, so after the subscription is re-made
every callback gets a wake-up with ``update_id=None`` meaning "look again".

A channel that was subscribed and is subscribed again (the connection was lost, or
its slot moved) gets its "look again" when Redis confirms the new subscription:
from then on every publish reaches us, so a read made after it misses nothing.

Subscribing is immediate: a change is sent while the connection keeps reading, so a
reader waits one Redis round trip for its channel, not a polling interval. The
connection is read with hiredis (:class:`~shared.store.pubsub.Subscriber`): every
message that arrived in one read is handled in one go, so the readers woken by a
burst of appends are served by one pass of their event loop. A channel
nobody listens to any more stays subscribed for :data:`LINGER_S`, so a poller's or
a reconnecting socket's next call finds it ready.

On a Redis Cluster the channels are shard channels (``SSUBSCRIBE``; the scripts
``SPUBLISH`` in the bot's slot), so a wake-up reaches only the nodes of its slot,
not every node. Each primary gets a connection of its own (a :class:`_Shard`) for
the channels of its slots; when a slot moves (Redis unsubscribes its channels) or
a node goes away, the slot map is learnt again and the channels are subscribed
where they live now, and their readers told to look again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from shared import keys
from shared.control import Control
from shared.control import parse as parse_control
from shared.ids import update_id_from_stream_id
from shared.store.connection import Node, login_commands, open_connection
from shared.store.pubsub import Subscriber
from shared.store.wire import Wire

__all__ = ["Wakeup", "Wakeups"]

log = logging.getLogger("botgw.wakeups")

LINGER_S = 60.0  # how long a channel without listeners stays subscribed
SWEEP_S = 5.0  # how often lingering channels are looked at
SUBSCRIBE_CHUNK = 1000  # channels per SUBSCRIBE command


def _chunks(channels: Sequence[bytes]) -> Iterator[Sequence[bytes]]:
    for start in range(0, len(channels), SUBSCRIBE_CHUNK):
        yield channels[start : start + SUBSCRIBE_CHUNK]


@dataclass(frozen=True, slots=True)
class Wakeup:
    bot_id: int
    update_id: int | None  # None: the subscription was re-made, look again
    prev_id: int | None
    control: Control | None = None  # a control message (shared.control) instead


Listener = Callable[[Wakeup], None]
StateListener = Callable[[bool], None]


class _Shard:
    """One pub/sub connection, to one node, and the channels it carries."""

    def __init__(self, owner: Wakeups, node: Node) -> None:
        self.owner = owner
        self.node = node
        self.wanted: set[bytes] = set()
        self.have: set[bytes] = set()  # subscribed (or being) on the connection
        self.changed = asyncio.Event()
        self.connected = False
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"wakeups {self.node.address}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    def _sync(self, connection: Subscriber) -> None:
        """Send the subscription changes since the last sync (replies come later)."""
        add = self.wanted - self.have
        drop = self.have - self.wanted
        if self.owner.sharded:  # a shard command takes channels of one slot only
            for channel in sorted(add):
                connection.command("SSUBSCRIBE", channel)
            for channel in sorted(drop):
                connection.command("SUNSUBSCRIBE", channel)
        else:
            for chunk in _chunks(sorted(add)):
                connection.command("SUBSCRIBE", *chunk)
            for chunk in _chunks(sorted(drop)):
                connection.command("UNSUBSCRIBE", *chunk)
        self.have = set(self.wanted)
        for channel in drop:
            self.owner._confirmed.discard(channel)

    async def _serve(self, connection: Subscriber) -> None:
        """Send subscription changes as soon as they happen while messages are read."""
        while True:
            changed = asyncio.ensure_future(self.changed.wait())
            try:
                await asyncio.wait(
                    (connection.lost, changed), timeout=SWEEP_S, return_when=FIRST_COMPLETED
                )
            finally:
                changed.cancel()
            if connection.lost.done():
                raise connection.lost.result()
            self.changed.clear()
            self.owner._expire_idle()
            self._sync(connection)

    async def _run(self) -> None:
        backoff = 0.05
        loop = asyncio.get_running_loop()
        wire = self.owner._wire
        while True:
            connection: Subscriber | None = None
            self.have = set()
            try:
                async with asyncio.timeout(wire.timeout * 2):
                    address = await self.node.locate()
                    proto = await open_connection(
                        address,
                        tls=wire.target.tls,
                        timeout=wire.timeout,
                        factory=lambda: Subscriber(loop, self.owner._handle),
                    )
                    connection = proto if isinstance(proto, Subscriber) else None
                    assert connection is not None
                    setup = login_commands(wire.target, name=wire.name, select=False)
                    await connection.login(setup)
                self.changed.clear()
                self._sync(connection)
                self.connected = True
                self.owner._shard_up(self)
                backoff = 0.05
                await self._serve(connection)
            except asyncio.CancelledError:
                self._down(connection)
                raise
            except (RedisError, OSError, TimeoutError) as exc:
                self._down(connection)
                log.warning("wake-up subscription lost (%s); re-subscribing", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
                await self.owner._shard_lost(self)

    def _down(self, connection: Subscriber | None) -> None:
        self.connected = False
        owner = self.owner
        for channel in self.have:
            if channel in owner._confirmed:
                owner._confirmed.discard(channel)
                owner._relook.add(channel)  # its readers look again once it is back
        self.owner._shard_down(self)
        if connection is not None:
            connection.close()


class Wakeups:
    """Callbacks per bot id, fed from the process's pub/sub connection(s)."""

    def __init__(self, wire: Wire) -> None:
        self._wire = wire
        self.sharded = wire.sharded
        self._listeners: dict[int, set[Listener]] = {}
        self._channels: dict[bytes, int] = {}
        self._idle_since: dict[int, float] = {}  # bots whose channel lingers unused
        # other channels: message callback, and a state callback told True on every
        # subscription confirmation (a re-made one included) and False when it is lost
        self._watched: dict[bytes, tuple[Callable[[bytes], None], StateListener]] = {}
        self._confirmed: set[bytes] = set()
        # channels that were subscribed and are being subscribed again: their readers
        # are told to look again when the new subscription is confirmed
        self._relook: set[bytes] = set()
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._shards: dict[int, _Shard] = {}  # by id() of their node
        self._placed: dict[bytes, _Shard] = {}  # where each wanted channel is subscribed
        # channels whose placement is to be looked at; on one node a placeholder
        # channel keeps the connection in subscribed mode
        self._dirty: set[bytes] = set() if self.sharded else {keys.idle_channel().encode()}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.connected = asyncio.Event()

    def _mark(self, channel: bytes) -> None:
        self._dirty.add(channel)
        self._changed.set()

    def add(self, bot_id: int, listener: Listener) -> None:
        listeners = self._listeners.setdefault(bot_id, set())
        listeners.add(listener)
        if len(listeners) == 1 and self._idle_since.pop(bot_id, None) is None:
            channel = keys.bot_wakeup_channel(bot_id).encode()
            self._channels[channel] = bot_id
            self._mark(channel)

    def remove(self, bot_id: int, listener: Listener) -> None:
        listeners = self._listeners.get(bot_id)
        if not listeners:
            return
        listeners.discard(listener)
        if not listeners:
            del self._listeners[bot_id]
            self._idle_since[bot_id] = time.monotonic()  # unsubscribed by a later sweep

    def watch(
        self, channel: str, on_message: Callable[[bytes], None], on_state: StateListener
    ) -> None:
        """Also deliver the messages of ``channel`` (for the life of this object)."""
        self._watched[channel.encode()] = (on_message, on_state)
        self._mark(channel.encode())

    def unwatch(self, channel: str) -> None:
        """Stop delivering the messages of a channel :meth:`watch` named."""
        if self._watched.pop(channel.encode(), None) is not None:
            self._confirmed.discard(channel.encode())
            self._mark(channel.encode())

    def is_subscribed(self, bot_id: int) -> bool:
        """Whether every publish on the bot's channel reaches this process now."""
        channel = keys.bot_wakeup_channel(bot_id).encode()
        shard = self._placed.get(channel)
        return shard is not None and shard.connected and channel in self._confirmed

    def _expire_idle(self) -> None:
        horizon = time.monotonic() - LINGER_S
        for bot_id, since in tuple(self._idle_since.items()):
            if since < horizon:
                del self._idle_since[bot_id]
                channel = keys.bot_wakeup_channel(bot_id).encode()
                self._channels.pop(channel, None)
                self._mark(channel)

    async def subscribed(self, bot_id: int) -> None:
        """Wait until the bot's channel is subscribed (so no later append is missed)."""
        channel = keys.bot_wakeup_channel(bot_id).encode()
        # Redis confirms a subscription on the pub/sub connection itself; only then is
        # every later publish on the channel certain to reach us.
        while not self.is_subscribed(bot_id):
            if self._task is None or self._task.done():
                raise RuntimeError("wake-ups are not running")
            waiter = self._confirmations.get(channel)
            if waiter is None or waiter.done():
                waiter = self._confirmations[channel] = asyncio.get_running_loop().create_future()
            # resolved by the confirmation; the timeout re-checks a restarted subscription
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiter), timeout=0.5)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="wakeups")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for shard in list(self._shards.values()):
            await shard.stop()
        self._shards.clear()
        self._placed.clear()
        self.connected.clear()

    async def _run(self) -> None:
        """Place every wanted channel on the shard of its node, whenever they change."""
        while True:
            self._changed.clear()
            try:
                await self._place()
            except (RedisError, OSError) as exc:
                log.warning("wake-up channels not placed (%s); trying again", exc)
                await asyncio.sleep(0.2)
                self._changed.set()
            await self._changed.wait()

    def _wanted(self, channel: bytes) -> bool:
        if channel in self._channels or channel in self._watched:
            return True
        return not self.sharded and channel == keys.idle_channel().encode()

    async def _place(self) -> None:
        dirty, self._dirty = self._dirty, set()
        try:
            for channel in dirty:
                placed = self._placed.get(channel)
                if not self._wanted(channel):
                    self._relook.discard(channel)
                    if placed is not None:
                        del self._placed[channel]
                        placed.wanted.discard(channel)
                        placed.changed.set()
                    continue
                node = self._wire.node if self._wire.node is not None else None
                if node is None:
                    node = await self._wire.node_for(("SSUBSCRIBE", channel))
                shard = self._shards.get(id(node))
                if shard is None:
                    shard = self._shards[id(node)] = _Shard(self, node)
                    shard.start()
                if placed is not shard:
                    if placed is not None:  # its slot moved: off the old node
                        placed.wanted.discard(channel)
                        placed.changed.set()
                    self._placed[channel] = shard
                    shard.wanted.add(channel)
                    shard.changed.set()
        except BaseException:
            self._dirty |= dirty  # looked at again on the next pass
            raise
        self._update_connected()

    def _replace_all(self) -> None:
        """Look at where every channel lives again (the slot map changed)."""
        self._dirty |= set(self._placed) | set(self._channels) | set(self._watched)
        self._changed.set()

    def _update_connected(self) -> None:
        if self._shards and all(s.connected for s in self._shards.values() if s.wanted):
            self.connected.set()
        else:
            self.connected.clear()

    def _shard_up(self, shard: _Shard) -> None:
        # anything published while the channels were not subscribed was lost: their
        # readers look again as each subscription is confirmed (_handle)
        self._update_connected()

    def _shard_down(self, shard: _Shard) -> None:
        self.connected.clear()
        for channel in shard.have:
            watched = self._watched.get(channel)
            if watched is not None:
                watched[1](False)

    async def _shard_lost(self, shard: _Shard) -> None:
        """A shard's connection failed: where its channels live may have changed."""
        if self._wire.cluster is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._wire.cluster.refresh(force=True)
            self._replace_all()

    def _moved_away(self, channel: bytes) -> None:
        """Redis unsubscribed a channel we still want (its slot moved): subscribe it
        where it lives now, and its readers look again."""
        shard = self._placed.pop(channel, None)
        if shard is not None:
            shard.wanted.discard(channel)
            shard.have.discard(channel)
        if self._wire.cluster is not None:
            task = asyncio.ensure_future(self._wire.cluster.refresh(force=True))
            task.add_done_callback(self._refreshed)
        self._mark(channel)
        self._relook.add(channel)  # and once more when subscribed where it lives now
        bot_id = self._channels.get(channel)
        if bot_id is not None:
            self._dispatch(Wakeup(bot_id=bot_id, update_id=None, prev_id=None))

    def _refreshed(self, task: asyncio.Future[None]) -> None:
        if not task.cancelled() and task.exception() is None:
            self._replace_all()

    def _dispatch(self, wakeup: Wakeup) -> None:
        for listener in tuple(self._listeners.get(wakeup.bot_id, ())):
            try:
                listener(wakeup)
            except Exception:  # one broken listener must not starve the others
                log.exception("wake-up listener failed")

    def _handle(self, kind: bytes, channel: bytes, data: Any) -> None:
        if kind in (b"subscribe", b"ssubscribe"):
            watched = self._watched.get(channel)
            if watched is not None:
                watched[1](True)
            elif channel in self._channels and (
                channel in self._confirmed or channel in self._relook
            ):
                # subscribed again (the connection was lost, or the slot moved, or
                # the client re-subscribed under us): anything published meanwhile
                # was lost, so the bot's readers look again, now that no more can be
                again = Wakeup(bot_id=self._channels[channel], update_id=None, prev_id=None)
                self._dispatch(again)
            self._relook.discard(channel)
            self._confirmed.add(channel)
            waiter = self._confirmations.pop(channel, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if kind in (b"unsubscribe", b"sunsubscribe"):
            self._confirmed.discard(channel)
            shard = self._placed.get(channel)
            if kind == b"sunsubscribe" and shard is not None and channel in shard.wanted:
                self._moved_away(channel)
            return
        if kind not in (b"message", b"smessage") or not isinstance(data, bytes):
            return
        watched = self._watched.get(channel)
        if watched is not None:
            watched[0](data)
            return
        bot_id = self._channels.get(channel)
        if bot_id is None:
            return
        text = data.decode(errors="replace")
        if not text[:1].isdigit():
            control = parse_control(text)
            if control is not None:  # anything else (another version's) is ignored
                self._dispatch(Wakeup(bot_id=bot_id, update_id=None, prev_id=None, control=control))
            return
        try:
            new, _, prev = text.partition(" ")
            wakeup = Wakeup(
                bot_id=bot_id,
                update_id=update_id_from_stream_id(new),
                prev_id=update_id_from_stream_id(prev) if prev else None,
            )
        except ValueError:
            wakeup = Wakeup(bot_id=bot_id, update_id=None, prev_id=None)
        self._dispatch(wakeup)
