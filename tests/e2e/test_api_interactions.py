"""Button presses (callback_query + answerCallbackQuery) and reactions (message_reaction)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import types as tg

from shared.settings import Settings
from tests.api import Scene, bot_api, client_api, create_bot, create_user, error, scene_at
from tests.conftest import Stack, unique

pytestmark = pytest.mark.asyncio

KEYBOARD = {
    "inline_keyboard": [
        [{"text": "Red", "callback_data": "color:red"}, {"text": "Blue", "callback_data": "blue"}],
        [{"text": "Docs", "url": "https://e.org/docs"}],
    ]
}


@pytest.fixture
async def pair(stack: Stack, settings: Settings) -> AsyncIterator[Scene]:
    async with scene_at(stack.rest_url, settings, "i", private=True) as scene:
        yield scene


async def test_button_press_is_answered_once(pair: Scene) -> None:
    sent = await pair.as_bot(
        "sendMessage", chat_id=pair.bot_chat, text="Pick one", reply_markup=KEYBOARD
    )
    pressed = await pair.as_user(
        "pressButton",
        chat_id=pair.private,
        message_id=sent["message_id"],
        callback_data="color:red",
    )
    assert pressed["answered"] is False and pressed["id"]
    (update,) = await pair.updates()
    query = tg.Update.model_validate(update).callback_query
    assert query is not None and query.data == "color:red" and query.chat_instance
    body = update["callback_query"]
    assert body["id"] == pressed["id"]
    assert body["from"]["id"] == pair.bot_chat  # the user's scoped id, as in the chat id
    assert body["message"]["message_id"] == sent["message_id"]
    assert body["message"]["reply_markup"] == KEYBOARD

    waiting = await pair.as_user("getCallbackAnswer", callback_query_id=pressed["id"])
    assert waiting == {"id": pressed["id"], "answered": False}
    assert await pair.as_bot(
        "answerCallbackQuery", callback_query_id=body["id"], text="Red it is", show_alert=True
    )
    answer = await pair.as_user("getCallbackAnswer", callback_query_id=pressed["id"])
    assert answer == {
        "id": pressed["id"],
        "answered": True,
        "text": "Red it is",
        "show_alert": True,
    }
    assert await error(pair.as_bot, "answerCallbackQuery", callback_query_id=body["id"]) == (
        400,
        "QUERY_ALREADY_ANSWERED",
    )
    assert await pair.as_user("getCallbackAnswer", callback_query_id=pressed["id"]) == answer
    response = await pair.http.get(
        "/client/getCallbackAnswer",
        params={"callback_query_id": pressed["id"]},
        headers={"Authorization": f"Bearer {pair.user.token}"},
    )
    assert response.json()["result"] == answer


async def test_button_errors(pair: Scene, settings: Settings) -> None:
    sent = await pair.as_bot(
        "sendMessage", chat_id=pair.bot_chat, text="Pick", reply_markup=KEYBOARD
    )
    plain = await pair.as_user("sendMessage", chat_id=pair.private, text="no buttons")
    for message_id, data in ((sent["message_id"], "green"), (plain["message_id"], "blue")):
        assert await error(
            pair.as_user,
            "pressButton",
            chat_id=pair.private,
            message_id=message_id,
            callback_data=data,
        ) == (400, "BUTTON_DATA_INVALID")
    assert await error(
        pair.as_user, "pressButton", chat_id=pair.private, message_id=99, callback_data="blue"
    ) == (400, "MESSAGE_NOT_FOUND")
    assert await error(pair.as_bot, "answerCallbackQuery", callback_query_id="nope") == (
        400,
        "QUERY_ID_INVALID",
    )
    assert await error(pair.as_user, "getCallbackAnswer", callback_query_id="nope") == (
        400,
        "QUERY_ID_INVALID",
    )
    pressed = await pair.as_user(
        "pressButton", chat_id=pair.private, message_id=sent["message_id"], callback_data="blue"
    )
    # another bot cannot answer this bot's query; another user cannot read it
    stranger = await create_user(settings, unique("is"))
    other_bot = await create_bot(settings, stranger, unique("j") + "_bot")
    as_other_bot = bot_api(pair.http, other_bot)
    assert await error(as_other_bot, "answerCallbackQuery", callback_query_id=pressed["id"]) == (
        400,
        "QUERY_ID_INVALID",
    )
    as_stranger = client_api(pair.http, stranger)
    assert await error(as_stranger, "getCallbackAnswer", callback_query_id=pressed["id"]) == (
        400,
        "QUERY_ID_INVALID",
    )
    assert await error(
        pair.as_bot, "answerCallbackQuery", callback_query_id=pressed["id"], text="x" * 201
    ) == (400, "INVALID_PARAMETER")
    assert await pair.as_bot("answerCallbackQuery", callback_query_id=pressed["id"])
    answer = await pair.as_user("getCallbackAnswer", callback_query_id=pressed["id"])
    assert answer == {"id": pressed["id"], "answered": True, "show_alert": False}


async def test_reactions_reach_the_bot(pair: Scene) -> None:
    sent = await pair.as_bot("sendMessage", chat_id=pair.bot_chat, text="rate me")
    for reaction in (
        [{"type": "emoji", "emoji": "👍"}],
        [{"type": "emoji", "emoji": "👍"}, "🔥"],
        ["👍", "🔥"],  # the same reaction again changes nothing and sends nothing
        [],
    ):
        assert await pair.as_user(
            "setMessageReaction",
            chat_id=pair.private,
            message_id=sent["message_id"],
            reaction=reaction,
        )
    updates = await pair.updates()
    assert [list(u)[1] for u in updates] == ["message_reaction"] * 3
    first = tg.Update.model_validate(updates[0]).message_reaction
    assert first is not None and first.message_id == int(sent["message_id"])
    reactions = [
        (u["message_reaction"]["old_reaction"], u["message_reaction"]["new_reaction"])
        for u in updates
    ]
    thumbs, fire = {"type": "emoji", "emoji": "👍"}, {"type": "emoji", "emoji": "🔥"}
    assert reactions == [([], [thumbs]), ([thumbs], [thumbs, fire]), ([thumbs, fire], [])]
    event = updates[0]["message_reaction"]
    assert event["chat"]["id"] == pair.bot_chat and event["user"]["id"] == pair.bot_chat
    assert await error(
        pair.as_user,
        "setMessageReaction",
        chat_id=pair.private,
        message_id=sent["message_id"],
        reaction=["1", "2", "3", "4"],
    ) == (400, "INVALID_PARAMETER")
    assert await error(
        pair.as_user, "setMessageReaction", chat_id=pair.private, message_id=42, reaction=["👍"]
    ) == (400, "MESSAGE_NOT_FOUND")
    assert await pair.updates() == []


async def test_group_reactions_follow_privacy_mode(pair: Scene, settings: Settings) -> None:
    other_bot = await create_bot(settings, pair.user, unique("k") + "_bot")
    as_other_bot = bot_api(pair.http, other_bot)
    group = await pair.as_user("createGroup", title="Reactions")
    for name in (pair.bot.username, other_bot.username):
        await pair.as_user("addChatMember", chat_id=group["id"], username=name)
    await pair.updates()
    await pair.updates(as_other_bot)
    mine = await pair.as_bot("sendMessage", chat_id=group["id"], text="bot message")
    users = await pair.as_user("sendMessage", chat_id=group["id"], text="plain user message")
    for message in (mine, users):
        await pair.as_user(
            "setMessageReaction",
            chat_id=group["id"],
            message_id=message["message_id"],
            reaction=["👀"],
        )
    got = [u["message_reaction"]["message_id"] for u in await pair.updates()]
    assert got == [mine["message_id"]]  # privacy mode: only reactions to its own messages
    assert await pair.updates(as_other_bot) == []
