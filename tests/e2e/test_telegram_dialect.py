"""The Telegram dialect over plain HTTP: routes, encodings, integer ids, error envelopes.

Real REST process (the ``stack`` fixture), ``httpx`` as a bare Telegram client.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from aiogram import Bot as AiogramBot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramUnauthorizedError,
)
from telegram import Bot as PtbBot
from telegram.error import BadRequest, Conflict, InvalidToken

from shared.settings import Settings
from tests.api import bot_api, client_api, create_bot, create_user, manage_api
from tests.conftest import Stack, unique, wait_s

pytestmark = pytest.mark.asyncio


def telegram_token(native: str) -> str:
    """The Telegram form of a bot token: the same token without ``bot_``."""
    assert native.startswith("bot_")
    return native.removeprefix("bot_")


def ok(response: httpx.Response) -> Any:
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True, body
    return body["result"]


async def sent_ok(request: Callable[[], Awaitable[httpx.Response]]) -> Any:
    """The result of a send, waiting out flood control as a Telegram client must."""
    while True:
        response = await request()
        if response.status_code != 429:
            return ok(response)
        body = response.json()
        retry_after = body["parameters"]["retry_after"]
        assert type(retry_after) is int and retry_after >= 1
        assert response.headers["Retry-After"] == str(retry_after)
        assert body["description"] == f"Too Many Requests: retry after {retry_after}"
        await asyncio.sleep(retry_after)


def failed(response: httpx.Response, status: int) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == status, body
    assert body["ok"] is False and body["error_code"] == status, body
    assert isinstance(body["description"], str) and body["description"]
    assert isinstance(body, dict)
    return body


async def test_every_encoding_reaches_the_same_methods_with_integer_ids(
    stack: Stack, settings: Settings
) -> None:
    user = await create_user(settings, unique("tga"))
    bot = await create_bot(settings, user, unique("tg") + "_bot")
    token = telegram_token(bot.token)
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=wait_s(30)) as http:
        base = f"/bot{token}"
        me = ok(await http.get(f"{base}/getMe"))
        assert me["id"] == bot.bot_id and me["username"] == bot.username and me["is_bot"]
        # method names are case-insensitive, POST without a body works, so does bot_<id>
        assert ok(await http.post(f"{base}/getme")) == me
        assert ok(await http.get(f"/bot{bot.token}/getMe")) == me
        # the native route is not shadowed: string ids there
        native = await bot_api(http, bot)("getMe")
        assert native["id"] == str(bot.bot_id)

        await client_api(http, user)("startBot", username=bot.username)
        updates = ok(await http.get(f"{base}/getUpdates", params={"timeout": "5"}))
        assert len(updates) == 1
        update = updates[0]
        assert isinstance(update["update_id"], int)
        message = update["message"]
        assert message["text"] == "/start"
        assert isinstance(message["message_id"], int) and isinstance(message["date"], int)
        assert isinstance(message["from"]["id"], int) and isinstance(message["chat"]["id"], int)
        chat_id = message["chat"]["id"]
        keyboard = {"inline_keyboard": [[{"text": "Yes", "callback_data": "yes"}]]}

        # urlencoded form, nested objects as JSON strings
        sent = await sent_ok(
            lambda: http.post(
                f"{base}/sendMessage",
                data={
                    "chat_id": str(chat_id),
                    "text": "form",
                    "reply_markup": json.dumps(keyboard),
                },
            )
        )
        assert sent["chat"]["id"] == chat_id and isinstance(sent["message_id"], int)
        assert sent["reply_markup"] == keyboard and sent["from"]["id"] == bot.bot_id

        # multipart form without files, a reply given as reply_parameters
        multipart = await sent_ok(
            lambda: http.post(
                f"{base}/sendMessage",
                files={
                    "chat_id": (None, str(chat_id)),
                    "text": (None, "multipart"),
                    "reply_parameters": (None, json.dumps({"message_id": sent["message_id"]})),
                },
            )
        )
        assert multipart["text"] == "multipart"
        assert multipart["reply_to_message"]["message_id"] == sent["message_id"]

        # JSON body, with the chat id as a string of digits and a number as the text
        as_json = await sent_ok(
            lambda: http.post(f"{base}/sendMessage", json={"chat_id": str(chat_id), "text": 7})
        )
        assert as_json["text"] == "7" and as_json["chat"]["id"] == chat_id

        # query string on GET, and on POST beside a JSON body
        by_query = await sent_ok(
            lambda: http.get(f"{base}/sendMessage", params={"chat_id": chat_id, "text": "query"})
        )
        assert by_query["text"] == "query"
        mixed = await sent_ok(
            lambda: http.post(
                f"{base}/sendMessage", params={"chat_id": str(chat_id)}, json={"text": "mixed"}
            )
        )
        assert mixed["text"] == "mixed" and mixed["chat"]["id"] == chat_id

        ids = [m["message_id"] for m in (sent, multipart, as_json, by_query, mixed)]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)

        # offset = last + 1 confirms; Telegram's other update types are accepted and ignored
        confirm = ok(
            await http.post(
                f"{base}/getUpdates",
                data={
                    "offset": str(update["update_id"] + 1),
                    "timeout": "0",
                    "allowed_updates": json.dumps(["message", "inline_query", "chat_member"]),
                },
            )
        )
        assert confirm == []
        assert ok(await http.post(f"{base}/getUpdates", json={"timeout": 0})) == []


async def test_errors_use_telegram_envelopes_and_texts(stack: Stack, settings: Settings) -> None:
    user = await create_user(settings, unique("tgb"))
    bot = await create_bot(settings, user, unique("tge") + "_bot")
    token = telegram_token(bot.token)
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=wait_s(30)) as http:
        base = f"/bot{token}"
        # a wrong secret, a malformed token: 401 Unauthorized, as Telegram
        bad_secret = token.split(":")[0] + ":" + "x" * 43
        for wrong in (bad_secret, "123", "abc:def", "%20"):
            body = failed(await http.post(f"/bot{wrong}/getMe"), 401)
            assert body["description"].startswith("Unauthorized")
        body = failed(await http.get(f"/file/bot{bad_secret}/photos/x.png"), 401)

        body = failed(await http.post(f"{base}/noSuchMethod"), 404)
        assert body["description"].startswith("Not Found")

        async def bad_request(**request: Any) -> str:
            """The description of a sendMessage that fails with 400."""
            body = failed(await http.post(f"{base}/sendMessage", **request), 400)
            description = body["description"]
            assert isinstance(description, str)
            return description

        description = await bad_request(data={"chat_id": "1"})
        assert description.startswith("Bad Request: ") and "'text'" in description

        description = await bad_request(data={"chat_id": "@news", "text": "x"})
        assert description.startswith("Bad Request: chat not found")

        description = await bad_request(json={"chat_id": 12345, "text": "x"})
        assert description == "Bad Request: chat not found"

        description = await bad_request(
            content=b'{"chat_id": 1, "text": ', headers={"Content-Type": "application/json"}
        )
        assert description.startswith("Bad Request: ")

        description = await bad_request(
            data={"chat_id": "1", "text": "x", "reply_markup": "{not json"}
        )
        assert "reply_markup" in description

        await bad_request(
            content=b"--b\r\nbroken", headers={"Content-Type": "multipart/form-data; boundary=b"}
        )

        # a user seen in a group but who never started the bot
        stranger = await create_user(settings, unique("tgs"))
        as_stranger = client_api(http, stranger)
        group = await as_stranger("createGroup", title="Telegram dialect")
        await as_stranger("addChatMember", chat_id=group["id"], username=bot.username)
        await as_stranger("sendMessage", chat_id=group["id"], text=f"hi @{bot.username}")
        updates = ok(await http.get(f"{base}/getUpdates", params={"timeout": "5"}))
        mention = next(u["message"] for u in updates if "message" in u)
        assert isinstance(mention["chat"]["id"], int) and mention["chat"]["type"] == "group"
        body = failed(
            await http.post(
                f"{base}/sendMessage", json={"chat_id": mention["from"]["id"], "text": "hi"}
            ),
            403,
        )
        assert body["description"].startswith("Forbidden: ")


def ptb_bot(rest_url: str, token: str) -> PtbBot:
    return PtbBot(token, base_url=f"{rest_url}/bot", base_file_url=f"{rest_url}/file/bot")


def aiogram(rest_url: str, token: str) -> AiogramBot:
    return AiogramBot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(rest_url)))


async def test_the_libraries_raise_their_usual_exceptions(stack: Stack, settings: Settings) -> None:
    user = await create_user(settings, unique("tgl"))
    bot = await create_bot(settings, user, unique("tgl") + "_bot")
    token = telegram_token(bot.token)
    wrong = token.split(":")[0] + ":" + "w" * 43

    async with ptb_bot(stack.rest_url, token) as ptb, ptb_bot(stack.rest_url, token) as rival:
        assert ptb.id == bot.bot_id and ptb.username == bot.username
        with pytest.raises(BadRequest, match="Chat not found"):
            await ptb.send_message(chat_id=424242, text="anyone?")

        # a second poller of the same bot ends the waiting one with 409 Conflict
        waiting = asyncio.create_task(ptb.get_updates(timeout=int(wait_s(30))))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s(30)
        while not waiting.done() and loop.time() < deadline:
            with contextlib.suppress(Conflict):  # it may come second and be ended itself
                await rival.get_updates(timeout=0)
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await waiting

        # polling while a webhook is set is a Conflict too
        assert await ptb.set_webhook("http://127.0.0.1:9/hook", secret_token="s" * 16)
        with pytest.raises(Conflict, match="webhook is active"):
            await ptb.get_updates(timeout=0)
        info = await ptb.get_webhook_info()
        assert info.url == "http://127.0.0.1:9/hook"
        assert info.api_kwargs.get("id_format") == "number"

    aio = aiogram(stack.rest_url, token)
    try:
        me = await aio.get_me()
        assert me.id == bot.bot_id and me.username == bot.username
        with pytest.raises(TelegramBadRequest, match="chat not found"):
            await aio.send_message(chat_id=424242, text="anyone?")
        with pytest.raises(TelegramConflictError, match="webhook is active"):
            await aio.get_updates(timeout=0)
        assert await aio.delete_webhook()
        assert await aio.get_updates(timeout=0) == []
    finally:
        await aio.session.close()

    # a wrong token, then a revoked bot: 401, which both libraries treat as a dead token
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=wait_s(30)) as http:
        for attempt in (wrong, "revoked"):
            if attempt == "revoked":
                await manage_api(http, user)("revokeBot", bot_id=bot.bot_id)
                attempt = token
            with pytest.raises(InvalidToken):
                async with ptb_bot(stack.rest_url, attempt) as dead:
                    await dead.get_me()
            aio = aiogram(stack.rest_url, attempt)
            try:
                with pytest.raises(TelegramUnauthorizedError):
                    await aio.get_me()
            finally:
                await aio.session.close()


async def test_bad_input_gets_an_envelope_never_a_crash(stack: Stack, settings: Settings) -> None:
    user = await create_user(settings, unique("tgx"))
    bot = await create_bot(settings, user, unique("tgx") + "_bot")
    base = f"/bot{telegram_token(bot.token)}"
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/bot%00/getMe", {}),
        ("GET", "/bot\u00e9\u00e9:\u00e9/getMe", {}),
        ("GET", f"/bot{'9' * 300}:{'x' * 300}/getMe", {}),
        ("POST", f"{base}/{'m' * 500}", {}),
        ("POST", f"{base}/get%20Me", {}),
        ("GET", f"/file/bot{telegram_token(bot.token)}/../../etc/passwd", {}),
        ("GET", f"/file/bot{telegram_token(bot.token)}/photos/nothing.png", {}),
        ("GET", f"/file/bot{telegram_token(bot.token)}/", {}),
        ("POST", f"{base}/sendMessage", {"json": [1, 2, 3]}),
        ("POST", f"{base}/sendMessage", {"json": {"chat_id": True, "text": "x"}}),
        ("POST", f"{base}/sendMessage", {"json": {"chat_id": 1e300, "text": "x"}}),
        ("POST", f"{base}/sendMessage", {"data": {"chat_id": "1e5", "text": "x"}}),
        ("POST", f"{base}/sendMessage", {"data": {"chat_id": "9" * 40, "text": "x"}}),
        ("POST", f"{base}/sendMessage", {"json": {"chat_id": 1, "text": {"a": 1}}}),
        (
            "POST",
            f"{base}/sendMessage",
            {"data": {"chat_id": "1", "text": "x", "reply_markup": "[]"}},
        ),
        (
            "POST",
            f"{base}/sendMessage",
            {"data": {"chat_id": "1", "text": "x", "reply_markup": "[" * 5000 + "]" * 5000}},
        ),
        ("POST", f"{base}/sendPhoto", {"data": {"chat_id": "1", "photo": "attach://nowhere"}}),
        (
            "POST",
            f"{base}/sendPhoto",
            {"files": {"photo": ("x.png", b"not an image", "image/png")}},
        ),
        ("POST", f"{base}/getUpdates", {"data": {"allowed_updates": "null"}}),
        ("POST", f"{base}/getUpdates", {"data": {"allowed_updates": '[{"a": 1}]'}}),
        ("POST", f"{base}/getUpdates", {"data": {"offset": "-" + "9" * 30}}),
        ("POST", f"{base}/getUpdates", {"json": {"timeout": "soon"}}),
        ("POST", f"{base}/setWebhook", {"data": {"url": "http://169.254.169.254/latest"}}),
        ("POST", f"{base}/getMe", {"content": b"\xff\xfe", "headers": {"Content-Type": "x/y"}}),
    ]
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=wait_s(30)) as http:
        for verb, path, options in requests:
            response = await http.request(verb, path, **options)
            body = response.json()
            where = f"{verb} {path[:80]} {str(options)[:80]}"
            assert 400 <= response.status_code < 500, (where, body)
            assert body["ok"] is False and body["error_code"] == response.status_code, where
            assert isinstance(body["description"], str) and body["description"], where
        # HEAD is GET without a body: it reads, it never sends
        head = await http.head(f"{base}/sendMessage", params={"chat_id": "1", "text": "x"})
        assert head.status_code == 405
        assert (await http.head(f"{base}/getMe")).status_code == 200
        # still alive and well
        assert ok(await http.get(f"{base}/getMe"))["id"] == bot.bot_id


async def test_a_get_with_a_body_is_read_like_a_post(stack: Stack, settings: Settings) -> None:
    """Some libraries send every method as GET with a form or JSON body: the body is
    read (docs/telegram.md, Requests), so getUpdates' offset confirms and getChat
    finds its chat_id."""
    user = await create_user(settings, unique("tgg"))
    bot = await create_bot(settings, user, unique("tgg") + "_bot")
    base = f"/bot{telegram_token(bot.token)}"
    form = {"content-type": "application/x-www-form-urlencoded"}
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=wait_s(30)) as http:
        await client_api(http, user)("startBot", username=bot.username)
        first = ok(
            await http.request("GET", f"{base}/getUpdates", content="timeout=5", headers=form)
        )
        assert [u["message"]["text"] for u in first] == ["/start"]
        chat_id = first[0]["message"]["chat"]["id"]
        offset = f"offset={first[0]['update_id'] + 1}&timeout=0"
        # the offset in the body confirms the /start: it is not handed out again
        again = ok(await http.request("GET", f"{base}/getUpdates", content=offset, headers=form))
        assert again == []
        chat = ok(
            await http.request(
                "GET",
                f"{base}/getChat",
                content=json.dumps({"chat_id": chat_id}),
                headers={"content-type": "application/json"},
            )
        )
        assert chat["id"] == chat_id
        # a GET without a body still reads its query string
        assert (
            ok(await http.get(f"{base}/getChat", params={"chat_id": str(chat_id)}))["id"] == chat_id
        )
