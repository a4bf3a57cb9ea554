"""Flood control through the Telegram dialect: both libraries get their RetryAfter.

A REST process of its own with a tight per-chat limit (1 message per second, bursts
of 2); each bot floods its chat, waits out every 429 as the server asks
(``parameters.retry_after``) and carries on, so the user sees every message, in
order.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import pytest

from shared.settings import Settings
from tests.conftest import rest_url_fixture
from tests.e2e.telegram_bots import (
    KEYBOARD_TEXT,
    Seen,
    aiogram_started,
    bot_message,
    chatting,
    history,
    ptb_started,
    until,
)

pytestmark = pytest.mark.asyncio

FLOOD = 3
EXPECTED = [KEYBOARD_TEXT, *(f"flood {i}" for i in range(1, FLOOD + 1)), "flood done"]


# A REST process whose private chats take one message a second, two at once.
strict_rest = rest_url_fixture(
    "strict-rest", BOTGW_RATE_PRIVATE_PER_SECOND="1", BOTGW_RATE_PRIVATE_BURST="2"
)


async def floods_and_recovers(
    rest_url: str,
    settings: Settings,
    prefix: str,
    start: Callable[[str, str, Seen], AbstractAsyncContextManager[object]],
) -> None:
    """The bot floods the user's chat: the user sees every message, in order, and the
    bot waited out at least one 429 as the server asked."""
    async with chatting(rest_url, settings, prefix, start) as chat:
        as_user, seen = chat.as_user, chat.seen
        # the keyboard first, so that the flood's messages follow it in the chat
        await until(lambda: seen.sent == [KEYBOARD_TEXT], "the keyboard", seen)
        await as_user("sendMessage", chat_id=chat.chat_id, text=f"/flood {FLOOD}")
        await until(lambda: seen.flood_done == 1, "the flood to finish", seen)
        await bot_message(as_user, chat.chat_id, lambda m: m.get("text") == "flood done", "done")
        messages = await history(as_user, chat.chat_id)
        from_bot = [m["text"] for m in messages if m["from"]["is_bot"]]
    assert from_bot == EXPECTED and seen.sent == EXPECTED
    assert seen.retry_afters and all(delay >= 1 for delay in seen.retry_afters)
    assert seen.errors == []


async def test_ptb_bot_gets_retry_after_and_recovers(strict_rest: str, settings: Settings) -> None:
    await floods_and_recovers(strict_rest, settings, "rlp", ptb_started)


async def test_aiogram_bot_gets_retry_after_and_recovers(
    strict_rest: str, settings: Settings
) -> None:
    await floods_and_recovers(strict_rest, settings, "rla", aiogram_started)
