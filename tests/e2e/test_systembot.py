"""The system bot end to end: real REST, gateway and ``botgw systembot`` processes,
users talking to it through the client API.

A user creates a bot by the /newbot conversation (across a restart of the system
bot), lists it with /mybots, rotates its token and revokes it with the inline
keyboard; each new token works on REST and on the gateway at once, and the
messages that showed a token are deleted a while after. The system bot acts only
for the user who wrote to it, only on that user's bots, and only while what it
cites is recent.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import nacl.signing
import pytest

from botgw.admin import messenger_session
from botgw.systembot import ensure_system_bot
from gateway.client import GatewayClient
from shared.settings import Settings
from tests.api import Account, ApiFailure, Caller, client_api, create_bot, create_user
from tests.conftest import Process, Stack, process_env, rest_url_fixture, unique, wait_s

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]

TOKEN = re.compile(r"bot_[0-9]+:[A-Za-z0-9_-]+")
WINDOW = 10
TOKEN_MESSAGE_SECONDS = 3
short_window_rest = rest_url_fixture(
    "rest-short-window", BOTGW_SYSTEM_BOT_WINDOW_SECONDS=str(WINDOW)
)


@dataclass
class SystemBot:
    username: str
    token: str
    process: Process

    @property
    def bot_id(self) -> int:
        return int(self.token.removeprefix("bot_").split(":")[0])

    def restart(self) -> None:
        self.process.stop()
        self.process.start()


def _process(stack: Stack, token: str) -> Process:
    return Process(
        name="systembot",
        args=["systembot", "--rest-url", stack.rest_url, "--gateway-url", stack.ws_url],
        env=process_env(
            stack.redis_url,
            BOTGW_SYSTEM_BOT_TOKEN=token,
            BOTGW_SYSTEM_BOT_TOKEN_MESSAGE_SECONDS=str(TOKEN_MESSAGE_SECONDS),
        ),
        log_path=stack.tmp / "systembot.log",
        port=0,
    )


@pytest.fixture(scope="module")
async def system_bot(stack: Stack, settings: Settings) -> AsyncIterator[SystemBot]:
    username, token = await ensure_system_bot(settings)
    bot = SystemBot(username, token, _process(stack, token).start())
    try:
        yield bot
    finally:
        bot.process.stop()


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as client:
        yield client


@dataclass
class Talk:
    """A user's private chat with the system bot, as the user sees it."""

    client: Caller
    chat_id: str
    seen: int = 0

    async def replies(self, count: int = 1) -> list[dict[str, Any]]:
        """The system bot's next ``count`` messages after the newest seen."""
        deadline = time.monotonic() + wait_s(30)
        found: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            history = await self.client(
                "getChatHistory", chat_id=self.chat_id, since=self.seen, limit=20
            )
            found = [m for m in history if m["from"]["is_bot"]]
            if len(found) >= count:
                self.seen = max(int(m["message_id"]) for m in history)
                return found[:count]
            await asyncio.sleep(0.05)
        raise AssertionError(f"the system bot did not answer: {found}")

    async def gone(self, *messages: dict[str, Any]) -> None:
        """Wait until none of ``messages`` is in the chat any more."""
        ids = {m["message_id"] for m in messages}
        deadline = time.monotonic() + wait_s(30)
        while time.monotonic() < deadline:
            history = await self.client("getChatHistory", chat_id=self.chat_id, limit=100)
            if not ids & {m["message_id"] for m in history}:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"messages {ids} are still there")

    async def say(self, text: str) -> dict[str, Any]:
        sent = await self.client("sendMessage", chat_id=self.chat_id, text=text)
        self.seen = max(self.seen, int(sent["message_id"]))
        return (await self.replies())[0]

    async def press(self, message: dict[str, Any], data: str) -> dict[str, Any]:
        await self.client(
            "pressButton",
            chat_id=self.chat_id,
            message_id=message["message_id"],
            callback_data=data,
        )
        return (await self.replies())[0]


def buttons(message: dict[str, Any]) -> dict[str, str]:
    """The message's inline buttons: text -> callback_data."""
    rows = message.get("reply_markup", {}).get("inline_keyboard", [])
    return {b["text"]: b["callback_data"] for row in rows for b in row}


async def talk(http: httpx.AsyncClient, system_bot: SystemBot, user: Account) -> Talk:
    client = client_api(http, user)
    chat = await client("startBot", username=system_bot.username)
    conversation = Talk(client, chat["id"])
    assert "/newbot" in (await conversation.replies())[0]["text"]
    return conversation


async def works_on_both(http: httpx.AsyncClient, stack: Stack, user: Account, token: str) -> None:
    """``token`` answers getMe on REST and its agent gets an update over the gateway."""
    me = await http.post("/bot/getMe", headers={"Authorization": f"Bot {token}"})
    assert me.status_code == 200, me.text
    username = me.json()["result"]["username"]
    async with GatewayClient(stack.ws_url, token, consumer=unique("c"), on_gap="newest") as agent:
        assert (await agent.request("getMe"))["username"] == username
        said = unique("hello")
        chat = await client_api(http, user)("startBot", username=username)
        await client_api(http, user)("sendMessage", chat_id=chat["id"], text=said)

        async def heard() -> None:
            async for update in agent:
                if update.get("message", {}).get("text") == said:
                    return

        await asyncio.wait_for(heard(), wait_s(30))


async def test_create_list_rotate_and_revoke_by_chat(
    http: httpx.AsyncClient, stack: Stack, settings: Settings, system_bot: SystemBot
) -> None:
    user = await create_user(settings, unique("bf"))
    chat = await talk(http, system_bot, user)
    assert "name" in (await chat.say("/newbot"))["text"]
    assert "3-32" in (await chat.say("ab"))["text"]  # too short: asked again
    assert "username" in (await chat.say("Weather Forecasts"))["text"]
    assert "invalid" in (await chat.say("Not A Username"))["text"]

    # the conversation survives a restart of the system bot
    system_bot.restart()
    username = unique("wf") + "_bot"
    done = await chat.say(username)
    assert f"@{username}" in done["text"]
    token = TOKEN.search(done["text"])
    assert token is not None
    await works_on_both(http, stack, user, token[0])

    # /mybots: a button per bot; the bot's menu; rotate
    listed = await chat.say("/mybots")
    assert list(buttons(listed)) == [f"@{username}"]
    menu = await chat.press(listed, buttons(listed)[f"@{username}"])
    assert "Weather Forecasts" in menu["text"] and "Privacy mode: on" in menu["text"]
    assert {"Rotate token", "Revoke", "Edit name", "Commands"} <= set(buttons(menu))
    rotated = await chat.press(menu, buttons(menu)["Rotate token"])
    new_token = TOKEN.search(rotated["text"])
    assert new_token is not None and new_token[0] != token[0]
    old = await http.post("/bot/getMe", headers={"Authorization": f"Bot {token[0]}"})
    assert old.status_code == 401
    await works_on_both(http, stack, user, new_token[0])

    # privacy and commands, through the menu
    privacy = await chat.press(menu, buttons(menu)["Privacy: on"])
    assert "Privacy mode: off" in (await chat.press(privacy, buttons(privacy)["Disable"]))["text"]
    asked = await chat.press(menu, buttons(menu)["Commands"])
    assert "command1 - Description" in asked["text"]
    assert "Updated" in (await chat.say("start - Start it\nforecast - The weather"))["text"]
    commands = await http.post(
        "/bot/getMyCommands", headers={"Authorization": f"Bot {new_token[0]}"}
    )
    assert [c["command"] for c in commands.json()["result"]] == ["start", "forecast"]

    # the messages that showed a token are deleted a while after
    assert f"I will delete it in {TOKEN_MESSAGE_SECONDS} seconds" in done["text"]
    await chat.gone(done, rotated)

    # /revoke: pick, confirm, and the token is refused from then on
    picker = await chat.say("/revoke")
    confirm = await chat.press(picker, buttons(picker)[f"@{username}"])
    assert "for good" in confirm["text"]
    revoked = await chat.press(confirm, buttons(confirm)["Yes, revoke it"])
    assert f"@{username} is revoked" in revoked["text"]
    gone = await http.post("/bot/getMe", headers={"Authorization": f"Bot {new_token[0]}"})
    assert gone.status_code == 412 and gone.json()["code"] == "BOT_INACTIVE"
    assert "no bots" in (await chat.say("/token"))["text"]  # revoked bots are not offered


async def test_a_taken_username_is_asked_again(
    http: httpx.AsyncClient, settings: Settings, system_bot: SystemBot
) -> None:
    user = await create_user(settings, unique("bt"))
    taken = (await create_bot(settings, user, unique("tk") + "_bot")).username
    chat = await talk(http, system_bot, user)
    await chat.say("/newbot")
    await chat.say("Taken Name")
    assert "already taken" in (await chat.say(taken))["text"]
    free = unique("fr") + "_bot"
    assert f"@{free}" in (await chat.say(free))["text"]


async def test_a_user_signed_in_with_a_key_creates_a_bot(
    http: httpx.AsyncClient, stack: Stack, system_bot: SystemBot
) -> None:
    key = nacl.signing.SigningKey.generate()
    public_key = base64.urlsafe_b64encode(bytes(key.verify_key)).rstrip(b"=").decode()
    asked = await http.post("/client/auth/challenge", json={"public_key": public_key})
    message = asked.json()["result"]["message"].encode()
    signature = base64.urlsafe_b64encode(key.sign(message).signature).rstrip(b"=").decode()
    signed_in = await http.post(
        "/client/auth/verify",
        json={
            "public_key": public_key,
            "challenge": asked.json()["result"]["challenge"],
            "signature": signature,
            "username": unique("ky"),
        },
    )
    result = signed_in.json()["result"]
    user = Account(int(result["user"]["id"]), result["user"]["username"], result["token"])
    chat = await talk(http, system_bot, user)
    await chat.say("/newbot")
    await chat.say("Keyed Bot")
    username = unique("ky") + "_bot"
    token = TOKEN.search((await chat.say(username))["text"])
    assert token is not None
    await works_on_both(http, stack, user, token[0])


async def test_openapi_tells_how_the_system_bot_authenticates(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    security = document["paths"]["/manage/rotateToken"]["post"]["security"]
    assert security == [{"userToken": []}, {"botToken": [], "systemBotCitation": []}]
    scheme = document["components"]["securitySchemes"]["systemBotCitation"]
    assert (scheme["in"], scheme["name"]) == ("header", "Botgw-On-Behalf-Of")
    assert document["paths"]["/client/getMe"]["post"]["security"] == [{"userToken": []}]


async def manage_as_system_bot(
    http: httpx.AsyncClient, token: str, citation: str, method: str, **params: Any
) -> httpx.Response:
    return await http.post(
        f"/manage/{method}",
        json=params,
        headers={"Authorization": f"Bot {token}", "Botgw-On-Behalf-Of": citation},
    )


def refusal(response: httpx.Response) -> tuple[int, str]:
    body = response.json()
    assert body["ok"] is False and body["error_code"] == response.status_code
    assert body["description"]
    return response.status_code, body["code"]


async def bot_chat(settings: Settings, system_bot: SystemBot, user: Account) -> int:
    """The id under which the system bot knows its private chat with ``user``."""
    async with messenger_session(settings) as messenger:
        return messenger.scoped(system_bot.bot_id, user.user_id)


async def cite_of(
    settings: Settings, system_bot: SystemBot, user: Account, sent: dict[str, Any]
) -> str:
    """The citation of a message ``user`` sent to the system bot."""
    return f"message {await bot_chat(settings, system_bot, user)} {sent['message_id']}"


async def test_the_system_bot_acts_only_for_who_writes_to_it(
    http: httpx.AsyncClient, settings: Settings, system_bot: SystemBot, stack: Stack
) -> None:
    alice = await create_user(settings, unique("al"))
    bob = await create_user(settings, unique("bo"))
    alices_bot = await create_bot(settings, alice, unique("ab") + "_bot")
    bobs = await talk(http, system_bot, bob)

    # bob's keyboard offers his bots only, and a button that is not on it is refused
    await create_bot(settings, bob, unique("bb") + "_bot")
    picker = await bobs.say("/token")
    assert all(str(alices_bot.bot_id) not in data for data in buttons(picker).values())
    with pytest.raises(ApiFailure) as pressed:
        await bobs.client(
            "pressButton",
            chat_id=bobs.chat_id,
            message_id=picker["message_id"],
            callback_data=f"token:{alices_bot.bot_id}",
        )
    assert pressed.value.status == 400

    # the system bot's token citing bob's message acts as bob: alice's bot is not his
    sent = await bobs.client("sendMessage", chat_id=bobs.chat_id, text="hi")
    await bobs.replies()
    as_bob = await cite_of(settings, system_bot, bob, sent)
    listed = await manage_as_system_bot(http, system_bot.token, as_bob, "listBots")
    assert listed.status_code == 200
    assert alices_bot.username not in [b["username"] for b in listed.json()["result"]]
    rotate = await manage_as_system_bot(
        http, system_bot.token, as_bob, "rotateToken", bot_id=alices_bot.bot_id
    )
    assert refusal(rotate) == (403, "NOT_OWNER")

    # alice never wrote to it: nothing the system bot can cite acts for her
    bots_reply = picker  # a message the system bot itself sent in bob's chat
    for citation in (
        f"message {await bot_chat(settings, system_bot, bob)} {bots_reply['message_id']}",
        f"message {alices_bot.bot_id} {sent['message_id']}",
        "message 1 2 3",
        "callback nosuchquery",
        "somebody else",
        "",
    ):
        answer = await manage_as_system_bot(http, system_bot.token, citation, "listBots")
        assert refusal(answer) == (403, "CITATION_INVALID"), citation
    # without a citation it is a bot token where a user token is needed
    plain = await http.post(
        "/manage/listBots", headers={"Authorization": f"Bot {system_bot.token}"}
    )
    assert refusal(plain) == (401, "UNAUTHORIZED")
    # another bot's token may not cite at all, even its own user's message
    other = await http.post(
        "/manage/listBots",
        headers={"Authorization": f"Bot {alices_bot.token}", "Botgw-On-Behalf-Of": as_bob},
    )
    assert refusal(other) == (403, "NOT_SYSTEM_BOT")


async def test_a_citation_expires(
    short_window_rest: str, settings: Settings, system_bot: SystemBot
) -> None:
    user = await create_user(settings, unique("ex"))
    async with httpx.AsyncClient(base_url=short_window_rest, timeout=30) as http:
        client = client_api(http, user)
        chat = await client("startBot", username=system_bot.username)
        sent = await client("sendMessage", chat_id=chat["id"], text="hello")
        citation = await cite_of(settings, system_bot, user, sent)
        fresh = await manage_as_system_bot(http, system_bot.token, citation, "listBots")
        assert fresh.status_code == 200
        await asyncio.sleep(WINDOW + 1.5)
        stale = await manage_as_system_bot(http, system_bot.token, citation, "listBots")
        assert refusal(stale) == (403, "CITATION_INVALID")
        assert "older than" in stale.json()["description"]
