"""Unmodified pyTelegramBotAPI bots, ``TeleBot`` and ``AsyncTeleBot``, polling the stack.

The bots (``tests/e2e/telebot_bots.py``) are pointed at botgw only through
telebot's documented ``API_URL`` and ``FILE_URL``. ``AsyncTeleBot`` sends
getUpdates (its offset included), getFile, setWebhook, deleteWebhook and many
other methods as GET requests with a form body, which the dialect reads as it
reads a POST's: were the body ignored, every poll would return the same updates
again and the bot would handle them twice. Each bot holds the
shared conversation (inline keyboard, answerCallbackQuery, editMessageText, echo,
a photo uploaded as multipart and downloaded back), handles every update once,
and then sets, reads and deletes a webhook.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import telebot
from telebot.async_telebot import AsyncTeleBot

from shared.settings import Settings
from tests.conftest import Stack
from tests.e2e.telebot_bots import async_telebot_started, sync_telebot_started
from tests.e2e.telegram_bots import chatting, conversation, until

pytestmark = pytest.mark.asyncio

HOOK = "http://127.0.0.1:9/telebot-hook"  # never delivered to: the bot only sets it


async def test_telebot_bot_holds_a_conversation_and_manages_its_webhook(
    stack: Stack, settings: Settings
) -> None:
    async with chatting(stack.rest_url, settings, "tbs", sync_telebot_started) as chat:
        bot: telebot.TeleBot = chat.library
        me = await asyncio.to_thread(bot.get_me)
        assert me.id == chat.bot.bot_id and me.username == chat.bot.username
        await conversation(chat.as_user, chat.http, chat.chat_id, chat.seen)
        await until(lambda: len(chat.seen.sent) == 4, "four answers sent", chat.seen)
    seen = chat.seen
    # every update handled once: /start, the button, the echo, /photo
    assert seen.texts == ["/start", "hello, bot", "/photo"] and seen.callbacks == ["blue"]
    assert seen.errors == []

    def webhook_round() -> list[Any]:
        return [
            bot.set_webhook(url=HOOK, max_connections=5, secret_token="telebot_secret"),
            bot.get_webhook_info(),
            bot.remove_webhook(),
            bot.get_webhook_info(),
        ]

    set_, info, removed, after = await asyncio.to_thread(webhook_round)
    assert set_ is True and removed is True
    assert info.url == HOOK and info.max_connections == 5 and info.pending_update_count == 0
    assert after.url == ""


async def test_async_telebot_polls_with_get_bodies_and_manages_its_webhook(
    stack: Stack, settings: Settings
) -> None:
    async with chatting(stack.rest_url, settings, "tba", async_telebot_started) as chat:
        bot: AsyncTeleBot = chat.library
        me = await bot.get_me()
        assert me.id == chat.bot.bot_id and me.username == chat.bot.username
        await conversation(chat.as_user, chat.http, chat.chat_id, chat.seen)
        await until(lambda: len(chat.seen.sent) == 4, "four answers sent", chat.seen)
        seen = chat.seen
        assert seen.texts == ["/start", "hello, bot", "/photo"] and seen.callbacks == ["blue"]
        assert seen.errors == []
    # polling stopped; the same session sets, reads and deletes a webhook
    assert await bot.set_webhook(url=HOOK, max_connections=5, secret_token="telebot_secret")
    info = await bot.get_webhook_info()
    assert info.url == HOOK and info.max_connections == 5 and info.pending_update_count == 0
    assert await bot.delete_webhook() is True
    assert (await bot.get_webhook_info()).url == ""
    await bot.close_session()
