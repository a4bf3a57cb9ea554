"""One reader per consumer (409 rules) and the tight-loop guard of getUpdates."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from shared import keys
from shared.settings import Settings
from shared.store import Store
from tests.conftest import Stack, wait_s
from tests.e2e.test_getupdates_offsets import Scene, ids, scene, texts
from tests.e2e.test_walking_skeleton import connect

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def http(stack: Stack) -> Any:
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=60) as client:
        yield client


async def started(store: Store, bot_id: int, consumer: str, generation: int) -> None:
    """Wait until the poll of ``generation`` has begun (its state is in Redis)."""
    for _ in range(int(wait_s(500))):
        value = await store.redis.hget(keys.poll_state(bot_id, consumer), "gen")
        if value is not None and int(value) >= generation:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"poll {generation} of {consumer} never started")


async def failure(task: asyncio.Task[httpx.Response]) -> dict[str, Any]:
    response = await asyncio.wait_for(task, wait_s(30))
    body = response.json()
    assert response.status_code == 409 and body["error_code"] == 409, body
    assert isinstance(body, dict)
    return body


def poll_task(s: Scene, **params: Any) -> asyncio.Task[httpx.Response]:
    return asyncio.create_task(s.as_bot.raw("getUpdates", **params))


LongPoll = tuple[Scene, int, asyncio.Task[httpx.Response]]


@pytest.fixture
async def long_poll(
    stack: Stack, settings: Settings, store: Store, http: httpx.AsyncClient
) -> LongPoll:
    """A new scene, the offset after what is there, and a long poll from it once it
    waits."""
    s = await scene(stack, settings, http)
    offset = ids(await s.poll())[-1] + 1
    task = poll_task(s, offset=offset, timeout=30)
    await started(store, s.bot_id, "default", 2)
    return s, offset, task


async def answered(task: asyncio.Task[httpx.Response], *expected: str) -> None:
    """The poll ``task`` ends with 200 and the messages of the ``expected`` texts."""
    response = await asyncio.wait_for(task, wait_s(30))
    assert response.status_code == 200 and texts(response.json()["result"]) == list(expected)


async def test_a_newer_poll_ends_a_waiting_older_one_with_409(long_poll: LongPoll) -> None:
    s, offset, older = long_poll
    newer = poll_task(s, offset=offset, timeout=30)
    body = await failure(older)
    assert body["code"] == "CONFLICT" and "newer getUpdates" in body["description"]
    assert not newer.done()
    await s.say("hello")
    await answered(newer, "hello")


async def test_polls_on_other_consumers_do_not_conflict(long_poll: LongPoll) -> None:
    s, _, first = long_poll
    assert await s.poll(consumer="second") != []  # another consumer: its own cursor
    await s.say("x")
    await answered(first, "x")


async def test_a_live_websocket_on_the_consumer_makes_polling_409(
    long_poll: LongPoll, stack: Stack, store: Store
) -> None:
    s, offset, waiting = long_poll
    token = s.as_bot.auth.split(" ", 1)[1]
    ws = await connect(stack, token)
    try:
        body = await failure(waiting)  # the identify ended the waiting poll
        assert body["code"] == "CONSUMER_IN_USE" and "WebSocket" in body["description"]
        response = await s.as_bot.raw("getUpdates", offset=offset, timeout=0)
        assert response.status_code == 409 and response.json()["code"] == "CONSUMER_IN_USE"
        assert texts(await s.poll(consumer="other")) == ["/start"]  # only that one is taken
    finally:
        await ws.close()
    for _ in range(int(wait_s(200))):  # the connection's mark goes with it
        if await store.log.reader(s.bot_id, "default") is None:
            break
        await asyncio.sleep(0.05)
    await s.say("back")
    assert texts(await s.poll(offset=offset)) == ["back"]


async def test_an_active_webhook_makes_polling_consumer_default_409(
    stack: Stack, settings: Settings, store: Store, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    start_id = ids(await s.poll(consumer="probe"))[0]
    waiting = poll_task(s, offset=start_id + 1, timeout=30)
    await started(store, s.bot_id, "default", 1)
    # nothing listens on this port and no dispatcher runs here: nothing is delivered
    assert await s.as_bot("setWebhook", url="http://127.0.0.1:9/hook") is True
    try:
        body = await failure(waiting)
        assert body["code"] == "WEBHOOK_ACTIVE" and "deleteWebhook" in body["description"]
        refused = await s.as_bot.raw("getUpdates", offset=start_id + 10**9)
        assert refused.status_code == 409 and refused.json()["code"] == "WEBHOOK_ACTIVE"
        cursor = await store.log.get_cursor(s.bot_id, "default")
        assert cursor is not None and cursor.update_id == start_id  # the refusal confirmed nothing
        assert texts(await s.poll(consumer="audit")) == ["/start"]
    finally:
        assert await s.as_bot("deleteWebhook") is True
    await s.say("after")
    assert texts(await s.poll()) == ["after"]


async def test_set_webhook_is_refused_while_a_websocket_reads_consumer_default(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    token = s.as_bot.auth.split(" ", 1)[1]
    ws = await connect(stack, token)
    try:
        response = await s.as_bot.raw("setWebhook", url="http://127.0.0.1:9/hook")
        body = response.json()
        assert response.status_code == 409 and body["code"] == "CONSUMER_IN_USE"
        info = await s.as_bot("getWebhookInfo")
        assert info["url"] == "" and info["active"] is False
    finally:
        await ws.close()


async def test_a_repeated_short_poll_with_nothing_new_becomes_a_long_poll(
    stack: Stack, settings: Settings, store: Store, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    offset = ids(await s.poll())[-1] + 1
    assert await s.poll(offset=offset) == []  # confirms /start; answered at once
    repeated = poll_task(s, offset=offset, timeout=0)  # the same call again, at once
    await started(store, s.bot_id, "default", 3)
    await asyncio.sleep(wait_s(0.3))
    assert not repeated.done()  # slowed: it waits instead of answering [] at once
    await s.say("news")
    await answered(repeated, "news")


async def test_re_reading_unconfirmed_updates_in_a_loop_is_paced_not_refused(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    began = time.monotonic()
    results = [await s.poll() for _ in range(3)]
    elapsed = time.monotonic() - began
    assert all(texts(r) == ["/start"] for r in results)  # every call is answered
    assert elapsed >= 1.9  # ... but at most one answer per second (ms rounding aside)
