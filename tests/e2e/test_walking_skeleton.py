"""One update end to end: client API -> update log -> WebSocket and getUpdates.

Real REST and gateway processes against the test redis-server, a real
``websockets`` client as the agent and ``httpx`` as the user and the poller.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from shared.settings import Settings
from shared.store import Store
from tests.api import Account, BotAccount, bot_api, client_api, create_bot, create_user
from tests.conftest import Stack, unique, wait_s

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]


async def recv_json(ws: websockets.ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), timeout=wait_s(timeout))
    value = json.loads(frame)
    assert isinstance(value, dict)
    return value


async def connect(stack: Stack, token: str, **identify: Any) -> websockets.ClientConnection:
    ws = await websockets.connect(
        stack.ws_url, additional_headers={"Authorization": f"Bot {token}"}
    )
    hello = await recv_json(ws)
    assert hello["op"] == "hello" and hello["v"] == 1
    await ws.send(json.dumps({"op": "identify", **identify}))
    ready = await recv_json(ws)
    assert ready["op"] == "ready", ready
    return ws


async def receive_updates(ws: websockets.ClientConnection, count: int) -> list[dict[str, Any]]:
    updates: list[dict[str, Any]] = []
    while len(updates) < count:
        frame = await recv_json(ws)
        if frame["op"] == "updates":
            updates.extend(frame["updates"])
    return updates


async def wait_committed(store: Store, bot_id: int, consumer: str, update_id: int) -> None:
    for _ in range(int(wait_s(200))):
        cursor = await store.log.get_cursor(bot_id, consumer)
        if cursor is not None and cursor.update_id >= update_id:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"cursor of {consumer} never reached {update_id}")


async def user_and_bot(settings: Settings, user: str, bot: str) -> tuple[Account, BotAccount]:
    """A new user, its name made from ``user``, owning a new bot named from ``bot``."""
    owner = await create_user(settings, unique(user))
    return owner, await create_bot(settings, owner, unique(bot) + "_bot")


async def test_one_thousand_messages_over_websocket_and_getupdates(
    stack: Stack, settings: Settings, store: Store
) -> None:
    user, bot = await user_and_bot(settings, "alice", "e")
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        as_user = client_api(http, user)
        as_bot = bot_api(http, bot)
        me = await as_bot("getMe")
        assert me["username"] == bot.username and me["is_bot"] is True
        assert me["id"] == str(bot.bot_id)

        agent = await connect(stack, bot.token)
        chat = await as_user("startBot", username=bot.username)
        start = (await receive_updates(agent, 1))[0]
        assert start["message"]["text"] == "/start"
        assert start["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
        assert start["message"]["chat"]["type"] == "private"
        bot_chat_id = start["message"]["chat"]["id"]

        for i in range(1, 1001):
            await as_user("sendMessage", chat_id=chat["id"], text=f"m{i}")
        received = await receive_updates(agent, 1000)
        texts = [u["message"]["text"] for u in received]
        assert texts == [f"m{i}" for i in range(1, 1001)]
        ids = [int(u["update_id"]) for u in [start, *received]]
        assert ids == sorted(ids) and len(set(ids)) == 1001

        # ack the 400th message, drop the socket, come back with no cursor
        await agent.send(json.dumps({"op": "ack", "update_id": received[399]["update_id"]}))
        await agent.close()
        await wait_committed(store, bot.bot_id, "default", int(received[399]["update_id"]))
        agent = await connect(stack, bot.token)
        replay = await receive_updates(agent, 600)
        assert [u["message"]["text"] for u in replay] == [f"m{i}" for i in range(401, 1001)]
        await as_user("sendMessage", chat_id=chat["id"], text="m1001")
        live = await receive_updates(agent, 1)
        assert live[0]["message"]["text"] == "m1001"
        await agent.close()

        # the bot answers in its private chat
        sent = await as_bot("sendMessage", chat_id=bot_chat_id, text="hello human")
        assert sent["chat"]["id"] == bot_chat_id and sent["from"]["is_bot"] is True

        # a poller on a second consumer sees the same updates through getUpdates
        polled: list[dict[str, Any]] = []
        offset = None
        while len(polled) < 1002:
            params: dict[str, Any] = {"consumer": "poller", "limit": 100, "timeout": 1}
            if offset is not None:
                params["offset"] = offset
            batch = await as_bot("getUpdates", **params)
            assert batch, "getUpdates returned nothing before all updates arrived"
            polled.extend(batch)
            offset = int(batch[-1]["update_id"]) + 1
        assert [int(u["update_id"]) for u in polled] == [*ids, int(live[0]["update_id"])]
        # until offset = last + 1 is sent, the last batch is not confirmed
        unconfirmed = await as_bot("getUpdates", consumer="poller", timeout=0)
        assert unconfirmed == polled[-len(unconfirmed) :] and unconfirmed
        assert await as_bot("getUpdates", consumer="poller", offset=offset, timeout=0) == []
        assert await as_bot("getUpdates", consumer="poller", timeout=0) == []


async def test_bad_tokens_get_401_envelope(stack: Stack, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=10) as http:
        for headers in ({}, {"Authorization": "Bot bot_123:" + "x" * 43}, {"Authorization": "x"}):
            response = await http.post("/bot/getMe", headers=headers)
            assert response.status_code == 401
            body = response.json()
            assert body["ok"] is False and body["error_code"] == 401
            assert body["code"] == "UNAUTHORIZED" and "token" in body["description"]
        response = await http.post("/client/startBot", json={"username": "x_bot"})
        assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"

    http_url = stack.ws_url.replace("ws://", "http://")
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(
            stack.ws_url, additional_headers={"Authorization": "Bot bot_1:" + "y" * 43}
        )
    assert info.value.response.status_code == 401
    body = json.loads(info.value.response.body or b"{}")
    assert body["code"] == "UNAUTHORIZED" and body["error_code"] == 401
    assert http_url  # the same port answers plain HTTP (health) too


async def test_malformed_json_gets_400_saying_what_is_wrong(
    stack: Stack, settings: Settings
) -> None:
    _, bot = await user_and_bot(settings, "bob", "m")
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=10) as http:
        response = await http.post(
            "/bot/sendMessage",
            content=b'{"chat_id": 1, "text": ',
            headers={"Authorization": f"Bot {bot.token}", "Content-Type": "application/json"},
        )
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "BAD_REQUEST" and "not valid JSON" in body["description"]

        response = await http.post(
            "/bot/sendMessage", json={"chat_id": "1"}, headers={"Authorization": f"Bot {bot.token}"}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "MISSING_PARAMETER"
        assert "'text'" in response.json()["description"]


async def test_bot_cannot_write_first_to_a_user(stack: Stack, settings: Settings) -> None:
    owner = await create_user(settings, unique("own"))
    stranger = await create_user(settings, unique("str"))
    bot = await create_bot(settings, owner, unique("f") + "_bot")
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=10) as http:
        as_stranger = client_api(http, stranger)
        as_bot = bot_api(http, bot)
        group = await as_stranger("createGroup", title="Lobby")
        await as_stranger("addChatMember", chat_id=group["id"], username=bot.username)
        await as_stranger("sendMessage", chat_id=group["id"], text=f"hi @{bot.username}")
        updates = await as_bot("getUpdates", timeout=5)
        mention = next(u for u in updates if "message" in u)["message"]
        stranger_id = mention["from"]["id"]
        response = await as_bot.raw("sendMessage", chat_id=stranger_id, text="hello?")
        assert response.status_code == 403
        assert response.json()["code"] == "CHAT_FORBIDDEN"
        response = await as_bot.raw("sendMessage", chat_id="12345", text="hello?")
        assert response.status_code == 400 and response.json()["code"] == "CHAT_NOT_FOUND"
