"""``/v1/bot-api/bot...``: the bot itself, its commands and its webhook.

* ``GET``/``PUT /bot``: getMe's bot with its description and avatar; ``PUT``
  runs setMyName and setMyDescription and keeps the avatar URL with the bot.
* ``/bot/commands``, ``/bot/command/:id``: the bot's command list (getMyCommands,
  setMyCommands) with ``alias`` for ``command``. A command's id is derived from
  the bot and its alias (:func:`command_id`), so it is the same on every read
  and needs no storage of its own; adding an alias that exists replaces its
  description.
* ``/bot/webhook``: setWebhook, getWebhookInfo's webhook with its secret,
  deleteWebhook. Its deliveries are the dialect's message objects, one per
  user message (``id_format="bot-api"``, :mod:`shared.bot_api_v1`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from typing import Any

from rest.dialects.bot_api_http import Context, read_json
from rest.methods import BOT_METHODS
from rest.schema import validate_params
from shared.bot_api_v1 import BOT_API_FORMAT
from shared.errors import ApiError

__all__ = [
    "WEBHOOK_NAMES",
    "add_commands",
    "command_id",
    "delete_command",
    "delete_webhook",
    "edit_bot",
    "get_bot",
    "get_commands",
    "get_webhook",
    "set_webhook",
]

MAX_AVATAR = 2048
_AVATAR_RE = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)

_INDEXED_COMMAND = re.compile(r"commands\[(\d+)\](\.command)?")
WEBHOOK_NAMES = {"secret_token": "secret"}


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "BAD_REQUEST", "the request body must be a JSON object")
    return body


# -- the bot ---------------------------------------------------------------------


async def _bot_object(context: Context) -> dict[str, Any]:
    me = await context.run("getMe", {})
    description = await context.run("getMyDescription", {})
    return {
        "id": str(me["id"]),
        "name": me["first_name"],
        "description": description["description"],
        "avatar": context.call.bot.avatar or None,
    }


async def get_bot(context: Context) -> dict[str, Any]:
    """``GET /v1/bot-api/bot``."""
    return await _bot_object(context)


def _avatar(value: Any) -> str:
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise ApiError(400, "INVALID_PARAMETER", "parameter 'avatar' must be a string (a URL)")
    if len(value) > MAX_AVATAR or not _AVATAR_RE.fullmatch(value):
        raise ApiError(
            400,
            "INVALID_PARAMETER",
            f"parameter 'avatar' must be an http or https URL of at most {MAX_AVATAR} characters",
        )
    return value


async def edit_bot(context: Context) -> dict[str, Any]:
    """``PUT /v1/bot-api/bot``: every field is checked before any is written."""
    body = _object(await read_json(context.request))
    avatar = _avatar(body["avatar"]) if "avatar" in body else None
    changes = [
        (method, {field: body[field]})
        for method, field in (("setMyName", "name"), ("setMyDescription", "description"))
        if field in body
    ]
    for method, params in changes:
        validate_params(BOT_METHODS[method], params, from_text=False)
    # setMyName refuses an empty name before it writes: nothing was written yet
    for method, params in changes:
        await context.run(method, params)
    db = context.services.messenger.db
    if avatar is not None:
        await db.update_bot(context.call.bot.id, {"avatar": avatar})
    fresh = await db.get_bot(context.call.bot.id)
    if fresh is not None:  # the answer shows the bot as it is now
        context.call = replace(context.call, bot=fresh)
    return await _bot_object(context)


# -- commands --------------------------------------------------------------------


def command_id(bot_id: int, alias: str) -> str:
    """The id of the bot's command ``alias``: 26 hex digits of a hash of both."""
    return hashlib.blake2b(f"{bot_id}:{alias}".encode(), digest_size=13).hexdigest()


def _command(bot_id: int, command: dict[str, str]) -> dict[str, str]:
    return {
        "id": command_id(bot_id, command["command"]),
        "alias": command["command"],
        "description": command["description"],
    }


def _body_position(match: re.Match[str]) -> str:
    """``commands[1].command`` as the body names it: ``[1].alias``."""
    return f"[{match.group(1)}]" + (".alias" if match.group(2) else "")


async def get_commands(context: Context) -> list[dict[str, str]]:
    """``GET /v1/bot-api/bot/commands``."""
    commands = await context.run("getMyCommands", {})
    return [_command(context.call.bot.id, c) for c in commands]


async def add_commands(context: Context) -> list[dict[str, str]]:
    """``POST /v1/bot-api/bot/commands``: the commands added, with their ids."""
    body = await read_json(context.request)
    if isinstance(body, dict):
        body = [body]  # one command alone
    if not isinstance(body, list) or not body:
        raise ApiError(
            400, "BAD_REQUEST", "the request body must be a non-empty JSON array of commands"
        )
    new = [
        {"command": item.get("alias"), "description": item.get("description")}
        if isinstance(item, dict)
        else item
        for item in body
    ]
    # the body alone, so that a mistake names its own position
    try:
        checked = validate_params(BOT_METHODS["setMyCommands"], {"commands": new}, from_text=False)
    except ApiError as error:
        raise ApiError(
            error.status, error.code, _INDEXED_COMMAND.sub(_body_position, error.description)
        ) from None
    added: list[dict[str, str]] = checked["commands"]
    current: list[dict[str, str]] = await context.run("getMyCommands", {})
    merged = {c["command"]: c for c in current}
    merged.update((c["command"], c) for c in added)
    await context.run("setMyCommands", {"commands": list(merged.values())})
    return [_command(context.call.bot.id, c) for c in added]


async def delete_command(context: Context) -> dict[str, str]:
    """``DELETE /v1/bot-api/bot/command/:id``: the command deleted."""
    wanted = context.request.path_params.get("id", "")
    bot_id = context.call.bot.id
    current: list[dict[str, str]] = await context.run("getMyCommands", {})
    found = [c for c in current if command_id(bot_id, c["command"]) == wanted]
    if not found:
        raise ApiError(404, "COMMAND_NOT_FOUND", "the bot has no command with this id")
    kept = [c for c in current if c is not found[0]]
    await context.run("setMyCommands", {"commands": kept})
    return _command(bot_id, found[0])


# -- webhook ---------------------------------------------------------------------


def _webhook(bot_id: int, url: str, secret: str | None) -> dict[str, Any]:
    return {"botId": str(bot_id), "url": url, "secret": secret}


async def set_webhook(context: Context) -> dict[str, Any]:
    """``POST /v1/bot-api/bot/webhook``."""
    body = _object(await read_json(context.request))
    url = body.get("url")
    if isinstance(url, str) and not url.strip():
        # setWebhook would take an empty url for "remove"; here that is DELETE
        raise ApiError(400, "INVALID_PARAMETER", "parameter 'url' must not be empty")
    params = {"url": url, "secret_token": body.get("secret"), "id_format": BOT_API_FORMAT}
    await context.run("setWebhook", params, idempotent=True)
    return _webhook(context.call.bot.id, str(url).strip(), body.get("secret"))


async def get_webhook(context: Context) -> dict[str, Any]:
    """``GET /v1/bot-api/bot/webhook``: the webhook, its secret included."""
    bot_id = context.call.bot.id
    info = await context.run("getWebhookInfo", {})
    config = await context.services.store.readers.get_webhook(bot_id)
    if not info["url"] or config is None:
        raise ApiError(404, "WEBHOOK_NOT_FOUND", "the bot has no webhook")
    return _webhook(bot_id, info["url"], config.secret)


async def delete_webhook(context: Context) -> dict[str, Any]:
    """``DELETE /v1/bot-api/bot/webhook``: the webhook removed."""
    removed = await get_webhook(context)
    await context.run("deleteWebhook", {})
    return removed
