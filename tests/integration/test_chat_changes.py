"""A chat's state changes and their updates in one step, against a real Redis: a
reaction, a pin, a vote, a poll's end and a membership are each written by the
same script call as their outbox entry, or not at all; a writer that died before
its drain leaves the entry, which the replay appends once (shared/store/outbox.py)."""

from __future__ import annotations

import pytest

from shared.codecs import pack, unpack
from shared.ids import random_id
from shared.models import ChatRecord
from shared.store import Store
from shared.store.outbox import MEMBERSHIP, Pending, Written

pytestmark = pytest.mark.topologies("node", "cluster")


def _event(user_id: int, kind: str, chat_id: int, **data: object) -> Pending:
    return Pending(user_id, kind, chat_id, pack({"chat_id": chat_id, **data}), user=True)


async def _queued(store: Store, chat_id: int) -> list[list[tuple[int, str, bool]]]:
    """The chat's outbox entries, undrained: (log owner, kind, a user's) per item."""
    return [
        [(p.bot_id, p.kind, p.user) for p in pending]
        for _, _, pending in await store.outbox.entries(chat_id)
    ]


async def _heard(store: Store, user_id: int, chat_id: int) -> list[tuple[str, dict[str, object]]]:
    entries = await store.userlog.read_after(user_id, 0, 1000)
    return [(e.kind, unpack(e.payload)) for e in entries if e.chat_id == chat_id]


async def _replayed(store: Store, chat_id: int) -> None:
    """The replay, as after a crash (it takes other tests' leftovers too)."""
    await store.outbox.replay(older_than_ms=-60_000)
    assert await store.outbox.pending_count(chat_id) == 0


async def test_a_reaction_and_its_event_are_one_step(store: Store) -> None:
    db, chat_id, user_id, message_id = store.entities, random_id(), random_id(), 7
    thumbs = [{"type": "emoji", "emoji": "👍"}]
    snapshot, reactions = await db.read_reactions(chat_id, message_id)
    assert reactions == {}
    entry = [_event(user_id, "message_reaction", chat_id, message_id=message_id)]
    written = await db.change_reaction(snapshot, chat_id, message_id, "u1", thumbs, [entry])
    assert written is not None
    # the state and the entry, before any drain
    assert await db.reaction(chat_id, message_id, "u1") == thumbs
    assert await db.reactions_of(chat_id, [message_id]) == {message_id: {"u1": thumbs}}
    assert await _queued(store, chat_id) == [[(user_id, "message_reaction", True)]]
    # a change computed from that same, now stale, read writes nothing
    assert await db.change_reaction(snapshot, chat_id, message_id, "u2", thumbs, [entry]) is None
    assert await db.reaction(chat_id, message_id, "u2") == []
    assert len(await _queued(store, chat_id)) == 1
    await _replayed(store, chat_id)
    assert [kind for kind, _ in await _heard(store, user_id, chat_id)] == ["message_reaction"]
    # taking the reaction back is a change of its own
    snapshot, _ = await db.read_reactions(chat_id, message_id)
    written = await db.change_reaction(snapshot, chat_id, message_id, "u1", [], [entry])
    assert written is not None and await db.reaction(chat_id, message_id, "u1") == []
    assert await db.reactions_of(chat_id, [message_id]) == {}


async def test_pins_and_their_event_are_one_step(store: Store) -> None:
    db, chat_id, user_id = store.entities, random_id(), random_id()
    await db.create_chat(ChatRecord(id=chat_id, type="group", title="pins", created=1))
    snapshot, chat = await db.read_chat(chat_id)
    assert chat is not None and chat.pinned == []
    entry = [_event(user_id, "pinned_message", chat_id, message_id=5)]
    assert await db.change_pins(snapshot, chat_id, [5], [entry]) is not None
    stored = await db.get_chat(chat_id)
    assert stored is not None and stored.pinned == [5]
    assert await _queued(store, chat_id) == [[(user_id, "pinned_message", True)]]
    assert await db.change_pins(snapshot, chat_id, [6], [entry]) is None  # a stale read
    stored = await db.get_chat(chat_id)
    assert stored is not None and stored.pinned == [5]
    await _replayed(store, chat_id)
    assert await _heard(store, user_id, chat_id) == [
        ("pinned_message", {"chat_id": chat_id, "message_id": 5})
    ]


async def test_a_vote_its_bot_updates_and_the_end_of_the_poll_are_one_step(
    store: Store,
) -> None:
    db, chat_id, user_id, bot_id = store.entities, random_id(), random_id(), random_id()
    message_id = 3
    snapshot, votes, closed = await db.read_poll(chat_id, message_id)
    assert (votes, closed) == ({}, False)
    answer = Pending(bot_id, "poll_answer", 0, pack({"poll_answer": {"option_ids": [1]}}))
    last = [
        Pending(bot_id, "poll", 0, pack({"poll": {"id": "p"}})),
        _event(user_id, "poll", chat_id, message_id=message_id),
    ]
    written = await db.change_poll(snapshot, chat_id, [[answer], last], member="u1", option_ids=[1])
    assert written is not None
    assert (await db.poll_votes(chat_id, message_id)) == ({"u1": [1]}, False)
    # a log takes one update per entry: the bot's two are two entries, in order
    assert await _queued(store, chat_id) == [
        [(bot_id, "poll_answer", False)],
        [(bot_id, "poll", False), (user_id, "poll", True)],
    ]
    stale = await db.change_poll(snapshot, chat_id, [last], member="u2", option_ids=[0])
    assert stale is None and (await db.poll_votes(chat_id, message_id))[0] == {"u1": [1]}
    snapshot, votes, _ = await db.read_poll(chat_id, message_id)
    assert await db.change_poll(snapshot, chat_id, [last]) is not None  # closed
    assert (await db.poll_votes(chat_id, message_id)) == ({"u1": [1]}, True)
    assert len(await _queued(store, chat_id)) == 3
    await _replayed(store, chat_id)
    assert [kind for kind, _ in await _heard(store, user_id, chat_id)] == ["poll", "poll"]
    kinds = [entry.kind for entry in await store.log.read_after(bot_id, 0, 10)]
    assert kinds == ["poll_answer", "poll", "poll"]


async def test_a_membership_and_its_events_are_one_step_its_user_set_repaired(
    store: Store,
) -> None:
    db, chat_id, user_id, other = store.entities, random_id(), random_id(), random_id()
    member = f"u{user_id}"
    snapshot, members = await db.read_members(chat_id)
    assert members == {}
    entries = [
        [
            Pending(0, MEMBERSHIP, chat_id, member.encode()),
            Pending(user_id, "chat", chat_id, pack({"chat": {"id": chat_id}}), user=True),
        ],
        [_event(u, "chat_member", chat_id, status="member") for u in (user_id, other)],
    ]
    written = await db.change_member(snapshot, chat_id, member, {"status": "member"}, entries)
    assert written is not None
    assert await db.member(chat_id, member) == {"status": "member"}
    assert await _queued(store, chat_id) == [
        [(0, MEMBERSHIP, False), (user_id, "chat", True)],
        [(user_id, "chat_member", True), (other, "chat_member", True)],
    ]
    # the member's own set of chats (another slot) waits for the drain
    assert chat_id not in await db.chats_of_user(user_id)
    joins = f"u{other}"
    stale = [[Pending(0, MEMBERSHIP, chat_id, joins.encode())]]
    assert await db.change_member(snapshot, chat_id, joins, {}, stale) is None
    await _replayed(store, chat_id)
    assert chat_id in await db.chats_of_user(user_id)
    assert [kind for kind, _ in await _heard(store, user_id, chat_id)] == ["chat", "chat_member"]
    assert [kind for kind, _ in await _heard(store, other, chat_id)] == ["chat_member"]
    # leaving: the set is repaired by the drain too, and a drain of an old entry
    # again (a replay racing the writer) leaves it as the members say
    snapshot, _ = await db.read_members(chat_id)
    left = [[Pending(0, MEMBERSHIP, chat_id, member.encode())], entries[1]]
    written = await db.change_member(snapshot, chat_id, member, None, left)
    assert written is not None and await db.member(chat_id, member) is None
    await store.outbox.drain(chat_id, written, left[-1])
    assert chat_id not in await db.chats_of_user(user_id)
    again = Written(message_id=0, seq=written.seq - 1, queued=1, replayed=False)
    await store.outbox.drain(chat_id, again, entries[0])
    assert chat_id not in await db.chats_of_user(user_id)
    assert await store.outbox.pending_count(chat_id) == 0


async def test_a_new_chats_event_is_queued_once_with_its_mark(store: Store) -> None:
    db, chat_id, user_id = store.entities, random_id(), random_id()
    chat = ChatRecord(id=chat_id, type="private", title="", created=1, user_id=user_id, bot_id=2)
    await db.create_chat(chat, announce=True)
    entry = [Pending(user_id, "chat", chat_id, pack({"chat": {"id": chat_id}}), user=True)]
    # a start that crashed after the link left the chat unannounced: the next one
    # queues the event, in the same call that marks the chat
    written = await db.announce_chat(chat_id, [entry])
    assert written is not None
    assert await _queued(store, chat_id) == [[(user_id, "chat", True)]]
    assert await db.announce_chat(chat_id, [entry]) is None  # once
    await _replayed(store, chat_id)
    assert [kind for kind, _ in await _heard(store, user_id, chat_id)] == ["chat"]
    # a chat made before the mark existed is never announced
    older = random_id()
    await db.create_chat(ChatRecord(id=older, type="group", title="old", created=1))
    assert await db.announce_chat(older, [entry]) is None
    assert await store.outbox.pending_count(older) == 0
