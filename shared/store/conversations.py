"""Where a bot's conversations stand: what it asked each chat last.

The system bot (``botgw/systembot.py``) keeps here, per private chat, the step a
user is at (``/newbot`` waits for a name, then a username ...), so that a restart
of its process loses no conversation. One string per chat in the bot's slot,
JSON, forgotten after a quiet hour.
"""

from __future__ import annotations

from typing import Any

from shared import keys
from shared.codecs import json_dumps, json_loads
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
