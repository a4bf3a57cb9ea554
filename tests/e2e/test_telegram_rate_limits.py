"""Flood control through the Telegram dialect: both libraries get their RetryAfter.

A REST process of its own with a tight per-chat limit (1 message per second, bursts
of 2); each bot floods its chat, waits out every 429 as the server asks
(``parameters.retry_after``) and carries on, so the user sees every message, in
order.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from botgw.local_redis import LocalRedis
from shared.settings import Settings
from tests.api import client_api, create_bot, create_user
from tests.conftest import rest_process, running, unique, wait_s
from tests.e2e.telegram_bots import (
    KEYBOARD_TEXT,
    Seen,
    aiogram_bot,
    bot_message,
    history,
    polling_aiogram,
    polling_ptb,
    ptb_application,
    telegram_token,
    until,
)

pytestmark = pytest.mark.asyncio

FLOOD = 3
EXPECTED = [KEYBOARD_TEXT, *(f"flood {i}" for i in range(1, FLOOD + 1)), "flood done"]


@pytest.fixture(scope="module")
def strict_rest(
    redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A REST process whose private chats take one message a second, two at once."""
    tmp = tmp_path_factory.mktemp("strict-rest")
    rest = rest_process(
        redis_server.url,
        tmp,
        "strict-rest",
        BOTGW_RATE_PRIVATE_PER_SECOND="1",
        BOTGW_RATE_PRIVATE_BURST="2",
    )
    with running(rest):
        yield rest.url


async def test_ptb_bot_gets_retry_after_and_recovers(strict_rest: str, settings: Settings) -> None:
    user = await create_user(settings, unique("rlp"))
    bot = await create_bot(settings, user, unique("rlp") + "_bot")
    seen = Seen()
    app = ptb_application(strict_rest, telegram_token(bot.token), seen)
    async with (
        httpx.AsyncClient(base_url=strict_rest, timeout=wait_s(30)) as http,
        polling_ptb(app),
    ):
        as_user = client_api(http, user)
        chat = await as_user("startBot", username=bot.username)
        await as_user("sendMessage", chat_id=chat["id"], text=f"/flood {FLOOD}")
        await until(lambda: seen.flood_done == 1, "the flood to finish", seen)
        await bot_message(as_user, chat["id"], lambda m: m.get("text") == "flood done", "done")
        from_bot = [m["text"] for m in await history(as_user, chat["id"]) if m["from"]["is_bot"]]
    assert from_bot == EXPECTED and seen.sent == EXPECTED
    assert seen.retry_afters and all(delay >= 1 for delay in seen.retry_afters)
    assert seen.errors == []


async def test_aiogram_bot_gets_retry_after_and_recovers(
    strict_rest: str, settings: Settings
) -> None:
    user = await create_user(settings, unique("rla"))
    bot = await create_bot(settings, user, unique("rla") + "_bot")
    seen = Seen()
    aio, dispatcher = aiogram_bot(strict_rest, telegram_token(bot.token), seen)
    async with (
        httpx.AsyncClient(base_url=strict_rest, timeout=wait_s(30)) as http,
        polling_aiogram(aio, dispatcher),
    ):
        as_user = client_api(http, user)
        chat = await as_user("startBot", username=bot.username)
        # the keyboard first, so that the flood's messages follow it in the chat
        await until(lambda: seen.sent == [KEYBOARD_TEXT], "the keyboard", seen)
        await as_user("sendMessage", chat_id=chat["id"], text=f"/flood {FLOOD}")
        await until(lambda: seen.flood_done == 1, "the flood to finish", seen)
        await bot_message(as_user, chat["id"], lambda m: m.get("text") == "flood done", "done")
        from_bot = [m["text"] for m in await history(as_user, chat["id"]) if m["from"]["is_bot"]]
    assert from_bot == EXPECTED and seen.sent == EXPECTED
    assert seen.retry_afters and all(delay >= 1 for delay in seen.retry_afters)
    assert seen.errors == []
