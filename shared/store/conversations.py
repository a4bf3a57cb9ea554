"""Where a bot's conversations stand: what it asked each chat last, and which of
its messages it deletes when.

The system bot (``botgw/systembot``) keeps here, per private chat, the step a
user is at (``/newbot`` waits for a name, then a username ...), so that a restart
of its process loses no conversation: one string per chat in the bot's slot,
JSON, forgotten after a quiet hour. The messages that show a token are deleted
after a while; when, is kept here too (a sorted set in the bot's slot), so a
restart forgets none of them.
"""

from __future__ import annotations

from typing import Any

from shared import keys
from shared.codecs import json_dumps, json_loads
from shared.store.fields import as_text
from shared.store.wire import Wire

__all__ = ["CONVERSATION_TTL_SECONDS", "Conversations"]

CONVERSATION_TTL_SECONDS = 3600


class Conversations:
    """Conversation steps per (bot, chat); reached as ``store.conversations``."""

    def __init__(self, *, wire: Wire) -> None:
        self._wire = wire

    async def get(self, bot_id: int, chat_id: int) -> dict[str, Any]:
        """The chat's state, empty when nothing is asked."""
        raw = await self._wire.call("GET", keys.bot_conversation(bot_id, chat_id))
        if raw is None:
            return {}
        value = json_loads(raw)
        return dict(value) if isinstance(value, dict) else {}

    async def put(self, bot_id: int, chat_id: int, state: dict[str, Any]) -> None:
        """Keep ``state`` (forget it, if empty)."""
        key = keys.bot_conversation(bot_id, chat_id)
        if not state:
            await self._wire.call("DEL", key, retry=True)
            return
        await self._wire.call(
            "SET", key, json_dumps(state), "EX", CONVERSATION_TTL_SECONDS, retry=True
        )

    async def doom(self, bot_id: int, chat_id: int, message_id: int, at_ms: int) -> None:
        """Have message ``message_id`` of ``chat_id`` deleted at ``at_ms`` (Unix ms)."""
        await self._wire.call(
            "ZADD", keys.bot_doomed_messages(bot_id), at_ms, f"{chat_id}:{message_id}", retry=True
        )

    async def due(self, bot_id: int, now_ms: int, limit: int = 100) -> list[tuple[int, int]]:
        """(chat, message) of the messages to delete by ``now_ms``, each handed out
        once (it is taken off the set as it is returned)."""
        key = keys.bot_doomed_messages(bot_id)
        members = await self._wire.call("ZRANGEBYSCORE", key, "-inf", now_ms, "LIMIT", 0, limit)
        out = []
        for member in members:
            if await self._wire.call("ZREM", key, member):
                chat, _, message = as_text(member).partition(":")
                out.append((int(chat), int(message)))
        return out
