"""The generic Bot API's (``/v1/bot-api``) message object, for the REST dialect
and the webhook dispatcher alike.

A message as botgw stores it for a bot (Telegram's shape, integer ids as that
bot sees them) becomes::

    {"id": "<chat id>_<message id>", "chatId": "<chat id>", "senderId": "<sender>",
     "body": "<text or caption>", "timestamp": <ms>}

A message's id names its chat, as botgw's message ids are per chat; its
timestamp is the millisecond its id was issued (ids are ``ms * 1024 + n``). A
webhook set through the dialect (``id_format="bot-api"``) delivers each new
message of a user as this object: it delivers ``message`` updates only.
"""

from __future__ import annotations

from typing import Any

from shared.ids import SEQ_PER_MS

__all__ = ["BOT_API_FORMAT", "BOT_API_UPDATE_TYPES", "delivery", "message_object"]

BOT_API_FORMAT = "bot-api"  # the id_format of a webhook set through the dialect
BOT_API_UPDATE_TYPES = ("message",)  # what such a webhook delivers


def message_object(message: dict[str, Any]) -> dict[str, Any]:
    """The dialect's message of a stored (or rendered) message, integer ids."""
    chat_id = message["chat"]["id"]
    sender = message.get("from") or {}
    return {
        "id": f"{chat_id}_{message['message_id']}",
        "chatId": str(chat_id),
        "senderId": str(sender.get("id", "")),
        "body": message.get("text") or message.get("caption") or "",
        "timestamp": int(message["message_id"]) // SEQ_PER_MS,
    }


def delivery(body: dict[str, Any]) -> dict[str, Any] | None:
    """The webhook body of one stored update (without ``update_id``): its message,
    or None for an update the dialect has no shape for."""
    message = body.get("message")
    return message_object(message) if isinstance(message, dict) else None
