"""An unmodified aiogram v3 bot, polling the real stack.

The bot (``tests/e2e/telegram_bots.py``) is configured only through aiogram's
documented custom-server option (``TelegramAPIServer.from_base``); aiogram sends
every call as a form, so this also exercises nested JSON strings and
``attach://`` file references.
"""

from __future__ import annotations

import pytest

from shared.settings import Settings
from tests.conftest import Stack
from tests.e2e.telegram_bots import KEYBOARD_TEXT, aiogram_started, chatting, conversation, until

pytestmark = pytest.mark.asyncio


async def test_aiogram_bot_holds_a_conversation_in_polling_mode(
    stack: Stack, settings: Settings
) -> None:
    async with chatting(stack.rest_url, settings, "aio", aiogram_started) as chat:
        await conversation(chat.as_user, chat.http, chat.chat_id, chat.seen)


async def test_aiogram_bot_starts_answers_and_echoes(stack: Stack, settings: Settings) -> None:
    async with chatting(stack.rest_url, settings, "aioe", aiogram_started) as chat:
        seen = chat.seen
        await until(lambda: len(seen.sent) == 1, "the keyboard sent", seen)
        await chat.as_user("sendMessage", chat_id=chat.chat_id, text="ping 🏓")
        await until(lambda: len(seen.sent) == 2, "the echo sent", seen)
    me = await chat.library.me()
    assert me.id == chat.bot.bot_id and me.username == chat.bot.username
    assert seen.texts == ["/start", "ping 🏓"]
    assert seen.sent == [KEYBOARD_TEXT, "ping 🏓"] and seen.errors == []
