"""Reactions, pins, polls and memberships through REST: each change reaches each
member's log (and the bot's) exactly once, also after the outboxes are replayed as
after a crash (the change and its entry are one step: tests/integration/
test_chat_changes.py shows the entry written by the same call as the state)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared.codecs import unpack
from shared.settings import Settings
from shared.store import Store
from tests.api import Scene, scene_at
from tests.conftest import Stack

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]


@pytest.fixture
async def room(stack: Stack, settings: Settings) -> AsyncIterator[Scene]:
    """Two users and a bot in a group."""
    async with scene_at(stack.rest_url, settings, "at", users=2, group="Atomic") as scene:
        yield scene


async def _heard(store: Store, user_id: int, chat_id: int) -> list[tuple[str, dict[str, Any]]]:
    entries = await store.userlog.read_after(user_id, 0, 10_000)
    return [(e.kind, unpack(e.payload)) for e in entries if e.chat_id == chat_id]


async def test_each_change_reaches_each_member_once_after_a_replay(
    room: Scene, store: Store
) -> None:
    group = room.group
    chat_id = int(group)
    before = {u.user_id: len(await _heard(store, u.user_id, chat_id)) for u in room.users}
    sent = await room.as_bot("sendMessage", chat_id=group, text="react to me")
    mid = int(sent["message_id"])
    thumbs, fire = {"type": "emoji", "emoji": "👍"}, {"type": "emoji", "emoji": "🔥"}
    await room.as_user("setMessageReaction", chat_id=group, message_id=mid, reaction=[thumbs])
    await room.as_bot("setMessageReaction", chat_id=group, message_id=mid, reaction=[fire])
    await room.as_bot("pinChatMessage", chat_id=group, message_id=mid)
    await room.as_bot("unpinChatMessage", chat_id=group, message_id=mid)
    poll = await room.as_bot(
        "sendPoll", chat_id=group, question="which?", options=["a", "b"], is_anonymous=False
    )
    await room.as_other("answerPoll", chat_id=group, message_id=poll["message_id"], option_ids=[1])
    await room.as_bot("stopPoll", chat_id=group, message_id=poll["message_id"])
    for name in (room.other.username, room.bot.username):
        await room.as_user("removeChatMember", chat_id=group, username=name)
        await room.as_user("addChatMember", chat_id=group, username=name)
    new_group = await room.as_user("createGroup", title="Atomic too")
    private = await room.as_other("startBot", username=room.bot.username)
    await room.as_other("startBot", username=room.bot.username)  # started again

    # what a crashed writer would have left is appended by the replay: nothing twice
    await store.outbox.replay(older_than_ms=-60_000)
    assert await store.outbox.pending_count(chat_id) == 0

    common = ["message", "message_reaction", "message_reaction", "pinned_message"]
    common += ["pinned_message", "message", "poll", "poll"]
    heard = {
        u.user_id: (await _heard(store, u.user_id, chat_id))[before[u.user_id] :]
        for u in room.users
    }
    assert [kind for kind, _ in heard[room.user.user_id]] == common + ["chat_member"] * 4
    assert [kind for kind, _ in heard[room.other.user_id]] == [
        *common,
        "chat_member",
        "chat",
        "chat_member",
        "chat_member",
        "chat_member",
    ]
    for events in heard.values():
        # the second reaction event holds both reactions
        shown = [(r["emoji"], r["count"]) for r in events[2][1]["reactions"]]
        assert shown == [("👍", 1), ("🔥", 1)]
        assert events[3][1]["message_id"] == mid and events[4][1]["message_id"] is None
        votes = [o["voter_count"] for o in events[6][1]["poll"]["options"]]
        assert votes == [0, 1] and not events[6][1]["poll"]["is_closed"]
        assert events[7][1]["poll"]["is_closed"]
        members = [
            (data["member"]["username"], data["status"])
            for kind, data in events
            if kind == "chat_member"
        ]
        assert members == [
            (room.other.username, "left"),
            (room.other.username, "member"),
            (room.bot.username, "left"),
            (room.bot.username, "member"),
        ]
    created = await _heard(store, room.user.user_id, int(new_group["id"]))
    assert [kind for kind, _ in created] == ["chat"]
    started = await _heard(store, room.other.user_id, int(private["id"]))
    assert [kind for kind, _ in started] == ["chat", "message", "message"]  # two /start

    updates = await room.updates()
    kinds = [next(k for k in update if k != "update_id") for update in updates]
    assert kinds == [
        "message_reaction",
        "poll_answer",
        "poll",
        "poll",
        "my_chat_member",
        "my_chat_member",
        "message",
        "message",
    ]
    statuses = [u["my_chat_member"]["new_chat_member"]["status"] for u in updates[4:6]]
    assert statuses == ["left", "member"]
