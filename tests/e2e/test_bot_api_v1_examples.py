"""The generic Bot API document (``/v1/bot-api``), example by example, with curl.

One bot walks the document in its order against a real REST process: every
request is the document's own (:mod:`tests.bot_api_v1_doc`), sent with curl
and the bot's token raw in ``Authorization:``, and every answer the document
shows is compared with ours, ids and times aside.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.ids import SEQ_PER_MS
from shared.settings import Settings
from tests.api import Caller, client_api, create_user, manage_api
from tests.bot_api_v1_doc import EXAMPLES, Curl, same_answer
from tests.conftest import Stack, unique

pytestmark = pytest.mark.asyncio

# the document's made-up ids, replaced by real ones where a request names them
DOC_CHAT = "01hc7aa947s4fdwywwjqr14wh7"
DOC_USER = "01hc71yz5pny5bmf0b4055zbjw"

# a 1x1 PNG: the document uploads "yourfile.png" as image/png
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def ok(answer: tuple[int, Any]) -> Any:
    status, body = answer
    assert status == 200, body
    return body


async def test_every_example_of_the_document_gets_its_answer(
    stack: Stack, settings: Settings, tmp_path: Path
) -> None:
    user = await create_user(settings, unique("dv"))
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        created = await manage_api(http, user)(
            "createBot",
            username=unique("dv") + "_bot",
            name="Test bot",
            description="Just testing bot.",
        )
        bot_id, key = created["id"], created["token"]
        curl = Curl(stack.rest_url, key)
        # the bot of the document's first answer has an avatar
        setup = await http.put(
            "/v1/bot-api/bot",
            json={"avatar": "https://google.com/image.png"},
            headers={"Authorization": key},
        )
        assert setup.status_code == 200, setup.text

        # Get bot / Edit bot
        got = ok(curl.example(EXAMPLES["get bot"]))
        assert same_answer(EXAMPLES["get bot"].answer_json, got) and got["id"] == bot_id
        ok(curl.example(EXAMPLES["edit bot"]))
        assert ok(curl.example(EXAMPLES["get bot"])) == {
            "id": bot_id,
            "name": "New bot name",
            "description": "New description.",
            "avatar": "https://google.com/new-avatar.jpeg",
        }

        # Add bot commands / Get bot commands / Delete bot command
        ok(curl.example(EXAMPLES["add commands"]))
        commands = ok(curl.example(EXAMPLES["get commands"]))
        assert same_answer(EXAMPLES["get commands"].answer_json, commands)
        assert ok(curl.example(EXAMPLES["get commands"])) == commands  # ids are stable
        assert len({c["id"] for c in commands}) == 2
        ok(curl.example(EXAMPLES["delete command"], **{":id": commands[0]["id"]}))
        assert ok(curl.example(EXAMPLES["get commands"])) == commands[1:]

        # Add bot webhook / Get bot webhook / Delete bot webhook
        ok(curl.example(EXAMPLES["add webhook"]))
        webhook = ok(curl.example(EXAMPLES["get webhook"]))
        assert same_answer(EXAMPLES["get webhook"].answer_json, webhook)
        assert webhook["botId"] == bot_id
        ok(curl.example(EXAMPLES["delete webhook"]))
        status, body = curl.example(EXAMPLES["get webhook"])
        assert (status, body["statusCode"], body["code"]) == (404, 404, "WEBHOOK_NOT_FOUND")

        # a user starts the bot, and takes back the /start it sent, so the chat
        # holds what the document's answers show and nothing else
        as_user = client_api(http, user)
        private = (await as_user("startBot", username=created["username"]))["id"]
        (start,) = await as_user("getChatHistory", chat_id=private)
        await as_user("deleteMessage", chat_id=private, message_id=start["message_id"])
        as_bot = Caller(http, "bot", f"Bot {key}")
        (update,) = await as_bot("getUpdates", timeout=0)
        user_id = update["message"]["from"]["id"]  # how the bot knows the user

        # Get chats
        chats = ok(curl.example(EXAMPLES["get chats"], **{DOC_USER: user_id}))
        assert same_answer(EXAMPLES["get chats"].answer_json, chats)
        chat_id = chats[0]["id"]
        assert chats[0]["userId"] == user_id and chats[0]["botId"] == bot_id

        # Send message
        sent = ok(curl.example(EXAMPLES["send message"], **{DOC_CHAT: chat_id}))
        assert same_answer(EXAMPLES["send message"].answer_json, sent)
        assert (sent["chatId"], sent["senderId"]) == (chat_id, bot_id)
        assert sent["timestamp"] > 10**12  # milliseconds, as the document's
        assert int(sent["id"].rpartition("_")[2]) // SEQ_PER_MS == sent["timestamp"]

        # Get messages
        page = ok(curl.example(EXAMPLES["get messages"], **{":id": chat_id}))
        assert same_answer(EXAMPLES["get messages"].answer_json, page)
        assert page["chatId"] == chat_id and page["messages"] == [sent]

        # Get message: the document's answer shows "Hello!" for the message it
        # sent as "Hello World!"; the rest of the answer is the document's
        message = ok(curl.example(EXAMPLES["get message"], **{":id": sent["id"]}))
        expected = {**EXAMPLES["get message"].answer_json, "body": "Hello World!"}
        assert same_answer(expected, message) and message == sent

        # Upload files, then attach one; its path after the host downloads it
        file = tmp_path / "upload.bin"
        file.write_bytes(PNG)
        uploaded = ok(curl.upload(file, "yourfile.png", "image/png"))
        assert same_answer(EXAMPLES["upload files"].answer_json, uploaded)
        assert uploaded[0]["size"] == len(PNG) and uploaded[0]["path"].endswith(".png")
        download = await http.get("/" + uploaded[0]["path"], headers={"Authorization": key})
        assert download.status_code == 200 and download.content == PNG
        attach = EXAMPLES["send message"].body
        assert attach is not None
        attach = attach.replace('"Hello World!"', '"Radar"').replace(
            "[]", f'["{uploaded[0]["id"]}"]'
        )
        with_file = ok(
            curl.run(
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                attach.replace(DOC_CHAT, chat_id),
                stack.rest_url + "/v1/bot-api/chat/message",
            )
        )
        assert with_file["body"] == "Radar" and with_file["attachments"] == uploaded
        # the user got it as a document
        history = await as_user("getChatHistory", chat_id=private)
        assert history[-1]["document"]["file_name"] == "yourfile.png"
