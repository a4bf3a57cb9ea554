"""Polls: a bot sends and stops them, users vote.

A vote (client ``answerPoll``) gives the bot that sent the poll a ``poll`` update
with the new counts and, unless the poll is anonymous, a ``poll_answer`` naming the
voter; stopping a poll gives it a final ``poll`` update (as in Telegram, bots hear
about the polls they sent). Votes are kept one field per voter, so concurrent
voters never overwrite each other; a closed poll refuses votes atomically.
"""

from __future__ import annotations

import time
from typing import Any

from rest import changes, visibility
from rest.messenger import Messenger
from rest.object_schemas import ref
from rest.ratelimit import take_send_token
from rest.schema import (
    CHAT_ID,
    MESSAGE_ID,
    REPLY_MARKUP,
    SEND_TAIL,
    Method,
    Param,
    reply_target,
)
from rest.services import BotCall, UserCall
from shared.errors import ApiError
from shared.ids import random_id
from shared.models import ChatRecord, MessageRecord, member_key

__all__ = ["BOT", "CLIENT", "copy_poll"]

MAX_OPTIONS = 12


def copy_poll(extra: dict[str, Any]) -> dict[str, Any]:
    """Message extras for a forward or copy: a poll becomes a new poll with no votes."""
    if "poll" in extra:
        extra = dict(extra)
        extra["poll"] = {**extra["poll"], "id": str(random_id())}
    return extra


def _check_options(name: str, value: Any) -> list[str]:
    out: list[str] = []
    for i, option in enumerate(value):
        text = option.get("text") if isinstance(option, dict) else option
        if not isinstance(text, str) or not 1 <= len(text) <= 100 or not text.strip():
            raise ApiError(
                400,
                "INVALID_PARAMETER",
                f"{name}[{i}] must be a string (or InputPollOption) of 1-100 characters",
            )
        out.append(text)
    return out


def _closed_now(spec: dict[str, Any]) -> bool:
    close_date = spec.get("close_date")
    return bool(close_date and time.time() >= close_date)


async def send_poll(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    services = call.services
    messenger = services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    options: list[str] = p["options"]
    kind: str = p["type"]
    correct = p["correct_option_id"]
    if kind == "quiz":
        if correct is None or not 0 <= correct < len(options):
            raise ApiError(
                400,
                "INVALID_PARAMETER",
                "parameter 'correct_option_id' must name one of the options in a quiz",
            )
        if p["allows_multiple_answers"]:
            raise ApiError(400, "INVALID_PARAMETER", "a quiz cannot allow multiple answers")
    elif correct is not None:
        raise ApiError(400, "INVALID_PARAMETER", "correct_option_id is only for quiz polls")
    spec: dict[str, Any] = {
        "id": str(random_id()),
        "question": p["question"],
        "options": options,
        "is_anonymous": p["is_anonymous"],
        "type": kind,
        "allows_multiple_answers": p["allows_multiple_answers"],
    }
    if kind == "quiz":
        spec["correct_option_id"] = correct
        if p["explanation"]:
            spec["explanation"] = p["explanation"]
    if p["open_period"]:
        spec["open_period"] = p["open_period"]
        spec["close_date"] = int(time.time()) + p["open_period"]
    elif p["close_date"]:
        if p["close_date"] <= time.time():
            raise ApiError(400, "INVALID_PARAMETER", "parameter 'close_date' is in the past")
        spec["close_date"] = p["close_date"]
    replied = await visibility.reply_target(messenger.db, call.bot, chat, *reply_target(p))
    await take_send_token(services.store, services.settings, call.bot.id, chat)
    message = await messenger.new_bot_message(
        chat,
        call.bot.id,
        replied,
        {"poll": spec},
        reply_markup=p["reply_markup"],
        idempotency_key=call.idempotency_key,
    )
    if p["is_closed"]:
        await messenger.db.close_poll(chat.id, message.id)
    view = messenger.view(call.bot.id)
    view.remember(replied)
    return await view.message(chat, message)


def _poll_of(message: MessageRecord) -> MessageRecord:
    """``message``, if it is a poll (else 400 ``MESSAGE_HAS_NO_POLL``)."""
    if "poll" not in message.extra:
        raise ApiError(400, "MESSAGE_HAS_NO_POLL", f"message {message.id} is not a poll")
    return message


async def _poll_message(messenger: Messenger, chat: ChatRecord, message_id: int) -> MessageRecord:
    """A poll of a user's chat (users see every message of their chats)."""
    return _poll_of(await messenger.message_in(chat, message_id))


async def stop_poll(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    message = _poll_of(await visibility.find_message(messenger.db, call.bot, chat, p["message_id"]))
    if message.sender != member_key("b", call.bot.id):
        raise ApiError(400, "MESSAGE_CANT_BE_EDITED", "a bot can only stop its own polls")
    if _closed_now(message.extra["poll"]) or not await changes.close_poll(messenger, chat, message):
        raise ApiError(400, "POLL_ALREADY_CLOSED", "the poll is closed already")
    if p["reply_markup"] is not None:
        message.reply_markup = p["reply_markup"]
        await messenger.save_edit(chat, message)
    poll = await messenger.view(call.bot.id).poll(chat, message)
    return poll


async def answer_poll(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_user(call.user, p["chat_id"])
    message = await _poll_message(messenger, chat, p["message_id"])
    spec: dict[str, Any] = message.extra["poll"]
    chosen: list[int] = p["option_ids"]
    if len(set(chosen)) != len(chosen) or any(not 0 <= i < len(spec["options"]) for i in chosen):
        raise ApiError(
            400,
            "INVALID_PARAMETER",
            f"parameter 'option_ids' must be distinct option indexes from 0 to "
            f"{len(spec['options']) - 1}",
        )
    if len(chosen) > 1 and not spec["allows_multiple_answers"]:
        raise ApiError(400, "INVALID_PARAMETER", "this poll allows only one answer")
    me = member_key("u", call.user.id)
    await changes.vote(messenger, chat, message, me, chosen, expired=_closed_now(spec))
    return await messenger.view(None).poll(chat, message)


_SEND_POLL = Method(
    "sendPoll",
    send_poll,
    summary="Send a poll (regular or quiz).",
    params=(
        CHAT_ID,
        Param("question", "str", required=True, min_length=1, max_length=300),
        Param(
            "options",
            "array",
            required=True,
            min_length=2,
            max_length=MAX_OPTIONS,
            check=_check_options,
            schema={
                "type": "array",
                "items": {"oneOf": [{"type": "string"}, {"type": "object"}]},
            },
            doc="2-12 answer options: strings or InputPollOption objects",
        ),
        Param("is_anonymous", "bool", default=True),
        Param("type", "str", default="regular", choices=("regular", "quiz")),
        Param("allows_multiple_answers", "bool", default=False),
        Param("correct_option_id", "int", minimum=0, maximum=MAX_OPTIONS - 1),
        Param("explanation", "str", max_length=200),
        Param("open_period", "int", minimum=5, maximum=600),
        Param("close_date", "int", minimum=0, maximum=2**40),
        Param("is_closed", "bool", default=False),
        *SEND_TAIL,
    ),
    result=ref("Message"),
)

BOT: tuple[Method, ...] = (
    _SEND_POLL,
    Method(
        "stopPoll",
        stop_poll,
        summary="Close one of the bot's polls; returns its final state.",
        params=(CHAT_ID, MESSAGE_ID, REPLY_MARKUP),
        result=ref("Poll"),
    ),
)

CLIENT: tuple[Method, ...] = (
    Method(
        "answerPoll",
        answer_poll,
        summary="Vote in a poll (an empty list takes the vote back).",
        params=(
            CHAT_ID,
            MESSAGE_ID,
            Param("option_ids", "array", required=True, items="int", max_length=MAX_OPTIONS),
        ),
        result=ref("Poll"),
    ),
)
