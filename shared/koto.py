"""Koto v1's shapes of a bot's updates and of a webhook's signature.

One renderer for both places that write a Koto v1 ``BotUpdate``: the dialect's
``getUpdates`` (:mod:`rest.dialects.koto_bot`) and the webhook dispatcher
(:mod:`webhooks.delivery`, for a webhook set with ``id_format="koto"``). It
turns an update as the log stores it for the bot (Telegram's shape, integer ids
as that bot sees them) into::

    {"updateId": "<update_id>", "chatId": "<chat id>", "senderFingerprint": "<user>",
     "content": "<text>", "contentType": 1 | 2, "timestamp": <ms>, "type": 0 | 1,
     "callbackData": "<data>", "messageId": "<message id>"}   # the last two: CALLBACK

Ids are decimal strings, so ``offset = int(updateId) + 1`` confirms an update as
in Telegram. A message's timestamp is the millisecond its id was issued (ids are
``ms * 1024 + n``), an update's the millisecond it was appended.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from shared.ids import SEQ_PER_MS

__all__ = [
    "CALLBACK",
    "CONTENT_COMMAND",
    "CONTENT_TEXT",
    "KOTO_UPDATE_TYPES",
    "MESSAGE",
    "bot_update",
    "content_type",
    "signature",
]

MESSAGE = 0  # UpdateType.MESSAGE
CALLBACK = 1  # UpdateType.CALLBACK
CONTENT_TEXT = 1
CONTENT_COMMAND = 2

# the update types Koto v1 has a shape for; the dialect reads and delivers only these
KOTO_UPDATE_TYPES = ("message", "callback_query")


def content_type(text: str) -> int:
    """Koto's content type of a message text: 2 for a /command, else 1."""
    return CONTENT_COMMAND if text.startswith("/") else CONTENT_TEXT


def millis(some_id: int) -> int:
    """The Unix millisecond an update or message id was issued at."""
    return some_id // SEQ_PER_MS


def bot_update(update_id: int, body: dict[str, Any]) -> dict[str, Any] | None:
    """The ``BotUpdate`` of one stored update body (without ``update_id``), or None
    for an update Koto v1 has no shape for."""
    message = body.get("message")
    if isinstance(message, dict):
        text = message.get("text") or message.get("caption") or ""
        return {
            "updateId": str(update_id),
            "chatId": str(message["chat"]["id"]),
            "senderFingerprint": str(message["from"]["id"]),
            "content": text,
            "contentType": content_type(text),
            "timestamp": millis(message["message_id"]),
            "type": MESSAGE,
        }
    query = body.get("callback_query")
    if isinstance(query, dict):
        data = query.get("data") or ""
        held = query["message"]
        return {
            "updateId": str(update_id),
            "chatId": str(held["chat"]["id"]),
            "senderFingerprint": str(query["from"]["id"]),
            "content": data,
            "contentType": CONTENT_TEXT,
            "timestamp": millis(update_id),
            "type": CALLBACK,
            "callbackData": data,
            "messageId": str(held["message_id"]),
        }
    return None


def signature(secret: str, body: bytes) -> str:
    """``X-Koto-Signature``: the hex HMAC-SHA256 of the body under the secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
