"""getChatHistory: paged chat history, for agents that need the conversation.

Pages by message id (strictly increasing per chat, time-ordered, not dense: the
store keeps the chat's ids in order): ``before`` returns the newest ``limit``
messages older than that id, ``since`` the oldest ``limit`` messages newer than it
(both exclusive; with both, the newest of the range).
Results are always oldest first, so a reader pages back with ``before`` = the first
id it got, or forward with ``since`` = the last. ``sender_id`` keeps one sender's
messages; deleted messages are skipped.

A bot reads only chats it is in, and sees what :mod:`rest.visibility` lets it see
there: every message of its private chats; in groups, since it joined, its own
messages and the users' messages that reach it under its privacy mode (never
other bots' messages). Users see every message of their chats.
"""

from __future__ import annotations

from typing import Any

from rest import visibility
from rest.messenger import Messenger
from rest.object_schemas import ref
from rest.schema import CHAT_ID, Method, Param
from rest.services import BotCall, UserCall
from shared.models import BotRecord, ChatRecord, MessageRecord, member_key

__all__ = ["BOT", "CLIENT", "read_history"]

MAX_LIMIT = 100
_CHUNK = 200  # message ids read per round trip
_ABOVE_EVERY_ID = 2**53


async def read_history(
    messenger: Messenger,
    chat: ChatRecord,
    *,
    bot: BotRecord | None,
    limit: int,
    before: int | None,
    since: int | None,
    sender: str | None,
) -> list[MessageRecord]:
    """Up to ``limit`` messages of ``chat`` as ``bot`` (or, if None, a user) sees them."""
    db = messenger.db
    low = 1 if since is None else max(1, since + 1)
    seen = None
    if bot is not None:
        seen = await visibility.sight(messenger.db, bot, chat)
        if seen.since is None:
            return []  # not a member (any more): it sees nothing there
        low = max(low, seen.since + 1)  # nothing from before it joined
    high = _ABOVE_EVERY_ID if before is None else before - 1
    forward = since is not None and before is None
    found: list[MessageRecord] = []
    while low <= high and len(found) < limit:
        # the next ids stored (trimmed and deleted ones are not), in reading order
        ids = await db.message_ids(chat.id, low, high, limit=_CHUNK, newest_first=not forward)
        if not ids:
            break
        if forward:
            low = ids[-1] + 1
        else:
            high = ids[-1] - 1
        batch = await db.get_messages(chat.id, ids)
        if sender is not None:
            batch = [m for m in batch if m.sender == sender]
        if seen is not None:
            batch = await visibility.visible(db, seen, batch)
        found.extend(batch)
        if len(ids) < _CHUNK:
            break
    found = found[:limit]
    return found if forward else found[::-1]


async def bot_history(call: BotCall, p: dict[str, Any]) -> list[dict[str, Any]]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    sender = None
    if p["sender_id"] is not None:
        sender = await messenger.resolve_user_for_bot(call.bot, chat, p["sender_id"])
    messages = await read_history(
        messenger,
        chat,
        bot=call.bot,
        limit=p["limit"],
        before=p["before"],
        since=p["since"],
        sender=sender,
    )
    if chat.type == "group":
        # users the bot now knows by their scoped ids (getChatMember, CHAT_FORBIDDEN ...)
        users = {int(m.sender[1:]) for m in messages if m.sender.startswith("u")}
        await messenger.db.note_seen_users(
            call.bot.id, {messenger.scoped(call.bot.id, uid): uid for uid in users}
        )
    return await messenger.view(call.bot.id).messages(chat, messages)


async def client_history(call: UserCall, p: dict[str, Any]) -> list[dict[str, Any]]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_user(call.user, p["chat_id"])
    sender = None
    if p["sender_id"] is not None:
        is_bot = await messenger.db.get_bot(p["sender_id"]) is not None
        sender = member_key("b" if is_bot else "u", p["sender_id"])
    messages = await read_history(
        messenger,
        chat,
        bot=None,
        limit=p["limit"],
        before=p["before"],
        since=p["since"],
        sender=sender,
    )
    return await messenger.view(None, user=call.user.id).messages(chat, messages)


_PARAMS = (
    CHAT_ID,
    Param("limit", "int", default=50, minimum=1, maximum=MAX_LIMIT, doc="1-100, default 50"),
    Param("before", "id", doc="only messages with a smaller message id"),
    Param("since", "id", doc="only messages with a greater message id"),
    Param("sender_id", "id", doc="only messages of this sender (a user or a bot id)"),
)
_RESULT = {"type": "array", "items": ref("Message")}

BOT: tuple[Method, ...] = (
    Method(
        "getChatHistory",
        bot_history,
        getter=True,
        summary="Messages of a chat the bot is in, as the bot sees them, oldest first.",
        params=_PARAMS,
        result=_RESULT,
    ),
)

CLIENT: tuple[Method, ...] = (
    Method(
        "getChatHistory",
        client_history,
        getter=True,
        summary="Messages of one of the user's chats, oldest first.",
        params=_PARAMS,
        result=_RESULT,
    ),
)
