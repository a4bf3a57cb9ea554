"""The management API: a user's bots, their tokens and settings."""

from __future__ import annotations

from typing import Any

from rest.objects import ref
from rest.schema import Method, Param
from rest.services import UserCall
from shared.errors import ApiError
from shared.models import BotRecord

__all__ = ["MANAGE_METHODS", "bot_view"]


def bot_view(bot: BotRecord, token: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": bot.id,
        "username": bot.username,
        "name": bot.name,
        "description": bot.description,
        "owner_id": bot.owner_id,
        "privacy_mode": bot.privacy_mode,
        "active": bot.active,
        "created": bot.created,
    }
    if token is not None:
        out["token"] = token
    return out


async def owned_bot(call: UserCall, bot_id: int) -> BotRecord:
    bot = await call.services.messenger.db.get_bot(bot_id)
    if bot is None:
        raise ApiError(404, "BOT_NOT_FOUND", f"there is no bot with id {bot_id}")
    if bot.owner_id != call.user.id:
        raise ApiError(403, "NOT_OWNER", "only the owner of a bot may manage it")
    return bot


async def create_bot(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    bot, token = await call.services.messenger.create_bot(
        call.user, username=p["username"], name=p["name"], description=p["description"]
    )
    return bot_view(bot, token)


async def list_bots(call: UserCall, p: dict[str, Any]) -> list[dict[str, Any]]:
    db = call.services.messenger.db
    bots = await db.get_bots(await db.bots_of_owner(call.user.id))
    return [bot_view(b) for b in bots.values()]


async def get_bot(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    return bot_view(await owned_bot(call, p["bot_id"]))


NAME = Param("name", "str", min_length=3, max_length=32)
BOT_ID = Param("bot_id", "id", required=True)

MANAGE_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            name="createBot",
            handler=create_bot,
            summary="Create a bot; its token is returned once.",
            params=(
                Param("username", "str", required=True, min_length=5, max_length=32),
                Param("name", "str", required=True, min_length=3, max_length=32),
                Param("description", "str", default="", max_length=256),
            ),
            result=ref("Bot"),
        ),
        Method(
            name="listBots",
            handler=list_bots,
            getter=True,
            summary="The user's bots.",
            result={"type": "array", "items": ref("Bot")},
        ),
        Method(
            name="getBot",
            handler=get_bot,
            getter=True,
            summary="One of the user's bots.",
            params=(BOT_ID,),
            result=ref("Bot"),
        ),
    )
}
