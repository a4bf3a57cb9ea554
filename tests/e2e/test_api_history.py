"""getChatHistory for bots and users: paging, sender filter, what a bot may see."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.api import Caller, client_api, create_user, error, manage_api
from tests.conftest import Stack, unique

pytestmark = pytest.mark.asyncio


@dataclass
class Scene:
    http: httpx.AsyncClient
    settings: Settings
    as_user: Caller
    as_manage: Caller
    user_name: str

    async def bot(self) -> tuple[Caller, str, str]:
        """A new bot of the user: (caller, username, bot id)."""
        created = await self.as_manage("createBot", username=unique("h") + "_bot", name="History")
        return (
            Caller(self.http, "bot", f"Bot {created['token']}"),
            created["username"],
            created["id"],
        )


@pytest.fixture
async def scene(stack: Stack, settings: Settings) -> AsyncIterator[Scene]:
    user = await create_user(settings, unique("hu"))
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        yield Scene(http, settings, client_api(http, user), manage_api(http, user), user.username)


def ids(messages: list[dict[str, Any]]) -> list[int]:
    return [int(m["message_id"]) for m in messages]


async def test_paging_backwards_and_forwards(scene: Scene) -> None:
    as_bot, username, bot_id = await scene.bot()
    chat = (await scene.as_user("startBot", username=username))["id"]
    sent = [await scene.as_user("sendMessage", chat_id=chat, text=f"m{i}") for i in range(1, 8)]
    start = (await as_bot("getUpdates", timeout=0))[0]["message"]
    bot_chat = start["chat"]["id"]
    # m[0] is /start, m[1] to m[7] the user's m1 to m7, m[8] the bot's reply
    m = ids([start, *sent])
    reply = await as_bot("sendMessage", chat_id=bot_chat, text="bot", reply_to_message_id=m[2])
    m.append(int(reply["message_id"]))
    assert m == sorted(m) and len(set(m)) == 9  # increasing, not dense

    newest = await as_bot("getChatHistory", chat_id=bot_chat, limit=3)
    assert ids(newest) == m[6:9]
    assert newest[-1]["reply_to_message"]["text"] == "m2"
    assert newest[0]["chat"]["id"] == bot_chat and newest[0]["from"]["id"] == bot_chat
    assert ids(await as_bot("getChatHistory", chat_id=bot_chat, limit=3, before=m[6])) == m[3:6]
    assert ids(await as_bot("getChatHistory", chat_id=bot_chat, limit=3, before=m[2])) == m[0:2]
    assert ids(await as_bot("getChatHistory", chat_id=bot_chat, limit=2, since=m[4])) == m[5:7]
    assert ids(await as_bot("getChatHistory", chat_id=bot_chat, since=m[8])) == []
    between = await as_bot("getChatHistory", chat_id=bot_chat, since=m[1], before=m[5], limit=2)
    assert ids(between) == m[3:5]
    # ids between messages' (ids are sparse) bound the pages all the same
    below, above = (m[2] + m[3] + 1) // 2, (m[7] + m[8]) // 2
    assert ids(await as_bot("getChatHistory", chat_id=bot_chat, before=below)) == m[0:3]
    assert ids(await as_bot("getChatHistory", chat_id=bot_chat, since=above)) == m[8:]
    everything = await as_bot("getChatHistory", chat_id=bot_chat)
    assert ids(everything) == m
    assert everything[0]["text"] == "/start"

    only_bot = await as_bot("getChatHistory", chat_id=bot_chat, sender_id=bot_id)
    assert ids(only_bot) == [m[8]]
    only_user = await as_bot("getChatHistory", chat_id=bot_chat, sender_id=bot_chat, limit=2)
    assert ids(only_user) == m[6:8]
    assert await error(as_bot, "getChatHistory", chat_id=bot_chat, sender_id=4242) == (
        400,
        "USER_NOT_FOUND",
    )

    await scene.as_user("deleteMessage", chat_id=chat, message_id=str(m[4]))
    assert ids(await as_bot("getChatHistory", chat_id=bot_chat, before=m[6], limit=2)) == [
        m[3],
        m[5],
    ]

    users = await scene.as_user("getChatHistory", chat_id=chat, limit=2)
    assert ids(users) == m[7:9] and users[0]["chat"]["id"] == chat
    response = await scene.http.get(
        "/client/getChatHistory",
        params={"chat_id": chat, "limit": "2", "before": str(m[2])},
        headers={"Authorization": scene.as_user.auth},
    )
    assert ids(response.json()["result"]) == m[0:2]

    for bad in ({"limit": 101}, {"limit": 0}, {"before": "x"}):
        status, code = await error(as_bot, "getChatHistory", chat_id=bot_chat, **bad)
        assert status == 400 and code == "INVALID_PARAMETER"


async def test_a_bot_sees_only_what_it_could_receive(scene: Scene) -> None:
    private_bot, private_name, _ = await scene.bot()
    open_bot, open_name, open_id = await scene.bot()
    await scene.as_manage("editBot", bot_id=open_id, privacy_mode=False)
    group = (await scene.as_user("createGroup", title="Mixed"))["id"]
    first = await scene.as_user("sendMessage", chat_id=group, text="before any bot joined")
    for name in (private_name, open_name):
        await scene.as_user("addChatMember", chat_id=group, username=name)
    plain = await scene.as_user("sendMessage", chat_id=group, text="just chatting")
    mention = await scene.as_user("sendMessage", chat_id=group, text=f"hey @{private_name}")
    own = await private_bot("sendMessage", chat_id=group, text="I am the private bot")
    other = await open_bot("sendMessage", chat_id=group, text="I am the open bot")
    reply = await scene.as_user(
        "sendMessage", chat_id=group, text="answering you", reply_to_message_id=own["message_id"]
    )
    command = await scene.as_user("sendMessage", chat_id=group, text=f"/help@{open_name}")

    seen_private = ids(await private_bot("getChatHistory", chat_id=group))
    assert seen_private == ids([mention, own, reply])
    seen_open = ids(await open_bot("getChatHistory", chat_id=group))
    assert seen_open == ids([plain, mention, other, reply, command])
    seen_user = ids(await scene.as_user("getChatHistory", chat_id=group))
    assert seen_user == ids([first, plain, mention, own, other, reply, command])

    await private_bot("leaveChat", chat_id=group)
    assert await error(private_bot, "getChatHistory", chat_id=group) == (403, "CHAT_FORBIDDEN")
    assert await error(private_bot, "getChatHistory", chat_id="424242") == (400, "CHAT_NOT_FOUND")
    stranger = await create_user(scene.settings, unique("hs"))
    as_stranger = client_api(scene.http, stranger)
    assert await error(as_stranger, "getChatHistory", chat_id=group) == (404, "CHAT_NOT_FOUND")
