"""schemathesis over ``/openapi.json``: every operation, valid tokens, no 5xx, no lies.

The operations come from the document the app generates (checked to be the one
the server serves). Runs against a REST process of its own (long polls capped at
0 s so generated ``getUpdates`` calls answer at once) with a user and a bot whose
tokens go on every request: the bot's on ``/bot/...`` (in the path for the Telegram
dialect), the user's on ``/client`` and ``/manage``. Both positive and negative
cases are generated, with a bounded number of examples per operation.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from rest.app import create_app
from rest.methods import BOT_METHODS, CLIENT_METHODS, MANAGE_METHODS
from shared.settings import Settings
from tests.api import client_api, create_bot, create_user
from tests.conftest import rest_url_fixture, unique

EXAMPLES_PER_OPERATION = 10


@dataclass
class Target:
    url: str
    bot_token: str = ""
    user_token: str = ""

    def authorization(self, path: str) -> str | None:
        if path.startswith("/bot/"):
            return f"Bot {self.bot_token}"
        if path.startswith(("/client/", "/manage/")):
            return f"Bearer {self.user_token}"
        return None


fuzz_rest = rest_url_fixture("rest-fuzz", BOTGW_LONG_POLL_MAX_TIMEOUT="0")


@pytest_asyncio.fixture(scope="module")
async def target(fuzz_rest: str, settings: Settings) -> AsyncIterator[Target]:
    user = await create_user(settings, unique("fz"))
    bot = await create_bot(settings, user, unique("fz") + "_bot")
    async with httpx.AsyncClient(base_url=fuzz_rest, timeout=30) as http:
        await client_api(http, user)("startBot", username=bot.username)
    yield Target(fuzz_rest, bot_token=bot.token, user_token=user.token)


# The document the REST app serves, built from the same definitions in this process
# (no connection needed), so every operation becomes a test of its own.
DOCUMENT = create_app(Settings.from_env({})).state.openapi
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_served_document_is_the_one_fuzzed(fuzz_rest: str) -> None:
    served = httpx.get(f"{fuzz_rest}/openapi.json", timeout=10).json()
    assert served == DOCUMENT
    operations = [op for item in served["paths"].values() for op in item]
    assert len(operations) > 60


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation(case: schemathesis.Case[Any], target: Target) -> None:
    if case.path_parameters and "token" in case.path_parameters:
        # the Telegram dialect: the token without its prefix, in the path
        case.path_parameters["token"] = target.bot_token.removeprefix("bot_")
    headers = {}
    authorization = target.authorization(case.path)
    if authorization is not None:
        headers["Authorization"] = authorization
    case.call_and_validate(
        base_url=target.url,
        headers=headers,
        checks=[not_a_server_error, response_schema_conformance],
    )


async def test_successful_answers_match_the_document(fuzz_rest: str, settings: Settings) -> None:
    """Generated requests mostly fail validation; this walks a real conversation and
    checks every successful answer of the three APIs against the document too."""
    owner = await create_user(settings, unique("doc"))
    other = await create_user(settings, unique("doc"))
    checked: set[str] = set()
    async with httpx.AsyncClient(base_url=fuzz_rest, timeout=30) as http:

        async def call(path: str, token: str, **params: Any) -> Any:
            scheme = "Bot" if path.startswith("/bot/") else "Bearer"
            response = await http.post(
                path, json=params, headers={"Authorization": f"{scheme} {token}"}
            )
            assert response.status_code == 200, response.text
            schema[path]["POST"].validate_response(response)
            checked.add(path)
            return response.json()["result"]

        def bot(method: str, **params: Any) -> Any:
            return call(f"/bot/{method}", token, **params)

        def user(method: str, **params: Any) -> Any:
            return call(f"/client/{method}", owner.token, **params)

        def manage(method: str, **params: Any) -> Any:
            return call(f"/manage/{method}", owner.token, **params)

        created = await manage("createBot", username=unique("doc") + "_bot", name="Doc Bot")
        await manage("listBots")
        await manage("getBot", bot_id=created["id"])
        await manage("editBot", bot_id=created["id"], description="documented")
        token = (await manage("rotateToken", bot_id=created["id"]))["token"]
        await user("getMe")
        private = (await user("startBot", username=created["username"]))["id"]
        start = (await bot("getUpdates"))[0]["message"]
        chat = start["chat"]["id"]
        keyboard = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
        sent = await bot("sendMessage", chat_id=chat, text="*hi*", parse_mode="MarkdownV2")
        asked = await user(
            "sendMessage", chat_id=private, text="/help", reply_to_message_id=sent["message_id"]
        )
        await user(
            "editMessageText", chat_id=private, message_id=asked["message_id"], text="/help me"
        )
        await bot(
            "editMessageText",
            chat_id=chat,
            message_id=sent["message_id"],
            text="hi",
            reply_markup=keyboard,
        )
        await bot(
            "editMessageReplyMarkup",
            chat_id=chat,
            message_id=sent["message_id"],
            reply_markup={"inline_keyboard": [[{"text": "Again", "callback_data": "go"}]]},
        )
        query = await user(
            "pressButton", chat_id=private, message_id=sent["message_id"], callback_data="go"
        )
        await bot("answerCallbackQuery", callback_query_id=query["id"], text="ok")
        await user("getCallbackAnswer", callback_query_id=query["id"])
        await user(
            "setMessageReaction", chat_id=private, message_id=sent["message_id"], reaction=["👍"]
        )
        app = "https://app.example/"
        markup = {"inline_keyboard": [[{"text": "App", "web_app": {"url": app}}]]}
        shop = await bot("sendMessage", chat_id=chat, text="shop", reply_markup=markup)
        await bot("setChatMenuButton", chat_id=chat, menu_button={"type": "commands"})
        await bot("getChatMenuButton", chat_id=chat)
        await user("getChatMenuButton", chat_id=private)
        await user("getMyCommands", chat_id=private)
        opened = await user(
            "getWebAppInitData",
            chat_id=private,
            source="inline_button",
            message_id=shop["message_id"],
            url=app,
        )
        await user("sendWebAppData", init_data=opened["init_data"], data="d")
        await bot(
            "answerWebAppQuery",
            web_app_query_id=dict(parse_qsl(opened["init_data"]))["query_id"],
            result={
                "type": "article",
                "id": "1",
                "title": "t",
                "input_message_content": {"message_text": "done"},
            },
        )
        group = (await user("createGroup", title="Docs"))["id"]
        await user("addChatMember", chat_id=group, username=other.username)
        await user("addChatMember", chat_id=group, username=created["username"])
        poll = await bot(
            "sendPoll", chat_id=group, question="Q?", options=["a", "b"], is_anonymous=False
        )
        await call(
            "/client/answerPoll",
            other.token,
            chat_id=group,
            message_id=poll["message_id"],
            option_ids=[1],
        )
        await bot("stopPoll", chat_id=group, message_id=poll["message_id"])
        await bot("getUpdates", consumer="everything", limit=100)
        await bot("forwardMessage", chat_id=group, from_chat_id=chat, message_id=sent["message_id"])
        await bot("copyMessage", chat_id=group, from_chat_id=chat, message_id=sent["message_id"])
        await bot("pinChatMessage", chat_id=group, message_id=poll["message_id"])
        await bot("getChat", chat_id=group)
        await bot("getChat", chat_id=chat)
        await bot("unpinChatMessage", chat_id=group)
        await bot(
            "setMessageReaction",
            chat_id=group,
            message_id=poll["message_id"],
            reaction=[{"type": "emoji", "emoji": "👀"}],
        )
        await bot("sendChatAction", chat_id=group, action="typing")
        await bot("getChatMemberCount", chat_id=group)
        await bot("getChatMember", chat_id=group, user_id=created["id"])
        await bot("setMyCommands", commands=[{"command": "help", "description": "Help"}])
        await bot("getMyCommands")
        await bot("deleteMyCommands")
        await bot("setMyName", name="Doc Bot 2")
        await bot("getMyName")
        await bot("setMyDescription", description="d")
        await bot("getMyDescription")
        await bot("getMe")
        await bot("getChatHistory", chat_id=chat)
        await user("getChatHistory", chat_id=group)
        await user("getChats")
        await user("getChatMembers", chat_id=group)
        await bot("deleteMessage", chat_id=group, message_id=poll["message_id"])
        await user("deleteMessage", chat_id=private, message_id=asked["message_id"])
        await user("removeChatMember", chat_id=group, username=other.username)
        await bot("leaveChat", chat_id=group)
        await manage("revokeBot", bot_id=created["id"])
    expected = {
        f"/{api}/{name}"
        for api, methods in (
            ("bot", BOT_METHODS),
            ("client", CLIENT_METHODS),
            ("manage", MANAGE_METHODS),
        )
        for name in methods
    }
    skipped = {
        "/bot/sendPhoto",
        "/bot/sendDocument",
        "/bot/getFile",
        "/bot/editMessageCaption",
        "/client/getFile",  # test_api_media, test_visibility
        "/bot/setWebhook",
        "/bot/deleteWebhook",
        "/bot/getWebhookInfo",  # webhook tests
    }
    assert expected - skipped - checked == set()
