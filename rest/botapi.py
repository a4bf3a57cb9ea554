"""The Bot API methods (DESIGN section 7), shared by the native and Telegram dialects.

Handlers take integer ids and return objects with integer ids; the dialect decides
how they are written. This module holds the messaging and chat methods; media,
polls, callback queries and history live in their own modules and are gathered
into :data:`BOT_METHODS` here.

Every method naming a message looks it up through :mod:`rest.visibility`: one the
bot may not see is 400 ``MESSAGE_NOT_FOUND``, as one that does not exist.

Pins: in a private chat a bot may pin and unpin any message. In a group it may
pin and unpin only its own messages (so only its own pins); other members'
messages need administrator rights (``can_pin_messages``), which bots cannot be
given here: 400 ``NOT_ENOUGH_RIGHTS``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from rest import visibility
from rest.callbacks import CALLBACK_BOT_METHODS
from rest.history import HISTORY_BOT_METHODS
from rest.media import MEDIA_BOT_METHODS
from rest.messenger import Messenger
from rest.object_schemas import ref
from rest.polls import POLL_BOT_METHODS, copy_poll
from rest.ratelimit import take_send_token
from rest.schema import (
    CAPTION,
    CHAT_ID,
    MESSAGE_ID,
    PARSE_MODE,
    REPLY_MARKUP,
    REPLY_PARAMETERS,
    REPLY_TO,
    SEND_OPTIONS,
    Method,
    Param,
    check_reaction,
    check_reply_markup,
    reply_target,
)
from rest.services import BotCall
from rest.text import formatted
from rest.updates import GET_UPDATES
from rest.view import MAX_REACTIONS
from rest.webhookapi import WEBHOOK_METHODS
from shared.errors import ApiError
from shared.models import BotRecord, ChatRecord, MessageRecord, member_key

__all__ = ["BOT_METHODS", "MAX_CAPTION", "MAX_TEXT", "check_reply_markup"]

MAX_TEXT = 4096
MAX_CAPTION = 1024
# raw text may carry markup (parse_mode) that does not count towards MAX_TEXT
MAX_RAW_TEXT = MAX_TEXT * 4
CHAT_ACTIONS = (
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
)
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


def _me(call: BotCall) -> str:
    return member_key("b", call.bot.id)


async def _message(call: BotCall, chat: ChatRecord, message_id: int) -> MessageRecord:
    """A message the bot may see, else 400 ``MESSAGE_NOT_FOUND``."""
    return await visibility.find_message(call.services.messenger, call.bot, chat, message_id)


async def _own_message(call: BotCall, chat: ChatRecord, message_id: int) -> MessageRecord:
    message = await _message(call, chat, message_id)
    if message.sender != _me(call):
        raise ApiError(400, "MESSAGE_CANT_BE_EDITED", "a bot can only edit its own messages")
    return message


# -- identity -------------------------------------------------------------------


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


# -- messages -------------------------------------------------------------------


async def send_message(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    services = call.services
    messenger = services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    text, entities = formatted(p, "text", "entities", limit=MAX_TEXT, required=True)
    replied = await visibility.reply_target(messenger, call.bot, chat, *reply_target(p))
    await take_send_token(services.store, services.settings, call.bot.id, chat)
    message = await messenger.new_message(
        chat,
        _me(call),
        text=text,
        entities=entities,
        reply_to=None if replied is None else replied.id,
        reply_markup=p["reply_markup"],
        idempotency_key=call.idempotency_key,
    )
    view = messenger.view(call.bot.id)
    view.remember(replied)
    return await view.message(chat, message)


async def edit_message_text(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    message = await _own_message(call, chat, p["message_id"])
    if message.text is None:
        raise ApiError(400, "MESSAGE_CANT_BE_EDITED", "this message has no text to edit")
    text, entities = formatted(p, "text", "entities", limit=MAX_TEXT, required=True)
    same_text = text == message.text and (entities or None) == message.entities
    if same_text and p["reply_markup"] == message.reply_markup:
        raise ApiError(
            400,
            "MESSAGE_NOT_MODIFIED",
            "the new text and reply_markup are the same as the message's current ones",
        )
    message.text = text
    message.entities = entities or None
    message.reply_markup = p["reply_markup"]  # as in Telegram: omitted removes the keyboard
    message.edit_date = _now()
    await messenger.db.save_message(message)
    return await messenger.view(call.bot.id).message(chat, message)


async def edit_message_caption(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    message = await _own_message(call, chat, p["message_id"])
    if message.text is not None or not ({"photo", "document"} & message.extra.keys()):
        raise ApiError(400, "MESSAGE_CANT_BE_EDITED", "this message has no caption to edit")
    caption, caption_entities = formatted(
        p, "caption", "caption_entities", limit=MAX_CAPTION, required=False
    )
    extra = {k: v for k, v in message.extra.items() if k not in ("caption", "caption_entities")}
    if caption:
        extra["caption"] = caption
        if caption_entities:
            extra["caption_entities"] = caption_entities
    if extra == message.extra and p["reply_markup"] == message.reply_markup:
        raise ApiError(
            400,
            "MESSAGE_NOT_MODIFIED",
            "the new caption and reply_markup are the same as the message's current ones",
        )
    message.extra = extra
    message.reply_markup = p["reply_markup"]  # as in Telegram: omitted removes the keyboard
    message.edit_date = _now()
    await messenger.db.save_message(message)
    return await messenger.view(call.bot.id).message(chat, message)


async def edit_message_reply_markup(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    message = await _own_message(call, chat, p["message_id"])
    if p["reply_markup"] == message.reply_markup:
        raise ApiError(
            400, "MESSAGE_NOT_MODIFIED", "the new reply_markup is the same as the current one"
        )
    message.reply_markup = p["reply_markup"]
    message.edit_date = _now()
    await messenger.db.save_message(message)
    return await messenger.view(call.bot.id).message(chat, message)


async def delete_message(call: BotCall, p: dict[str, Any]) -> bool:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    message = await _message(call, chat, p["message_id"])
    if message.sender != _me(call) and chat.type != "private":
        raise ApiError(
            400,
            "MESSAGE_CANT_BE_DELETED",
            "in groups a bot can delete only its own messages",
        )
    await messenger.db.delete_message(chat.id, message.id)
    return True


async def _copy_source(call: BotCall, p: dict[str, Any]) -> MessageRecord:
    """The message to forward or copy: one the bot may see in ``from_chat_id``."""
    source_chat = await call.services.messenger.chat_for_bot(call.bot, p["from_chat_id"])
    return await _message(call, source_chat, p["message_id"])


async def forward_message(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    services = call.services
    messenger = services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    source = await _copy_source(call, p)
    extra = copy_poll(dict(source.extra))
    extra.setdefault("_forward", {"sender": source.sender, "date": source.date})
    await take_send_token(services.store, services.settings, call.bot.id, chat)
    message = await messenger.new_message(
        chat,
        _me(call),
        text=source.text,
        entities=source.entities,
        extra=extra,
        idempotency_key=call.idempotency_key,
    )
    await visibility.note_files(messenger.db, message)
    return await messenger.view(call.bot.id).message(chat, message)


async def copy_message(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    services = call.services
    messenger = services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    source = await _copy_source(call, p)
    extra = copy_poll({k: v for k, v in source.extra.items() if k != "_forward"})
    if p["caption"] is not None:
        if "caption" not in extra and source.text is not None:
            raise ApiError(400, "INVALID_PARAMETER", "a text message has no caption to replace")
        caption, caption_entities = formatted(
            p, "caption", "caption_entities", limit=MAX_CAPTION, required=False
        )
        extra.pop("caption", None)
        extra.pop("caption_entities", None)
        if caption is not None:
            extra["caption"] = caption
            if caption_entities:
                extra["caption_entities"] = caption_entities
    replied = await visibility.reply_target(messenger, call.bot, chat, *reply_target(p))
    markup = p["reply_markup"] if p["reply_markup"] is not None else source.reply_markup
    await take_send_token(services.store, services.settings, call.bot.id, chat)
    message = await messenger.new_message(
        chat,
        _me(call),
        text=source.text,
        entities=source.entities,
        reply_to=None if replied is None else replied.id,
        reply_markup=markup,
        extra=extra,
        idempotency_key=call.idempotency_key,
    )
    await visibility.note_files(messenger.db, message)
    return {"message_id": message.id}


def _check_pin_rights(call: BotCall, chat: ChatRecord, message: MessageRecord) -> None:
    """In groups a bot pins and unpins only its own messages (see the module doc)."""
    if chat.type == "group" and message.sender != _me(call):
        raise ApiError(
            400,
            "NOT_ENOUGH_RIGHTS",
            "not enough rights to pin or unpin this message: in groups a bot may pin and "
            "unpin only its own messages (other members' messages need administrator "
            "rights, which bots cannot be given)",
        )


async def pin_chat_message(call: BotCall, p: dict[str, Any]) -> bool:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    message = await _message(call, chat, p["message_id"])
    _check_pin_rights(call, chat, message)
    pinned = [m for m in chat.pinned if m != message.id] + [message.id]
    await messenger.db.update_chat(chat.id, {"pinned": pinned[-100:]})
    return True


async def unpin_chat_message(call: BotCall, p: dict[str, Any]) -> bool:
    """Unpin ``message_id``, or else the latest pin the bot sees (getChat's pinned_message)."""
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    if p["message_id"] is None:
        message = await messenger.view(call.bot.id).pinned(chat)
        if message is None:
            raise ApiError(400, "MESSAGE_NOT_PINNED", "there is no pinned message in this chat")
    else:
        message = await _message(call, chat, p["message_id"])
        if message.id not in chat.pinned:
            raise ApiError(400, "MESSAGE_NOT_PINNED", f"message {message.id} is not pinned")
    _check_pin_rights(call, chat, message)
    pinned = [m for m in chat.pinned if m != message.id]
    await messenger.db.update_chat(chat.id, {"pinned": pinned})
    return True


async def set_message_reaction(call: BotCall, p: dict[str, Any]) -> bool:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    message = await _message(call, chat, p["message_id"])
    reaction = p["reaction"] or []
    if len(reaction) > 1:
        raise ApiError(400, "REACTIONS_TOO_MANY", "a bot can set at most one reaction")
    await messenger.db.set_reaction(chat.id, message.id, _me(call), reaction)
    return True


async def send_chat_action(call: BotCall, p: dict[str, Any]) -> bool:
    await call.services.messenger.chat_for_bot(call.bot, p["chat_id"])
    return True  # nothing to store: the action is shown to users for a few seconds


# -- chats ----------------------------------------------------------------------


async def get_chat(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    return await messenger.view(call.bot.id).chat_full(chat)


async def get_chat_member(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    member = await messenger.resolve_user_for_bot(call.bot, chat, p["user_id"])
    info = await messenger.member_info(chat, member)
    return await messenger.view(call.bot.id).chat_member(member, info)


async def get_chat_member_count(call: BotCall, p: dict[str, Any]) -> int:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    return await messenger.member_count(chat)


async def leave_chat(call: BotCall, p: dict[str, Any]) -> bool:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    await messenger.leave_chat(call.bot, chat)
    return True


# -- commands, name, description ----------------------------------------------------


def _check_commands(name: str, value: Any) -> list[dict[str, str]]:
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


async def set_my_name(call: BotCall, p: dict[str, Any]) -> bool:
    await _set_text(call, "name", p["name"], p["language_code"])
    return True


async def get_my_name(call: BotCall, p: dict[str, Any]) -> dict[str, str]:
    return {"name": _get_text(call.bot, "name", p["language_code"])}


async def set_my_description(call: BotCall, p: dict[str, Any]) -> bool:
    await _set_text(call, "description", p["description"], p["language_code"])
    return True


async def get_my_description(call: BotCall, p: dict[str, Any]) -> dict[str, str]:
    return {"description": _get_text(call.bot, "description", p["language_code"])}


def _now() -> int:
    return int(time.time())


# -- definitions ------------------------------------------------------------------

_TEXT = Param("text", "str", required=True, min_length=1, max_length=MAX_RAW_TEXT)
_ENTITIES = Param("entities", "array", max_length=1000, doc="MessageEntity objects")
_SCOPE = Param(
    "scope", "object", check=_check_scope, doc="BotCommandScope (default: the default scope)"
)
_TRUE: dict[str, Any] = {"type": "boolean"}
_MESSAGE = ref("Message")

BOT_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("getMe", get_me, getter=True, summary="The bot's own User.", result=ref("User")),
        Method(
            "sendMessage",
            send_message,
            summary="Send a text message.",
            params=(
                CHAT_ID,
                _TEXT,
                PARSE_MODE,
                _ENTITIES,
                Param("link_preview_options", "object"),
                Param("disable_web_page_preview", "bool"),
                *SEND_OPTIONS,
                REPLY_TO,
                REPLY_PARAMETERS,
                REPLY_MARKUP,
            ),
            result=_MESSAGE,
        ),
        Method(
            "editMessageText",
            edit_message_text,
            summary="Edit the text of one of the bot's messages.",
            params=(
                CHAT_ID,
                MESSAGE_ID,
                _TEXT,
                PARSE_MODE,
                _ENTITIES,
                Param("link_preview_options", "object"),
                REPLY_MARKUP,
            ),
            result=_MESSAGE,
        ),
        Method(
            "editMessageCaption",
            edit_message_caption,
            summary="Edit (or, if omitted, remove) the caption of one of the bot's media messages.",
            params=(
                CHAT_ID,
                MESSAGE_ID,
                CAPTION,
                PARSE_MODE,
                Param("caption_entities", "array", max_length=1000),
                Param("show_caption_above_media", "bool"),
                REPLY_MARKUP,
            ),
            result=_MESSAGE,
        ),
        Method(
            "editMessageReplyMarkup",
            edit_message_reply_markup,
            summary="Replace (or, if omitted, remove) the inline keyboard of a bot's message.",
            params=(CHAT_ID, MESSAGE_ID, REPLY_MARKUP),
            result=_MESSAGE,
        ),
        Method(
            "deleteMessage",
            delete_message,
            summary="Delete a message (its own anywhere; any in a private chat).",
            params=(CHAT_ID, MESSAGE_ID),
            result=_TRUE,
        ),
        Method(
            "forwardMessage",
            forward_message,
            summary="Forward a message from a chat the bot is in.",
            params=(
                CHAT_ID,
                Param("from_chat_id", "id", required=True),
                MESSAGE_ID,
                *SEND_OPTIONS,
            ),
            result=_MESSAGE,
        ),
        Method(
            "copyMessage",
            copy_message,
            summary="Copy a message without a link to the original.",
            params=(
                CHAT_ID,
                Param("from_chat_id", "id", required=True),
                MESSAGE_ID,
                CAPTION,
                PARSE_MODE,
                Param("caption_entities", "array", max_length=1000),
                *SEND_OPTIONS,
                REPLY_TO,
                REPLY_PARAMETERS,
                REPLY_MARKUP,
            ),
            result=ref("MessageId"),
        ),
        Method(
            "pinChatMessage",
            pin_chat_message,
            summary="Pin a message (in groups: one of the bot's own).",
            params=(CHAT_ID, MESSAGE_ID, Param("disable_notification", "bool")),
            result=_TRUE,
        ),
        Method(
            "unpinChatMessage",
            unpin_chat_message,
            summary="Unpin a message (by default the most recently pinned one the bot sees).",
            params=(CHAT_ID, Param("message_id", "id")),
            result=_TRUE,
        ),
        Method(
            "setMessageReaction",
            set_message_reaction,
            summary="Set (or, with an empty list, remove) the bot's reaction to a message.",
            params=(
                CHAT_ID,
                MESSAGE_ID,
                Param(
                    "reaction",
                    "array",
                    max_length=MAX_REACTIONS,
                    check=check_reaction,
                    schema={"type": "array", "items": ref("ReactionType")},
                ),
                Param("is_big", "bool"),
            ),
            result=_TRUE,
        ),
        Method(
            "sendChatAction",
            send_chat_action,
            summary="Tell the user the bot is doing something (typing ...).",
            params=(
                CHAT_ID,
                Param("action", "str", required=True, choices=CHAT_ACTIONS),
                Param("message_thread_id", "int", minimum=0),
            ),
            result=_TRUE,
        ),
        Method(
            "getChat",
            get_chat,
            getter=True,
            summary="Up-to-date information about a chat.",
            params=(CHAT_ID,),
            result=ref("ChatFullInfo"),
        ),
        Method(
            "getChatMember",
            get_chat_member,
            getter=True,
            summary="A member of a chat.",
            params=(CHAT_ID, Param("user_id", "id", required=True)),
            result=ref("ChatMember"),
        ),
        Method(
            "getChatMemberCount",
            get_chat_member_count,
            getter=True,
            summary="The number of members (users and bots) of a chat.",
            params=(CHAT_ID,),
            result={"type": "integer"},
        ),
        Method(
            "leaveChat",
            leave_chat,
            summary="Leave a group.",
            params=(CHAT_ID,),
            result=_TRUE,
        ),
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
                    check=_check_commands,
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
        Method(
            "setMyName",
            set_my_name,
            summary="Change the bot's name (or its name in one language).",
            params=(Param("name", "str", max_length=64), LANGUAGE),
            result=_TRUE,
        ),
        Method(
            "getMyName",
            get_my_name,
            getter=True,
            summary="The bot's name (in one language).",
            params=(LANGUAGE,),
            result={
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}},
            },
        ),
        Method(
            "setMyDescription",
            set_my_description,
            summary="Change the bot's description (or its description in one language).",
            params=(Param("description", "str", max_length=512), LANGUAGE),
            result=_TRUE,
        ),
        Method(
            "getMyDescription",
            get_my_description,
            getter=True,
            summary="The bot's description (in one language).",
            params=(LANGUAGE,),
            result={
                "type": "object",
                "required": ["description"],
                "properties": {"description": {"type": "string"}},
            },
        ),
        *MEDIA_BOT_METHODS,
        *POLL_BOT_METHODS,
        *CALLBACK_BOT_METHODS,
        *HISTORY_BOT_METHODS,
        GET_UPDATES,
        *WEBHOOK_METHODS.values(),
    )
}
