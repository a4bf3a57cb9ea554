"""What every reader of an update log agrees on: the update types and the consumer
names. The gateway's ``identify``, ``getUpdates``, ``setWebhook`` and the Telegram
dialect all check against these."""

from __future__ import annotations

import re

__all__ = ["CONSUMER_PATTERN", "UPDATE_TYPES", "consumer_key", "is_consumer_name"]

#: Every update type, in the order the documents list them.
UPDATE_TYPES: tuple[str, ...] = (
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "message_reaction",
    "poll",
    "poll_answer",
)

#: A consumer name: 1-64 of letters, digits, ``_``, ``.``, ``-``.
CONSUMER_PATTERN = r"^[A-Za-z0-9_.\-]{1,64}$"
_CONSUMER_RE = re.compile(CONSUMER_PATTERN)


def is_consumer_name(value: object) -> bool:
    """Whether ``value`` is a valid consumer name."""
    return isinstance(value, str) and _CONSUMER_RE.fullmatch(value) is not None


def consumer_key(consumer: str, shard: tuple[int, int]) -> str:
    """The committed-cursor name of a consumer, per shard when sharded."""
    index, count = shard
    return consumer if count == 1 else f"{consumer}#{index}/{count}"
