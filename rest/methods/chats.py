"""Bot API methods on chats: getChat, getChatMember, getChatMemberCount, leaveChat."""

from __future__ import annotations

from typing import Any

from rest import changes
from rest.object_schemas import ref
from rest.schema import CHAT_ID, Method, Param
from rest.services import BotCall

__all__ = ["BOT"]


async def get_chat(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    return await messenger.view(call.bot.id).chat_full(chat)


async def get_chat_member(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    member = await messenger.resolve_user_for_bot(call.bot, chat, p["user_id"])
    info = await messenger.member_info(chat, member)
    return await messenger.view(call.bot.id).chat_member(member, info)


async def get_chat_member_count(call: BotCall, p: dict[str, Any]) -> int:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    return await messenger.member_count(chat)


async def leave_chat(call: BotCall, p: dict[str, Any]) -> bool:
    messenger = call.services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    await changes.leave_chat(messenger, call.bot, chat)
    return True


_TRUE: dict[str, Any] = {"type": "boolean"}

BOT: tuple[Method, ...] = (
    Method(
        "getChat",
        get_chat,
        getter=True,
        summary="Up-to-date information about a chat.",
        params=(CHAT_ID,),
        result=ref("ChatFullInfo"),
    ),
    Method(
        "getChatMember",
        get_chat_member,
        getter=True,
        summary="A member of a chat.",
        params=(CHAT_ID, Param("user_id", "id", required=True)),
        result=ref("ChatMember"),
    ),
    Method(
        "getChatMemberCount",
        get_chat_member_count,
        getter=True,
        summary="The number of members (users and bots) of a chat.",
        params=(CHAT_ID,),
        result={"type": "integer"},
    ),
    Method(
        "leaveChat",
        leave_chat,
        summary="Leave a group.",
        params=(CHAT_ID,),
        result=_TRUE,
    ),
)
