"""The client API: the messenger app's part, so users can cause every update."""

from __future__ import annotations

from typing import Any

from rest.messenger import Outgoing
from rest.objects import ref
from rest.schema import Method, Param
from rest.services import UserCall
from shared.errors import ApiError
from shared.ids import random_id
from shared.models import ChatRecord, member_key

__all__ = ["CLIENT_METHODS"]


async def start_bot(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.start_bot(call.user, p["username"])
    return await messenger.render_chat(None, chat)


async def send_message(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    message = await messenger.user_send_message(
        call.user, p["chat_id"], p["text"], reply_to=p["reply_to_message_id"]
    )
    chat = await messenger.chat_for_user(call.user, p["chat_id"])
    return await messenger.render_message(None, chat, message)


async def create_group(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = ChatRecord(id=random_id(), type="group", title=p["title"], created=0)
    await messenger.db.create_chat(chat)
    await messenger.db.add_member(chat.id, member_key("u", call.user.id), {"status": "creator"})
    return await messenger.render_chat(None, chat)


async def _member_target(call: UserCall, username: str) -> tuple[str, int]:
    messenger = call.services.messenger
    bot = await messenger.bot_by_username(username)
    if bot is not None:
        return "b", bot.id
    user = await messenger.user_by_username(username)
    if user is not None:
        return "u", user.id
    raise ApiError(404, "USER_NOT_FOUND", f"no user or bot is called '{username}'")


async def _chat_member_update(
    call: UserCall, chat: ChatRecord, bot_id: int, old: str, new: str
) -> None:
    messenger = call.services.messenger
    body = {
        "my_chat_member": {
            "chat": await messenger.render_chat(bot_id, chat),
            "from": await messenger.render_user(bot_id, member_key("u", call.user.id)),
            "date": messenger_now(),
            "old_chat_member": {
                "status": old,
                "user": await messenger.render_user(bot_id, member_key("b", bot_id)),
            },
            "new_chat_member": {
                "status": new,
                "user": await messenger.render_user(bot_id, member_key("b", bot_id)),
            },
        }
    }
    await messenger.publish(
        [Outgoing(bot_id=bot_id, kind="my_chat_member", chat_id=chat.id, body=body)]
    )


def messenger_now() -> int:
    import time

    return int(time.time())


async def add_chat_member(call: UserCall, p: dict[str, Any]) -> bool:
    messenger = call.services.messenger
    chat = await messenger.chat_for_user(call.user, p["chat_id"])
    if chat.type != "group":
        raise ApiError(400, "NOT_A_GROUP", "members can only be added to groups")
    kind, member_id = await _member_target(call, p["username"])
    added = await messenger.db.add_member(
        chat.id, member_key(kind, member_id), {"status": "member"}
    )
    if added and kind == "b":
        await _chat_member_update(call, chat, member_id, "left", "member")
    return added


CLIENT_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method(
            name="startBot",
            handler=start_bot,
            summary="Open the private chat with a bot and send /start.",
            params=(Param("username", "str", required=True, min_length=1, max_length=64),),
            result=ref("Chat"),
        ),
        Method(
            name="sendMessage",
            handler=send_message,
            summary="Send a text message as the user.",
            params=(
                Param("chat_id", "id", required=True),
                Param("text", "str", required=True, min_length=1, max_length=4096),
                Param("reply_to_message_id", "id"),
            ),
            result=ref("Message"),
        ),
        Method(
            name="createGroup",
            handler=create_group,
            summary="Create a group with the user as its creator.",
            params=(Param("title", "str", required=True, min_length=1, max_length=128),),
            result=ref("Chat"),
        ),
        Method(
            name="addChatMember",
            handler=add_chat_member,
            summary="Add a user or a bot to a group.",
            params=(
                Param("chat_id", "id", required=True),
                Param("username", "str", required=True, min_length=1, max_length=64),
            ),
            result={"type": "boolean"},
        ),
    )
}
