"""An unmodified aiogram v3 bot in webhook mode whose handlers answer with methods.

aiogram's webhook request handler (``SimpleRequestHandler`` with
``handle_in_background=False``, its documented way to answer an update with a
call) writes the method a handler returns into the webhook's answer, as a
``multipart/form-data`` body. Here the button handler returns
``query.answer(...)`` and the echo ``message.answer(...)``: both reach the user
only because the dispatcher (a ``botgw webhooks`` process of this module)
carries webhook replies out (docs/webhooks.md §3.5).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.filters import Command, CommandStart
from aiogram.methods import AnswerCallbackQuery, SendMessage
from aiogram.types import BufferedInputFile, CallbackQuery, InlineKeyboardButton, Message
from aiogram.types import InlineKeyboardMarkup as Keyboard
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from botgw.local_redis import free_port
from shared.settings import Settings
from tests.conftest import Process, Stack
from tests.e2e.telegram_bots import (
    CHOICES,
    KEYBOARD_TEXT,
    PNG,
    Seen,
    chatting,
    conversation,
    eventually,
)
from tests.e2e.test_webhooks_receiver import dispatcher, scrape

pytestmark = pytest.mark.asyncio


def replying_bot(rest_url: str, token: str, seen: Seen) -> tuple[Bot, Dispatcher]:
    """The bot of the other tests, answering buttons and echoes by webhook reply."""
    bot = Bot(token=token, session=AiohttpSession(api=TelegramAPIServer.from_base(rest_url)))
    router = Router()

    @router.message(CommandStart())
    async def start(message: Message) -> None:
        seen.texts.append(message.text or "")
        buttons = [InlineKeyboardButton(text=label, callback_data=data) for label, data in CHOICES]
        await message.answer(KEYBOARD_TEXT, reply_markup=Keyboard(inline_keyboard=[buttons]))

    @router.callback_query()
    async def button(query: CallbackQuery) -> AnswerCallbackQuery:
        seen.callbacks.append(query.data or "")
        assert isinstance(query.message, Message)
        await query.message.edit_text(f"You chose {query.data}")
        return query.answer(f"You chose {query.data}")

    @router.message(Command("photo"))
    async def photo(message: Message, bot: Bot) -> None:
        seen.texts.append(message.text or "")
        sent = await message.answer_photo(
            BufferedInputFile(PNG, filename="red.png"), caption="a red square"
        )
        assert sent.photo
        file = await bot.get_file(sent.photo[-1].file_id)
        assert file.file_path is not None
        data = await bot.download_file(file.file_path)
        assert data is not None
        seen.downloaded.append(data.read())

    @router.message(F.text)
    async def echo(message: Message) -> SendMessage:
        seen.texts.append(message.text or "")
        return message.answer(message.text or "")

    dp = Dispatcher()
    dp.include_router(router)

    @dp.errors()
    async def on_error(event: object) -> None:
        seen.errors.append(repr(getattr(event, "exception", event)))

    return bot, dp


@pytest.fixture(scope="module")
def hooks(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = dispatcher(stack.redis_url, tmp_path_factory.mktemp("aio-hooks"), "webhooks")
    process.start()
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()


async def replies_done(hooks: Process) -> float:
    metrics = await scrape(hooks)
    return metrics.get(("botgw_webhook_replies_total", (("outcome", "done"),)), 0.0)


async def test_aiogram_handlers_answer_updates_with_methods_in_webhook_mode(
    stack: Stack, settings: Settings, hooks: Process
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/aiogram-hook"
    secret = secrets.token_urlsafe(24)
    done_before = await replies_done(hooks)

    @asynccontextmanager
    async def started(rest_url: str, token: str, seen: Seen) -> AsyncIterator[Bot]:
        bot, dp = replying_bot(rest_url, token, seen)
        app = web.Application()
        SimpleRequestHandler(
            dispatcher=dp, bot=bot, secret_token=secret, handle_in_background=False
        ).register(app, path="/aiogram-hook")
        setup_application(app, dp, bot=bot)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            assert await bot.set_webhook(url, secret_token=secret)
            yield bot
        finally:
            assert await bot.delete_webhook()
            await runner.cleanup()

    async with chatting(stack.rest_url, settings, "aiw", started) as chat:
        info = await chat.library.get_webhook_info()
        assert info.url == url
        await conversation(chat.as_user, chat.http, chat.chat_id, chat.seen)
        assert chat.seen.texts == ["/start", "hello, bot", "/photo"]
        assert chat.seen.callbacks == ["blue"]

        async def both_counted() -> bool:
            return await replies_done(hooks) == done_before + 2

        await eventually(both_counted, "the callback answer and the echo as replies")
        assert chat.seen.errors == []
