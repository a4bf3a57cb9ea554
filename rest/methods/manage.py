"""The management API: a user's bots, their tokens and settings.

Only a bot's owner may see or change it (403 ``NOT_OWNER``). Tokens are shown
once, by createBot and rotateToken; the store keeps only their SHA-256, so a
rotated token stops working at once. revokeBot is irreversible: the bot's later
calls get 412 ``BOT_INACTIVE`` and it can no longer be edited or rotated.

The system bot (a bot an operator marked so: ``botgw bots create --system``)
may call these methods for a user, with its own token and a header citing what
that user just did in their private chat with it (:func:`system_bot_call`):

* ``Botgw-On-Behalf-Of: message <chat_id> <message_id>``: a message the user sent;
* ``Botgw-On-Behalf-Of: callback <callback_query_id>``: a button the user pressed;

ids as the system bot sees them. The call is the user's (who the user is comes
from the cited message, never from the bot) if the message or press is in the
private chat of that user and the system bot, is the user's own and is at most
``system_bot_window_seconds`` old. So the system bot acts only for users who are
talking to it now, and its token alone acts for nobody.
"""

from __future__ import annotations

import re
import time
from typing import Any

from rest.methods.profile import check_commands
from rest.object_schemas import ref
from rest.schema import Method, Param
from rest.services import Services, UserCall
from shared.errors import ApiError
from shared.models import BotRecord, ChatRecord, member_key

__all__ = ["MANAGE", "ON_BEHALF_HEADER", "bot_view", "owned_bot", "system_bot_call"]

ON_BEHALF_HEADER = "botgw-on-behalf-of"
_ID = re.compile(r"^-?[0-9]{1,16}$")
_QUERY_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _bad_citation(what: str) -> ApiError:
    return ApiError(403, "CITATION_INVALID", f"{ON_BEHALF_HEADER}: {what}")


async def system_bot_call(
    services: Services, token: str | None, citation: str, *, idempotency_key: str | None
) -> UserCall:
    """The call of the user a system bot's citation names (see the module docstring)."""
    bot = await services.accounts.authenticate_bot(token)
    db = services.messenger.db
    if not await db.is_system_bot(bot.id):
        raise ApiError(
            403,
            "NOT_SYSTEM_BOT",
            f"only the system bot may send {ON_BEHALF_HEADER}; other bots cannot manage bots",
        )
    kind, *ids = citation.split() or [""]
    if kind == "message" and len(ids) == 2 and all(_ID.match(i) for i in ids):
        chat = await _private_chat(services, bot, int(ids[0]))
        message = await db.get_message(chat.id, int(ids[1]))
        if message is None or message.sender != member_key("u", chat.user_id):
            raise _bad_citation("no message of the user's has that id in this chat")
        at = message.date
    elif kind == "callback" and len(ids) == 1 and _QUERY_ID.match(ids[0]):
        pressed = await db.get_callback(ids[0])
        if pressed is None or pressed.bot_id != bot.id:
            raise _bad_citation("no button press of that id (or it is too old)")
        found = await db.get_chat(pressed.chat_id)
        if (
            found is None
            or found.type != "private"
            or found.bot_id != bot.id
            or found.user_id != pressed.user_id
        ):
            raise _bad_citation("the button was not pressed in a private chat with you")
        chat, at = found, pressed.created
    else:
        raise _bad_citation(
            "write 'message <chat_id> <message_id>' or 'callback <callback_query_id>'"
        )
    window = services.settings.system_bot_window_seconds
    if at < time.time() - window:
        raise _bad_citation(f"what it cites is older than {window} s: ask the user again")
    user = await db.get_user(chat.user_id)
    if user is None:
        raise _bad_citation("the user is gone")
    return UserCall(services, user, idempotency_key=idempotency_key)


async def _private_chat(services: Services, bot: BotRecord, chat_id: int) -> ChatRecord:
    db = services.messenger.db
    private = await db.private_chat_of(bot.id, chat_id)
    chat = None if private is None else await db.get_chat(private)
    if chat is None or chat.type != "private" or chat.bot_id != bot.id:
        raise _bad_citation("the chat is not a private chat with you")
    return chat


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
    editable = ("name", "description", "privacy_mode", "commands")
    fields = {k: p[k] for k in editable if p[k] is not None}
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
        summary="Change a bot's name, description, privacy mode or commands.",
        params=(
            _BOT_ID,
            _NAME,
            _DESCRIPTION,
            Param("privacy_mode", "bool"),
            Param(
                "commands",
                "array",
                max_length=100,
                check=check_commands,
                schema={"type": "array", "items": ref("BotCommand")},
                doc="the bot's command list (the default scope), as setMyCommands sets it",
            ),
        ),
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
