"""The bot of the other tests, written with pyTelegramBotAPI (telebot), sync and async.

Nothing here knows about botgw but the module attributes telebot documents for a
local Bot API server: ``telebot.apihelper.API_URL`` and ``FILE_URL`` for
``TeleBot``, ``telebot.asyncio_helper.API_URL`` and ``FILE_URL`` for
``AsyncTeleBot`` (which sends getUpdates, getFile, setWebhook, deleteWebhook
and many other methods as GET requests with a form body). Both behave as the bots of
``tests/e2e/telegram_bots.py``: ``/start`` answers with an inline keyboard, a
button press answers the query and edits the message, ``/photo`` sends a PNG and
downloads it back, any other text is echoed. ``Seen`` records what they handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import telebot
from telebot import apihelper, asyncio_helper
from telebot.async_telebot import AsyncTeleBot
from telebot.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from tests.conftest import wait_s
from tests.e2e.telegram_bots import CHOICES, KEYBOARD_TEXT, PNG, Seen

__all__ = ["async_telebot", "async_telebot_started", "sync_telebot", "sync_telebot_started"]

F = TypeVar("F", bound=Callable[..., Any])


def _keyboard() -> InlineKeyboardMarkup:
    markup = InlineKeyboardMarkup()
    markup.row(*(InlineKeyboardButton(label, callback_data=data) for label, data in CHOICES))
    return markup


def _recorded(seen: Seen, handler: F) -> F:
    """``handler``, with what it raises recorded (telebot only logs it)."""

    @functools.wraps(handler)
    def sync(*args: Any) -> Any:
        try:
            return handler(*args)
        except Exception as exc:
            seen.errors.append(repr(exc))
            raise

    @functools.wraps(handler)
    async def coroutine(*args: Any) -> Any:
        try:
            return await handler(*args)
        except Exception as exc:
            seen.errors.append(repr(exc))
            raise

    return coroutine if asyncio.iscoroutinefunction(handler) else sync  # type: ignore[return-value]


def sync_telebot(rest_url: str, token: str, seen: Seen) -> telebot.TeleBot:
    """The bot with ``TeleBot`` (handlers run in the polling thread)."""
    # (telebot declares both None: the default server)
    apihelper.API_URL = f"{rest_url}/bot{{0}}/{{1}}"  # type: ignore[assignment]
    apihelper.FILE_URL = f"{rest_url}/file/bot{{0}}/{{1}}"  # type: ignore[assignment]
    bot = telebot.TeleBot(token, threaded=False)

    @bot.message_handler(commands=["start"])
    def start(message: Message) -> None:
        seen.texts.append(message.text or "")
        bot.send_message(message.chat.id, KEYBOARD_TEXT, reply_markup=_keyboard())
        seen.sent.append(KEYBOARD_TEXT)

    @bot.callback_query_handler(func=lambda call: True)
    def choose(call: CallbackQuery) -> None:
        seen.callbacks.append(call.data or "")
        text = f"You chose {call.data}"
        bot.answer_callback_query(call.id, text)
        assert isinstance(call.message, Message)
        bot.edit_message_text(text, call.message.chat.id, call.message.message_id)
        seen.sent.append(text)

    @bot.message_handler(commands=["photo"])
    def photo(message: Message) -> None:
        seen.texts.append(message.text or "")
        sent = bot.send_photo(message.chat.id, PNG, caption="a red square")
        seen.sent.append(sent.caption or "")
        assert sent.photo
        seen.photo_file_ids.append(sent.photo[-1].file_id)
        file = bot.get_file(sent.photo[-1].file_id)
        assert file.file_path
        seen.downloaded.append(bot.download_file(file.file_path))

    @bot.message_handler(content_types=["text"])
    def echo(message: Message) -> None:
        seen.texts.append(message.text or "")
        bot.send_message(message.chat.id, message.text or "")
        seen.sent.append(message.text or "")

    for handlers in (bot.message_handlers, bot.callback_query_handlers):
        for entry in handlers:
            entry["function"] = _recorded(seen, entry["function"])
    return bot


def async_telebot(rest_url: str, token: str, seen: Seen) -> AsyncTeleBot:
    """The bot with ``AsyncTeleBot``."""
    asyncio_helper.API_URL = f"{rest_url}/bot{{0}}/{{1}}"
    asyncio_helper.FILE_URL = f"{rest_url}/file/bot{{0}}/{{1}}"  # type: ignore[assignment]
    bot = AsyncTeleBot(token)

    @bot.message_handler(commands=["start"])
    async def start(message: Message) -> None:
        seen.texts.append(message.text or "")
        await bot.send_message(message.chat.id, KEYBOARD_TEXT, reply_markup=_keyboard())
        seen.sent.append(KEYBOARD_TEXT)

    @bot.callback_query_handler(func=lambda call: True)
    async def choose(call: CallbackQuery) -> None:
        seen.callbacks.append(call.data or "")
        text = f"You chose {call.data}"
        await bot.answer_callback_query(call.id, text)
        assert isinstance(call.message, Message)
        await bot.edit_message_text(text, call.message.chat.id, call.message.message_id)
        seen.sent.append(text)

    @bot.message_handler(commands=["photo"])
    async def photo(message: Message) -> None:
        seen.texts.append(message.text or "")
        sent = await bot.send_photo(message.chat.id, PNG, caption="a red square")
        seen.sent.append(sent.caption or "")
        assert sent.photo
        seen.photo_file_ids.append(sent.photo[-1].file_id)
        file = await bot.get_file(sent.photo[-1].file_id)
        assert file.file_path
        seen.downloaded.append(await bot.download_file(file.file_path))

    @bot.message_handler(content_types=["text"])
    async def echo(message: Message) -> None:
        seen.texts.append(message.text or "")
        await bot.send_message(message.chat.id, message.text or "")
        seen.sent.append(message.text or "")

    for handlers in (bot.message_handlers, bot.callback_query_handlers):
        for entry in handlers:
            entry["function"] = _recorded(seen, entry["function"])
    return bot


@contextlib.asynccontextmanager
async def sync_telebot_started(
    rest_url: str, token: str, seen: Seen
) -> AsyncIterator[telebot.TeleBot]:
    """The ``TeleBot`` bot polling in a thread; ``stop_polling`` afterwards."""
    bot = sync_telebot(rest_url, token, seen)
    failed: list[BaseException] = []

    def poll() -> None:
        try:
            bot.polling(non_stop=True, timeout=5, long_polling_timeout=2)
        except BaseException as exc:
            failed.append(exc)

    thread = threading.Thread(target=poll, name="telebot-polling", daemon=True)
    thread.start()
    try:
        yield bot
    finally:
        bot.stop_polling()
        await asyncio.to_thread(thread.join, wait_s(30))
        assert not thread.is_alive(), "TeleBot did not stop polling"
        assert failed == []


@contextlib.asynccontextmanager
async def async_telebot_started(
    rest_url: str, token: str, seen: Seen
) -> AsyncIterator[AsyncTeleBot]:
    """The ``AsyncTeleBot`` bot polling in a task, cancelled afterwards (as Ctrl-C
    ends ``asyncio.run(bot.polling())``)."""
    bot = async_telebot(rest_url, token, seen)
    task = asyncio.create_task(bot.polling(non_stop=True, timeout=2, request_timeout=10))
    try:
        yield bot
    finally:
        if task.done():
            task.result()  # polling died: show why
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await bot.close_session()
