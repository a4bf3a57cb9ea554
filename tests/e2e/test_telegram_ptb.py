"""An unmodified python-telegram-bot v22 bot, polling the real stack.

The bot (``tests/e2e/telegram_bots.py``) is configured only through PTB's
documented custom-server options; a user drives it through the client API and the
test asserts what the user sees in the chat and what the bot received.
"""

from __future__ import annotations

import httpx
import pytest

from shared.settings import Settings
from shared.store import Store
from tests.api import client_api, create_bot, create_user
from tests.conftest import Stack, unique, wait_s
from tests.e2e.telegram_bots import (
    KEYBOARD_TEXT,
    Seen,
    chatting,
    conversation,
    polling_ptb,
    ptb_application,
    ptb_started,
    telegram_token,
    until,
)

pytestmark = pytest.mark.asyncio


async def test_ptb_bot_holds_a_conversation_in_polling_mode(
    stack: Stack, settings: Settings
) -> None:
    async with chatting(stack.rest_url, settings, "ptb", ptb_started) as chat:
        app, bot = chat.library, chat.bot
        assert app.bot.id == bot.bot_id and app.bot.username == bot.username  # getMe
        await conversation(chat.as_user, chat.http, chat.chat_id, chat.seen)


async def test_ptb_start_up_and_shut_down_confirm_what_was_handled(
    stack: Stack, settings: Settings, store: Store
) -> None:
    """PTB calls getMe, deleteWebhook and getUpdates(offset = last + 1); its last call
    on shut-down confirms the last batch, so a restarted bot handles nothing twice."""
    user = await create_user(settings, unique("ptbs"))
    bot = await create_bot(settings, user, unique("ptbs") + "_bot")
    token = telegram_token(bot.token)
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=wait_s(30)) as http:
        as_user = client_api(http, user)
        # an update waiting before the bot ever starts is delivered, not dropped
        chat = await as_user("startBot", username=bot.username)
        first = Seen()
        async with polling_ptb(ptb_application(stack.rest_url, token, first)):
            for text in ("one", "two"):
                await as_user("sendMessage", chat_id=chat["id"], text=text)
            await until(lambda: len(first.sent) == 3, "three replies sent", first)
        assert first.texts == ["/start", "one", "two"]
        assert first.sent == [KEYBOARD_TEXT, "one", "two"] and first.errors == []

        # the last getUpdates of the shut-down committed the cursor past "two"
        cursor = await store.log.get_cursor(bot.bot_id, "default")
        last = await store.log.read_last(bot.bot_id, 1)
        assert cursor is not None and last and cursor.update_id == last[0].update_id

        second = Seen()
        async with polling_ptb(ptb_application(stack.rest_url, token, second)):
            await as_user("sendMessage", chat_id=chat["id"], text="three")
            await until(lambda: bool(second.sent), "the restarted bot's reply", second)
        assert second.texts == ["three"] and second.sent == ["three"] and second.errors == []
