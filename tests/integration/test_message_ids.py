"""Message ids against a real Redis: never issued twice in a chat, even by a primary
that lost the newest writes in a failover; the index of ids the history is read and
trimmed by, and chats written while ids were still counted."""

from __future__ import annotations

import asyncio

import pytest

from shared import keys
from shared.codecs import pack
from shared.ids import random_id
from shared.models import MessageRecord
from shared.settings import Settings
from shared.store import Store
from shared.store.messages import Messages

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]

ABOVE_EVERY_ID = 2**53


async def _send(db: Messages, chat_id: int, text: str) -> int:
    message = MessageRecord(id=0, chat_id=chat_id, sender="u1", date=1, text=text)
    return (await db.add_message(message)).id


async def _held(db: Messages, chat_id: int) -> list[int]:
    return [m.id for m in await db.get_message_range(chat_id, 1, ABOVE_EVERY_ID)]


@pytest.mark.parametrize("kept", [6, 0], ids=["tail_lost", "all_lost"])
async def test_a_failover_that_lost_the_newest_writes_issues_no_id_again(
    store: Store, kept: int
) -> None:
    chat_id, db = random_id(), store.entities
    before = [await _send(db, chat_id, f"a{n}") for n in range(10)]
    # The new primary has the chat as the old one had it after `kept` writes: the
    # later messages are gone and the chat's sequence names the last one it kept.
    for message_id in before[kept:]:
        await db.delete_message(chat_id, message_id)
    sequence = keys.chat_sequence(chat_id)
    if kept:
        await store.redis.set(sequence, before[kept - 1])
    else:
        await store.redis.delete(sequence)
    await asyncio.sleep(0.005)  # a failover takes far longer than a few ms
    after = [await _send(db, chat_id, f"b{n}") for n in range(10)]
    issued = before + after
    reissued = sorted(set(before) & set(after))
    assert reissued == [], f"ids issued twice: {reissued}"
    assert issued == sorted(issued) and len(set(issued)) == 20  # strictly increasing
    assert await _held(db, chat_id) == before[:kept] + after
    assert await db.last_message_id(chat_id) == after[-1]


async def test_concurrent_writers_get_distinct_increasing_ids(store: Store) -> None:
    chat_id, db = random_id(), store.entities
    ids = await asyncio.gather(*(_send(db, chat_id, f"m{n}") for n in range(300)))
    assert len(set(ids)) == 300 and all(0 < i < ABOVE_EVERY_ID for i in ids)
    assert await _held(db, chat_id) == sorted(ids)
    assert await db.last_message_id(chat_id) == max(ids)


async def test_the_cap_counts_messages_not_ids(store: Store) -> None:
    capped = Store.connect(
        Settings.from_env({}, redis_url=store.settings.redis_url, chat_history_max_messages=5)
    )
    try:
        chat_id, db = random_id(), capped.entities
        ids = [await _send(db, chat_id, f"m{n}") for n in range(12)]
        assert await _held(db, chat_id) == ids[-5:]
        assert await capped.redis.hlen(keys.chat_messages(chat_id)) == 5
        assert await capped.redis.zcard(keys.chat_message_ids(chat_id)) == 5
        assert await db.get_message(chat_id, ids[6]) is None
        # a deleted message leaves the index too: the cap still keeps five
        await db.delete_message(chat_id, ids[-1])
        ids.append(await _send(db, chat_id, "after"))
        assert await _held(db, chat_id) == ids[-6:-2] + ids[-1:]
    finally:
        await capped.close()


async def test_a_chat_written_while_ids_were_counted_keeps_its_history(store: Store) -> None:
    chat_id, db = random_id(), store.entities
    for n in (1, 2, 4):  # as the counter wrote them (3 was deleted): no index
        old = MessageRecord(id=n, chat_id=chat_id, sender="u1", date=0, text=f"old{n}")
        await store.redis.hset(keys.chat_messages(chat_id), str(n), pack(old.to_storage()))
    await store.redis.set(keys.chat_sequence(chat_id), 4)
    first = await _send(db, chat_id, "new")
    assert first > 4
    assert await _held(db, chat_id) == [1, 2, 4, first]
    assert await db.message_ids(chat_id, 1, ABOVE_EVERY_ID, limit=2, newest_first=True) == [
        first,
        4,
    ]
    kept = await db.get_message(chat_id, 2)
    assert kept is not None and kept.text == "old2"
