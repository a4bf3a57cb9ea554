"""The chats' outboxes against a real Redis: a message and its updates in one step,
drains that never append twice, and the replay of what a crashed writer left."""

from __future__ import annotations

import asyncio

import pytest

from shared import keys
from shared.codecs import pack, pack_open_map, unpack
from shared.ids import random_id
from shared.models import MessageRecord
from shared.store import Store
from shared.store.outbox import MESSAGE_ID_PLACEHOLDER, Pending, Written

pytestmark = pytest.mark.topologies("node", "cluster")


def _message(chat_id: int, text: str) -> bytes:
    fields = MessageRecord(id=0, chat_id=chat_id, sender="u1", date=1, text=text).to_storage()
    del fields["i"]
    return pack_open_map(fields, "i")


def _pending(bot_ids: list[int], chat_id: int, text: str) -> list[Pending]:
    body = pack({"message": {"message_id": MESSAGE_ID_PLACEHOLDER, "text": text}})
    return [Pending(bot_id, "message", chat_id, body) for bot_id in bot_ids]


async def _texts(store: Store, bot_id: int) -> list[tuple[int, str]]:
    entries = await store.log.read_after(bot_id, 0, 10_000)
    bodies = [unpack(e.payload)["message"] for e in entries]
    return [(b["message_id"], b["text"]) for b in bodies]


async def _write(store: Store, chat_id: int, bots: list[int], text: str, **kw: object) -> Written:
    return await store.outbox.write(
        chat_id,
        mode="new",
        message=_message(chat_id, text),
        pending=_pending(bots, chat_id, text),
        **kw,  # type: ignore[arg-type]
    )


async def test_a_drained_write_reaches_every_log_with_its_message_id(store: Store) -> None:
    chat_id, bots = random_id(), [random_id(), random_id()]
    written = await _write(store, chat_id, bots, "hi")
    assert written.queued == 1 and written.seq > 0 and not written.replayed
    stored = await store.entities.get_message(chat_id, written.message_id)
    assert stored is not None and stored.text == "hi"
    await store.outbox.drain(chat_id, written, _pending(bots, chat_id, "hi"))
    for bot_id in bots:
        assert await _texts(store, bot_id) == [(written.message_id, "hi")]
    assert await store.outbox.pending_count(chat_id) == 0


async def test_an_undrained_entry_is_appended_by_the_next_write_in_order(store: Store) -> None:
    chat_id, bot_id = random_id(), random_id()
    crashed = await _write(store, chat_id, [bot_id], "first")  # its writer died here
    second = await _write(store, chat_id, [bot_id], "second")
    assert second.queued == 2 and second.seq > crashed.seq
    await store.outbox.drain(chat_id, second, _pending([bot_id], chat_id, "second"))
    assert await _texts(store, bot_id) == [
        (crashed.message_id, "first"),
        (second.message_id, "second"),
    ]
    # the crashed writer comes back to life and drains: nothing is appended twice
    await store.outbox.drain(chat_id, crashed, _pending([bot_id], chat_id, "first"))
    assert len(await _texts(store, bot_id)) == 2


async def test_concurrent_writers_keep_the_chats_order_in_every_log(store: Store) -> None:
    chat_id, bots = random_id(), [random_id(), random_id(), random_id()]

    async def send(n: int) -> None:
        text = f"m{n}"
        written = await _write(store, chat_id, bots, text)
        await store.outbox.drain(chat_id, written, _pending(bots, chat_id, text))

    await asyncio.gather(*(send(n) for n in range(200)))
    logs = [await _texts(store, bot_id) for bot_id in bots]
    assert all(len(entries) == 200 for entries in logs)
    assert logs[0] == logs[1] == logs[2]
    assert [m for m, _ in logs[0]] == sorted(m for m, _ in logs[0])  # message id order
    assert await store.outbox.pending_count(chat_id) == 0


async def test_replay_appends_what_crashed_writers_left_once(store: Store) -> None:
    chat_id, bots = random_id(), [random_id(), random_id()]
    left = [await _write(store, chat_id, bots, f"left{n}") for n in range(3)]
    # a writer that appended to one bot's log only, then died
    only_first = Written(left[0].message_id, left[0].seq, 1, False)
    await store.outbox.drain(chat_id, only_first, _pending(bots[:1], chat_id, "left0"))
    await _write_raw_back(store, chat_id, left[0], bots)
    assert await store.outbox.replay(older_than_ms=0) >= 3
    for bot_id in bots:
        assert await _texts(store, bot_id) == [
            (w.message_id, f"left{n}") for n, w in enumerate(left)
        ]
    assert await store.outbox.pending_count(chat_id) == 0
    assert await store.outbox.replay(older_than_ms=0) == 0  # and the index forgot the chat
    assert await store.wire.call("ZSCORE", keys.outbox_index(chat_id % 16), chat_id) is None


async def _write_raw_back(store: Store, chat_id: int, written: Written, bots: list[int]) -> None:
    """Put an entry back as its writer left it (appended to some logs, not deleted)."""
    items = [[p.bot_id, p.kind, p.chat_id, p.payload] for p in _pending(bots, chat_id, "left0")]
    raw = b"%d|" % written.message_id + pack(items)
    await store.wire.call("HSET", keys.chat_outbox(chat_id), written.seq, raw)


async def test_a_write_with_an_idempotency_key_is_stored_once(store: Store) -> None:
    chat_id, bot_id = random_id(), random_id()
    first = await _write(store, chat_id, [bot_id], "once", idempotency_key="k1")
    again = await _write(store, chat_id, [bot_id], "once", idempotency_key="k1")
    assert again.replayed and again.message_id == first.message_id and again.seq == 0
    other = await _write(store, chat_id, [bot_id], "twice", idempotency_key="k2")
    assert other.message_id > first.message_id
    assert await store.outbox.pending_count(chat_id) == 2
