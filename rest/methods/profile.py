"""Bot API methods on the bot itself: getMe, its commands, name and description.

Commands are kept per scope and language (``<scope>|<language>``; the default
scope in every language is the bot's own list), names and descriptions per
language, falling back to the bot's own.
"""

from __future__ import annotations

import re
from typing import Any

from rest.messenger import Messenger
from rest.object_schemas import ref
from rest.schema import Method, Param
from rest.services import BotCall
from shared.errors import ApiError
from shared.models import BotRecord

__all__ = ["BOT", "check_commands"]

COMMAND_SCOPES = (
    "default",
    "all_private_chats",
    "all_group_chats",
    "all_chat_administrators",
    "chat",
    "chat_administrators",
    "chat_member",
)
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
LANGUAGE = Param("language_code", "str", pattern=r"^([a-z]{2})?$", doc="ISO 639-1 code, or empty")


async def get_me(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    bot = call.bot
    return {
        "id": bot.id,
        "is_bot": True,
        "first_name": bot.name,
        "username": bot.username,
        "can_join_groups": True,
        "can_read_all_group_messages": not bot.privacy_mode,
        "supports_inline_queries": False,
    }


def check_commands(name: str, value: Any) -> list[dict[str, str]]:
    """A list of BotCommands as given (``setMyCommands``, ``editBot``), or 400."""
    out: list[dict[str, str]] = []
    seen: set[str] = set()
    for i, item in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise ApiError(400, "INVALID_PARAMETER", f"{where} must be a BotCommand object")
        command, description = item.get("command"), item.get("description")
        if not isinstance(command, str) or not _COMMAND_RE.fullmatch(command):
            raise ApiError(
                400,
                "INVALID_PARAMETER",
                f"{where}.command must be 1-32 lowercase letters, digits or underscores",
            )
        if not isinstance(description, str) or not 1 <= len(description) <= 256:
            raise ApiError(
                400, "INVALID_PARAMETER", f"{where}.description must be 1-256 characters"
            )
        if command in seen:
            raise ApiError(400, "INVALID_PARAMETER", f"{where}.command '{command}' is repeated")
        seen.add(command)
        out.append({"command": command, "description": description})
    return out


def _check_scope(name: str, value: Any) -> dict[str, Any]:
    kind = value.get("type")
    if kind not in COMMAND_SCOPES:
        raise ApiError(
            400, "INVALID_PARAMETER", f"{name}.type must be one of " + ", ".join(COMMAND_SCOPES)
        )
    out: dict[str, Any] = {"type": kind}
    needed: tuple[str, ...] = {
        "chat": ("chat_id",),
        "chat_administrators": ("chat_id",),
        "chat_member": ("chat_id", "user_id"),
    }.get(kind, ())
    for field in needed:
        out[field] = Param(f"{name}.{field}", "id").parse(value.get(field), from_text=False)
    return out


async def _scope_key(call: BotCall, p: dict[str, Any]) -> str:
    """``<scope>|<language>``; the empty key is the default scope in every language."""
    scope = p["scope"] or {"type": "default"}
    if "chat_id" in scope:
        await call.services.messenger.chat_for_bot(call.bot, scope["chat_id"])
    parts = [scope["type"], *(str(scope[f]) for f in ("chat_id", "user_id") if f in scope)]
    key = ":".join(parts) + "|" + (p["language_code"] or "")
    return "" if key == "default|" else key


async def set_my_commands(call: BotCall, p: dict[str, Any]) -> bool:
    key = await _scope_key(call, p)
    await _store_commands(call.services.messenger, call.bot, key, p["commands"])
    return True


async def _store_commands(
    messenger: Messenger, bot: BotRecord, key: str, commands: list[dict[str, str]]
) -> None:
    if key == "":
        await messenger.db.update_bot(bot.id, {"commands": commands})
        return
    sets = dict(bot.command_sets)
    if commands:
        sets[key] = commands
    else:
        sets.pop(key, None)
    await messenger.db.update_bot(bot.id, {"command_sets": sets})


async def get_my_commands(call: BotCall, p: dict[str, Any]) -> list[dict[str, str]]:
    key = await _scope_key(call, p)
    return list(call.bot.commands if key == "" else call.bot.command_sets.get(key, []))


async def delete_my_commands(call: BotCall, p: dict[str, Any]) -> bool:
    key = await _scope_key(call, p)
    await _store_commands(call.services.messenger, call.bot, key, [])
    return True


async def _set_text(call: BotCall, field: str, value: str | None, language: str | None) -> None:
    messenger = call.services.messenger
    if language:
        texts = dict(call.bot.texts)
        if value:
            texts[f"{field}|{language}"] = value
        else:
            texts.pop(f"{field}|{language}", None)
        await messenger.db.update_bot(call.bot.id, {"texts": texts})
        return
    if field == "name" and not value:
        raise ApiError(
            400, "INVALID_PARAMETER", "parameter 'name' must not be empty without language_code"
        )
    await messenger.db.update_bot(call.bot.id, {field: value or ""})


def _get_text(bot: BotRecord, field: str, language: str | None) -> str:
    if language and f"{field}|{language}" in bot.texts:
        return bot.texts[f"{field}|{language}"]
    return str(getattr(bot, field))


_SCOPE = Param(
    "scope", "object", check=_check_scope, doc="BotCommandScope (default: the default scope)"
)
_TRUE: dict[str, Any] = {"type": "boolean"}


def _text_methods(field: str, max_length: int) -> tuple[Method, Method]:
    """``setMy<Field>`` and ``getMy<Field>``: one of the bot's texts, per language."""

    async def set_text(call: BotCall, p: dict[str, Any]) -> bool:
        await _set_text(call, field, p[field], p["language_code"])
        return True

    async def get_text(call: BotCall, p: dict[str, Any]) -> dict[str, str]:
        return {field: _get_text(call.bot, field, p["language_code"])}

    suffix = field.capitalize()
    return (
        Method(
            f"setMy{suffix}",
            set_text,
            summary=f"Change the bot's {field} (or its {field} in one language).",
            params=(Param(field, "str", max_length=max_length), LANGUAGE),
            result=_TRUE,
        ),
        Method(
            f"getMy{suffix}",
            get_text,
            getter=True,
            summary=f"The bot's {field} (in one language).",
            params=(LANGUAGE,),
            result={
                "type": "object",
                "required": [field],
                "properties": {field: {"type": "string"}},
            },
        ),
    )


BOT: tuple[Method, ...] = (
    Method("getMe", get_me, getter=True, summary="The bot's own User.", result=ref("User")),
    Method(
        "setMyCommands",
        set_my_commands,
        summary="Set the bot's command list (for a scope and language).",
        params=(
            Param(
                "commands",
                "array",
                required=True,
                max_length=100,
                check=check_commands,
                schema={"type": "array", "items": ref("BotCommand")},
            ),
            _SCOPE,
            LANGUAGE,
        ),
        result=_TRUE,
    ),
    Method(
        "getMyCommands",
        get_my_commands,
        getter=True,
        summary="The bot's command list (for a scope and language).",
        params=(_SCOPE, LANGUAGE),
        result={"type": "array", "items": ref("BotCommand")},
    ),
    Method(
        "deleteMyCommands",
        delete_my_commands,
        summary="Delete the bot's command list (for a scope and language).",
        params=(_SCOPE, LANGUAGE),
        result=_TRUE,
    ),
    *_text_methods("name", 64),
    *_text_methods("description", 512),
)
