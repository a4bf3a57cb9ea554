"""Several dispatchers share the bots safely: one delivers a bot at a time, a crashed
one's bots are taken over when its leases expire, a stopped one hands them over.
And a dispatcher checks a webhook's URL again (SSRF guard) before it delivers."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from shared.settings import Settings
from shared.store import Store
from tests.conftest import Process, Stack, wait_s
from tests.e2e.test_getupdates_offsets import Scene, scene
from tests.e2e.test_webhooks_receiver import Receiver, dispatcher, settled

pytestmark = pytest.mark.asyncio

BOTS = 4


async def holder_pid(store: Store, bot_id: int) -> int:
    """The pid of the dispatcher holding the bot's lease (``host:pid:random``)."""
    for _ in range(int(wait_s(300))):
        holder = await store.readers.lease_holder(bot_id)
        if holder is not None:
            return int(holder.split(":")[1])
        await asyncio.sleep(0.05)
    raise AssertionError(f"nobody took bot {bot_id}")


async def round_of_messages(scenes: list[Scene], receiver: Receiver, label: str) -> None:
    for s in scenes:
        await s.say(f"{label}-1", f"{label}-2")
    for i, s in enumerate(scenes):
        path = f"/{i}"

        def arrived(path: str = path) -> bool:
            return f"{label}-2" in [d.text for d in receiver.to(path)]

        await receiver.wait_for(arrived)
        await settled(s)


async def test_dispatchers_share_take_over_after_a_crash_and_hand_over_on_stop(
    stack: Stack,
    settings: Settings,
    store: Store,
    receiver: Receiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    tmp = tmp_path_factory.mktemp("share")
    first = dispatcher(stack.redis_url, tmp, "first").start()
    second = dispatcher(stack.redis_url, tmp, "second").start()
    third: Process | None = None
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        scenes = [await scene(stack, settings, http) for _ in range(BOTS)]
        try:
            for i, s in enumerate(scenes):
                await s.as_bot("setWebhook", url=receiver.url(f"/{i}"), drop_pending_updates=True)
            await round_of_messages(scenes, receiver, "a")

            # kill -9 whichever dispatcher delivers bot 0: its leases expire, the other
            # one takes its bots over and goes on after the last committed update
            pids = {p.proc.pid: p for p in (first, second) if p.proc is not None}
            victim = pids[await holder_pid(store, scenes[0].bot_id)]
            survivor = second if victim is first else first
            victim.kill()
            await round_of_messages(scenes, receiver, "b")
            assert survivor.proc is not None
            for s in scenes:
                assert await holder_pid(store, s.bot_id) == survivor.proc.pid

            # a stopping dispatcher gives its bots back at once
            third = dispatcher(stack.redis_url, tmp, "third").start()
            survivor.signal(signal.SIGTERM)
            assert survivor.proc is not None
            assert survivor.proc.wait(timeout=wait_s(20)) == 0
            await round_of_messages(scenes, receiver, "c")
            assert third.proc is not None
            for s in scenes:
                assert await holder_pid(store, s.bot_id) == third.proc.pid
        finally:
            for s in scenes:
                await s.as_bot("deleteWebhook")
            for process in (first, second, third):
                if process is not None:
                    process.stop()

    # exactly once, in order, for every bot, across the crash and the handover
    expected = [f"{label}-{n}" for label in "abc" for n in (1, 2)]
    for i in range(BOTS):
        assert [d.text for d in receiver.to(f"/{i}")] == expected, receiver.summary()


async def test_the_ssrf_guard_runs_again_before_delivery(
    stack: Stack,
    settings: Settings,
    receiver: Receiver,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # this dispatcher trusts no loopback address, although the REST API that accepted
    # the URL does: the delivery-time check refuses, nothing reaches the receiver
    strict = dispatcher(
        stack.redis_url, tmp_path_factory.mktemp("strict"), "strict", BOTGW_WEBHOOK_ALLOW=""
    ).start()
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        s = await scene(stack, settings, http)
        try:
            assert await s.as_bot("setWebhook", url=receiver.url("/guarded")) is True
            for _ in range(int(wait_s(300))):
                info = await s.as_bot("getWebhookInfo")
                if not info["active"]:
                    break
                await asyncio.sleep(0.05)
            assert info["active"] is False, info
            assert "the webhook URL is refused" in info["last_error_message"]
            assert "https://" in info["last_error_message"]
            assert info["pending_update_count"] == 1
            assert receiver.deliveries == []
        finally:
            await s.as_bot("deleteWebhook")
            strict.stop()
