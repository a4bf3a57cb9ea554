"""Bot API methods on messages: send, edit, delete, forward, copy, pin, react.

Handlers take integer ids and return objects with integer ids; the dialect decides
how they are written.

Every method naming a message looks it up through :mod:`rest.visibility`: one the
bot may not see is 400 ``MESSAGE_NOT_FOUND``, as one that does not exist.

Pins: in a private chat a bot may pin and unpin any message. In a group it may
pin and unpin only its own messages (so only its own pins); other members'
messages need administrator rights (``can_pin_messages``), which bots cannot be
given here: 400 ``NOT_ENOUGH_RIGHTS``.
"""

from __future__ import annotations

import time
from typing import Any

from rest import changes, visibility
from rest.methods.polls import copy_poll
from rest.object_schemas import ref
from rest.ratelimit import take_send_token
from rest.schema import (
    CAPTION_PARAMS,
    CHAT_ID,
    MESSAGE_ID,
    PARSE_MODE,
    REPLY_MARKUP,
    SEND_OPTIONS,
    SEND_TAIL,
    Method,
    Param,
    reaction_param,
    reply_target,
)
from rest.services import BotCall
from rest.text import formatted
from shared.errors import ApiError
from shared.models import ChatRecord, MessageRecord, member_key

__all__ = ["BOT", "MAX_CAPTION", "MAX_TEXT"]

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


def _me(call: BotCall) -> str:
    return member_key("b", call.bot.id)


async def _message(call: BotCall, chat: ChatRecord, message_id: int) -> MessageRecord:
    """A message the bot may see, else 400 ``MESSAGE_NOT_FOUND``."""
    return await visibility.find_message(call.services.messenger.db, call.bot, chat, message_id)


async def _own_message(call: BotCall, chat: ChatRecord, message_id: int) -> MessageRecord:
    message = await _message(call, chat, message_id)
    if message.sender != _me(call):
        raise ApiError(400, "MESSAGE_CANT_BE_EDITED", "a bot can only edit its own messages")
    return message


async def send_message(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    services = call.services
    messenger = services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    text, entities = formatted(p, "text", "entities", limit=MAX_TEXT, required=True)
    replied = await visibility.reply_target(messenger.db, call.bot, chat, *reply_target(p))
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


async def _editable(call: BotCall, p: dict[str, Any]) -> tuple[ChatRecord, MessageRecord]:
    """The chat and the bot's own message that ``p`` names, to edit."""
    chat = await call.services.messenger.chat_for_bot(call.bot, p["chat_id"])
    return chat, await _own_message(call, chat, p["message_id"])


def _not_modified(detail: str) -> ApiError:
    return ApiError(400, "MESSAGE_NOT_MODIFIED", detail)


async def _save_edit(
    call: BotCall, chat: ChatRecord, message: MessageRecord, reply_markup: Any
) -> dict[str, Any]:
    """Save an edited ``message`` with ``reply_markup``; its Message object."""
    messenger = call.services.messenger
    message.reply_markup = reply_markup  # as in Telegram: omitted removes the keyboard
    message.edit_date = _now()
    await messenger.save_edit(chat, message)
    return await messenger.view(call.bot.id).message(chat, message)


async def edit_message_text(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    chat, message = await _editable(call, p)
    if message.text is None:
        raise ApiError(400, "MESSAGE_CANT_BE_EDITED", "this message has no text to edit")
    text, entities = formatted(p, "text", "entities", limit=MAX_TEXT, required=True)
    same_text = text == message.text and (entities or None) == message.entities
    if same_text and p["reply_markup"] == message.reply_markup:
        raise _not_modified(
            "the new text and reply_markup are the same as the message's current ones"
        )
    message.text = text
    message.entities = entities or None
    return await _save_edit(call, chat, message, p["reply_markup"])


async def edit_message_caption(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    chat, message = await _editable(call, p)
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
        raise _not_modified(
            "the new caption and reply_markup are the same as the message's current ones"
        )
    message.extra = extra
    return await _save_edit(call, chat, message, p["reply_markup"])


async def edit_message_reply_markup(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    chat, message = await _editable(call, p)
    if p["reply_markup"] == message.reply_markup:
        raise _not_modified("the new reply_markup is the same as the current one")
    return await _save_edit(call, chat, message, p["reply_markup"])


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
    await messenger.delete_message(chat, message.id)
    return True


async def _copy_source(call: BotCall, p: dict[str, Any]) -> MessageRecord:
    """The message to forward or copy: one the bot may see in ``from_chat_id``."""
    source_chat = await call.services.messenger.chat_for_bot(call.bot, p["from_chat_id"])
    return await _message(call, source_chat, p["message_id"])


async def _post_copy(
    call: BotCall,
    chat: ChatRecord,
    source: MessageRecord,
    extra: dict[str, Any],
    *,
    reply_to: int | None,
    reply_markup: dict[str, Any] | None,
) -> MessageRecord:
    """Store the bot's copy of ``source`` in ``chat`` (after its send token)."""
    services = call.services
    messenger = services.messenger
    await take_send_token(services.store, services.settings, call.bot.id, chat)
    message = await messenger.new_message(
        chat,
        _me(call),
        text=source.text,
        entities=source.entities,
        reply_to=reply_to,
        reply_markup=reply_markup,
        extra=extra,
        idempotency_key=call.idempotency_key,
    )
    await visibility.note_files(messenger.db, message)
    return message


async def forward_message(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    source = await _copy_source(call, p)
    extra = copy_poll(dict(source.extra))
    extra.setdefault("_forward", {"sender": source.sender, "date": source.date})
    message = await _post_copy(call, chat, source, extra, reply_to=None, reply_markup=None)
    return await messenger.view(call.bot.id).message(chat, message)


async def copy_message(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
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
    replied = await visibility.reply_target(messenger.db, call.bot, chat, *reply_target(p))
    markup = p["reply_markup"] if p["reply_markup"] is not None else source.reply_markup
    message = await _post_copy(
        call,
        chat,
        source,
        extra,
        reply_to=None if replied is None else replied.id,
        reply_markup=markup,
    )
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
    pin = message.id  # the latest of at most 100 pins
    await changes.set_pins(
        messenger, chat, lambda pins: ([m for m in pins if m != pin] + [pin])[-100:]
    )
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
    pin = message.id
    await changes.set_pins(messenger, chat, lambda pins: [m for m in pins if m != pin])
    return True


async def set_message_reaction(call: BotCall, p: dict[str, Any]) -> bool:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    message = await _message(call, chat, p["message_id"])
    reaction = p["reaction"] or []
    if len(reaction) > 1:
        raise ApiError(400, "REACTIONS_TOO_MANY", "a bot can set at most one reaction")
    await changes.set_reaction(messenger, chat, message, _me(call), reaction)
    return True


async def send_chat_action(call: BotCall, p: dict[str, Any]) -> bool:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    # nothing to store: the action is shown, live, to the chat's users for a few seconds
    data = {
        "chat_id": chat.id,
        "from": await messenger.view(None).user(_me(call)),
        "action": p["action"],
    }
    await messenger.events.ephemeral(chat, "chat_action", data)
    return True


def _now() -> int:
    return int(time.time())


# -- definitions ------------------------------------------------------------------

_TEXT = Param("text", "str", required=True, min_length=1, max_length=MAX_RAW_TEXT)
_ENTITIES = Param("entities", "array", max_length=1000, doc="MessageEntity objects")
_TRUE: dict[str, Any] = {"type": "boolean"}
_MESSAGE = ref("Message")
# the message to forward or copy
_FROM_MESSAGE = (Param("from_chat_id", "id", required=True), MESSAGE_ID)

BOT: tuple[Method, ...] = (
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
            *SEND_TAIL,
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
            *CAPTION_PARAMS,
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
            *_FROM_MESSAGE,
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
            *_FROM_MESSAGE,
            *CAPTION_PARAMS,
            *SEND_TAIL,
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
            reaction_param(required=False),
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
)
