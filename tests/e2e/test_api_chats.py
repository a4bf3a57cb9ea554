"""Chats, members and the bot's profile: getChat*, leaveChat, my_chat_member, commands."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import types as tg

from shared.ids import scoped_user_id
from shared.settings import Settings
from tests.api import Scene, error, scene_at
from tests.conftest import TEST_SECRET, Stack

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def chats(stack: Stack, settings: Settings) -> AsyncIterator[Scene]:
    async with scene_at(stack.rest_url, settings, "c", users=2) as scene:
        yield scene


async def test_my_chat_member_when_added_removed_and_leaving(chats: Scene) -> None:
    group = await chats.as_user("createGroup", title="Club")
    assert group["type"] == "group" and group["title"] == "Club"
    assert await chats.as_user("addChatMember", chat_id=group["id"], username=chats.bot.username)
    # adding again changes nothing and sends nothing
    assert await chats.as_user("addChatMember", chat_id=group["id"], username=chats.bot.username)
    (added,) = await chats.updates()
    update = tg.Update.model_validate(added)
    assert update.my_chat_member is not None
    event = added["my_chat_member"]
    assert event["chat"] == {"id": group["id"], "type": "group", "title": "Club"}
    assert event["from"]["username"] == chats.user.username and event["from"]["is_bot"] is False
    assert event["old_chat_member"]["status"] == "left"
    assert event["new_chat_member"]["status"] == "member"
    assert event["new_chat_member"]["user"]["id"] == str(chats.bot.bot_id)

    assert await chats.as_bot("sendMessage", chat_id=group["id"], text="hi all")
    assert await chats.as_user("removeChatMember", chat_id=group["id"], username=chats.bot.username)
    (removed,) = await chats.updates()
    assert removed["my_chat_member"]["new_chat_member"]["status"] == "left"
    assert removed["my_chat_member"]["old_chat_member"]["status"] == "member"
    assert await error(chats.as_bot, "sendMessage", chat_id=group["id"], text="x") == (
        403,
        "CHAT_FORBIDDEN",
    )
    assert await error(chats.as_bot, "getChat", chat_id=group["id"]) == (403, "CHAT_FORBIDDEN")

    await chats.as_user("addChatMember", chat_id=group["id"], username=chats.bot.username)
    assert (await chats.updates())[0]["my_chat_member"]["new_chat_member"]["status"] == "member"
    assert await chats.as_bot("leaveChat", chat_id=group["id"]) is True
    (left,) = await chats.updates()
    assert left["my_chat_member"]["from"]["id"] == str(chats.bot.bot_id)
    assert left["my_chat_member"]["new_chat_member"]["status"] == "left"
    assert await error(chats.as_bot, "leaveChat", chat_id=group["id"]) == (403, "CHAT_FORBIDDEN")
    members = await chats.as_user("getChatMembers", chat_id=group["id"])
    assert [m["user"]["username"] for m in members] == [chats.user.username]


async def test_get_chat_members_and_count(chats: Scene) -> None:
    group = await chats.as_user("createGroup", title="Room")
    for name in (chats.other.username, chats.bot.username):
        await chats.as_user("addChatMember", chat_id=group["id"], username=name)
    await chats.as_other("sendMessage", chat_id=group["id"], text=f"hello @{chats.bot.username}")
    updates = await chats.updates()
    mention = updates[-1]["message"]
    member_id = mention["from"]["id"]
    assert member_id != str(chats.other.user_id)  # scoped to the bot

    full = await chats.as_bot("getChat", chat_id=group["id"])
    info = tg.ChatFullInfo.model_validate(full)
    assert info.title == "Room" and info.type == "group"
    assert await chats.as_bot("getChatMemberCount", chat_id=group["id"]) == 3
    member = await chats.as_bot("getChatMember", chat_id=group["id"], user_id=member_id)
    tg.ChatMemberMember.model_validate(member)
    assert member["status"] == "member" and member["user"]["id"] == member_id
    me = await chats.as_bot("getChatMember", chat_id=group["id"], user_id=chats.bot.bot_id)
    assert me["status"] == "member" and me["user"]["is_bot"] is True
    # the creator never wrote, yet the bot can look them up by the id it would see
    owner_id = scoped_user_id(TEST_SECRET.encode(), chats.bot.bot_id, chats.user.user_id)
    creator = await chats.as_bot("getChatMember", chat_id=group["id"], user_id=owner_id)
    tg.ChatMemberOwner.model_validate(creator)
    assert creator["status"] == "creator" and creator["user"]["id"] == str(owner_id)
    assert await error(chats.as_bot, "getChatMember", chat_id=group["id"], user_id=12345) == (
        400,
        "USER_NOT_FOUND",
    )
    await chats.as_user("removeChatMember", chat_id=group["id"], username=chats.other.username)
    gone = await chats.as_bot("getChatMember", chat_id=group["id"], user_id=member_id)
    assert gone["status"] == "left"
    assert await chats.as_bot("getChatMemberCount", chat_id=group["id"]) == 2
    # members may not remove others they did not add; the creator may
    await chats.as_user("addChatMember", chat_id=group["id"], username=chats.other.username)
    assert await error(
        chats.as_other, "removeChatMember", chat_id=group["id"], username=chats.user.username
    ) == (403, "NOT_ENOUGH_RIGHTS")
    assert await error(
        chats.as_user, "removeChatMember", chat_id=group["id"], username="nobody_here"
    ) == (404, "USER_NOT_FOUND")
    assert await chats.as_other(
        "removeChatMember", chat_id=group["id"], username=chats.other.username
    )
    assert await error(chats.as_other, "sendMessage", chat_id=group["id"], text="x") == (
        404,
        "CHAT_NOT_FOUND",
    )


async def test_private_chat_info_and_client_chat_list(chats: Scene) -> None:
    private = await chats.as_user("startBot", username=chats.bot.username)
    assert private["type"] == "private" and private["username"] == chats.bot.username
    (start,) = await chats.updates()
    bot_chat = start["message"]["chat"]["id"]
    full = await chats.as_bot("getChat", chat_id=bot_chat)
    tg.ChatFullInfo.model_validate(full)
    assert full["id"] == bot_chat and full["username"] == chats.user.username
    assert await chats.as_bot("getChatMemberCount", chat_id=bot_chat) == 2
    user = await chats.as_bot("getChatMember", chat_id=bot_chat, user_id=bot_chat)
    assert user["status"] == "member" and user["user"]["id"] == bot_chat
    assert await error(chats.as_bot, "leaveChat", chat_id=bot_chat) == (400, "NOT_A_GROUP")
    group = await chats.as_user("createGroup", title="G")
    listed = await chats.as_user("getChats")
    assert {c["id"] for c in listed} == {private["id"], group["id"]}
    assert await error(chats.as_user, "startBot", username="no_such_bot") == (404, "BOT_NOT_FOUND")
    me = await chats.as_user("getMe")
    assert me["id"] == str(chats.user.user_id) and me["username"] == chats.user.username


async def test_commands_by_scope_and_language(chats: Scene) -> None:
    commands = [
        {"command": "start", "description": "Begin"},
        {"command": "help", "description": "Show help"},
    ]
    assert await chats.as_bot("getMyCommands") == []
    assert await chats.as_bot("setMyCommands", commands=commands) is True
    assert await chats.as_bot("getMyCommands") == commands
    german = [{"command": "hilfe", "description": "Hilfe"}]
    await chats.as_bot(
        "setMyCommands",
        commands=german,
        scope={"type": "all_private_chats"},
        language_code="de",
    )
    assert (
        await chats.as_bot("getMyCommands", scope={"type": "all_private_chats"}, language_code="de")
        == german
    )
    assert await chats.as_bot("getMyCommands", language_code="de") == []
    assert await chats.as_bot("deleteMyCommands") is True
    assert await chats.as_bot("getMyCommands") == []
    assert (
        await chats.as_bot("getMyCommands", scope={"type": "all_private_chats"}, language_code="de")
        == german
    )
    for bad in (
        [{"command": "Bad!", "description": "x"}],
        [{"command": "/help", "description": "x"}],
        [{"command": "ok", "description": ""}],
        [{"command": "a", "description": "x"}] * 2,
        [{"command": f"c{i}", "description": "x"} for i in range(101)],
    ):
        status, code = await error(chats.as_bot, "setMyCommands", commands=bad)
        assert status == 400 and code == "INVALID_PARAMETER"
    assert await error(
        chats.as_bot, "setMyCommands", commands=commands, scope={"type": "chat", "chat_id": 5}
    ) == (400, "CHAT_NOT_FOUND")
    assert await error(chats.as_bot, "getMyCommands", scope={"type": "everywhere"}) == (
        400,
        "INVALID_PARAMETER",
    )
    assert await chats.as_bot("getMyCommands") == []


async def test_name_and_description(chats: Scene) -> None:
    assert await chats.as_bot("setMyName", name="Weather Helper") is True
    assert (await chats.as_bot("getMe"))["first_name"] == "Weather Helper"
    assert await chats.as_bot("getMyName") == {"name": "Weather Helper"}
    await chats.as_bot("setMyName", name="Wetter", language_code="de")
    assert await chats.as_bot("getMyName", language_code="de") == {"name": "Wetter"}
    assert await chats.as_bot("getMyName", language_code="fr") == {"name": "Weather Helper"}
    assert await error(chats.as_bot, "setMyName", name="") == (400, "INVALID_PARAMETER")
    assert await error(chats.as_bot, "setMyName", name="x" * 65) == (400, "INVALID_PARAMETER")
    assert await chats.as_bot("setMyDescription", description="Forecasts on demand") is True
    assert await chats.as_bot("getMyDescription") == {"description": "Forecasts on demand"}
    assert await chats.as_bot("setMyDescription") is True
    assert await chats.as_bot("getMyDescription") == {"description": ""}
    assert await error(chats.as_bot, "setMyDescription", description="x" * 513) == (
        400,
        "INVALID_PARAMETER",
    )
    assert await error(chats.as_bot, "setMyName", name="A", language_code="deu") == (
        400,
        "INVALID_PARAMETER",
    )
