"""The client API: the messenger app's part, so users can cause every update.

Ids are the users' view: a chat by its internal id (a private chat included), a
user by the real user id, a bot by its bot id. What each call causes for bots:

=====================  =================================================
startBot               ``message`` (/start) to the bot
sendMessage            ``message`` to the bots it reaches
editMessageText        ``edited_message`` to the bots it reaches
pressButton            ``callback_query`` to the bot that sent the button
setMessageReaction     ``message_reaction``
answerPoll             ``poll_answer`` (non-anonymous polls) and ``poll``
addChatMember          ``my_chat_member`` to an added bot
removeChatMember       ``my_chat_member`` to a removed bot
=====================  =================================================

Every call that writes takes a token of the user's send limit first
(:func:`user_limited`), and each message or edit one of its chat's
(:mod:`rest.ratelimit`): 429 ``TOO_MANY_REQUESTS`` with ``retry_after`` past them.

The client's methods on callback queries, polls, history and files live beside
the bot's, in those groups' modules; :data:`rest.methods.CLIENT_METHODS` has them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from rest import changes
from rest.messenger import Messenger
from rest.object_schemas import ref
from rest.ratelimit import take_user_token
from rest.schema import CHAT_ID, MESSAGE_ID, Method, Param, reaction_param
from rest.services import UserCall
from shared.errors import ApiError
from shared.models import ChatRecord, UserRecord, member_key

__all__ = ["CLIENT", "user_limited"]

MAX_TEXT = 4096
_USERNAME = Param("username", "str", required=True, min_length=1, max_length=64)
_TEXT = Param("text", "str", required=True, min_length=1, max_length=MAX_TEXT)


async def get_me(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": call.user.id,
        "is_bot": False,
        "first_name": call.user.name,
        "username": call.user.username,
    }


async def start_bot(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.start_bot(call.user, p["username"])
    return await messenger.view(None).chat(chat)


async def send_message(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await messenger.chat_for_user(call.user, p["chat_id"])
    message = await messenger.user_send_message(
        call.user,
        chat,
        p["text"],
        reply_to=p["reply_to_message_id"],
        idempotency_key=call.idempotency_key,
    )
    return await messenger.view(None).message(chat, message)


async def _user_chat(call: UserCall, p: dict[str, Any]) -> tuple[Messenger, ChatRecord]:
    """The messenger and the user's chat that ``p`` names."""
    messenger = call.services.messenger
    return messenger, await messenger.chat_for_user(call.user, p["chat_id"])


async def edit_message_text(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger, chat = await _user_chat(call, p)
    message = await messenger.user_edit_message(call.user, chat, p["message_id"], p["text"])
    return await messenger.view(None).message(chat, message)


async def delete_message(call: UserCall, p: dict[str, Any]) -> bool:
    messenger, chat = await _user_chat(call, p)
    await messenger.user_delete_message(call.user, chat, p["message_id"])
    return True


async def set_message_reaction(call: UserCall, p: dict[str, Any]) -> bool:
    messenger, chat = await _user_chat(call, p)
    message = await messenger.message_in(chat, p["message_id"])
    me = member_key("u", call.user.id)
    new: list[dict[str, str]] = p["reaction"]
    await changes.set_reaction(messenger, chat, message, me, new)
    return True


async def create_group(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    messenger = call.services.messenger
    chat = await changes.create_group(messenger, call.user, p["title"])
    return await messenger.view(None).chat(chat)


def _member_change(
    change: Callable[[Messenger, UserRecord, ChatRecord, str], Awaitable[str]],
) -> Callable[[UserCall, dict[str, Any]], Awaitable[bool]]:
    """A handler making ``change`` (add or remove) to the named member of a group."""

    async def handler(call: UserCall, p: dict[str, Any]) -> bool:
        messenger, chat = await _user_chat(call, p)
        await change(messenger, call.user, chat, p["username"])
        return True

    return handler


add_chat_member = _member_change(changes.add_member)
remove_chat_member = _member_change(changes.remove_member)


async def get_chats(call: UserCall, p: dict[str, Any]) -> list[dict[str, Any]]:
    messenger = call.services.messenger
    view = messenger.view(None, user=call.user.id)
    out = []
    for chat_id in await messenger.db.chats_of_user(call.user.id):
        chat = await messenger.db.get_chat(chat_id)
        if chat is not None:
            shown = await view.chat(chat)
            pinned = await view.pinned(chat)
            if pinned is not None:  # the latest pin, as getChat shows it to bots
                shown["pinned_message"] = await view.message(chat, pinned, with_reply=False)
            out.append(shown)
    return out


async def get_chat_members(call: UserCall, p: dict[str, Any]) -> list[dict[str, Any]]:
    messenger, chat = await _user_chat(call, p)
    view = messenger.view(None)
    if chat.type == "private":
        members = {
            member_key("u", chat.user_id): {"status": "member"},
            member_key("b", chat.bot_id): {"status": "member"},
        }
    else:
        members = await messenger.db.members(chat.id)
    await view.load(members)
    return [await view.chat_member(m, info) for m, info in sorted(members.items())]


async def get_bot_commands(call: UserCall, p: dict[str, Any]) -> list[dict[str, str]]:
    """The commands of a bot of the chat as they apply to this user there: the most
    specific scope the bot set (chat member, chat, all group or private chats),
    else its default list (Telegram's order; the default language)."""
    messenger, chat = await _user_chat(call, p)
    bot_id = p["bot_id"] if p["bot_id"] is not None else chat.bot_id or None
    if bot_id is None:
        raise ApiError(400, "MISSING_PARAMETER", "parameter 'bot_id' is required in a group")
    bot = await messenger.bot_in_chat(bot_id, chat)
    if bot is None:
        raise ApiError(400, "BOT_NOT_IN_CHAT", "the bot is not (or no longer) in this chat")
    chat_id = messenger.bot_chat_id(bot.id, chat)
    scopes = [f"chat:{chat_id}|", "all_private_chats|"]
    if chat.type == "group":
        member = f"chat_member:{chat_id}:{messenger.scoped(bot.id, call.user.id)}|"
        scopes = [member, f"chat:{chat_id}|", "all_group_chats|"]
    for scope in scopes:
        if bot.command_sets.get(scope):
            return list(bot.command_sets[scope])
    return list(bot.commands)


_CHAT_LIST = {"type": "array", "items": ref("Chat")}
_TRUE = {"type": "boolean"}

CLIENT: tuple[Method, ...] = (
    Method("getMe", get_me, getter=True, summary="The user's own User.", result=ref("User")),
    Method(
        "startBot",
        start_bot,
        summary="Open the private chat with a bot and send /start.",
        params=(_USERNAME,),
        result=ref("Chat"),
    ),
    Method(
        "sendMessage",
        send_message,
        summary="Send a text message as the user.",
        params=(CHAT_ID, _TEXT, Param("reply_to_message_id", "id")),
        result=ref("Message"),
    ),
    Method(
        "editMessageText",
        edit_message_text,
        summary="Edit one of the user's text messages.",
        params=(CHAT_ID, MESSAGE_ID, _TEXT),
        result=ref("Message"),
    ),
    Method(
        "deleteMessage",
        delete_message,
        summary="Delete a message (own ones; any in a private chat or as group creator).",
        params=(CHAT_ID, MESSAGE_ID),
        result=_TRUE,
    ),
    Method(
        "setMessageReaction",
        set_message_reaction,
        summary="Set the user's reactions to a message (an empty list removes them).",
        params=(
            CHAT_ID,
            MESSAGE_ID,
            reaction_param(required=True),
        ),
        result=_TRUE,
    ),
    Method(
        "createGroup",
        create_group,
        summary="Create a group with the user as its creator.",
        params=(Param("title", "str", required=True, min_length=1, max_length=128),),
        result=ref("Chat"),
    ),
    Method(
        "addChatMember",
        add_chat_member,
        summary="Add a user or a bot to a group (a bot gets my_chat_member).",
        params=(CHAT_ID, _USERNAME),
        result=_TRUE,
    ),
    Method(
        "removeChatMember",
        remove_chat_member,
        summary="Remove a user or a bot from a group (yourself: leave it).",
        params=(CHAT_ID, _USERNAME),
        result=_TRUE,
    ),
    Method(
        "getChats",
        get_chats,
        getter=True,
        summary="The user's chats.",
        result=_CHAT_LIST,
    ),
    Method(
        "getMyCommands",
        get_bot_commands,
        getter=True,
        summary="A chat's bot's commands as they apply to the user there.",
        params=(CHAT_ID, Param("bot_id", "id", doc="the bot (a private chat's by default)")),
        result={"type": "array", "items": ref("BotCommand")},
    ),
    Method(
        "getChatMembers",
        get_chat_members,
        getter=True,
        summary="The members of one of the user's chats.",
        params=(CHAT_ID,),
        result={"type": "array", "items": ref("ChatMember")},
    ),
)


def user_limited(method: Method) -> Method:
    """``method`` taking a token of the user's write bucket first (rest.ratelimit)."""
    handler = method.handler

    async def limited(call: UserCall, p: dict[str, Any]) -> Any:
        await take_user_token(call.services.store, call.services.settings, call.user.id)
        return await handler(call, p)

    return replace(method, handler=limited)
