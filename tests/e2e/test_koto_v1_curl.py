"""The Koto Bot API v1 document's "Examples" cURL block, each command run in bash
as printed (the host, tokens and the recipient substituted), on a REST process
with a Redis of its own: it registers ``MyBot`` as the method examples do.

Between the commands a user does what the block leaves to the messenger: starts
a conversation with the bot and writes to it, so getUpdates has an update and
the bot learns the recipient's fingerprint to send to.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.api import client_api, create_user
from tests.conftest import wait_s
from tests.e2e.koto_examples import (
    CURL_EXAMPLES,
    KotoServer,
    Substitutions,
    koto_server,
    run_curl,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KotoServer]:
    with koto_server(tmp_path_factory.mktemp("koto-curl")) as running_server:
        yield running_server


def commands() -> dict[str, str]:
    """The block's commands by their comment ("Register a new bot" ...)."""
    out = {}
    for part in CURL_EXAMPLES.strip().split("\n\n"):
        comment, _, command = part.partition("\n")
        out[comment.removeprefix("# ")] = command
    return out


def test_the_block_has_the_three_commands() -> None:
    assert list(commands()) == [
        "Register a new bot",
        "Send a message",
        "Get updates (long-polling)",
    ]


@pytest.mark.asyncio
async def test_the_curl_examples_work_as_printed(server: KotoServer) -> None:
    block = commands()
    user = await create_user(server.settings, "curl_user")
    subs = Substitutions(base=server.url, user_token=user.token)

    registered = await run_curl(subs.apply(block["Register a new bot"]))
    assert registered.status == 200, registered
    bot = registered.body["bot"]
    assert bot["botId"] == "mybot_bot" and bot["displayName"] == "MyBot"
    assert bot["description"] == "Test bot" and bot["active"] is True
    subs.bot_token = registered.body["botToken"]

    async with httpx.AsyncClient(base_url=server.url, timeout=wait_s(60)) as http:
        as_user = {"Authorization": f"Bearer {user.token}"}
        started = await http.post(
            "/v1/bot/conversation/start", json={"botId": "mybot_bot"}, headers=as_user
        )
        assert started.json() == {"status": "ok"}

        polled = await run_curl(subs.apply(block["Get updates (long-polling)"]))
        assert polled.status == 200, polled
        [start] = polled.body["updates"]
        assert start["content"] == "/start" and start["contentType"] == 2
        subs.fingerprint = start["senderFingerprint"]

        sent = await run_curl(subs.apply(block["Send a message"]))
        assert sent.status == 200, sent
        assert set(sent.body) == {"messageId", "timestamp"}

        # the user reads it in the messenger (botgw's client API)
        chats = await client_api(http, user)("getChats")
        [chat] = [c for c in chats if c.get("username") == "mybot_bot"]
        history = await client_api(http, user)("getChatHistory", chat_id=chat["id"])
        messages = history["messages"] if isinstance(history, dict) else history
        last = messages[-1]
        assert last["text"] == "Hello from bot!"
        assert str(last["message_id"]) == sent.body["messageId"]
