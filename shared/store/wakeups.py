"""Wake-ups: one pub/sub connection per process for every bot it serves.

The append script publishes ``"<id> <prev>"`` on the bot's channel. Readers (the
gateway hub, long-polls) register a callback per bot; no reader holds a blocking
Redis connection. Pub/sub is at-most-once, so after the subscription is re-made
every callback gets a wake-up with ``update_id=None`` meaning "look again".

Subscribing is immediate: a change is sent while the connection keeps reading, so a
reader waits one Redis round trip for its channel, not a polling interval. The
connection is read with hiredis (:class:`~shared.store.pubsub.Subscriber`): every
message that arrived in one read is handled in one go, so the readers woken by a
burst of appends are served by one pass of their event loop. A channel
nobody listens to any more stays subscribed for :data:`LINGER_S`, so a poller's or
a reconnecting socket's next call finds it ready.
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
from shared.store.pubsub import Subscriber
from shared.store.wire import Endpoint

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


class Wakeups:
    """Callbacks per bot id, fed from one pub/sub connection."""

    def __init__(self, endpoint: Endpoint) -> None:
        self._endpoint = endpoint
        self._listeners: dict[int, set[Listener]] = {}
        self._channels: dict[bytes, int] = {}
        self._idle_since: dict[int, float] = {}  # bots whose channel lingers unused
        # other channels: message callback, and a state callback told True on every
        # subscription confirmation (a re-made one included) and False when it is lost
        self._watched: dict[bytes, tuple[Callable[[bytes], None], StateListener]] = {}
        self._have: set[bytes] = set()  # channels subscribed (or being) on the connection
        self._confirmed: set[bytes] = set()
        self._confirmations: dict[bytes, asyncio.Future[None]] = {}
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self.connected = asyncio.Event()

    def add(self, bot_id: int, listener: Listener) -> None:
        listeners = self._listeners.setdefault(bot_id, set())
        listeners.add(listener)
        if len(listeners) == 1 and self._idle_since.pop(bot_id, None) is None:
            self._channels[keys.bot_wakeup_channel(bot_id).encode()] = bot_id
            self._changed.set()

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
        self._changed.set()

    def _watch_lost(self) -> None:
        for _, on_state in self._watched.values():
            on_state(False)

    def is_subscribed(self, bot_id: int) -> bool:
        """Whether every publish on the bot's channel reaches this process now."""
        channel = keys.bot_wakeup_channel(bot_id).encode()
        return self.connected.is_set() and channel in self._confirmed

    def _expire_idle(self) -> None:
        horizon = time.monotonic() - LINGER_S
        for bot_id, since in tuple(self._idle_since.items()):
            if since < horizon:
                del self._idle_since[bot_id]
                self._channels.pop(keys.bot_wakeup_channel(bot_id).encode(), None)
                self._changed.set()

    async def subscribed(self, bot_id: int) -> None:
        """Wait until the bot's channel is subscribed (so no later append is missed)."""
        channel = keys.bot_wakeup_channel(bot_id).encode()
        # Redis confirms a subscription on the pub/sub connection itself; only then is
        # every later publish on the channel certain to reach us.
        while not (self.connected.is_set() and channel in self._confirmed):
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

    def _dispatch(self, wakeup: Wakeup) -> None:
        for listener in tuple(self._listeners.get(wakeup.bot_id, ())):
            try:
                listener(wakeup)
            except Exception:  # one broken listener must not starve the others
                log.exception("wake-up listener failed")

    def _wake_all(self) -> None:
        for bot_id in tuple(self._listeners):
            self._dispatch(Wakeup(bot_id=bot_id, update_id=None, prev_id=None))

    def _sync(self, connection: Subscriber) -> None:
        """Send the subscription changes since the last sync (replies come later)."""
        wanted = set(self._channels) | set(self._watched)
        add = wanted - self._have
        drop = self._have - wanted
        for chunk in _chunks(sorted(add)):
            connection.command("SUBSCRIBE", *chunk)
        for chunk in _chunks(sorted(drop)):
            connection.command("UNSUBSCRIBE", *chunk)
        self._have = wanted

    async def _serve(self, connection: Subscriber) -> None:
        """Send subscription changes as soon as they happen while messages are read."""
        while True:
            changed = asyncio.ensure_future(self._changed.wait())
            try:
                await asyncio.wait(
                    (connection.lost, changed), timeout=SWEEP_S, return_when=FIRST_COMPLETED
                )
            finally:
                changed.cancel()
            if connection.lost.done():
                raise connection.lost.result()
            self._changed.clear()
            self._expire_idle()
            self._sync(connection)

    async def _run(self) -> None:
        backoff = 0.05
        loop = asyncio.get_running_loop()
        while True:
            connection: Subscriber | None = None
            self._confirmed.clear()
            self._have = set()
            try:
                async with asyncio.timeout(self._endpoint.connect_timeout):
                    connection = await self._endpoint.connect(
                        lambda: Subscriber(loop, self._handle)
                    )
                    await connection.login(self._endpoint.login(select=False))
                # A placeholder channel keeps the connection in subscribed mode.
                connection.command("SUBSCRIBE", keys.idle_channel())
                self._changed.clear()
                self._sync(connection)
                self.connected.set()
                self._wake_all()
                backoff = 0.05
                await self._serve(connection)
            except asyncio.CancelledError:
                self.connected.clear()
                self._watch_lost()
                if connection is not None:
                    connection.close()
                raise
            except (RedisError, OSError) as exc:
                self.connected.clear()
                self._watch_lost()
                if connection is not None:
                    connection.close()
                log.warning("wake-up subscription lost (%s); re-subscribing", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _handle(self, kind: bytes, channel: bytes, data: Any) -> None:
        if kind == b"subscribe":
            watched = self._watched.get(channel)
            if watched is not None:
                watched[1](True)
            elif channel in self._confirmed and channel in self._channels:
                # re-subscribed under us (the client reconnected): anything published
                # meanwhile was lost, so the bot's readers look again
                again = Wakeup(bot_id=self._channels[channel], update_id=None, prev_id=None)
                self._dispatch(again)
            self._confirmed.add(channel)
            waiter = self._confirmations.pop(channel, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
            return
        if kind == b"unsubscribe":
            self._confirmed.discard(channel)
            return
        if kind != b"message" or not isinstance(data, bytes):
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
