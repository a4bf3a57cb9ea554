"""Webhook delivery end to end: the REST API sets the webhook, a real ``botgw
webhooks`` process POSTs to a real local HTTP receiver."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.settings import Settings
from shared.store import Store
from tests.api import bot_api, client_api, create_bot, create_user
from tests.conftest import Process, Stack, unique
from tests.e2e.test_getupdates_offsets import scene
from tests.e2e.test_webhooks_receiver import Receiver, settled
from tests.unit.test_signature import snippet

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]


def documented_verify() -> Any:
    namespace: dict[str, Any] = {}
    exec(snippet("verify-python"), namespace)
    return namespace["verify"]


async def test_updates_arrive_in_order_signed_and_confirmed(
    hooks: Process,
    stack: Stack,
    settings: Settings,
    store: Store,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    s = await scene(stack, settings, http)
    secret = "sec_" + unique()
    assert await s.as_bot("setWebhook", url=receiver.url("/a"), secret_token=secret) is True
    try:
        await s.say(*[f"m{i}" for i in range(20)])
        await receiver.wait_for(lambda: len(receiver.to("/a")) >= 21)
        got = receiver.to("/a")
        assert [d.text for d in got] == ["/start"] + [f"m{i}" for i in range(20)]
        ids = [int(d.update_id) for d in got]
        assert ids == sorted(set(ids))  # in log order, each once
        verify = documented_verify()
        for delivery in got:
            headers = delivery.headers
            assert delivery.update["update_id"] == delivery.update_id  # native: a string
            assert headers["content-type"] == "application/json"
            assert headers["host"] == f"127.0.0.1:{receiver.port}"
            assert verify(
                secret, headers["x-botgw-timestamp"], delivery.body, headers["x-botgw-signature"]
            )
            assert headers["x-telegram-bot-api-secret-token"] == secret
        info = await settled(s)
        assert info["url"] == receiver.url("/a") and info["active"] is True
        assert info["signed"] is True and info["ip_address"] == "127.0.0.1"
        assert info["max_connections"] == 40 and "last_error_date" not in info
        assert secret not in str(info)  # never shown back
        cursor = await store.log.get_cursor(s.bot_id, "default")
        assert cursor is not None and cursor.update_id == ids[-1]
        assert await s.poll(consumer="audit", limit=100) != []  # other consumers unaffected
    finally:
        await s.as_bot("deleteWebhook")


async def test_number_ids_for_telegram_clients_and_no_secret_means_unsigned(
    hooks: Process, stack: Stack, settings: Settings, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    s = await scene(stack, settings, http)
    await s.as_bot("setWebhook", url=receiver.url("/n"), id_format="number")
    try:
        await receiver.wait_for(lambda: len(receiver.to("/n")) >= 1)
        delivery = receiver.to("/n")[0]
        update = delivery.update
        assert isinstance(update["update_id"], int) and str(update["update_id"]) == (
            delivery.update_id
        )
        assert isinstance(update["message"]["chat"]["id"], int)
        assert "x-botgw-signature" not in delivery.headers
        assert "x-telegram-bot-api-secret-token" not in delivery.headers
        assert delivery.headers["x-botgw-timestamp"].isdigit()
        info = await settled(s)
        assert info["signed"] is False and info["id_format"] == "number"
    finally:
        await s.as_bot("deleteWebhook")


async def test_several_chats_are_delivered_concurrently_each_in_order(
    hooks: Process, stack: Stack, settings: Settings, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    owner = await create_user(settings, unique("own"))
    bot = await create_bot(settings, owner, unique("w") + "_bot")
    as_bot = bot_api(http, bot)
    users = [client_api(http, await create_user(settings, unique("u"))) for _ in range(2)]
    chats = [await u("startBot", username=bot.username) for u in users]
    for i in range(4):
        for user, chat in zip(users, chats, strict=True):
            await user("sendMessage", chat_id=chat["id"], text=f"{user.auth[-6:]}-{i}")
    receiver.mode = "slow"
    receiver.slow_s = 0.3
    # everything is in the log before the webhook is set: one batch, two chats
    await as_bot("setWebhook", url=receiver.url("/p"), max_connections=2)
    try:
        await receiver.wait_for(lambda: len(receiver.to("/p")) >= 10)
        by_chat: dict[Any, list[str]] = {}
        for delivery in receiver.to("/p"):
            message = delivery.update["message"]
            by_chat.setdefault(message["chat"]["id"], []).append(message["text"])
        expected = [["/start"] + [f"{u.auth[-6:]}-{i}" for i in range(4)] for u in users]
        assert sorted(by_chat.values()) == sorted(expected)
        assert receiver.peak_in_flight == 2  # two chats at once, never more than allowed
    finally:
        await as_bot("deleteWebhook")


async def test_allowed_updates_skip_other_types_without_removing_them(
    hooks: Process,
    stack: Stack,
    settings: Settings,
    store: Store,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    s = await scene(stack, settings, http)
    await s.as_bot(
        "setWebhook",
        url=receiver.url("/f"),
        allowed_updates=["poll"],
        drop_pending_updates=True,
    )
    try:
        await s.say("skipped")
        chat_id = int((await s.poll(consumer="audit"))[0]["message"]["chat"]["id"])
        await store.log.append(
            s.bot_id, kind="poll", chat_id=chat_id, body={"poll": {"id": "p", "question": "?"}}
        )
        await receiver.wait_for(lambda: len(receiver.to("/f")) >= 1)
        await settled(s)
        assert [list(d.update)[1] for d in receiver.to("/f")] == ["poll"]
        audit = await s.poll(consumer="audit", offset=0)
        assert [u["message"]["text"] for u in audit if "message" in u] == ["/start", "skipped"]
    finally:
        await s.as_bot("deleteWebhook")


async def test_redirects_are_not_followed(
    hooks: Process, stack: Stack, settings: Settings, http: httpx.AsyncClient, receiver: Receiver
) -> None:
    s = await scene(stack, settings, http)
    receiver.mode = "redirect"
    await s.as_bot("setWebhook", url=receiver.url("/r"))
    try:
        await receiver.wait_for(lambda: len(receiver.to("/r")) >= 2)
        info = await s.as_bot("getWebhookInfo")
        assert "HTTP 302" in info["last_error_message"]
        assert "redirects are not followed" in info["last_error_message"]
        assert receiver.to("/elsewhere") == []
    finally:
        await s.as_bot("deleteWebhook")
