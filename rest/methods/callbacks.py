"""Callback queries: a user presses an inline button, the bot answers once.

``pressButton`` (client API) checks that the message carries a button with that
``callback_data``, stores the query and appends a ``callback_query`` update to the
bot that sent the message, and returns at once with the query id. The bot answers
with ``answerCallbackQuery`` (text, alert, url) exactly once: a second answer is
400 ``QUERY_ALREADY_ANSWERED``, an unknown or expired id 400 ``QUERY_ID_INVALID``.
The user reads the answer with ``getCallbackAnswer``. A query can be answered for
:data:`ANSWER_WINDOW_SECONDS`.

The query's ``message`` is the bot's message as the bot sees it; one it may no
longer see (it left the group and came back since) is an InaccessibleMessage,
Telegram's ``{chat, message_id, date: 0}``.
"""

from __future__ import annotations

import secrets
from typing import Any

from rest.messenger import Outgoing, now
from rest.object_schemas import ref
from rest.schema import CHAT_ID, MESSAGE_ID, Method, Param
from rest.services import BotCall, UserCall
from shared.errors import ApiError
from shared.models import CallbackRecord, member_key

__all__ = ["ANSWER_WINDOW_SECONDS", "BOT", "CLIENT"]

ANSWER_WINDOW_SECONDS = 900
_QUERY_ID = Param(
    "callback_query_id",
    "str",
    required=True,
    pattern=r"^[A-Za-z0-9_-]{1,64}$",
    doc="the id of the callback query",
)


def _has_button(markup: dict[str, Any] | None, data: str) -> bool:
    for row in (markup or {}).get("inline_keyboard", ()):
        for button in row:
            if button.get("callback_data") == data:
                return True
    return False


def _answer_view(record: CallbackRecord) -> dict[str, Any]:
    out: dict[str, Any] = {"id": record.id, "answered": record.answer is not None}
    if record.answer is not None:
        out["show_alert"] = bool(record.answer.get("show_alert"))
        for key in ("text", "url"):
            if record.answer.get(key):
                out[key] = record.answer[key]
    return out


async def press_button(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_user(call.user, p["chat_id"])
    message = await messenger.message_in(chat, p["message_id"])
    data: str = p["callback_data"]
    if not message.sent_by_bot or not _has_button(message.reply_markup, data):
        raise ApiError(
            400,
            "BUTTON_DATA_INVALID",
            "the message has no inline button with this callback_data",
        )
    bot = await messenger.bot_in_chat(int(message.sender[1:]), chat)
    if bot is None:
        raise ApiError(400, "BOT_UNAVAILABLE", "the bot that sent this button is not in the chat")
    record = CallbackRecord(
        id=secrets.token_urlsafe(12),
        bot_id=bot.id,
        user_id=call.user.id,
        chat_id=chat.id,
        message_id=message.id,
        data=data,
        created=now(),
    )
    await messenger.db.create_callback(record, ANSWER_WINDOW_SECONDS)
    view = messenger.view(bot.id)
    query = {
        "id": record.id,
        "from": await view.user(member_key("u", call.user.id)),
        "message": await view.message_or_inaccessible(chat, message),
        "chat_instance": messenger.chat_instance(bot.id, chat),
        "data": data,
    }
    await messenger.publish(
        [
            Outgoing(
                bot_id=bot.id,
                kind="callback_query",
                chat_id=messenger.bot_chat_id(bot.id, chat),
                body={"callback_query": query},
            )
        ]
    )
    return _answer_view(record)


async def get_callback_answer(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    record = await call.services.messenger.db.get_callback(p["callback_query_id"])
    if record is None or record.user_id != call.user.id:
        raise ApiError(
            400, "QUERY_ID_INVALID", "no such callback query (unknown, expired or not yours)"
        )
    return _answer_view(record)


async def answer_callback_query(call: BotCall, p: dict[str, Any]) -> bool:
    db = call.services.messenger.db
    record = await db.get_callback(p["callback_query_id"])
    if record is None or record.bot_id != call.bot.id:
        raise ApiError(
            400,
            "QUERY_ID_INVALID",
            "the callback query is unknown or too old to answer (check callback_query_id)",
        )
    answer: dict[str, Any] = {"show_alert": bool(p["show_alert"]), "cache_time": p["cache_time"]}
    if p["text"]:
        answer["text"] = p["text"]
    if p["url"]:
        answer["url"] = p["url"]
    if record.answer is not None or not await db.answer_callback(record.id, answer):
        raise ApiError(
            400, "QUERY_ALREADY_ANSWERED", "this callback query has been answered already"
        )
    event = {
        "callback_query_id": record.id,
        "chat_id": record.chat_id,
        "message_id": record.message_id,
        "text": answer.get("text"),
        "show_alert": answer["show_alert"],
        "url": answer.get("url"),
    }
    # only the user who pressed the button hears the answer
    await call.services.messenger.events.to_user(
        record.user_id, "callback_answer", record.chat_id, event
    )
    return True


BOT: tuple[Method, ...] = (
    Method(
        "answerCallbackQuery",
        answer_callback_query,
        summary="Answer a callback query (once): a notification or an alert for the user.",
        params=(
            _QUERY_ID,
            Param("text", "str", max_length=200),
            Param("show_alert", "bool", default=False),
            Param("url", "str", max_length=2048, pattern=r"^(https?|tg)://\S+$"),
            Param("cache_time", "int", default=0, minimum=0, maximum=86400 * 30),
        ),
        result={"type": "boolean"},
    ),
)

CLIENT: tuple[Method, ...] = (
    Method(
        "pressButton",
        press_button,
        summary="Press an inline button; returns at once with the callback query id.",
        params=(
            CHAT_ID,
            MESSAGE_ID,
            Param("callback_data", "str", required=True, min_length=1, max_length=64),
        ),
        result=ref("CallbackAnswer"),
    ),
    Method(
        "getCallbackAnswer",
        get_callback_answer,
        getter=True,
        summary="The bot's answer to a button the user pressed (answered: false until then).",
        params=(_QUERY_ID,),
        result=ref("CallbackAnswer"),
    ),
)
