"""Mini apps as stored in Redis: menu buttons, launches and their one answer.

A bot's menu buttons are one hash (``default`` and one field per private chat).
A launch (a signed init data the server handed out) is kept by its hash for as
long as the init data is accepted, so ``sendWebAppData`` knows whose it is; a
launch from an inline button or the menu button also has a query, which
``answerWebAppQuery`` answers once.
"""

from __future__ import annotations

from typing import Any

from shared import keys
from shared.codecs import json_dumps, json_loads
from shared.store.client import Client
from shared.store.fields import text_fields

__all__ = ["WebApps"]


class WebApps:
    """``store.webapps``."""

    def __init__(self, *, redis: Client) -> None:
        self._redis = redis

    async def set_menu_button(
        self, bot_id: int, chat_id: int | None, button: dict[str, Any] | None
    ) -> None:
        """Set (``None``: reset) the bot's menu button in one private chat, or its default."""
        field = "default" if chat_id is None else str(chat_id)
        if button is None:
            await self._redis.hdel(keys.bot_menu_buttons(bot_id), field)
        else:
            await self._redis.hset(keys.bot_menu_buttons(bot_id), field, json_dumps(button))

    async def menu_button(self, bot_id: int, chat_id: int | None) -> dict[str, Any] | None:
        """The button that applies: the chat's own, else the default; None: neither."""
        fields = ["default"] if chat_id is None else [str(chat_id), "default"]
        for raw in await self._redis.hmget(keys.bot_menu_buttons(bot_id), fields):
            if raw is not None:
                return dict(json_loads(raw))
        return None

    async def save_launch(self, init_hash: str, launch: dict[str, Any], ttl: int) -> None:
        key = keys.webapp_launch(init_hash)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={k: str(v) for k, v in launch.items()})
            pipe.expire(key, ttl)
            await pipe.execute()

    async def launch(self, init_hash: str) -> dict[str, str] | None:
        raw = await self._redis.hgetall(keys.webapp_launch(init_hash))
        return text_fields(raw) if raw else None

    async def save_query(self, query_id: str, query: dict[str, Any], ttl: int) -> None:
        key = keys.webapp_query(query_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={k: str(v) for k, v in query.items()})
            pipe.expire(key, ttl)
            await pipe.execute()

    async def query(self, query_id: str) -> dict[str, str] | None:
        raw = await self._redis.hgetall(keys.webapp_query(query_id))
        return text_fields(raw) if raw and b"bot_id" in raw else None

    async def answer_query(self, query_id: str, ttl: int) -> bool:
        """Mark the query answered; False if it was answered already. (A query that
        expired meanwhile is marked with ``ttl``, so nothing is kept for ever.)"""
        key = keys.webapp_query(query_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(key, "answered", "1")
            pipe.execute_command("EXPIRE", key, ttl, "NX")
            marked, _ = await pipe.execute()
        return bool(marked)
