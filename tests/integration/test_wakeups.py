"""Wake-ups on the process's own pub/sub connection: delivery, order, batching of a
burst into one read, and recovery after Redis drops the connection."""

from __future__ import annotations

import asyncio

import pytest

from shared import keys
from shared.control import Takeover
from shared.ids import random_id
from shared.store import Store, Wakeup
from tests.conftest import wait_s

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]


async def test_appends_wake_their_bot_in_order(store: Store) -> None:
    bots = [random_id() for _ in range(3)]
    seen: dict[int, list[int | None]] = {bot: [] for bot in bots}
    wakeups = store.wakeups()
    wakeups.start()
    listeners = {}
    for bot in bots:
        listeners[bot] = lambda w, bot=bot: seen[bot].append(w.update_id)
        wakeups.add(bot, listeners[bot])
    try:
        for bot in bots:
            await wakeups.subscribed(bot)
        appended: dict[int, list[int]] = {bot: [] for bot in bots}
        for i in range(30):
            bot = bots[i % 3]
            result = await store.log.append(bot, kind="message", chat_id=1, body={"n": i})
            appended[bot].append(result.update_id)
        for _ in range(int(wait_s(100))):
            if all(len([u for u in seen[b] if u is not None]) >= 10 for b in bots):
                break
            await asyncio.sleep(0.02)
        for bot in bots:
            assert [u for u in seen[bot] if u is not None] == appended[bot]
    finally:
        for bot in bots:
            wakeups.remove(bot, listeners[bot])
        await wakeups.stop()


async def test_a_dropped_connection_is_remade_and_readers_told_to_look_again(
    store: Store,
) -> None:
    bot = random_id()
    got: list[Wakeup] = []
    changed = asyncio.Event()

    def listener(wakeup: Wakeup) -> None:
        got.append(wakeup)
        changed.set()

    wakeups = store.wakeups()
    wakeups.start()
    wakeups.add(bot, listener)
    try:
        await wakeups.subscribed(bot)
        got.clear()
        changed.clear()
        # Redis drops every pub/sub client (as a restart or a failover would)
        killed = await store.wire.each_primary(("CLIENT", "KILL", "TYPE", "pubsub"))
        assert sum(int(n) for n in killed) >= 1
        # the subscription is made again and the bot's readers look at the log again
        await asyncio.wait_for(changed.wait(), wait_s(10))
        assert got[0].update_id is None and got[0].control is None
        await wakeups.subscribed(bot)
        assert wakeups.is_subscribed(bot)
        changed.clear()
        result = await store.log.append(bot, kind="message", chat_id=1, body={"n": 1})
        await asyncio.wait_for(changed.wait(), wait_s(10))
        assert got[-1].update_id == result.update_id
    finally:
        wakeups.remove(bot, listener)
        await wakeups.stop()


async def test_control_messages_and_unknown_payloads(store: Store) -> None:
    bot = random_id()
    got: list[Wakeup] = []
    wakeups = store.wakeups()
    wakeups.start()
    wakeups.add(bot, got.append)
    try:
        await wakeups.subscribed(bot)
        got.clear()  # the "look again" every listener gets when the connection is made
        channel = keys.bot_wakeup_channel(bot)
        await store.redis.publish(channel, "takeover c 3 x")
        await store.redis.publish(channel, "12 not-an-id")
        for _ in range(int(wait_s(100))):
            if len(got) >= 2:
                break
            await asyncio.sleep(0.02)
        assert got[0].control == Takeover("c", 3, "x")
        # a payload that does not parse is a plain "look again", never a crash
        assert got[1].update_id is None and got[1].control is None
    finally:
        wakeups.remove(bot, got.append)
        await wakeups.stop()
