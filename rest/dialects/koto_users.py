"""Koto v1's routes called with a user token: bot management, conversations,
user messages and button presses, over the management and client APIs.

=========================  =====================================================
POST /v1/bot/register      manage ``createBot`` (botId made of displayName)
GET  /v1/bot/list          manage ``listBots``
GET  /v1/bot/{botId}       manage ``getBot``
POST /v1/bot/revoke        manage ``revokeBot``
POST /v1/bot/conversation/start   client ``startBot`` (the bot gets /start)
POST /v1/bot/user-message  client ``sendMessage``, then the bot's reply if it
                           comes within :data:`REPLY_WAIT_SECONDS`
POST /v1/bot/callback      client ``pressButton``
=========================  =====================================================
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

from starlette.requests import Request

from rest.dialects.koto_http import (
    KotoBody,
    bot_named,
    invoke,
    read_body,
    require_str,
    user_call,
)
from rest.methods import CLIENT_METHODS, MANAGE_METHODS
from rest.methods.history import read_history
from rest.services import Services, UserCall
from shared.errors import ApiError
from shared.koto import millis
from shared.models import BotRecord, ChatRecord, MessageRecord, member_key

__all__ = [
    "REPLY_WAIT_SECONDS",
    "bot_info",
    "bot_reply",
    "callback",
    "get_bot",
    "koto_bot_id",
    "list_bots",
    "register",
    "revoke",
    "start_conversation",
    "user_message",
]

# How long user-message waits for the bot's reply; a later one is only in the chat.
REPLY_WAIT_SECONDS = 3.0
_REPLY_POLL_S = (0.02, 0.05, 0.1, 0.2)  # between looks at the chat, growing

_NOT_ID = re.compile(r"[^a-z0-9]+")
_MAX_BASE = 28  # botgw's bot usernames: 5-32 characters ending in _bot

Result = tuple[KotoBody, dict[str, str]]
_OK: KotoBody = {"status": "ok"}


def koto_bot_id(display_name: str) -> str:
    """The botId KotoFather would make of a display name: lower case, runs of
    other characters as one ``_``, starting with a letter, ending in ``_bot``
    ("MyBot" → ``mybot_bot``, "Weather Bot" → ``weather_bot``)."""
    base = _NOT_ID.sub("_", display_name.lower()).strip("_")
    base = base.lstrip("0123456789_")
    base = base.removesuffix("_bot")
    base = base[:_MAX_BASE].rstrip("_")
    if not base:
        raise ApiError(
            400,
            "INVALID_PARAMETER",
            "'displayName' must contain a Latin letter: the bot's id is made of it",
        )
    return f"{base}_bot"


def bot_info(view: dict[str, Any]) -> KotoBody:
    """A BotInfo of botgw's Bot object (manage API)."""
    return {
        "botId": view["username"],
        "ownerId": str(view["owner_id"]),
        "displayName": view["name"],
        "description": view["description"],
        "avatarUrl": "",
        "createdAt": int(view["created"]) * 1000,
        "active": bool(view["active"]),
    }


async def register(request: Request, services: Services) -> Result:
    method = MANAGE_METHODS["createBot"]
    body, _ = await read_body(request, method)
    call = await user_call(request, services)
    name = require_str(body, "displayName")
    description = require_str(body, "description", default="")
    params = {"username": koto_bot_id(name), "name": name, "description": description}
    try:
        view, headers = await invoke(
            request, MANAGE_METHODS, "createBot", call, params, api="manage"
        )
    except ApiError as error:
        if error.code == "USERNAME_TAKEN":
            raise ApiError(
                409, error.code, f"the bot id '{params['username']}' is taken: pick another name"
            ) from None
        raise
    return {"bot": bot_info(view), "botToken": view["token"]}, headers


async def list_bots(request: Request, services: Services) -> Result:
    call = await user_call(request, services)
    views, _ = await invoke(request, MANAGE_METHODS, "listBots", call, {}, api="manage")
    bots = sorted(views, key=lambda view: (view["created"], view["username"]))
    return {"bots": [bot_info(view) for view in bots]}, {}


async def get_bot(request: Request, services: Services) -> Result:
    call = await user_call(request, services)
    bot = await bot_named(services, request.path_params.get("bot_id"))
    view, _ = await invoke(
        request, MANAGE_METHODS, "getBot", call, {"bot_id": bot.id}, api="manage"
    )
    return {"bot": bot_info(view)}, {}


async def revoke(request: Request, services: Services) -> Result:
    body, _ = await read_body(request, MANAGE_METHODS["revokeBot"])
    call = await user_call(request, services)
    bot = await bot_named(services, body.get("botId"))
    _, headers = await invoke(
        request, MANAGE_METHODS, "revokeBot", call, {"bot_id": bot.id}, api="manage"
    )
    return dict(_OK), headers


async def start_conversation(request: Request, services: Services) -> Result:
    body, _ = await read_body(request, CLIENT_METHODS["startBot"])
    call = await user_call(request, services)
    bot = await bot_named(services, body.get("botId"))
    _, headers = await invoke(
        request, CLIENT_METHODS, "startBot", call, {"username": bot.username}, api="client"
    )
    return dict(_OK), headers


async def _conversation(call: UserCall, bot: BotRecord) -> ChatRecord:
    """The user's private chat with ``bot``: 412 if the bot was revoked, 404 if
    the user never started a conversation with it."""
    if not bot.active:
        raise ApiError(412, "BOT_INACTIVE", f"the bot '{bot.username}' was revoked")
    messenger = call.services.messenger
    chat_id = await messenger.db.private_chat_of(bot.id, messenger.scoped(bot.id, call.user.id))
    chat = await messenger.db.get_chat(chat_id) if chat_id is not None else None
    if chat is None:
        raise ApiError(
            404,
            "CHAT_NOT_FOUND",
            f"there is no conversation with '{bot.username}': start one with "
            "/v1/bot/conversation/start",
        )
    return chat


def bot_reply(message: MessageRecord) -> KotoBody:
    """A BotReply of a bot's message: its text (or caption), its callback buttons
    row after row, and (beyond the document) its messageId, for /v1/bot/callback."""
    out: KotoBody = {
        "content": message.text or str(message.extra.get("caption") or ""),
        "messageId": str(message.id),
    }
    buttons = [
        {"text": button["text"], "callbackData": button["callback_data"]}
        for row in (message.reply_markup or {}).get("inline_keyboard", ())
        for button in row
        if "callback_data" in button
    ]
    if buttons:
        out["inlineButtons"] = buttons
    return out


async def _reply(call: UserCall, chat: ChatRecord, bot: BotRecord, after: int) -> KotoBody | None:
    """The bot's first message in ``chat`` after message ``after``, if it comes
    within REPLY_WAIT_SECONDS (checked between growing pauses)."""
    messenger = call.services.messenger
    deadline = time.monotonic() + REPLY_WAIT_SECONDS
    looks = 0
    while True:
        found = await read_history(
            messenger,
            chat,
            bot=None,
            limit=1,
            before=None,
            since=after,
            sender=member_key("b", bot.id),
        )
        if found:
            return bot_reply(found[0])
        left = deadline - time.monotonic()
        if left <= 0 or call.services.draining:
            return None
        await asyncio.sleep(min(left, _REPLY_POLL_S[min(looks, len(_REPLY_POLL_S) - 1)]))
        looks += 1


async def user_message(request: Request, services: Services) -> Result:
    body, _ = await read_body(request, CLIENT_METHODS["sendMessage"])
    call = await user_call(request, services)
    bot = await bot_named(services, body.get("botId"))
    content = require_str(body, "content")
    chat = await _conversation(call, bot)
    params = {"chat_id": chat.id, "text": content}
    message, headers = await invoke(
        request, CLIENT_METHODS, "sendMessage", call, params, api="client"
    )
    message_id = int(message["message_id"])
    out: KotoBody = {"messageId": str(message_id), "timestamp": millis(message_id)}
    reply = await _reply(call, chat, bot, message_id)
    if reply is not None:
        out["botReply"] = reply
    return out, headers


async def callback(request: Request, services: Services) -> Result:
    body, from_text = await read_body(request, CLIENT_METHODS["pressButton"])
    call = await user_call(request, services)
    bot = await bot_named(services, body.get("botId"))
    chat = await _conversation(call, bot)
    params = {
        "chat_id": chat.id,
        "message_id": body.get("messageId"),
        "callback_data": body.get("callbackData"),
    }
    answer, headers = await invoke(
        request, CLIENT_METHODS, "pressButton", call, params, api="client", from_text=from_text
    )
    return {"callbackId": answer["id"], "timestamp": int(time.time() * 1000)}, headers
