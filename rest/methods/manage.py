"""The management API: a user's bots, their tokens and settings.

Only a bot's owner may see or change it (403 ``NOT_OWNER``). Tokens are shown
once, by createBot and rotateToken; the store keeps only their SHA-256, so a
rotated token stops working at once. revokeBot is irreversible: the bot's later
calls get 412 ``BOT_INACTIVE`` and it can no longer be edited or rotated.
"""

from __future__ import annotations

from typing import Any

from rest.object_schemas import ref
from rest.schema import Method, Param
from rest.services import UserCall
from shared.errors import ApiError
from shared.models import BotRecord

__all__ = ["MANAGE", "bot_view", "owned_bot"]


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
    bot, token = await call.services.accounts.create_bot(
        call.user, username=p["username"], name=p["name"], description=p["description"]
    )
    return bot_view(bot, token)


async def list_bots(call: UserCall, p: dict[str, Any]) -> list[dict[str, Any]]:
    db = call.services.messenger.db
    bots = await db.get_bots(await db.bots_of_owner(call.user.id))
    return [bot_view(b) for b in bots.values()]


async def get_bot(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    return bot_view(await owned_bot(call, p["bot_id"]))


async def edit_bot(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    bot = await owned_bot(call, p["bot_id"])
    fields = {k: p[k] for k in ("name", "description", "privacy_mode") if p[k] is not None}
    return bot_view(await call.services.accounts.edit_bot(bot, fields))


async def rotate_token(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    bot = await owned_bot(call, p["bot_id"])
    token = await call.services.accounts.rotate_token(bot)
    return bot_view(bot, token)


async def revoke_bot(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    bot = await owned_bot(call, p["bot_id"])
    if not bot.active:
        raise ApiError(412, "BOT_INACTIVE", f"the bot '{bot.username}' was revoked already")
    return bot_view(await call.services.accounts.revoke_bot(bot))


_NAME = Param("name", "str", min_length=3, max_length=32, doc="display name, 3-32 characters")
_DESCRIPTION = Param("description", "str", max_length=256, doc="up to 256 characters")
_BOT_ID = Param("bot_id", "id", required=True)
_BOT = ref("Bot")

MANAGE: tuple[Method, ...] = (
    Method(
        "createBot",
        create_bot,
        summary="Create a bot; its token is returned once.",
        params=(
            Param(
                "username",
                "str",
                required=True,
                min_length=5,
                max_length=32,
                pattern=r"^[a-z][a-z0-9_]{0,27}_bot$",
                doc="globally unique, lowercase, ending in _bot",
            ),
            Param("name", "str", required=True, min_length=3, max_length=32),
            Param("description", "str", default="", max_length=256),
        ),
        result=_BOT,
    ),
    Method(
        "listBots",
        list_bots,
        getter=True,
        summary="The user's bots.",
        result={"type": "array", "items": _BOT},
    ),
    Method(
        "getBot",
        get_bot,
        getter=True,
        summary="One of the user's bots.",
        params=(_BOT_ID,),
        result=_BOT,
    ),
    Method(
        "editBot",
        edit_bot,
        summary="Change a bot's name, description or privacy mode.",
        params=(_BOT_ID, _NAME, _DESCRIPTION, Param("privacy_mode", "bool")),
        result=_BOT,
    ),
    Method(
        "rotateToken",
        rotate_token,
        summary="Issue a new token; the old one stops working at once.",
        params=(_BOT_ID,),
        result=_BOT,
    ),
    Method(
        "revokeBot",
        revoke_bot,
        summary="Revoke a bot for good: its calls get 412 BOT_INACTIVE.",
        params=(_BOT_ID,),
        result=_BOT,
    ),
)
