"""The users' event stream, GET /client/events: what each user hears, resuming, gaps."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared import keys
from shared.ids import hash_secret
from shared.settings import Settings
from shared.store import Store
from tests.api import Account, Scene, scene_at
from tests.conftest import RedisServer, Stack, rest_process, running, wait_s
from tests.e2e.test_rest_drain import _errors_logged

pytestmark = pytest.mark.asyncio


@dataclass
class Event:
    id: str | None
    type: str
    data: dict[str, Any]


class EventStream:
    """A real SSE reader over httpx: frames parsed as a browser's EventSource would."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()
        self.comments = 0

    async def next(self) -> Event:
        async with asyncio.timeout(wait_s(20)):
            fields: dict[str, str] = {}
            async for line in self._lines:
                if line == "":
                    if "data" in fields:
                        return Event(
                            fields.get("id"),
                            fields.get("event", "message"),
                            json.loads(fields["data"]),
                        )
                    fields = {}
                    continue
                if line.startswith(":"):
                    self.comments += 1
                    continue
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            raise EOFError("the stream ended")

    async def positioned(self) -> None:
        """Until the stream's first frame (``retry:``): every event after it comes."""
        async with asyncio.timeout(wait_s(20)):
            async for line in self._lines:
                if line.startswith("retry:"):
                    return
        raise EOFError("the stream ended")

    async def keepalive(self) -> None:
        """Until the next comment line (a keepalive), with no event before it."""
        async with asyncio.timeout(wait_s(30)):
            async for line in self._lines:
                if line.startswith(":"):
                    return
                assert line == "", f"an event before the keepalive: {line}"
        raise EOFError("the stream ended")

    async def until(self, kind: str) -> tuple[Event, list[Event]]:
        """The next event of ``kind``, and the events before it."""
        before: list[Event] = []
        while True:
            event = await self.next()
            if event.type == kind:
                return event, before
            before.append(event)


def _stream(http: httpx.AsyncClient, user: Account, **headers: str) -> Any:
    return http.stream(
        "GET",
        "/client/events",
        headers={"Authorization": f"Bearer {user.token}", **headers},
        timeout=httpx.Timeout(wait_s(30)),
    )


@asynccontextmanager
async def _open(
    http: httpx.AsyncClient, user: Account, **headers: str
) -> AsyncIterator[EventStream]:
    async with _stream(http, user, **headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(response)
        await stream.positioned()
        yield stream


@pytest.fixture
async def room(stack: Stack, settings: Settings) -> AsyncIterator[Scene]:
    """Two users and a bot in a group."""
    async with scene_at(stack.rest_url, settings, "ev", users=2, group="Events") as scene:
        yield scene


async def _head(scene: Scene, user_index: int) -> str:
    """An event id at the user's log head: a message of their own marks it."""
    caller = scene.as_users[user_index]
    marker = await caller("createGroup", title="marker")
    async with _open(scene.http, scene.users[user_index], **{"Last-Event-ID": "0"}) as stream:
        while True:
            event = await stream.next()
            if event.type == "chat" and event.data["chat"]["id"] == marker["id"]:
                assert event.id is not None
                return event.id


@pytest.mark.topologies("node", "cluster")  # the events cross slots: chat, users, bots
async def test_a_member_hears_the_chats_events(room: Scene) -> None:
    group = room.group
    after = await _head(room, 1)
    sent = await room.as_user("sendMessage", chat_id=group, text="hello all")
    bot_says = await room.as_bot("sendMessage", chat_id=group, text="I am a bot")
    await room.as_user("editMessageText", chat_id=group, message_id=sent["message_id"], text="hi")
    await room.as_user(
        "setMessageReaction",
        chat_id=group,
        message_id=sent["message_id"],
        reaction=[{"type": "emoji", "emoji": "👍"}],
    )
    await room.as_bot("pinChatMessage", chat_id=group, message_id=bot_says["message_id"])
    await room.as_user("deleteMessage", chat_id=group, message_id=sent["message_id"])
    await room.as_user("removeChatMember", chat_id=group, username=room.bot.username)

    async with _open(room.http, room.other, **{"Last-Event-ID": after}) as stream:
        event = await stream.next()
        assert (event.type, event.data["chat_id"]) == ("message", group)
        message = event.data["message"]
        assert message["message_id"] == sent["message_id"] and message["text"] == "hello all"
        assert message["from"]["id"] == str(room.user.user_id)  # real ids, as strings
        assert message["chat"]["id"] == group
        assert message["reactions"] == []
        ids = [int(event.id or 0)]

        event = await stream.next()
        assert event.type == "message"
        assert event.data["message"]["text"] == "I am a bot"
        assert event.data["message"]["from"]["is_bot"] is True
        ids.append(int(event.id or 0))

        event = await stream.next()
        assert event.type == "edited_message" and event.data["message"]["text"] == "hi"
        event = await stream.next()
        assert event.type == "message_reaction"
        assert event.data == {
            "chat_id": group,
            "message_id": sent["message_id"],
            "reactions": [{"emoji": "👍", "count": 1, "chosen": False}],
        }
        event = await stream.next()
        assert event.data == {"chat_id": group, "message_id": bot_says["message_id"]}
        assert event.type == "pinned_message"
        event = await stream.next()
        assert event.type == "deleted_messages"
        assert event.data == {"chat_id": group, "message_ids": [sent["message_id"]]}
        event = await stream.next()
        assert event.type == "chat_member"
        assert event.data["status"] == "left"
        assert event.data["member"]["username"] == room.bot.username
        ids.append(int(event.id or 0))
        assert ids == sorted(ids) and len(set(ids)) == len(ids)


async def test_the_reactor_sees_its_choice_and_history_carries_reactions(room: Scene) -> None:
    sent = await room.as_bot("sendMessage", chat_id=room.group, text="vote with emoji")
    await room.as_other(
        "setMessageReaction",
        chat_id=room.group,
        message_id=sent["message_id"],
        reaction=[{"type": "emoji", "emoji": "🔥"}],
    )
    await room.as_bot("pinChatMessage", chat_id=room.group, message_id=sent["message_id"])
    for caller, chosen in ((room.as_user, False), (room.as_other, True)):
        (message,) = await caller(
            "getChatHistory", chat_id=room.group, since=int(sent["message_id"]) - 1
        )
        assert message["reactions"] == [{"emoji": "🔥", "count": 1, "chosen": chosen}]
        chats = {chat["id"]: chat for chat in await caller("getChats")}
        assert chats[room.group]["pinned_message"]["message_id"] == sent["message_id"]


async def test_callback_answers_reach_only_the_presser(room: Scene) -> None:
    keyboard = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
    sent = await room.as_bot("sendMessage", chat_id=room.group, text="press", reply_markup=keyboard)
    before = await _head(room, 0)
    pressed = await room.as_other(
        "pressButton", chat_id=room.group, message_id=sent["message_id"], callback_data="go"
    )
    await room.as_bot("answerCallbackQuery", callback_query_id=pressed["id"], text="Done!")
    await room.as_bot("sendMessage", chat_id=room.group, text="after the answer")
    async with _open(room.http, room.other, **{"Last-Event-ID": before}) as stream:
        answer, _ = await stream.until("callback_answer")
        assert answer.data == {
            "callback_query_id": pressed["id"],
            "chat_id": room.group,
            "message_id": sent["message_id"],
            "text": "Done!",
            "show_alert": False,
            "url": None,
        }
    async with _open(room.http, room.user, **{"Last-Event-ID": before}) as stream:
        last, earlier = await stream.until("message")
        assert last.data["message"]["text"] == "after the answer"
        assert "callback_answer" not in [e.type for e in earlier]


async def test_polls_actions_and_new_chats(room: Scene) -> None:
    after = await _head(room, 1)
    poll = await room.as_bot("sendPoll", chat_id=room.group, question="Tea?", options=["yes", "no"])
    async with _open(room.http, room.other, **{"Last-Event-ID": after}) as stream:
        event = await stream.next()
        assert event.type == "message" and event.data["message"]["poll"]["question"] == "Tea?"
        await room.as_user(
            "answerPoll", chat_id=room.group, message_id=poll["message_id"], option_ids=[0]
        )
        event = await stream.next()
        assert event.type == "poll" and event.data["message_id"] == poll["message_id"]
        assert [o["voter_count"] for o in event.data["poll"]["options"]] == [1, 0]
        # live only: the action is heard by a stream that is open
        await room.as_bot("sendChatAction", chat_id=room.group, action="typing")
        event = await stream.next()
        assert event.type == "chat_action" and event.id is None
        assert event.data["action"] == "typing" and event.data["chat_id"] == room.group
        assert event.data["from"]["username"] == room.bot.username
        group = await room.as_user("createGroup", title="Second")
        await room.as_user("addChatMember", chat_id=group["id"], username=room.other.username)
        event = await stream.next()
        assert event.type == "chat" and event.data["chat"]["id"] == group["id"]
        event = await stream.next()
        assert event.type == "chat_member" and event.data["status"] == "member"
        assert event.data["member"]["id"] == str(room.other.user_id)


async def test_non_members_hear_nothing_of_a_chat(room: Scene, settings: Settings) -> None:
    async with (
        scene_at(str(room.http.base_url), settings, "ev", users=1) as outsider,
        _open(room.http, outsider.user, **{"Last-Event-ID": "0"}) as stream,
    ):
        await room.as_user("sendMessage", chat_id=room.group, text="members only")
        mine = await outsider.as_user("createGroup", title="Mine")
        event = await stream.next()  # the first event the outsider ever gets is its own
        assert event.type == "chat" and event.data["chat"]["id"] == mine["id"]


async def test_resume_after_an_id_and_at_the_head(room: Scene) -> None:
    after = await _head(room, 1)
    texts = [f"m{n}" for n in range(3)]
    for text in texts:
        await room.as_user("sendMessage", chat_id=room.group, text=text)
    async with _open(room.http, room.other, **{"Last-Event-ID": after}) as stream:
        first = await stream.next()
    assert first.data["message"]["text"] == "m0"
    async with room.http.stream(
        "GET",
        f"/client/events?after={first.id}",
        headers={"Authorization": f"Bearer {room.other.token}"},
    ) as response:
        stream = EventStream(response)
        await stream.positioned()
        assert [(await stream.next()).data["message"]["text"] for _ in range(2)] == ["m1", "m2"]
    # without a cursor: only what comes next
    async with _open(room.http, room.other) as stream:
        await room.as_user("sendMessage", chat_id=room.group, text="fresh")
        event = await stream.next()
        assert event.data["message"]["text"] == "fresh"


async def test_a_cursor_older_than_the_log_gets_a_gap(room: Scene, store: Store) -> None:
    after = await _head(room, 1)
    for text in ("lost", "kept"):
        await room.as_user("sendMessage", chat_id=room.group, text=text)
    # retention takes the oldest entries: here, every one but the newest
    await store.redis.xtrim(keys.user_log(room.other.user_id), maxlen=1, approximate=False)
    async with _open(room.http, room.other, **{"Last-Event-ID": after}) as stream:
        gap = await stream.next()
        assert (gap.type, gap.id, gap.data) == ("gap", None, {"reason": "out_of_retention"})
        event = await stream.next()
        assert event.data["message"]["text"] == "kept"


async def test_bad_requests_get_the_envelope(room: Scene) -> None:
    response = await room.http.get("/client/events")
    assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"
    response = await room.http.get(
        "/client/events", headers={"Authorization": f"Bot {room.bot.token}"}
    )
    assert response.status_code == 401
    response = await room.http.get(
        "/client/events",
        headers={"Authorization": f"Bearer {room.user.token}", "Last-Event-ID": "12-3"},
    )
    body = response.json()
    assert response.status_code == 400 and body["code"] == "INVALID_CURSOR" and not body["ok"]
    for after in ("-1", "²", "9" * 5000, "99999999999999999999"):
        response = await room.http.get(
            "/client/events",
            params={"after": after},
            headers={"Authorization": f"Bearer {room.user.token}"},
        )
        assert response.status_code == 400 and response.json()["code"] == "INVALID_CURSOR"


async def test_a_drain_ends_the_streams_cleanly(
    redis_server: RedisServer, tmp_path: Path, settings: Settings
) -> None:
    process = rest_process(redis_server.url, tmp_path, "rest-events", BOTGW_REST_DRAIN_SECONDS="30")
    with running(process):
        async with scene_at(process.url, settings, "evd", users=1, private=True) as scene:
            async with _open(scene.http, scene.user) as stream:
                await scene.as_bot("sendMessage", chat_id=scene.bot_chat, text="live")
                event = await stream.next()
                assert event.data["message"]["text"] == "live"
                process.signal(signal.SIGTERM)
                with pytest.raises(EOFError):  # the end of the stream, not a cut
                    await stream.next()
            assert process.proc is not None
            assert await asyncio.to_thread(process.proc.wait, wait_s(30)) == 0
        assert _errors_logged(process.log_path) == []


async def test_keepalives_and_the_end_when_the_token_is_replaced(room: Scene, store: Store) -> None:
    async with _open(room.http, room.other) as stream:
        await room.as_user("sendMessage", chat_id=room.group, text="still yours")
        assert (await stream.next()).data["message"]["text"] == "still yours"
        await stream.keepalive()  # 15 s without events: the connection is kept alive
        await store.entities.set_user_token(room.other.user_id, hash_secret("usr_1:replaced"))
        with pytest.raises(EOFError):  # at the next keepalive, at most 15 s later
            await stream.next()
