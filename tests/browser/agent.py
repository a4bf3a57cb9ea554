"""The browser tests' bot: an agent holding the gateway socket with the repo's
own client (:mod:`gateway.client`), run as a process of its own.

``python -m tests.browser.agent <gateway url> <mini app url> <record file> <REST url>``
with ``BOTGW_TOKEN`` set. It sets its commands and menu button, and answers:

==============  ===========================================================
/start          a greeting with an inline keyboard: two callback buttons, a
                web_app button (the mini app) and a URL button
poll, /poll     a public poll
think           "typing", a pause, then "Done thinking."
files           a photo and a document (uploaded through REST), the document pinned
keyboard        a reply keyboard: a text button and a web_app button
same origin     a web_app button for a page of the REST server itself
any other text  "typing", then the text back with "echo" in bold
a button        answerCallbackQuery "You pressed it!" (an alert for "alert")
web_app_data    written to the record file (a JSON line), and acknowledged
==============  ===========================================================

Every update it handles is written to the record file as well, so a test can
wait for what the bot has seen.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import httpx

from gateway.client import GatewayClient, GatewayError

GREETING = "Hello! I am the playground's test bot."
DOCUMENT = b"notes of the playground's test bot\n" * 20


def picture(width: int = 240, height: int = 120) -> bytes:
    """A PNG of two colour bands, made here so the test needs no image library."""
    rows = b"".join(
        b"\x00" + (b"\x25\x63\xeb" if y < height // 2 else b"\xf5\x9e\x0b") * width
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


async def _send_files(rest_url: str, chat_id: str) -> None:
    """A photo and a document through REST (uploads are not on the socket); the
    document is pinned."""
    headers = {"Authorization": f"Bot {os.environ['BOTGW_TOKEN']}"}
    async with httpx.AsyncClient(base_url=rest_url, headers=headers, timeout=30) as http:
        photo = await http.post(
            "/bot/sendPhoto",
            data={"chat_id": chat_id, "caption": "A picture"},
            files={"photo": ("bands.png", picture(), "image/png")},
        )
        photo.raise_for_status()
        document = await http.post(
            "/bot/sendDocument",
            data={"chat_id": chat_id},
            files={"document": ("notes.txt", DOCUMENT, "text/plain")},
        )
        document.raise_for_status()
        message_id = document.json()["result"]["message_id"]
        pinned = await http.post(
            "/bot/pinChatMessage", json={"chat_id": chat_id, "message_id": message_id}
        )
        pinned.raise_for_status()


def _keyboard(app_url: str) -> dict[str, Any]:
    return {
        "inline_keyboard": [
            [
                {"text": "Press me", "callback_data": "press"},
                {"text": "Alert me", "callback_data": "alert"},
            ],
            [
                {"text": "Open app", "web_app": {"url": app_url}},
                {"text": "Docs", "url": "https://example.org/docs"},
            ],
        ]
    }


class _Bot:
    """The agent's Bot API calls over the socket, retried after a 429 as a
    well-behaved bot does (the per-chat limits are real ones)."""

    def __init__(self, client: GatewayClient) -> None:
        self.client = client

    async def request(self, method: str, **params: Any) -> Any:
        for attempt in range(10):
            try:
                return await self.client.request(method, **params)
            except GatewayError as exc:
                if exc.code != 429 or attempt == 9:
                    raise
                await asyncio.sleep(1.0)
        raise AssertionError("unreachable")


async def _setup(client: _Bot, app_url: str) -> None:
    commands = [
        {"command": "start", "description": "Say hello"},
        {"command": "poll", "description": "Ask a question"},
    ]
    await client.request("setMyCommands", commands=commands)
    menu = {"type": "web_app", "text": "App", "web_app": {"url": app_url}}
    try:
        await client.request("setChatMenuButton", menu_button=menu)
    except GatewayError as exc:  # no menu button: the keyboard's button still opens the app
        print(f"agent: no chat menu button: {exc}", file=sys.stderr, flush=True)


async def _handle(client: _Bot, update: dict[str, Any], app_url: str, rest_url: str) -> None:
    query = update.get("callback_query")
    if query is not None:
        alert = query.get("data") == "alert"
        await client.request(
            "answerCallbackQuery",
            callback_query_id=query["id"],
            text="An alert from the bot" if alert else "You pressed it!",
            show_alert=alert,
        )
        return
    message = update.get("message") or {}
    chat_id = message.get("chat", {}).get("id")
    if chat_id is None:
        return
    if "web_app_data" in message:
        data = message["web_app_data"]["data"]
        await client.request("sendMessage", chat_id=chat_id, text=f"The app sent: {data}")
        return
    text = message.get("text")
    if text is None:
        return
    if text.startswith("/start"):
        await client.request(
            "sendMessage", chat_id=chat_id, text=GREETING, reply_markup=_keyboard(app_url)
        )
    elif text in ("poll", "/poll"):
        await client.request(
            "sendPoll",
            chat_id=chat_id,
            question="Tea or coffee?",
            options=["Tea", "Coffee"],
            is_anonymous=False,
        )
    elif text == "keyboard":
        keyboard = {
            "keyboard": [[{"text": "Tea please"}, {"text": "Order", "web_app": {"url": app_url}}]],
            "resize_keyboard": True,
            "input_field_placeholder": "Tea, or open the app",
        }
        await client.request(
            "sendMessage", chat_id=chat_id, text="What would you like?", reply_markup=keyboard
        )
    elif text == "same origin":
        # a "mini app" of the playground's own origin (any page of the REST server)
        button = {"text": "Own origin", "web_app": {"url": f"{rest_url}/healthz"}}
        await client.request(
            "sendMessage",
            chat_id=chat_id,
            text="An app on the page's own origin",
            reply_markup={"inline_keyboard": [[button]]},
        )
    elif text == "files":
        await _send_files(rest_url, chat_id)
    elif text == "think":
        await client.request("sendChatAction", chat_id=chat_id, action="typing")
        # long enough for a test to see the indicator; it waits for it, not for this
        await asyncio.sleep(2 * float(os.environ.get("BOTGW_TEST_TIMEOUT_SCALE", "1")))
        await client.request("sendMessage", chat_id=chat_id, text="Done thinking.")
    elif not message.get("from", {}).get("is_bot"):
        await client.request("sendChatAction", chat_id=chat_id, action="typing")
        await client.request(
            "sendMessage",
            chat_id=chat_id,
            text=f"echo: {text}",
            entities=[{"type": "bold", "offset": 0, "length": 4}],
        )


async def main(url: str, app_url: str, record: Path, rest_url: str) -> None:
    async with GatewayClient(url, os.environ["BOTGW_TOKEN"]) as gateway:
        client = _Bot(gateway)
        await _setup(client, app_url)
        with record.open("a") as out:
            out.write(json.dumps({"ready": True}) + "\n")
            out.flush()
            async for update in gateway:
                try:
                    await _handle(client, update, app_url, rest_url)
                except (
                    GatewayError,
                    httpx.HTTPError,
                ) as exc:  # an answer refused: the test sees it in the record
                    out.write(json.dumps({"error": str(exc)}) + "\n")
                out.write(json.dumps(update) + "\n")
                out.flush()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]))
