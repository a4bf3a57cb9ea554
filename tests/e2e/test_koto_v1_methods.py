"""Every method example of the Koto Bot API v1 document, run with curl as its users
would, in the document's order of a bot's life: register, look at it, give it
commands, talk with it (getUpdates, send, a synchronous reply, a button), a
webhook that turns polling off, revoke it. Each answer is compared with the one
the document shows (ids, tokens and times aside).

The bot answering ``/help`` is a Koto bot as the document describes one: a loop
on ``GET /v1/bot/getUpdates`` that answers with ``POST /v1/bot/send``.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import subprocess
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api import create_user
from tests.conftest import wait_s
from tests.e2e.koto_examples import (
    EXAMPLES,
    CurlAnswer,
    KotoServer,
    Substitutions,
    assert_like,
    curl_command,
    document_json,
    koto_server,
    run_curl,
)

pytestmark = pytest.mark.asyncio

HELP_TEXT = "Available commands:\n/start — Begin\n/help — Show help"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KotoServer]:
    with koto_server(tmp_path_factory.mktemp("koto-methods")) as running_server:
        yield running_server


async def example(name: str, subs: Substitutions, status: int = 200) -> CurlAnswer:
    """Run the document's example ``name`` with curl; check its answer is the
    document's (when ``status`` is 200)."""
    answer = await run_curl(curl_command(EXAMPLES[name], subs))
    assert answer.status == status, (name, answer)
    if status == 200:
        assert_like(document_json(EXAMPLES[name].response), answer.body, name)
    return answer


class HelpBot:
    """A Koto bot: long-polls getUpdates, answers /help with the document's reply."""

    def __init__(self, base: str, token: str, offset: int) -> None:
        self.base = base
        self.token = token
        self.offset = offset
        self.seen: list[dict[str, Any]] = []
        self.changed = asyncio.Event()

    async def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.base, timeout=wait_s(60)) as http:
            while True:
                polled = await http.get(
                    "/v1/bot/getUpdates",
                    params={"offset": self.offset, "timeout": 20},
                    headers=headers,
                )
                assert polled.status_code == 200, polled.text
                for update in polled.json()["updates"]:
                    self.offset = int(update["updateId"]) + 1
                    self.seen.append(update)
                    self.changed.set()
                    if update["content"] == "/help":
                        sent = await http.post(
                            "/v1/bot/send",
                            json={
                                "botToken": self.token,
                                "recipientFingerprint": update["senderFingerprint"],
                                "content": HELP_TEXT,
                                "inlineButtons": [
                                    {"text": "Getting Started", "callbackData": "help_start"}
                                ],
                            },
                        )
                        assert sent.status_code == 200, sent.text

    async def wait_for(self, kind: int) -> dict[str, Any]:
        async with asyncio.timeout(wait_s(30)):
            while True:
                for update in self.seen:
                    if update["type"] == kind:
                        return update
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def running_bot(bot: HelpBot) -> AsyncIterator[HelpBot]:
    task = asyncio.create_task(bot.run())
    try:
        yield bot
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def screenshot(size: int) -> bytes:
    """A PNG image (its header: 2x2 pixels) padded to ``size`` bytes."""
    header = struct.pack(">IIBBBBB", 2, 2, 8, 6, 0, 0, 0)
    ihdr = b"IHDR" + header
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr
    head += struct.pack(">I", zlib.crc32(ihdr))
    return head + b"\0" * (size - len(head))


async def media_examples(subs: Substitutions, tmp: Path) -> None:
    """sendMedia, the upload with curl, confirmMedia, the download with curl."""
    asked = await example("sendMedia", subs)
    upload = asked.body
    assert upload["uploadMethod"] == "PUT"
    image = screenshot(1048576)
    (tmp / "shot.png").write_bytes(image)
    put = await run_process(
        "curl",
        "-sS",
        "-f",
        "-X",
        "PUT",
        "--data-binary",
        f"@{tmp / 'shot.png'}",
        "-H",
        "Content-Type: image/png",
        upload["uploadUrl"],
    )
    assert put.returncode == 0, put
    subs.values["med_abc123"] = upload["mediaId"]
    confirmed = await example("confirmMedia", subs)
    fetched = await run_process(
        "curl", "-sS", "-f", "-o", str(tmp / "back.png"), confirmed.body["downloadUrl"]
    )
    assert fetched.returncode == 0, fetched
    assert (tmp / "back.png").read_bytes() == image
    # confirming again sends nothing new: the same message
    again = await run_curl(curl_command(EXAMPLES["confirmMedia"], subs))
    assert again.body["messageId"] == confirmed.body["messageId"]


async def run_process(*args: str) -> subprocess.CompletedProcess[bytes]:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), wait_s(60))
    assert process.returncode is not None
    return subprocess.CompletedProcess(list(args), process.returncode, out, err)


async def test_every_method_example_gets_the_documents_answer(
    server: KotoServer, tmp_path: Path
) -> None:
    user = await create_user(server.settings, "koto_owner")
    subs = Substitutions(base=server.url, user_token=user.token)

    # Bot Management
    registered = await example("register", subs)
    assert registered.body["bot"]["botId"] == "mybot_bot"
    assert registered.body["bot"]["ownerId"] == str(user.user_id)
    subs.bot_token = registered.body["botToken"]
    listed = await example("list", subs)
    assert listed.body["bots"][0]["description"] == "A helpful assistant bot"
    await example("get", subs)

    # Commands: the example sets three; the menu example shows two of them
    await example("setMyCommands", subs)
    menu = await run_curl(curl_command(EXAMPLES["commands"], subs))
    shown = document_json(EXAMPLES["commands"].response)["commands"]
    assert menu.body["commands"][:2] == shown and len(menu.body["commands"]) == 3
    async with httpx.AsyncClient(base_url=server.url, timeout=wait_s(60)) as http:
        two = await http.post(
            "/v1/bot/setMyCommands", json={"botToken": subs.bot_token, "commands": shown}
        )
        assert two.json() == {"status": "ok"}
        await example("commands", subs)

        # Messaging: the user starts the conversation, the bot reads its /start
        await example("conversation/start", subs)
        bot_auth = {"Authorization": f"Bearer {subs.bot_token}"}
        first = (await http.get("/v1/bot/getUpdates?timeout=30", headers=bot_auth)).json()
        [start] = first["updates"]
        assert start["content"] == "/start" and start["contentType"] == 2 and start["type"] == 0
        subs.fingerprint = start["senderFingerprint"]
        assert start["chatId"] == subs.fingerprint  # a private chat is named by its user
        after_start = int(start["updateId"]) + 1
        confirm = await http.get(
            "/v1/bot/getUpdates", params={"offset": after_start, "timeout": 0}, headers=bot_auth
        )
        assert confirm.json() == {"updates": []}

        # the user writes; the bot is not polling, so the answer has no botReply
        hello = await http.post(
            "/v1/bot/user-message",
            json={"botId": "mybot_bot", "content": "Hello bot!"},
            headers={"Authorization": f"Bearer {user.token}"},
        )
        assert hello.status_code == 200 and "botReply" not in hello.json()
        polled = await example("getUpdates", subs)
        assert polled.body["updates"][0]["senderFingerprint"] == subs.fingerprint
        assert polled.body["updates"][0]["timestamp"] == hello.json()["timestamp"]

        sent = await example("send", subs)
        assert int(sent.body["messageId"]) > int(hello.json()["messageId"])

        # Media: a presigned upload of the announced size and type, then confirmed
        await media_examples(subs, tmp_path)

        # the synchronous reply of a bot that answers /help at once
        bot = HelpBot(server.url, subs.bot_token, int(polled.body["updates"][-1]["updateId"]) + 1)
        async with running_bot(bot):
            replied = await example("user-message", subs)
            reply_id = replied.body["botReply"]["messageId"]

            # Callbacks: the user presses the reply's button; the bot gets CALLBACK
            subs.values["msg_abc123"] = reply_id
            pressed = await example("callback", subs)
            assert pressed.body["callbackId"]
            callback = await bot.wait_for(1)
        assert callback["callbackData"] == "help_start"
        assert callback["messageId"] == reply_id
        assert callback["senderFingerprint"] == subs.fingerprint

        # Webhooks: while one is set getUpdates is off; an empty URL turns it on
        subs.values["https://example.com/webhook/nova"] = "http://127.0.0.1:9/webhook/nova"
        await example("setWebhook", subs)
        refused = await http.get("/v1/bot/getUpdates?timeout=0", headers=bot_auth)
        assert refused.status_code == 409 and "webhook" in refused.json()["error"]
        off = await http.post("/v1/bot/setWebhook", json={"botToken": subs.bot_token, "url": ""})
        assert off.json() == {"status": "ok"}
        again = await http.get("/v1/bot/getUpdates?timeout=0", headers=bot_auth)
        assert again.status_code == 200

    # revoke: irreversible; the token stops working with 412
    await example("revoke", subs)
    gone = await run_curl(curl_command(EXAMPLES["get"], subs))
    assert gone.status == 200 and gone.body["bot"]["active"] is False
    refused_send = await example("send", subs, status=412)
    assert set(refused_send.body) == {"error"}
