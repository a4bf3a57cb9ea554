"""Mini apps: web_app buttons, menu buttons, signed init data, sendWebAppData,
answerWebAppQuery, the bridge script; validated the way bots validate."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

import pytest
from aiogram.utils.web_app import check_webapp_signature

from shared.settings import Settings
from shared.store import Store
from tests.api import ApiFailure, Scene, client_api, error, scene_at
from tests.conftest import Stack
from tests.e2e.test_user_events import _open

pytestmark = pytest.mark.asyncio

APP = "https://shop.example/app?x=1"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webapps.md"


def _docs_validator() -> Callable[..., dict[str, str]]:
    """The validation snippet of docs/webapps.md, run as it is written there."""
    (code,) = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(DOCS), "exec"), namespace)
    validator: Callable[..., dict[str, str]] = namespace["validate_init_data"]
    return validator


@pytest.fixture
async def pair(stack: Stack, settings: Settings) -> AsyncIterator[Scene]:
    async with scene_at(stack.rest_url, settings, "wa", users=2, private=True) as scene:
        yield scene


async def _app_message(pair: Scene, url: str = APP) -> dict[str, Any]:
    keyboard = {"inline_keyboard": [[{"text": "Order", "web_app": {"url": url}}]]}
    return dict(
        await pair.as_bot("sendMessage", chat_id=pair.bot_chat, text="shop", reply_markup=keyboard)
    )


async def _init_data(pair: Scene, message: dict[str, Any], url: str = APP) -> str:
    opened = await pair.as_user(
        "getWebAppInitData",
        chat_id=pair.private,
        source="inline_button",
        message_id=message["message_id"],
        button_text="Order",
        url=url,
    )
    assert opened["url"] == url
    return str(opened["init_data"])


async def test_init_data_from_an_inline_button_validates_as_telegrams(pair: Scene) -> None:
    message = await _app_message(pair)
    assert message["reply_markup"]["inline_keyboard"][0][0]["web_app"] == {"url": APP}
    init_data = await _init_data(pair, message)
    telegram_token = pair.bot.token.removeprefix("bot_")
    assert check_webapp_signature(telegram_token, init_data)
    assert not check_webapp_signature(pair.bot.token + "x", init_data)
    fields = _docs_validator()(init_data, pair.bot.token)
    user = json.loads(fields["user"])
    assert str(user["id"]) == pair.bot_chat  # the id under which the bot knows the user
    assert user["username"] == pair.user.username
    assert fields["chat_type"] == "private" and fields["query_id"]
    assert abs(int(fields["auth_date"]) - time.time()) < 3600
    with pytest.raises(ValueError):
        _docs_validator()(init_data.replace("private", "group"), pair.bot.token)


async def test_only_the_buttons_url_opens(pair: Scene) -> None:
    message = await _app_message(pair)
    for url in ("https://evil.example/app", APP + "&y=2"):
        assert await error(
            pair.as_user,
            "getWebAppInitData",
            chat_id=pair.private,
            source="inline_button",
            message_id=message["message_id"],
            url=url,
        ) == (400, "BUTTON_URL_INVALID")
    assert await error(
        pair.as_user,
        "getWebAppInitData",
        chat_id=pair.private,
        source="inline_button",
        message_id=message["message_id"],
        button_text="Other",
        url=APP,
    ) == (400, "BUTTON_URL_INVALID")
    # the other user is not in the chat
    assert await error(
        pair.as_other,
        "getWebAppInitData",
        chat_id=pair.private,
        source="inline_button",
        message_id=message["message_id"],
        url=APP,
    ) == (404, "CHAT_NOT_FOUND")


async def test_web_app_urls_are_checked(pair: Scene) -> None:
    for url in ("http://shop.example/app", "javascript:alert(1)", "https://", "ftp://x/y"):
        keyboard = {"inline_keyboard": [[{"text": "Go", "web_app": {"url": url}}]]}
        assert await error(
            pair.as_bot, "sendMessage", chat_id=pair.bot_chat, text="x", reply_markup=keyboard
        ) == (400, "INVALID_PARAMETER")
    both = {"inline_keyboard": [[{"text": "Go", "web_app": {"url": APP}, "callback_data": "x"}]]}
    assert await error(
        pair.as_bot, "sendMessage", chat_id=pair.bot_chat, text="x", reply_markup=both
    ) == (400, "INVALID_PARAMETER")
    await _app_message(pair, "http://localhost:8000/app")  # a developer's own server


async def test_send_web_app_data_reaches_the_bot(pair: Scene) -> None:
    init_data = await _init_data(pair, await _app_message(pair))
    await pair.updates()
    sent = await pair.as_user("sendWebAppData", init_data=init_data, data='{"cart": [1, 2]}')
    assert sent["web_app_data"] == {"data": '{"cart": [1, 2]}', "button_text": "Order"}
    (update,) = await pair.updates()
    assert update["message"]["web_app_data"] == {"data": '{"cart": [1, 2]}', "button_text": "Order"}
    assert update["message"]["from"]["id"] == pair.bot_chat

    fields = dict(parse_qsl(init_data))
    forged = urlencode({**fields, "auth_date": str(int(fields["auth_date"]) + 1)}, quote_via=quote)
    for bad in (forged, init_data + "&extra=1", "hash=abc", "not init data"):
        assert await error(pair.as_user, "sendWebAppData", init_data=bad, data="x") == (
            400,
            "WEBAPP_DATA_INVALID",
        )
    assert await error(pair.as_other, "sendWebAppData", init_data=init_data, data="x") == (
        400,
        "WEBAPP_DATA_INVALID",
    )
    assert await error(pair.as_user, "sendWebAppData", init_data=init_data, data="é" * 2049) == (
        400,
        "DATA_TOO_LONG",
    )
    assert await pair.updates() == []  # none of those reached the bot


@pytest.mark.topologies("node", "cluster")  # launches, queries, chats in slots of their own
async def test_answer_web_app_query_sends_the_users_message(pair: Scene) -> None:
    init_data = await _init_data(pair, await _app_message(pair))
    query_id = dict(parse_qsl(init_data))["query_id"]
    result = {
        "type": "article",
        "id": "r1",
        "title": "Order",
        "input_message_content": {"message_text": "Ordered *2* coffees", "parse_mode": "Markdown"},
    }
    await pair.updates()
    async with _open(pair.http, pair.user) as stream:
        sent = await pair.as_bot("answerWebAppQuery", web_app_query_id=query_id, result=result)
        assert sent["inline_message_id"]
        message = await stream.next()
        assert message.type == "message"
        assert message.data["message"]["text"] == "Ordered 2 coffees"
        assert message.data["message"]["via_bot"]["username"] == pair.bot.username
        assert message.data["message"]["from"]["id"] == str(pair.user.user_id)
        answer = await stream.next()
        assert answer.type == "web_app_answer"
        assert answer.data["web_app_query_id"] == query_id and answer.data["title"] == "Order"
        assert answer.data["message"]["message_id"] == message.data["message"]["message_id"]
    assert await error(
        pair.as_bot, "answerWebAppQuery", web_app_query_id=query_id, result=result
    ) == (400, "QUERY_ALREADY_ANSWERED")
    assert await error(
        pair.as_bot, "answerWebAppQuery", web_app_query_id="nope", result=result
    ) == (400, "QUERY_ID_INVALID")
    assert await error(
        pair.as_bot,
        "answerWebAppQuery",
        web_app_query_id=query_id,
        result={"type": "photo", "id": "1"},
    ) == (400, "RESULT_TYPE_INVALID")


async def test_menu_buttons(pair: Scene) -> None:
    assert await pair.as_bot("getChatMenuButton") == {"type": "default"}
    assert await pair.as_user("getChatMenuButton", chat_id=pair.private) == {"type": "default"}
    button = {"type": "web_app", "text": "Shop", "web_app": {"url": APP}}
    assert await pair.as_bot("setChatMenuButton", menu_button=button) is True
    assert await pair.as_user("getChatMenuButton", chat_id=pair.private) == button
    mine = {"type": "commands"}
    await pair.as_bot("setChatMenuButton", chat_id=pair.bot_chat, menu_button=mine)
    assert await pair.as_bot("getChatMenuButton", chat_id=pair.bot_chat) == mine
    assert await pair.as_user("getChatMenuButton", chat_id=pair.private) == mine
    assert await error(
        pair.as_user, "getWebAppInitData", chat_id=pair.private, source="menu_button", url=APP
    ) == (400, "BUTTON_URL_INVALID")
    await pair.as_bot("setChatMenuButton", chat_id=pair.bot_chat, menu_button={"type": "default"})
    opened = await pair.as_user(
        "getWebAppInitData", chat_id=pair.private, source="menu_button", url=APP
    )
    assert check_webapp_signature(pair.bot.token.removeprefix("bot_"), opened["init_data"])
    assert "query_id" in dict(parse_qsl(opened["init_data"]))
    for bad in ({"type": "web_app", "text": "x"}, {"type": "nope"}, {"type": "web_app"}):
        assert await error(pair.as_bot, "setChatMenuButton", menu_button=bad) == (
            400,
            "INVALID_PARAMETER",
        )


async def test_telegram_dialect_names_and_shapes(pair: Scene) -> None:
    base = f"/bot{pair.bot.token.removeprefix('bot_')}"
    button = {"type": "web_app", "text": "Shop", "web_app": {"url": APP}}
    response = await pair.http.post(
        f"{base}/setChatMenuButton",
        data={"chat_id": pair.bot_chat, "menu_button": json.dumps(button)},
    )
    assert response.json() == {"ok": True, "result": True}
    response = await pair.http.post(f"{base}/getChatMenuButton", json={"chat_id": pair.bot_chat})
    assert response.json() == {"ok": True, "result": button}


async def test_the_bridge_script(pair: Scene) -> None:
    response = await pair.http.get("/webapp.js")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/javascript")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    for name in (
        "web_app_ready",
        "web_app_data_send",
        "web_app_setup_main_button",
        "tgWebAppData",
        "main_button_pressed",
        "theme_changed",
    ):
        assert name in response.text


async def test_unknown_bots_and_sources(pair: Scene) -> None:
    with pytest.raises(ApiFailure) as failure:
        await pair.as_user("getWebAppInitData", chat_id=pair.private, source="elsewhere", url=APP)
    assert failure.value.status == 400
    assert await error(
        pair.as_user,
        "getWebAppInitData",
        chat_id=pair.private,
        bot_username="no_such_bot",
        source="menu_button",
        url=APP,
    ) == (404, "BOT_NOT_FOUND")


async def test_a_keyboard_buttons_web_app_sends_data_without_a_query(pair: Scene) -> None:
    keyboard = {
        "keyboard": [["Plain", {"text": "Order", "web_app": {"url": APP}}]],
        "resize_keyboard": True,
    }
    sent = await pair.as_bot("sendMessage", chat_id=pair.bot_chat, text="k", reply_markup=keyboard)
    assert sent["reply_markup"] == {
        "keyboard": [[{"text": "Plain"}, {"text": "Order", "web_app": {"url": APP}}]],
        "resize_keyboard": True,
    }
    opened = await pair.as_user(
        "getWebAppInitData",
        chat_id=pair.private,
        source="keyboard_button",
        message_id=sent["message_id"],
        button_text="Order",
        url=APP,
    )
    fields = _docs_validator()(opened["init_data"], pair.bot.token)
    assert "query_id" not in fields  # Telegram gives keyboard buttons none
    await pair.updates()
    await pair.as_user("sendWebAppData", init_data=opened["init_data"], data="42")
    (update,) = await pair.updates()
    assert update["message"]["web_app_data"] == {"data": "42", "button_text": "Order"}
    # an inline button's source does not find a keyboard's button
    assert await error(
        pair.as_user,
        "getWebAppInitData",
        chat_id=pair.private,
        source="inline_button",
        message_id=sent["message_id"],
        url=APP,
    ) == (400, "BUTTON_URL_INVALID")
    removed = await pair.as_bot(
        "sendMessage", chat_id=pair.bot_chat, text="r", reply_markup={"remove_keyboard": True}
    )
    assert removed["reply_markup"] == {"remove_keyboard": True}
    bad: dict[str, Any]
    for bad in (
        {"keyboard": []},
        {"keyboard": [[{"text": "x", "web_app": {"url": "http://shop.example"}}]]},
        {"keyboard": [[{"no": "text"}]]},
        {"remove_keyboard": False},
        {"keyboard": [["x"]], "resize_keyboard": "yes"},
    ):
        assert await error(
            pair.as_bot, "sendMessage", chat_id=pair.bot_chat, text="x", reply_markup=bad
        ) == (400, "INVALID_PARAMETER")


async def test_a_bot_without_a_key_gets_one_when_its_token_is_rotated(
    pair: Scene, store: Store
) -> None:
    message = await _app_message(pair)
    init_data = await _init_data(pair, message)
    # a bot whose token was issued before mini apps: no key kept
    await store.entities.update_bot(pair.bot.bot_id, {"webapp_key": ""})
    assert await error(
        pair.as_user,
        "getWebAppInitData",
        chat_id=pair.private,
        source="inline_button",
        message_id=message["message_id"],
        url=APP,
    ) == (409, "WEBAPP_KEY_MISSING")
    manage = client_api(pair.http, pair.user)
    manage.prefix = "manage"
    rotated = await manage("rotateToken", bot_id=pair.bot.bot_id)
    fresh = await _init_data(pair, message)
    assert check_webapp_signature(rotated["token"].removeprefix("bot_"), fresh)
    assert not check_webapp_signature(pair.bot.token.removeprefix("bot_"), fresh)
    # init data signed with the old key is refused from then on
    assert await error(pair.as_user, "sendWebAppData", init_data=init_data, data="x") == (
        400,
        "WEBAPP_DATA_INVALID",
    )
    assert (await pair.as_user("sendWebAppData", init_data=fresh, data="x"))["web_app_data"]


async def test_users_read_the_commands_that_apply_to_them(pair: Scene) -> None:
    everyone = [{"command": "help", "description": "Help"}]
    here = [{"command": "order", "description": "Order here"}]
    await pair.as_bot("setMyCommands", commands=everyone)
    assert await pair.as_user("getMyCommands", chat_id=pair.private) == everyone
    scope = {"type": "chat", "chat_id": pair.bot_chat}
    await pair.as_bot("setMyCommands", commands=here, scope=scope)
    assert await pair.as_user("getMyCommands", chat_id=pair.private) == here
    assert await pair.as_user("getMyCommands", chat_id=pair.private, bot_id=pair.bot.bot_id) == here
    assert await error(pair.as_other, "getMyCommands", chat_id=pair.private) == (
        404,
        "CHAT_NOT_FOUND",
    )
