"""Two ordinary Telegram bots, one per library, as their authors would write them.

Nothing here knows about botgw except the one line each library documents for a
custom Bot API server: ``ApplicationBuilder().base_url(...).base_file_url(...)``
for python-telegram-bot and ``AiohttpSession(api=TelegramAPIServer.from_base(...))``
for aiogram. Both bots behave the same way:

* ``/start`` answers with an inline keyboard (Red / Blue);
* pressing a button answers the callback query ("You chose red") and edits the
  keyboard message to say the same;
* ``/photo`` sends a small PNG, then reads it back through ``getFile`` and the
  file download URL (what the bot saw is recorded);
* ``/flood <n>`` sends n messages as fast as it may: on ``RetryAfter`` it waits
  the time the server asked for and carries on, then says "flood done";
* any other text is echoed.

``Seen`` records what each bot received, for the tests to assert on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dtm
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx
from aiogram import Bot as AiogramBot
from aiogram import Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramRetryAfter
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import BufferedInputFile, CallbackQuery
from aiogram.types import InlineKeyboardButton as AioButton
from aiogram.types import InlineKeyboardMarkup as AioKeyboard
from aiogram.types import Message as AioMessage
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import RetryAfter
from telegram.ext import (
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    Updater,
    filters,
)

from shared.settings import Settings
from tests.api import BotAccount, Caller, client_api, create_bot, create_user
from tests.conftest import unique, wait_s

__all__ = [
    "CHOICES",
    "KEYBOARD_TEXT",
    "PNG",
    "Chat",
    "Seen",
    "aiogram_bot",
    "aiogram_started",
    "bot_message",
    "chatting",
    "conversation",
    "download_as_user",
    "eventually",
    "history",
    "polling_aiogram",
    "polling_ptb",
    "ptb_application",
    "ptb_started",
    "telegram_token",
    "until",
    "webhook_ptb",
]

T = TypeVar("T")
PtbApp = Application[Any, Any, Any, Any, Any, Any]

CHOICES = (("Red", "red"), ("Blue", "blue"))
KEYBOARD_TEXT = "Pick a colour"


def _png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` red pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PNG = _png()


@dataclass
class Seen:
    """What a bot received and did, in order."""

    texts: list[str] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)
    retry_afters: list[float] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # text or caption of each sent message
    downloaded: list[bytes] = field(default_factory=list)
    photo_file_ids: list[str] = field(default_factory=list)
    flood_done: int = 0
    errors: list[str] = field(default_factory=list)


def _text_of(result: object) -> str:
    text = getattr(result, "text", None) or getattr(result, "caption", None)
    return text if isinstance(text, str) else repr(result)


def _seconds(value: int | float | dtm.timedelta) -> float:
    return value.total_seconds() if isinstance(value, dtm.timedelta) else float(value)


# -- python-telegram-bot ------------------------------------------------------


async def _ptb_patiently(seen: Seen, call: Callable[[], Awaitable[T]]) -> T:
    """Run a Bot API call, waiting out flood control as Telegram asks bots to."""
    while True:
        try:
            result = await call()
        except RetryAfter as exc:
            delay = _seconds(exc.retry_after)
            seen.retry_afters.append(delay)
            await asyncio.sleep(delay)
        else:
            seen.sent.append(_text_of(result))
            return result


def ptb_application(rest_url: str, token: str, seen: Seen) -> PtbApp:
    """A python-telegram-bot v22 bot; only the server URLs point at botgw."""
    app = (
        ApplicationBuilder()
        .token(token)
        .base_url(f"{rest_url}/bot")
        .base_file_url(f"{rest_url}/file/bot")
        .build()
    )

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        seen.texts.append(update.message.text)
        keyboard = InlineKeyboardMarkup(
            [[InlineKeyboardButton(label, callback_data=data) for label, data in CHOICES]]
        )
        message = update.message
        await _ptb_patiently(seen, lambda: message.reply_text(KEYBOARD_TEXT, reply_markup=keyboard))

    async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None and query.data is not None
        seen.callbacks.append(query.data)
        await query.answer(f"You chose {query.data}")
        await _ptb_patiently(seen, lambda: query.edit_message_text(f"You chose {query.data}"))

    async def photo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        seen.texts.append(update.message.text)
        message = update.message
        sent = await _ptb_patiently(
            seen, lambda: message.reply_photo(PNG, caption="a red square", filename="red.png")
        )
        largest = sent.photo[-1]
        seen.photo_file_ids.append(largest.file_id)
        file = await context.bot.get_file(largest.file_id)
        seen.downloaded.append(bytes(await file.download_as_bytearray()))

    async def flood(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        seen.texts.append(update.message.text)
        chat_id = update.message.chat_id
        count = int(context.args[0]) if context.args else 5
        for i in range(1, count + 1):
            await _ptb_patiently(
                seen,
                lambda i=i: context.bot.send_message(chat_id, f"flood {i}"),  # type: ignore[misc]
            )
        await _ptb_patiently(seen, lambda: context.bot.send_message(chat_id, "flood done"))
        seen.flood_done += 1

    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None and update.message.text is not None
        seen.texts.append(update.message.text)
        message = update.message
        text: str = update.message.text
        await _ptb_patiently(seen, lambda: message.reply_text(text))

    async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        seen.errors.append(repr(context.error))

    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("photo", photo))
    app.add_handler(CommandHandler("flood", flood))
    app.add_handler(CallbackQueryHandler(button))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND, echo))
    app.add_error_handler(on_error)
    return app


# -- aiogram ------------------------------------------------------------------


async def _aio_patiently(seen: Seen, call: Callable[[], Awaitable[T]]) -> T:
    while True:
        try:
            result = await call()
        except TelegramRetryAfter as exc:
            seen.retry_afters.append(float(exc.retry_after))
            await asyncio.sleep(exc.retry_after)
        else:
            seen.sent.append(_text_of(result))
            return result


def aiogram_bot(rest_url: str, token: str, seen: Seen) -> tuple[AiogramBot, Dispatcher]:
    """An aiogram v3 bot; only the session's server points at botgw."""
    session = AiohttpSession(api=TelegramAPIServer.from_base(rest_url))
    bot = AiogramBot(token=token, session=session)
    router = Router()

    @router.message(CommandStart())
    async def start(message: AioMessage) -> None:
        seen.texts.append(message.text or "")
        keyboard = AioKeyboard(
            inline_keyboard=[[AioButton(text=label, callback_data=data) for label, data in CHOICES]]
        )
        await _aio_patiently(seen, lambda: message.answer(KEYBOARD_TEXT, reply_markup=keyboard))

    @router.callback_query()
    async def button(query: CallbackQuery) -> None:
        seen.callbacks.append(query.data or "")
        await query.answer(f"You chose {query.data}")
        assert isinstance(query.message, AioMessage)
        message = query.message
        await _aio_patiently(seen, lambda: message.edit_text(f"You chose {query.data}"))

    @router.message(Command("photo"))
    async def photo(message: AioMessage, bot: AiogramBot) -> None:
        seen.texts.append(message.text or "")
        upload = BufferedInputFile(PNG, filename="red.png")
        sent = await _aio_patiently(
            seen, lambda: message.answer_photo(upload, caption="a red square")
        )
        assert sent.photo
        largest = sent.photo[-1]
        seen.photo_file_ids.append(largest.file_id)
        file = await bot.get_file(largest.file_id)
        assert file.file_path is not None
        data = await bot.download_file(file.file_path)
        assert data is not None
        seen.downloaded.append(data.read())

    @router.message(Command("flood"))
    async def flood(message: AioMessage, command: CommandObject, bot: AiogramBot) -> None:
        seen.texts.append(message.text or "")
        count = int(command.args) if command.args else 5
        chat_id = message.chat.id
        for i in range(1, count + 1):
            await _aio_patiently(
                seen,
                lambda i=i: bot.send_message(chat_id, f"flood {i}"),  # type: ignore[misc]
            )
        await _aio_patiently(seen, lambda: bot.send_message(chat_id, "flood done"))
        seen.flood_done += 1

    @router.message(F.text)
    async def echo(message: AioMessage) -> None:
        seen.texts.append(message.text or "")
        text = message.text or ""
        await _aio_patiently(seen, lambda: message.answer(text))

    dispatcher = Dispatcher()
    dispatcher.include_router(router)

    @dispatcher.errors()
    async def on_error(event: Any) -> None:
        seen.errors.append(repr(getattr(event, "exception", event)))

    return bot, dispatcher


# -- running them in the test process ----------------------------------------


@contextlib.asynccontextmanager
async def _running_ptb(
    app: PtbApp, start_updater: Callable[[Updater], Awaitable[object]]
) -> AsyncIterator[PtbApp]:
    """Start the PTB application and its updater; stop them as ``run_polling`` would."""
    await app.initialize()
    await app.start()
    assert app.updater is not None
    await start_updater(app.updater)
    try:
        yield app
    finally:
        await app.updater.stop()
        await app.stop()
        await app.shutdown()


def polling_ptb(app: PtbApp) -> contextlib.AbstractAsyncContextManager[PtbApp]:
    """Start the PTB application in polling mode; stop it as ``run_polling`` would."""
    return _running_ptb(
        app,
        lambda updater: updater.start_polling(poll_interval=0.0, timeout=dtm.timedelta(seconds=5)),
    )


def webhook_ptb(
    app: PtbApp, *, port: int, secret_token: str
) -> contextlib.AbstractAsyncContextManager[PtbApp]:
    """Start the PTB application with its built-in webhook server on loopback."""
    return _running_ptb(
        app,
        lambda updater: updater.start_webhook(
            listen="127.0.0.1",
            port=port,
            url_path="telegram-hook",
            webhook_url=f"http://127.0.0.1:{port}/telegram-hook",
            secret_token=secret_token,
        ),
    )


@contextlib.asynccontextmanager
async def polling_aiogram(bot: AiogramBot, dispatcher: Dispatcher) -> AsyncIterator[None]:
    """``Dispatcher.start_polling`` in a task, stopped with ``stop_polling``."""
    task = asyncio.create_task(
        dispatcher.start_polling(bot, handle_signals=False, polling_timeout=5)
    )
    try:
        yield
    finally:
        if task.done():
            task.result()  # polling died: show why
        else:
            await dispatcher.stop_polling()
            await task


# -- a user chatting with one of them ------------------------------------------


def ptb_started(
    rest_url: str, token: str, seen: Seen
) -> contextlib.AbstractAsyncContextManager[PtbApp]:
    """The PTB bot, polling."""
    return polling_ptb(ptb_application(rest_url, token, seen))


@contextlib.asynccontextmanager
async def aiogram_started(rest_url: str, token: str, seen: Seen) -> AsyncIterator[AiogramBot]:
    """The aiogram bot, polling."""
    bot, dispatcher = aiogram_bot(rest_url, token, seen)
    async with polling_aiogram(bot, dispatcher):
        yield bot


@dataclass
class Chat(Generic[T]):
    """A user's private chat with a running bot."""

    bot: BotAccount
    library: T  # the library's application or bot
    seen: Seen
    http: httpx.AsyncClient
    as_user: Caller
    chat_id: str


@contextlib.asynccontextmanager
async def chatting(
    rest_url: str,
    settings: Settings,
    prefix: str,
    start: Callable[[str, str, Seen], contextlib.AbstractAsyncContextManager[T]],
) -> AsyncIterator[Chat[T]]:
    """A new user and bot (names from ``prefix``), the bot running through ``start``,
    and the user having started it (``startBot``)."""
    user = await create_user(settings, unique(prefix))
    bot = await create_bot(settings, user, unique(prefix) + "_bot")
    seen = Seen()
    async with (
        httpx.AsyncClient(base_url=rest_url, timeout=wait_s(30)) as http,
        start(rest_url, telegram_token(bot.token), seen) as library,
    ):
        as_user = client_api(http, user)
        chat = await as_user("startBot", username=bot.username)
        yield Chat(bot, library, seen, http, as_user, chat["id"])


# -- waiting for what the user sees -------------------------------------------


async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: str, *, seconds: float = 20.0
) -> T:
    """Poll ``probe`` until it returns something truthy (timeouts scale with wait_s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s(seconds)
    while True:
        value = await probe()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def telegram_token(native: str) -> str:
    """The Telegram form of a bot token: the native token without ``bot_``."""
    assert native.startswith("bot_")
    return native.removeprefix("bot_")


async def history(as_user: Caller, chat_id: str) -> list[dict[str, Any]]:
    """The chat's messages as the user sees them (client getChatHistory), oldest first."""
    result = await as_user("getChatHistory", chat_id=chat_id, limit=100)
    messages = result["messages"] if isinstance(result, dict) else result
    assert isinstance(messages, list)
    return sorted(messages, key=lambda m: int(m["message_id"]))


async def bot_message(
    as_user: Caller, chat_id: str, match: Callable[[dict[str, Any]], Any], what: str
) -> dict[str, Any]:
    """Wait for a message from the bot in the user's chat that ``match`` accepts."""

    async def probe() -> dict[str, Any] | None:
        for message in await history(as_user, chat_id):
            if message.get("from", {}).get("is_bot") and match(message):
                return message
        return None

    return await eventually(probe, what)


async def until(condition: Callable[[], bool], what: str, seen: Seen | None = None) -> None:
    """Wait until ``condition()`` holds (for what a bot running in this process saw)."""

    async def probe() -> bool:
        return condition()

    try:
        await eventually(probe, what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the bot saw {seen}") from None


async def download_as_user(as_user: Caller, http: httpx.AsyncClient, file_id: str) -> bytes:
    """The user's app downloads a file it was sent (client getFile, then its file_path)."""
    file = await as_user("getFile", file_id=file_id)
    response = await http.get(
        f"/client/file/{file['file_path']}", headers={"Authorization": as_user.auth}
    )
    assert response.status_code == 200, response.text
    return response.content


async def conversation(as_user: Caller, http: httpx.AsyncClient, chat_id: str, seen: Seen) -> None:
    """The conversation every example bot holds after the user started it:
    keyboard, button press (answer + edit), echo, photo download."""
    keyboard = await bot_message(
        as_user, chat_id, lambda m: m.get("text") == KEYBOARD_TEXT, "the keyboard"
    )
    rows = [[{"text": label, "callback_data": data} for label, data in CHOICES]]
    assert keyboard["reply_markup"] == {"inline_keyboard": rows}

    # pressing a button: the bot answers the query and edits its message
    pressed = await as_user(
        "pressButton", chat_id=chat_id, message_id=keyboard["message_id"], callback_data="blue"
    )
    query_id = pressed["id"]
    assert pressed["answered"] is False

    async def answered() -> dict[str, Any] | None:
        answer = await as_user("getCallbackAnswer", callback_query_id=query_id)
        return answer if answer["answered"] else None

    answer = await eventually(answered, "the callback answer")
    assert answer["text"] == "You chose blue"
    edited = await bot_message(
        as_user,
        chat_id,
        lambda m: m["message_id"] == keyboard["message_id"] and m.get("text") == "You chose blue",
        "the edited keyboard message",
    )
    assert edited.get("edit_date")

    # echo
    await as_user("sendMessage", chat_id=chat_id, text="hello, bot")
    await bot_message(as_user, chat_id, lambda m: m.get("text") == "hello, bot", "the echo")

    # a photo, which the bot reads back and the user downloads
    await as_user("sendMessage", chat_id=chat_id, text="/photo")
    photo = await bot_message(as_user, chat_id, lambda m: m.get("photo"), "the photo")
    assert photo.get("caption") == "a red square"
    await until(lambda: bool(seen.downloaded), "the bot's own download", seen)
    assert seen.downloaded == [PNG]
    assert await download_as_user(as_user, http, photo["photo"][-1]["file_id"]) == PNG

    assert seen.texts == ["/start", "hello, bot", "/photo"]
    assert seen.callbacks == ["blue"]
    assert seen.errors == []
