"""Koto v1's routes called with a bot token (and the public command list), over
botgw's Bot API methods.

==============================  ===================================================
POST /v1/bot/send               ``sendMessage`` (inlineButtons: one button a row)
GET  /v1/bot/getUpdates         ``getUpdates`` of consumer ``default``, messages
                                and callback queries, rendered by :mod:`shared.koto`
POST /v1/bot/setWebhook         ``setWebhook`` with ``id_format="koto"``
POST /v1/bot/setMyCommands      ``setMyCommands`` (Koto's "/" taken off)
GET  /v1/bot/{botId}/commands   ``getMyCommands`` of the named bot, no token
==============================  ===================================================
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from rest.dialects.koto_http import KotoBody, bot_call, bot_named, invoke, read_body, require_str
from rest.methods import BOT_METHODS
from rest.services import BotCall, Services
from shared.errors import ApiError
from shared.koto import CONTENT_COMMAND, CONTENT_TEXT, KOTO_UPDATE_TYPES, bot_update, millis

__all__ = [
    "MAX_COMMANDS",
    "bot_commands",
    "get_updates",
    "inline_keyboard",
    "send",
    "set_my_commands",
    "set_webhook",
]

MAX_COMMANDS = 30
Result = tuple[KotoBody, dict[str, str]]
_OK: KotoBody = {"status": "ok"}


def inline_keyboard(buttons: Any) -> dict[str, Any]:
    """The reply_markup of Koto's ``inlineButtons``: one InlineButton a row."""
    if not isinstance(buttons, list) or not buttons:
        raise ApiError(
            400, "INVALID_PARAMETER", "'inlineButtons' must be a non-empty array of InlineButton"
        )
    rows = []
    for index, button in enumerate(buttons):
        text = button.get("text") if isinstance(button, dict) else None
        data = button.get("callbackData") if isinstance(button, dict) else None
        if not isinstance(text, str) or not isinstance(data, str):
            raise ApiError(
                400,
                "INVALID_PARAMETER",
                f"'inlineButtons[{index}]' must be an object with the strings 'text' and "
                "'callbackData'",
            )
        rows.append([{"text": text, "callback_data": data}])
    return {"inline_keyboard": rows}


async def send(request: Request, services: Services) -> Result:
    body, from_text = await read_body(request, BOT_METHODS["sendMessage"])
    call = await bot_call(request, services, body)
    kind = body.get("contentType", CONTENT_TEXT)
    if from_text and isinstance(kind, str) and kind.isdigit():
        kind = int(kind)
    if kind not in (CONTENT_TEXT, CONTENT_COMMAND) or isinstance(kind, bool):
        raise ApiError(400, "INVALID_PARAMETER", "'contentType' must be 1 (text) or 2 (command)")
    recipient = body.get("recipientFingerprint")
    if recipient is None:
        raise ApiError(400, "MISSING_PARAMETER", "'recipientFingerprint' is required")
    params: dict[str, Any] = {"chat_id": recipient, "text": require_str(body, "content")}
    if body.get("inlineButtons") is not None:
        params["reply_markup"] = inline_keyboard(body["inlineButtons"])
    message, headers = await invoke(
        request, BOT_METHODS, "sendMessage", call, params, api="bot", from_text=from_text
    )
    message_id = int(message["message_id"])
    return {"messageId": str(message_id), "timestamp": millis(message_id)}, headers


async def get_updates(request: Request, services: Services) -> Result:
    method = BOT_METHODS["getUpdates"]
    body, from_text = await read_body(request, method)
    call = await bot_call(request, services, body)
    params: dict[str, Any] = {
        "offset": body.get("offset", 0),
        "limit": body.get("limit", 100),
        "timeout": body.get("timeout", 30),
        "allowed_updates": list(KOTO_UPDATE_TYPES),
    }
    updates, _ = await invoke(
        request, BOT_METHODS, "getUpdates", call, params, api="bot", from_text=from_text
    )
    out = []
    for update in updates:
        fields = {key: value for key, value in update.items() if key != "update_id"}
        rendered = bot_update(int(update["update_id"]), fields)
        if rendered is not None:
            out.append(rendered)
    return {"updates": out}, {}


async def set_webhook(request: Request, services: Services) -> Result:
    body, from_text = await read_body(request, BOT_METHODS["setWebhook"])
    call = await bot_call(request, services, body)
    params: dict[str, Any] = {"url": require_str(body, "url"), "id_format": "koto"}
    if body.get("secret") not in (None, ""):
        params["secret_token"] = body["secret"]
    _, headers = await invoke(
        request, BOT_METHODS, "setWebhook", call, params, api="bot", from_text=from_text
    )
    return dict(_OK), headers


def _native_commands(commands: Any) -> list[dict[str, Any]]:
    """Koto's BotCommand list as botgw's (the command without its "/")."""
    if not isinstance(commands, list):
        raise ApiError(400, "INVALID_PARAMETER", "'commands' must be an array of BotCommand")
    if len(commands) > MAX_COMMANDS:
        raise ApiError(
            400, "INVALID_PARAMETER", f"'commands' may hold at most {MAX_COMMANDS} commands"
        )
    out = []
    for index, command in enumerate(commands):
        name = command.get("command") if isinstance(command, dict) else None
        if not isinstance(name, str) or not name.startswith("/"):
            raise ApiError(
                400,
                "INVALID_PARAMETER",
                f"'commands[{index}].command' must be a string starting with / (e.g. /help)",
            )
        out.append({**command, "command": name[1:]})
    return out


async def set_my_commands(request: Request, services: Services) -> Result:
    body, _ = await read_body(request, BOT_METHODS["setMyCommands"])
    call = await bot_call(request, services, body)
    if body.get("commands") is None:
        raise ApiError(400, "MISSING_PARAMETER", "'commands' is required")
    params = {"commands": _native_commands(body["commands"])}
    _, headers = await invoke(request, BOT_METHODS, "setMyCommands", call, params, api="bot")
    return dict(_OK), headers


async def bot_commands(request: Request, services: Services) -> Result:
    """The public command menu of a bot (no token: it is what every user sees)."""
    bot = await bot_named(services, request.path_params.get("bot_id"))
    if not bot.active:
        raise ApiError(412, "BOT_INACTIVE", f"the bot '{bot.username}' was revoked")
    call = BotCall(services, bot, dialect="koto")
    commands, _ = await invoke(request, BOT_METHODS, "getMyCommands", call, {}, api="bot")
    return {
        "commands": [
            {"command": "/" + item["command"], "description": item["description"]}
            for item in commands
        ]
    }, {}
