"""An unmodified aiogram v3 bot, polling the real stack.

The bot (``tests/e2e/telegram_bots.py``) is configured only through aiogram's
documented custom-server option (``TelegramAPIServer.from_base``); aiogram sends
every call as a form, so this also exercises nested JSON strings and
``attach://`` file references.
"""

from __future__ import annotations

import httpx
import pytest

from shared.settings import Settings
from tests.api import client_api, create_bot, create_user
from tests.conftest import Stack, unique, wait_s
from tests.e2e.telegram_bots import (
    KEYBOARD_TEXT,
    Seen,
    aiogram_bot,
    conversation,
    polling_aiogram,
    telegram_token,
    until,
)

pytestmark = pytest.mark.asyncio


async def test_aiogram_bot_holds_a_conversation_in_polling_mode(
    stack: Stack, settings: Settings
) -> None:
    user = await create_user(settings, unique("aiou"))
    bot = await create_bot(settings, user, unique("aio") + "_bot")
    seen = Seen()
    aio, dispatcher = aiogram_bot(stack.rest_url, telegram_token(bot.token), seen)
    async with (
        httpx.AsyncClient(base_url=stack.rest_url, timeout=wait_s(30)) as http,
        polling_aiogram(aio, dispatcher),
    ):
        as_user = client_api(http, user)
        chat = await as_user("startBot", username=bot.username)
        await conversation(as_user, http, chat["id"], seen)


async def test_aiogram_bot_starts_answers_and_echoes(stack: Stack, settings: Settings) -> None:
    user = await create_user(settings, unique("aioe"))
    bot = await create_bot(settings, user, unique("aioe") + "_bot")
    seen = Seen()
    aio, dispatcher = aiogram_bot(stack.rest_url, telegram_token(bot.token), seen)
    async with (
        httpx.AsyncClient(base_url=stack.rest_url, timeout=wait_s(30)) as http,
        polling_aiogram(aio, dispatcher),
    ):
        as_user = client_api(http, user)
        chat = await as_user("startBot", username=bot.username)
        await until(lambda: len(seen.sent) == 1, "the keyboard sent", seen)
        await as_user("sendMessage", chat_id=chat["id"], text="ping 🏓")
        await until(lambda: len(seen.sent) == 2, "the echo sent", seen)
    me = await aio.me()
    assert me.id == bot.bot_id and me.username == bot.username
    assert seen.texts == ["/start", "ping 🏓"]
    assert seen.sent == [KEYBOARD_TEXT, "ping 🏓"] and seen.errors == []
