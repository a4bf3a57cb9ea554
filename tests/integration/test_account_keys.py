"""Creating users and bots as single-slot steps: username claims, their takeover
when the record they name was lost, and the listing of bots."""

from __future__ import annotations

import asyncio
import time

import pytest

from shared import keys
from shared.ids import random_id
from shared.store import Store
from shared.store.entities import CLAIM_GRACE_MS
from tests.conftest import unique

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]


async def new_user(store: Store, username: str) -> tuple[int, bool]:
    user_id = random_id()
    created = await store.entities.create_user(
        user_id=user_id, username=username, name=username, token_hash="h"
    )
    return user_id, created


async def new_bot(store: Store, username: str, owner_id: int) -> tuple[int, bool]:
    bot_id = random_id()
    created = await store.entities.create_bot(
        bot_id=bot_id,
        username=username,
        name="Bot",
        description="",
        owner_id=owner_id,
        token_hash="h",
    )
    return bot_id, created


async def test_a_taken_name_keeps_its_owner_and_leaves_no_record(store: Store) -> None:
    name = unique("n")
    first, created = await new_user(store, name)
    assert created and await store.entities.resolve_username(name) == f"u{first}"
    second, created = await new_user(store, name)
    assert not created
    assert await store.entities.get_user(second) is None  # the loser's record is gone
    bot, created = await new_bot(store, name, first)  # one namespace for users and bots
    assert not created and await store.entities.get_bot(bot) is None
    assert await store.entities.resolve_username(name) == f"u{first}"


async def test_a_claim_whose_record_was_lost_is_taken_over_after_the_grace(
    store: Store,
) -> None:
    stale, young = unique("n"), unique("n")
    old_ms = int(time.time() * 1000) - CLAIM_GRACE_MS - 1000
    await store.redis.set(keys.username_owner(stale), f"u{random_id()} {old_ms}")
    await store.redis.set(keys.username_owner(young), f"u{random_id()} {int(time.time() * 1000)}")

    user_id, created = await new_user(store, stale)
    assert created and await store.entities.resolve_username(stale) == f"u{user_id}"
    _, created = await new_user(store, young)  # maybe a creation still in flight
    assert not created


async def test_an_old_claim_whose_record_exists_is_kept(store: Store) -> None:
    name = unique("n")
    owner, created = await new_user(store, name)
    assert created
    await store.redis.set(keys.username_owner(name), f"u{owner} 1000")  # made long ago
    _, created = await new_user(store, name)
    assert not created and await store.entities.resolve_username(name) == f"u{owner}"


async def test_one_of_two_racing_takeovers_wins(store: Store) -> None:
    name = unique("n")
    await store.redis.set(keys.username_owner(name), f"b{random_id()} 1000")
    results = await asyncio.gather(*(new_user(store, name) for _ in range(4)))
    winners = [user_id for user_id, created in results if created]
    assert len(winners) == 1
    assert await store.entities.resolve_username(name) == f"u{winners[0]}"
    for user_id, created in results:
        assert (await store.entities.get_user(user_id) is not None) == created


async def test_a_bot_is_listed_under_its_owner_and_in_the_bot_index(store: Store) -> None:
    owner, _ = await new_user(store, unique("o"))
    bots = [(await new_bot(store, f"{unique('b')}_bot", owner))[0] for _ in range(3)]
    assert await store.entities.bots_of_owner(owner) == sorted(bots)
    every = await store.entities.all_bot_ids()
    assert set(bots) <= set(every) and every == sorted(every)
    for bot_id in bots:
        assert await store.redis.sismember(keys.bot_index(keys.index_bucket(bot_id)), str(bot_id))


async def test_creating_again_lists_a_bot_whose_creation_stopped_before_listing(
    store: Store,
) -> None:
    owner, _ = await new_user(store, unique("o"))
    other, _ = await new_user(store, unique("o"))
    name = f"{unique('b')}_bot"
    # a creation that stopped after the claim: record and name, no lists
    bot_id = random_id()
    await store.redis.hset(
        keys.bot_info(bot_id),
        mapping={"id": bot_id, "username": name, "name": "Bot", "owner_id": owner},
    )
    await store.redis.hset(keys.bot_info(bot_id), "token_hash", "h")
    assert await store.entities.claim_username(name, f"b{bot_id}")
    assert bot_id not in await store.entities.bots_of_owner(owner)

    _, created = await new_bot(store, name, other)  # someone else's try lists nothing
    assert not created and await store.entities.bots_of_owner(other) == []
    assert bot_id not in await store.entities.all_bot_ids()
    _, created = await new_bot(store, name, owner)  # the owner's retry: taken, but listed
    assert not created
    assert await store.entities.bots_of_owner(owner) == [bot_id]
    assert bot_id in await store.entities.all_bot_ids()
