"""Users' events through the chats' outboxes, against a real Redis: stored with the
message in one step, appended to each user's log once, replayed after a crash."""

from __future__ import annotations

import pytest

from shared import keys
from shared.codecs import pack, pack_open_map, unpack
from shared.ids import random_id
from shared.models import MessageRecord
from shared.store import Store
from shared.store.outbox import MESSAGE_ID_PLACEHOLDER, Pending

pytestmark = pytest.mark.topologies("node", "cluster")


def _message(chat_id: int, text: str) -> bytes:
    fields = MessageRecord(id=0, chat_id=chat_id, sender="u1", date=1, text=text).to_storage()
    del fields["i"]
    return pack_open_map(fields, "i")


def _events(users: list[int], bots: list[int], chat_id: int, text: str) -> list[Pending]:
    data = pack({"chat_id": chat_id, "message": {"message_id": MESSAGE_ID_PLACEHOLDER}})
    update = pack({"message": {"message_id": MESSAGE_ID_PLACEHOLDER, "text": text}})
    return [Pending(b, "message", chat_id, update) for b in bots] + [
        Pending(u, "message", chat_id, data, user=True) for u in users
    ]


async def _user_events(store: Store, user_id: int) -> list[tuple[str, int, int]]:
    entries = await store.userlog.read_after(user_id, 0, 1000)
    return [(e.kind, e.chat_id, unpack(e.payload)["message"]["message_id"]) for e in entries]


async def test_a_crashed_writers_user_events_are_replayed_once(store: Store) -> None:
    chat_id, users, bot = random_id(), [random_id(), random_id()], random_id()
    pending = _events(users, [bot], chat_id, "hi")
    written = await store.outbox.write(
        chat_id, mode="new", message=_message(chat_id, "hi"), pending=pending
    )
    # the writer died before its drain: the message is stored, its events wait
    assert await store.entities.get_message(chat_id, written.message_id) is not None
    assert await _user_events(store, users[0]) == []
    # (other tests' crashed writers may have left entries too: the replay takes all)
    assert await store.outbox.replay(older_than_ms=-60_000) >= 1
    assert await store.outbox.pending_count(chat_id) == 0
    for user_id in users:
        assert await _user_events(store, user_id) == [("message", chat_id, written.message_id)]
    assert len(await store.log.read_after(bot, 0, 10)) == 1
    # the writer comes back and drains too: nothing twice, in no log
    await store.outbox.drain(chat_id, written, pending)
    assert len(await _user_events(store, users[1])) == 1
    assert len(await store.log.read_after(bot, 0, 10)) == 1


async def test_a_delete_queues_events_only_when_there_was_a_message(store: Store) -> None:
    chat_id, user_id = random_id(), random_id()
    written = await store.outbox.write(chat_id, mode="new", message=_message(chat_id, "x"))
    data = pack({"chat_id": chat_id, "message_ids": [written.message_id]})
    gone = [Pending(user_id, "deleted_messages", chat_id, data, user=True)]
    deleted = await store.outbox.write(
        chat_id, mode="delete", message_id=written.message_id, pending=gone
    )
    assert deleted.seq > 0
    assert await store.entities.get_message(chat_id, written.message_id) is None
    ids = await store.entities.message_ids(chat_id, 0, 2**53)
    assert written.message_id not in ids
    await store.outbox.drain(chat_id, deleted, gone)
    again = await store.outbox.write(
        chat_id, mode="delete", message_id=written.message_id, pending=gone
    )
    assert again.seq == 0 and await store.outbox.pending_count(chat_id) == 0
    entries = await store.userlog.read_after(user_id, 0, 10)
    assert [unpack(e.payload)["message_ids"] for e in entries] == [[written.message_id]]


async def test_entries_written_before_user_events_still_decode(store: Store) -> None:
    chat_id, bot = random_id(), random_id()
    old_style = pack([[bot, "message", chat_id, pack({"message": {"text": "old"}})]])
    await store.wire.call("HSET", keys.chat_outbox(chat_id), "1", b"5|" + old_style)
    ((seq, message_id, (pending,)),) = await store.outbox.entries(chat_id)
    assert (seq, message_id, pending.bot_id, pending.user) == (1, 5, bot, False)
