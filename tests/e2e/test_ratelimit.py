"""Per-bot send limits: 429 with Retry-After and retry_after, nothing written, honoured.

The private-chat and group limits run on the shared stack with the default limits
(1 message/s per private chat with a burst of 3, 20 per minute per group). The
overall limit runs on a REST process of its own with a tiny overall rate.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.api import Account, Caller, bot_api, client_api, create_bot, create_user
from tests.conftest import Stack, rest_url_fixture, unique

pytestmark = pytest.mark.asyncio


def retry_after_of(response: httpx.Response) -> int:
    """Check a 429 answer; the seconds it asks to wait."""
    body = response.json()
    assert response.status_code == 429 and body["ok"] is False and body["error_code"] == 429
    assert body["code"] == "TOO_MANY_REQUESTS" and "retry" in body["description"]
    retry_after = body["parameters"]["retry_after"]
    assert isinstance(retry_after, int) and retry_after >= 1
    assert response.headers["Retry-After"] == str(retry_after)
    return retry_after


async def started(http: httpx.AsyncClient, settings: Settings) -> tuple[Account, Caller, str]:
    """A user who started a new bot: (user, the bot's caller, the chat as the bot sees it)."""
    user = await create_user(settings, unique("rl"))
    bot = await create_bot(settings, user, unique("r") + "_bot")
    as_bot = bot_api(http, bot)
    await client_api(http, user)("startBot", username=bot.username)
    chat = (await as_bot("getUpdates", timeout=0))[0]["message"]["chat"]["id"]
    return user, as_bot, chat


async def test_private_chat_limit_and_a_client_that_honours_it(
    stack: Stack, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        user, as_bot, chat = await started(http, settings)
        as_user = client_api(http, user)
        private = (await as_user("getChats"))[0]["id"]
        burst = [await as_bot.raw("sendMessage", chat_id=chat, text=f"b{i}") for i in range(3)]
        assert [r.status_code for r in burst] == [200, 200, 200]
        refused = await as_bot.raw("sendMessage", chat_id=chat, text="one too many")
        retry_after_of(refused)
        history = await as_user("getChatHistory", chat_id=private)
        assert [m["text"] for m in history] == ["/start", "b0", "b1", "b2"]  # nothing written

        # a client that waits retry_after whenever told to is never refused twice in a row
        honoured, sent = 0, 0
        while honoured < 2 and sent < 10:
            response = await as_bot.raw("sendMessage", chat_id=chat, text=f"h{sent}")
            if response.status_code == 429:
                await asyncio.sleep(retry_after_of(response))
                response = await as_bot.raw("sendMessage", chat_id=chat, text=f"h{sent}")
                honoured += 1
            assert response.status_code == 200, response.json()
            sent += 1
        assert honoured == 2
        history = await as_user("getChatHistory", chat_id=private)
        assert [m["text"] for m in history][4:] == [f"h{i}" for i in range(sent)]
        ids = [int(m["message_id"]) for m in history]
        assert len(ids) == 4 + sent and ids == sorted(set(ids))  # each stored once, in order


async def test_group_limit(stack: Stack, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        user, as_bot, private = await started(http, settings)
        as_user = client_api(http, user)
        group = (await as_user("createGroup", title="Busy"))["id"]
        await as_user("addChatMember", chat_id=group, username=(await as_bot("getMe"))["username"])
        for i in range(20):
            assert (await as_bot.raw("sendMessage", chat_id=group, text=f"g{i}")).status_code == 200
        refused = await as_bot.raw("sendPoll", chat_id=group, question="Q", options=["a", "b"])
        wait = retry_after_of(refused)
        assert wait <= 3  # one message per 3 s refills the bucket
        # other chats of the same bot have buckets of their own
        assert (await as_bot.raw("sendMessage", chat_id=private, text="dm")).status_code == 200
        await asyncio.sleep(wait)
        response = await as_bot.raw("sendMessage", chat_id=group, text="after the wait")
        assert response.status_code == 200
        assert len(await as_user("getChatHistory", chat_id=group, limit=100)) == 21


slow_rest = rest_url_fixture("rest-slow", BOTGW_RATE_GLOBAL_PER_SECOND="0.05")


async def test_overall_limit_is_per_bot(slow_rest: str, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=slow_rest, timeout=30) as http:
        user, as_bot, chat = await started(http, settings)
        group = (await client_api(http, user)("createGroup", title="Other chat"))["id"]
        await client_api(http, user)(
            "addChatMember", chat_id=group, username=(await as_bot("getMe"))["username"]
        )
        first = await as_bot.raw("sendMessage", chat_id=chat, text="first")
        assert first.status_code == 200
        wait = retry_after_of(await as_bot.raw("sendMessage", chat_id=group, text="second"))
        assert 10 <= wait <= 20  # 0.05 messages per second overall
        message_id = first.json()["result"]["message_id"]
        params: dict[str, Any] = {"chat_id": chat, "from_chat_id": chat, "message_id": message_id}
        retry_after_of(await as_bot.raw("forwardMessage", **params))
        retry_after_of(await as_bot.raw("copyMessage", **params))
        # another bot is not slowed by this one
        _, other_bot, other_chat = await started(http, settings)
        assert (
            await other_bot.raw("sendMessage", chat_id=other_chat, text="hi")
        ).status_code == 200
