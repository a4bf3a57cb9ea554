"""The store operations behind the API against a real redis-server, and the file store."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path

import pytest

from shared import keys
from shared.files import LocalBlobStore
from shared.ids import random_id
from shared.models import CallbackRecord, FileRecord, MessageRecord
from shared.store import Store

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]


async def test_concurrent_votes_are_all_counted_and_a_closed_poll_refuses(store: Store) -> None:
    chat_id, db = random_id(), store.entities
    results = await asyncio.gather(*(db.cast_vote(chat_id, 1, f"u{i}", [i % 3]) for i in range(60)))
    assert all(accepted for accepted, _ in results)
    votes, closed = await db.poll_votes(chat_id, 1)
    assert len(votes) == 60 and not closed
    assert sorted(v[0] for v in votes.values()).count(0) == 20
    # a changed vote reports the previous one; an empty one takes it back
    assert await db.cast_vote(chat_id, 1, "u0", [2]) == (True, [0])
    assert await db.cast_vote(chat_id, 1, "u0", []) == (True, [2])
    assert "u0" not in (await db.poll_votes(chat_id, 1))[0]
    assert await db.close_poll(chat_id, 1) is True
    assert await db.close_poll(chat_id, 1) is False
    assert await db.cast_vote(chat_id, 1, "u1", [1]) == (False, [])
    votes, closed = await db.poll_votes(chat_id, 1)
    assert closed and votes["u1"] == [1]


async def test_a_callback_query_is_answered_once_under_concurrency(store: Store) -> None:
    db = store.entities
    record = CallbackRecord(
        id=f"q{random_id()}", bot_id=1, user_id=2, chat_id=3, message_id=4, data="x", created=5
    )
    await db.create_callback(record, ttl=60)
    answers = await asyncio.gather(
        *(db.answer_callback(record.id, {"text": str(i)}) for i in range(20))
    )
    assert answers.count(True) == 1
    stored = await db.get_callback(record.id)
    assert stored is not None and stored.answer is not None
    assert stored.answer["text"] == str(answers.index(True))
    assert 0 < await store.redis.ttl(keys.callback_answers(record.id)) <= 60
    assert await db.get_callback("missing") is None


async def test_reactions_replace_per_member(store: Store) -> None:
    chat_id, db = random_id(), store.entities
    thumbs = [{"type": "emoji", "emoji": "👍"}]
    assert await db.set_reaction(chat_id, 7, "u1", thumbs) == []
    assert await db.set_reaction(chat_id, 7, "u2", thumbs) == []
    assert await db.set_reaction(chat_id, 7, "u1", []) == thumbs
    assert await db.reaction(chat_id, 7, "u1") == []
    assert await db.reaction(chat_id, 7, "u2") == thumbs


async def test_message_ranges_skip_deleted_messages(store: Store) -> None:
    chat_id, db = random_id(), store.entities
    ids = []
    for _ in range(5):
        message = MessageRecord(id=0, chat_id=chat_id, sender="u1", date=0)
        ids.append((await db.add_message(message)).id)
    assert await db.delete_message(chat_id, ids[2])
    assert not await db.delete_message(chat_id, ids[2])
    # an edit saved after the delete does not bring it back
    await db.save_message(MessageRecord(id=ids[2], chat_id=chat_id, sender="u1", date=1))
    assert await db.get_message(chat_id, ids[2]) is None
    kept = [ids[1], ids[3], ids[4]]
    assert [m.id for m in await db.get_message_range(chat_id, ids[1], ids[4])] == kept
    assert await db.message_ids(chat_id, ids[1], ids[4], limit=2) == kept[:2]
    assert await db.message_ids(chat_id, 1, ids[4], limit=2, newest_first=True) == [ids[4], ids[3]]
    assert await db.get_message_range(chat_id, ids[4], ids[3]) == []


async def test_new_messages_take_a_time_ordered_id_in_one_call(store: Store) -> None:
    chat_id, db = random_id(), store.entities
    sent = [
        MessageRecord(id=0, chat_id=chat_id, sender="u1", date=5, text="a" * n, extra={"k": n})
        for n in (1, 200, 70_000)  # the id follows strings and maps of every width
    ]
    before = int(time.time() * 1000)
    ids = [m.id for m in await asyncio.gather(*(db.add_message(m) for m in sent))]
    after = int(time.time() * 1000)
    assert len(set(ids)) == 3 and [m.id for m in sent] == ids
    # ms * 1024 + n by Redis' clock (this machine's): below 2^53, far from small
    assert all(before * 1024 <= i < (after + 1_000) * 1024 < 2**53 for i in ids)
    for message in sent:
        assert await db.get_message(chat_id, message.id) == message
    more = [
        (await db.add_message(MessageRecord(id=0, chat_id=chat_id, sender="b2", date=6))).id
        for _ in range(20)
    ]
    assert more == sorted(more) and more[0] > max(ids)  # strictly increasing per chat
    assert await db.last_message_id(chat_id) == more[-1]
    last = await db.get_message(chat_id, more[-1])
    assert last is not None and (last.id, last.sender) == (more[-1], "b2")


async def test_file_records_and_the_chats_they_were_sent_to(store: Store) -> None:
    db = store.entities
    record = FileRecord(
        file_id=f"F{random_id()}",
        file_unique_id="u",
        sha256="ab" * 32,
        size=3,
        kind="photo",
        mime_type="image/png",
        extension=".png",
        width=1,
        height=2,
    )
    await db.save_file(record)
    stored = await db.get_file(record.file_id)
    assert stored is not None and stored.file_path == f"photos/{record.file_id}.png"
    assert (stored.width, stored.height, stored.sha256) == (1, 2, "ab" * 32)
    await db.note_file_chat(record.file_id, 9)
    await db.note_file_chat(record.file_id, 8)
    assert await db.file_chats(record.file_id) == [8, 9]


async def test_local_blob_store_is_content_addressed(tmp_path: Path) -> None:
    blobs = LocalBlobStore(tmp_path)
    first = await blobs.put(io.BytesIO(b"hello" * 100_000))
    second = await blobs.put(io.BytesIO(b"hello" * 100_000))
    assert first == second and first.size == 500_000
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files == [blobs.path(first.sha256)]
    assert await blobs.size(first.sha256) == 500_000 and await blobs.exists(first.sha256)
    data = b"".join([chunk async for chunk in blobs.read(first.sha256)])
    assert data == b"hello" * 100_000
    assert await blobs.size("0" * 64) is None
    with pytest.raises(ValueError, match="SHA-256"):
        blobs.path("../etc/passwd")


async def test_the_one_bot_token_check(store: Store) -> None:
    from botgw.admin import messenger_session

    async with messenger_session(store.settings) as messenger:
        owner, _ = await messenger.accounts.create_user(f"tok{random_id() % 10**8}")
        bot, token = await messenger.accounts.create_bot(
            owner, username=f"tok{random_id() % 10**8}_bot", name="Token test"
        )
    db = store.entities
    found = await db.bot_for_token(token)
    assert found is not None and found[0].id == bot.id and found[1] == token
    telegram = await db.bot_for_token(token.removeprefix("bot_"))  # Telegram's form
    assert telegram is not None and telegram[1] == token
    for wrong in (None, "", "bot_x:y", token + "x", f"bot_{bot.id + 1}:" + token.split(":")[1]):
        assert await db.bot_for_token(wrong) is None
