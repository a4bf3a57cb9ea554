"""Wake-ups: one pub/sub connection per process for every bot it serves.

The append script publishes ``"<id> <prev>"`` on the bot's channel. Readers (the
gateway hub, long-polls) register a callback per bot; no reader holds a blocking
Redis connection. Pub/sub is at-most-once, so after the subscription is re-made
every callback gets a wake-up with ``update_id=None`` meaning "look again".

Subscribing is immediate: a change is sent while the connection keeps reading, so a
reader waits one Redis round trip for its channel, not a polling interval. A channel
nobody listens to any more stays subscribed for :data:`LINGER_S`, so a poller's or
a reconnecting socket's next call finds it ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio.client import PubSub, Redis
from redis.exceptions import RedisError

from shared import keys
from shared.ids import update_id_from_stream_id

__all__ = ["Wakeup", "Wakeups"]

log = logging.getLogger("botgw.wakeups")

LINGER_S = 60.0  # how long a channel without listeners stays subscribed
SWEEP_S = 5.0  # how often lingering channels are looked at


@dataclass(frozen=True, slots=True)
class Wakeup:
    bot_id: int
    update_id: int | None  # None: the subscription was re-made, look again
    prev_id: int | None
    control: str | None = None  # a control message (e.g. "takeover ...") instead


Listener = Callable[[Wakeup], None]
StateListener = Callable[[bool], None]


class Wakeups:
    """Callbacks per bot id, fed from one pub/sub connection."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._listeners: dict[int, set[Listener]] = {}
        self._channels: dict[bytes, int] = {}
        self._idle_since: dict[int, float] = {}  # bots whose channel lingers unused
        # other channels: message callback, and a state callback told True on every
        # subscription confirmation (a re-made one included) and False when it is lost
        self._watched: dict[bytes, tuple[Callable[[bytes], None], StateListener]] = {}
        self._pubsub: PubSub | None = None
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

    async def _sync(self, pubsub: PubSub) -> None:
        wanted = set(self._channels) | set(self._watched)
        have = set(pubsub.channels) - set(pubsub.pending_unsubscribe_channels)
        add = wanted - have
        drop = have - wanted
        if add:
            await pubsub.subscribe(*add)
        if drop:
            await pubsub.unsubscribe(*drop)

    async def _read(self, pubsub: PubSub) -> None:
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None:
                self._handle(message)

    async def _serve(self, pubsub: PubSub) -> None:
        """Read messages while sending subscription changes as soon as they happen."""
        reader = asyncio.create_task(self._read(pubsub), name="wakeups-read")
        try:
            while True:
                changed = asyncio.ensure_future(self._changed.wait())
                done, _ = await asyncio.wait(
                    (reader, changed), timeout=SWEEP_S, return_when=asyncio.FIRST_COMPLETED
                )
                changed.cancel()
                if reader in done:
                    reader.result()  # the connection failed: raise its error
                    raise RedisError("the wake-up connection stopped reading")
                self._changed.clear()
                self._expire_idle()
                await self._sync(pubsub)
        finally:
            reader.cancel()
            with contextlib.suppress(BaseException):
                await reader

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            pubsub = self._redis.pubsub()
            self._confirmed.clear()
            try:
                # A placeholder channel keeps the connection in subscribed mode.
                await pubsub.subscribe(keys.PREFIX + "{idx}:wake")
                self._pubsub = pubsub
                self._changed.clear()
                await self._sync(pubsub)
                self.connected.set()
                self._wake_all()
                backoff = 0.05
                await self._serve(pubsub)
            except asyncio.CancelledError:
                self.connected.clear()
                self._watch_lost()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                raise
            except (RedisError, OSError) as exc:
                self.connected.clear()
                self._watch_lost()
                self._pubsub = None
                log.warning("wake-up subscription lost (%s); re-subscribing", exc)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    def _handle(self, message: dict[str, object]) -> None:
        kind = message.get("type")
        channel = message.get("channel")
        data = message.get("data")
        if kind == "subscribe" and isinstance(channel, bytes):
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
        if kind == "unsubscribe" and isinstance(channel, bytes):
            self._confirmed.discard(channel)
            return
        if kind != "message":
            return
        if not isinstance(channel, bytes) or not isinstance(data, bytes):
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
            self._dispatch(Wakeup(bot_id=bot_id, update_id=None, prev_id=None, control=text))
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
