"""Bot API messaging methods through real HTTP against the real stack.

Each test gets a fresh user, a second user, a bot, the user's private chat with the
bot (started, so its ``/start`` is the first update) and a group of all three. The
objects returned are checked against aiogram's Telegram models, and what was
stored is read back through the users' getChatHistory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import types as tg

from shared.settings import Settings
from tests.api import Caller, Scene, scene_at
from tests.conftest import Stack

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]


@pytest.fixture
async def world(stack: Stack, settings: Settings) -> AsyncIterator[Scene]:
    async with scene_at(stack.rest_url, settings, "m", users=2, private=True, group="Team") as w:
        yield w


async def history(world: Scene, chat: str, **params: Any) -> list[dict[str, Any]]:
    return list(await world.as_user("getChatHistory", chat_id=chat, **params))


async def failure(caller: Caller, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
    response = await caller.raw(method, **params)
    body = response.json()
    assert body["ok"] is False and body["error_code"] == response.status_code
    assert body["code"].isupper() and body["description"]
    return response.status_code, body


KEYBOARD = {
    "inline_keyboard": [
        [{"text": "Yes", "callback_data": "y"}, {"text": "Site", "url": "https://e.org"}]
    ]
}


async def test_send_message_stores_and_returns_a_telegram_message(world: Scene) -> None:
    sent = await world.as_bot(
        "sendMessage",
        chat_id=world.bot_chat,
        text="<b>Hello</b> @someone, see https://e.org",
        parse_mode="HTML",
        reply_markup=KEYBOARD,
        reply_parameters={"message_id": world.start},
        link_preview_options={"is_disabled": True},
    )
    message = tg.Message.model_validate(sent)
    assert message.text == "Hello @someone, see https://e.org"
    assert [(e.type, e.offset, e.length) for e in message.entities or ()] == [
        ("bold", 0, 5),
        ("mention", 6, 8),
        ("url", 20, 13),
    ]
    assert sent["chat"]["id"] == world.bot_chat and sent["from"]["id"] == str(world.bot.bot_id)
    assert sent["reply_to_message"]["text"] == "/start"
    assert sent["reply_markup"] == KEYBOARD
    stored = (await history(world, world.private))[-1]
    assert stored["message_id"] == sent["message_id"]
    assert int(sent["message_id"]) > int(world.start)
    assert stored["text"] == message.text and stored["reply_markup"] == KEYBOARD
    assert stored["chat"]["id"] == world.private  # the user's own id of the chat
    assert await world.updates() == []  # a bot never receives its own messages


async def test_wrong_requests_get_the_envelope_and_change_nothing(world: Scene) -> None:
    before = await history(world, world.private)
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"chat_id": world.bot_chat, "text": "x" * 4097}, 400, "INVALID_PARAMETER", "'text'"),
        ({"chat_id": world.bot_chat, "text": ""}, 400, "INVALID_PARAMETER", "'text'"),
        ({"chat_id": world.bot_chat, "text": "  "}, 400, "INVALID_PARAMETER", "'text'"),
        ({"chat_id": world.bot_chat}, 400, "MISSING_PARAMETER", "'text'"),
        ({"chat_id": [1], "text": "x"}, 400, "INVALID_PARAMETER", "'chat_id'"),
        ({"chat_id": world.bot_chat, "text": 5}, 400, "INVALID_PARAMETER", "'text'"),
        (
            {"chat_id": world.bot_chat, "text": "x", "reply_markup": {"inline_keyboard": [[{}]]}},
            400,
            "INVALID_PARAMETER",
            "reply_markup.inline_keyboard[0][0]",
        ),
        (
            {"chat_id": world.bot_chat, "text": "x", "reply_markup": "[1"},
            400,
            "INVALID_PARAMETER",
            "'reply_markup'",
        ),
        (
            {"chat_id": world.bot_chat, "text": "<b>", "parse_mode": "HTML"},
            400,
            "CANT_PARSE_ENTITIES",
            "'text'",
        ),
        (
            {"chat_id": world.bot_chat, "text": "x", "reply_to_message_id": 999},
            400,
            "MESSAGE_NOT_FOUND",
            "999",
        ),
    ]
    for params, status, code, needle in cases:
        got_status, body = await failure(world.as_bot, "sendMessage", **params)
        assert (got_status, body["code"]) == (status, code), params
        assert needle in body["description"], body
    status, body = await failure(world.as_bot, "sendMessagez", chat_id=1, text="x")
    assert (status, body["code"]) == (404, "METHOD_NOT_FOUND")
    response = await world.http.get(
        "/bot/sendMessage", headers={"Authorization": f"Bot {world.bot.token}"}
    )
    assert response.status_code == 405 and response.json()["code"] == "METHOD_NOT_ALLOWED"
    # a lenient reply to a missing message is sent without the reply
    sent = await world.as_bot(
        "sendMessage",
        chat_id=world.bot_chat,
        text="still sent",
        reply_parameters={"message_id": 999, "allow_sending_without_reply": True},
    )
    assert "reply_to_message" not in sent
    after = await history(world, world.private)
    assert after[:-1] == before and after[-1]["text"] == "still sent"


async def test_edit_text_and_markup_of_own_messages(world: Scene) -> None:
    sent = await world.as_bot("sendMessage", chat_id=world.group, text="v1", reply_markup=KEYBOARD)
    edit: dict[str, Any] = {
        "chat_id": world.group,
        "message_id": sent["message_id"],
        "text": "*v2*",
        "parse_mode": "MarkdownV2",
        "reply_markup": KEYBOARD,
    }
    edited = await world.as_bot("editMessageText", **edit)
    assert edited["text"] == "v2" and edited["entities"] == [
        {"type": "bold", "offset": 0, "length": 2}
    ]
    assert isinstance(edited["edit_date"], int) and edited["reply_markup"] == KEYBOARD
    status, body = await failure(world.as_bot, "editMessageText", **edit)  # the same again
    assert (status, body["code"]) == (400, "MESSAGE_NOT_MODIFIED")
    # addressed to the bot (privacy mode): a message it may see, yet not its own
    users = await world.as_user(
        "sendMessage", chat_id=world.group, text=f"mine @{world.bot.username}"
    )
    status, body = await failure(
        world.as_bot,
        "editMessageText",
        chat_id=world.group,
        message_id=users["message_id"],
        text="x",
    )
    assert (status, body["code"]) == (400, "MESSAGE_CANT_BE_EDITED")
    bare = await world.as_bot(
        "editMessageReplyMarkup", chat_id=world.group, message_id=sent["message_id"]
    )
    assert "reply_markup" not in bare and bare["text"] == "v2"
    status, body = await failure(
        world.as_bot, "editMessageReplyMarkup", chat_id=world.group, message_id=sent["message_id"]
    )
    assert body["code"] == "MESSAGE_NOT_MODIFIED"
    stored = {m["message_id"]: m for m in await history(world, world.group)}[sent["message_id"]]
    assert stored["text"] == "v2" and "reply_markup" not in stored and "edit_date" in stored


async def test_a_users_edit_becomes_edited_message(world: Scene) -> None:
    sent = await world.as_user("sendMessage", chat_id=world.private, text="helo")
    edited = await world.as_user(
        "editMessageText", chat_id=world.private, message_id=sent["message_id"], text="hello /help"
    )
    assert edited["edit_date"] >= edited["date"]
    updates = await world.updates()
    assert [next(k for k in u if k != "update_id") for u in updates] == [
        "message",
        "edited_message",
    ]
    update = tg.Update.model_validate(updates[1])
    assert update.edited_message is not None
    assert update.edited_message.text == "hello /help"
    assert update.edited_message.message_id == int(sent["message_id"])
    assert updates[1]["edited_message"]["entities"] == [
        {"type": "bot_command", "offset": 6, "length": 5}
    ]
    status, body = await failure(
        world.as_user,
        "editMessageText",
        chat_id=world.private,
        message_id=world.start,
        text="/start",
    )
    assert body["code"] == "MESSAGE_NOT_MODIFIED"
    status, body = await failure(
        world.as_other, "editMessageText", chat_id=world.private, message_id=world.start, text="x"
    )
    assert (status, body["code"]) == (404, "CHAT_NOT_FOUND")


async def test_delete_messages(world: Scene) -> None:
    mine = await world.as_bot("sendMessage", chat_id=world.group, text="bot says")
    users = await world.as_other(
        "sendMessage", chat_id=world.group, text=f"other says @{world.bot.username}"
    )
    assert await world.as_bot("deleteMessage", chat_id=world.group, message_id=mine["message_id"])
    status, body = await failure(
        world.as_bot, "deleteMessage", chat_id=world.group, message_id=users["message_id"]
    )
    assert (status, body["code"]) == (400, "MESSAGE_CANT_BE_DELETED")
    status, body = await failure(
        world.as_bot, "deleteMessage", chat_id=world.group, message_id=mine["message_id"]
    )
    assert body["code"] == "MESSAGE_NOT_FOUND"
    # in its private chat a bot may delete the user's messages too
    assert await world.as_bot("deleteMessage", chat_id=world.bot_chat, message_id=world.start)
    # users delete their own; the group's creator anyone's
    assert await world.as_user("deleteMessage", chat_id=world.group, message_id=users["message_id"])
    assert [m["text"] for m in await history(world, world.group)] == []
    assert await history(world, world.private) == []
    status, body = await failure(
        world.as_other, "deleteMessage", chat_id=world.private, message_id=world.start
    )
    assert status == 404


async def test_forward_and_copy(world: Scene) -> None:
    text = f"quote me @{world.bot.username}"  # addressed to the bot, so it may name it
    original = await world.as_other("sendMessage", chat_id=world.group, text=text)
    forwarded = await world.as_bot(
        "forwardMessage",
        chat_id=world.bot_chat,
        from_chat_id=world.group,
        message_id=original["message_id"],
    )
    message = tg.Message.model_validate(forwarded)
    assert message.text == text and message.forward_origin is not None
    origin = forwarded["forward_origin"]
    assert origin["type"] == "user" and origin["sender_user"]["username"] == world.other.username
    assert origin["date"] == original["date"]
    copied = await world.as_bot(
        "copyMessage",
        chat_id=world.bot_chat,
        from_chat_id=world.group,
        message_id=original["message_id"],
    )
    assert set(copied) == {"message_id"}
    stored = {m["message_id"]: m for m in await history(world, world.private)}
    assert stored[forwarded["message_id"]]["forward_origin"]["sender_user"]["id"] == str(
        world.other.user_id
    )
    assert stored[copied["message_id"]]["text"] == text
    assert "forward_origin" not in stored[copied["message_id"]]
    assert stored[copied["message_id"]]["from"]["id"] == str(world.bot.bot_id)
    status, body = await failure(
        world.as_bot,
        "forwardMessage",
        chat_id=world.bot_chat,
        from_chat_id=world.group,
        message_id=99,
    )
    assert body["code"] == "MESSAGE_NOT_FOUND"
    status, body = await failure(
        world.as_bot,
        "copyMessage",
        chat_id=world.bot_chat,
        from_chat_id="123",
        message_id=world.start,
    )
    assert status == 400
    assert body["code"] == "CHAT_NOT_FOUND"


async def test_pin_and_unpin(world: Scene) -> None:
    first = await world.as_bot("sendMessage", chat_id=world.group, text="first")
    second = await world.as_bot("sendMessage", chat_id=world.group, text="second")
    for message in (first, second):
        assert await world.as_bot(
            "pinChatMessage", chat_id=world.group, message_id=message["message_id"]
        )
    chat = await world.as_bot("getChat", chat_id=world.group)
    assert chat["pinned_message"]["text"] == "second"
    assert await world.as_bot("unpinChatMessage", chat_id=world.group)
    assert (await world.as_bot("getChat", chat_id=world.group))["pinned_message"]["text"] == "first"
    assert await world.as_bot(
        "unpinChatMessage", chat_id=world.group, message_id=first["message_id"]
    )
    assert "pinned_message" not in await world.as_bot("getChat", chat_id=world.group)
    status, body = await failure(world.as_bot, "unpinChatMessage", chat_id=world.group)
    assert (status, body["code"]) == (400, "MESSAGE_NOT_PINNED")
    status, body = await failure(world.as_bot, "pinChatMessage", chat_id=world.group, message_id=77)
    assert body["code"] == "MESSAGE_NOT_FOUND"


async def test_bot_reactions_and_chat_actions(world: Scene) -> None:
    users = await world.as_user("sendMessage", chat_id=world.private, text="react to me")
    assert await world.as_bot(
        "setMessageReaction",
        chat_id=world.bot_chat,
        message_id=users["message_id"],
        reaction=[{"type": "emoji", "emoji": "👍"}],
        is_big=True,
    )
    status, body = await failure(
        world.as_bot,
        "setMessageReaction",
        chat_id=world.bot_chat,
        message_id=users["message_id"],
        reaction=["👍", "🔥"],
    )
    assert (status, body["code"]) == (400, "REACTIONS_TOO_MANY")
    status, body = await failure(
        world.as_bot,
        "setMessageReaction",
        chat_id=world.bot_chat,
        message_id=users["message_id"],
        reaction=[{"type": "paid"}],
    )
    assert "reaction[0]" in body["description"]
    assert await world.as_bot(
        "setMessageReaction", chat_id=world.bot_chat, message_id=users["message_id"]
    )
    assert await world.as_bot("sendChatAction", chat_id=world.bot_chat, action="typing")
    status, body = await failure(
        world.as_bot, "sendChatAction", chat_id=world.bot_chat, action="dance"
    )
    assert status == 400 and "'action'" in body["description"]
    status, body = await failure(world.as_bot, "sendChatAction", chat_id="99", action="typing")
    assert body["code"] == "CHAT_NOT_FOUND"


async def test_get_me(world: Scene) -> None:
    me = tg.User.model_validate(await world.as_bot("getMe"))
    assert (
        me.is_bot and me.username == world.bot.username and me.can_read_all_group_messages is False
    )
    response = await world.http.get(
        "/bot/getMe", headers={"Authorization": f"Bearer {world.bot.token}"}
    )
    assert response.status_code == 200 and response.json()["result"]["id"] == str(world.bot.bot_id)
