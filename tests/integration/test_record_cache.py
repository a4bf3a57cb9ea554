"""Cached bots, users, chats and members: a change made through one store is seen at
once by the process that made it and, after its pub/sub message, by every other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shared.ids import random_id
from shared.models import ChatRecord
from shared.settings import Settings
from shared.store import Store, Wakeups
from tests.conftest import wait_s

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def cached(settings: Settings) -> AsyncIterator[tuple[Store, Wakeups]]:
    """A second store with the cache on, as a REST process has it."""
    store = Store.connect(settings)
    wakeups = store.wakeups()
    cache = store.entities.enable_cache(wakeups)
    wakeups.start()
    try:
        for _ in range(int(wait_s(200))):
            if cache.live:
                break
            await asyncio.sleep(0.05)
        assert cache.live, "the invalidation channel was never subscribed"
        yield store, wakeups
    finally:
        await wakeups.stop()
        await store.close()


async def eventually(check: object, what: str) -> None:
    for _ in range(int(wait_s(200))):
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.01)
    raise AssertionError(what)


async def new_bot(store: Store) -> int:
    bot_id = random_id()
    await store.entities.create_bot(
        bot_id=bot_id,
        username=f"c{bot_id}_bot",
        name="cached",
        description="",
        owner_id=1,
        token_hash="old",
    )
    return bot_id


async def test_a_change_by_another_process_reaches_the_cache(
    store: Store, cached: tuple[Store, Wakeups]
) -> None:
    reader, _ = cached
    bot_id = await new_bot(store)
    first = await reader.entities.get_bot(bot_id)
    assert first is not None and first.token_hash == "old"
    assert reader.entities.cache is not None
    hits = reader.entities.cache.hits
    assert await reader.entities.get_bot(bot_id) == first  # served from the cache
    assert reader.entities.cache.hits == hits + 1

    await store.entities.update_bot(bot_id, {"token_hash": "new", "active": False})

    async def changed() -> bool:
        bot = await reader.entities.get_bot(bot_id)
        return bot is not None and bot.token_hash == "new" and not bot.active

    await eventually(changed, "the other process kept the old token")


async def test_the_writing_process_reads_its_own_change_at_once(
    cached: tuple[Store, Wakeups],
) -> None:
    store, _ = cached
    bot_id = await new_bot(store)
    assert (await store.entities.get_bot(bot_id)) is not None
    await store.entities.update_bot(bot_id, {"token_hash": "rotated"})
    bot = await store.entities.get_bot(bot_id)  # no waiting: the same process
    assert bot is not None and bot.token_hash == "rotated"


async def test_a_chat_created_after_it_was_looked_up_is_found(
    store: Store, cached: tuple[Store, Wakeups]
) -> None:
    reader, _ = cached
    chat_id = random_id()
    assert await reader.entities.get_chat(chat_id) is None  # remembered as absent
    await store.entities.create_chat(ChatRecord(id=chat_id, type="group", title="t", created=1))

    async def found() -> bool:
        return await reader.entities.get_chat(chat_id) is not None

    await eventually(found, "a chat remembered as absent was never found")


async def test_members_follow_joins_and_leaves(store: Store, cached: tuple[Store, Wakeups]) -> None:
    reader, _ = cached
    chat_id = random_id()
    assert await reader.entities.member(chat_id, "b1") is None
    await store.entities.add_member(chat_id, "b1", {"status": "member"})

    async def joined() -> bool:
        return await reader.entities.member(chat_id, "b1") == {"status": "member"}

    await eventually(joined, "the new member was never seen")
    await store.entities.remove_member(chat_id, "b1")

    async def left() -> bool:
        return "b1" not in await reader.entities.members(chat_id)

    await eventually(left, "the removed member was still seen")


async def test_a_read_racing_a_change_is_not_kept(cached: tuple[Store, Wakeups]) -> None:
    store, _ = cached
    cache = store.entities.cache
    assert cache is not None
    bot_id = await new_bot(store)
    generation = cache.generation
    cache.on_message(f"b {bot_id}".encode())  # an invalidation arrives mid-read
    cache.put(("b", bot_id), "stale", generation)
    assert cache.get(("b", bot_id)) is None


async def test_without_the_subscription_nothing_is_served_from_the_cache(
    cached: tuple[Store, Wakeups],
) -> None:
    store, wakeups = cached
    cache = store.entities.cache
    assert cache is not None
    bot_id = await new_bot(store)
    await store.entities.get_bot(bot_id)
    await wakeups.stop()  # the subscription is gone: changes could go unheard
    assert not cache.live and len(cache) == 0
    hits = cache.hits
    await store.entities.get_bot(bot_id)
    assert cache.hits == hits
