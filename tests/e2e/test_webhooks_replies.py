"""Webhook replies end to end: a real receiver answers deliveries with Bot API calls
(``{"method": ...}``), a real ``botgw webhooks`` process carries them out through
the REST methods, and the user sees the result through the client API."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from shared import keys
from shared.settings import Settings
from shared.store import Store
from tests.conftest import Process, Stack
from tests.e2e.telegram_bots import eventually, history, telegram_token
from tests.e2e.test_getupdates_offsets import Scene, scene
from tests.e2e.test_webhooks_receiver import Delivery, Receiver, scrape, settled

pytestmark = pytest.mark.asyncio

# a reply that uploads a file, which is not carried out
UPLOAD = (
    b"--x\r\nContent-Disposition: form-data; name=method\r\n\r\nsendPhoto\r\n"
    b'--x\r\nContent-Disposition: form-data; name=photo; filename="a.png"\r\n\r\n'
    b"\x89PNG\r\n--x--\r\n"
)
KEYBOARD = {"inline_keyboard": [[{"text": "ok", "callback_data": "ok"}]]}


def as_json(call: dict[str, Any]) -> tuple[str, bytes]:
    return "application/json", json.dumps(call).encode()


async def replies(hooks: Process) -> dict[str, float]:
    """``botgw_webhook_replies_total`` of the dispatcher, by outcome."""
    hooks.wait_healthy()  # its metrics are served
    return {
        dict(labels)["outcome"]: value
        for (name, labels), value in (await scrape(hooks)).items()
        if name == "botgw_webhook_replies_total"
    }


async def counted(hooks: Process, before: dict[str, float], **expected: int) -> None:
    """Wait until the replies counted since ``before`` are ``expected`` (by outcome)."""

    async def probe() -> bool:
        now = await replies(hooks)
        return all(now.get(k, 0) - before.get(k, 0) == n for k, n in expected.items())

    await eventually(probe, f"replies counted {expected}")


def message_text(delivery: Delivery) -> str | None:
    message = delivery.update.get("message")
    return message.get("text") if isinstance(message, dict) else None


async def bot_texts(s: Scene) -> list[str]:
    """The texts of the bot's messages in the user's chat, oldest first."""
    return [
        m.get("text", "")
        for m in await history(s.as_user, s.chat_id)
        if m.get("from", {}).get("is_bot")
    ]


async def bot_chat_id(s: Scene) -> Any:
    """The user's chat as the bot sees it (from the /start update, read by another
    consumer)."""
    updates = await s.poll(consumer="audit")
    return updates[0]["message"]["chat"]["id"]


async def test_an_answer_callback_query_reply_reaches_the_user(
    hooks: Process,
    stack: Stack,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    s = await scene(stack, settings, http)
    keyboard = {"inline_keyboard": [[{"text": "Ping", "callback_data": "ping"}]]}
    sent = await s.as_bot(
        "sendMessage", chat_id=await bot_chat_id(s), text="press", reply_markup=keyboard
    )

    def reply(delivery: Delivery) -> tuple[str, bytes] | None:
        query = delivery.update.get("callback_query")
        if query is None:
            return None
        # as telegraf answers: the Telegram dialect's spelling, an integer id elsewhere
        return as_json(
            {
                "method": "answerCallbackQuery",
                "callback_query_id": query["id"],
                "text": "pong",
                "show_alert": True,
            }
        )

    receiver.reply = reply
    before = await replies(hooks)
    token = telegram_token(s.as_bot.auth.removeprefix("Bot "))
    answer = await http.post(f"/bot{token}/setWebhook", json={"url": receiver.url("/cb")})
    assert answer.json() == {"ok": True, "result": True}
    try:
        pressed = await s.as_user(
            "pressButton", chat_id=s.chat_id, message_id=sent["message_id"], callback_data="ping"
        )
        assert pressed["answered"] is False

        async def answered() -> dict[str, Any] | None:
            got = await s.as_user("getCallbackAnswer", callback_query_id=pressed["id"])
            return got if got["answered"] else None

        got = await eventually(answered, "the callback answer")
        assert got == {"id": pressed["id"], "answered": True, "show_alert": True, "text": "pong"}
        await counted(hooks, before, done=1, refused=0)
        info = await settled(s)
        assert "last_error_date" not in info and info["active"] is True
        queries = [d for d in receiver.to("/cb") if "callback_query" in d.update]
        assert len(queries) == 1 and isinstance(queries[0].update["update_id"], int)
    finally:
        await s.as_bot("deleteWebhook")


@pytest.mark.parametrize("dialect", ["native-json", "telegram-form"])
async def test_a_send_message_reply_creates_a_message(
    dialect: str,
    hooks: Process,
    stack: Stack,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    s = await scene(stack, settings, http)

    def reply(delivery: Delivery) -> tuple[str, bytes] | None:
        text = message_text(delivery)
        if text != "hi":
            return None
        chat_id = delivery.update["message"]["chat"]["id"]
        if dialect == "native-json":
            assert isinstance(chat_id, str)  # the native dialect's ids
            return as_json({"method": "sendMessage", "chat_id": chat_id, "text": "echo: hi"})
        # as Telegram takes forms: nested objects as JSON, names in any case
        form = {
            "method": "sendmessage",
            "chat_id": chat_id,
            "text": "echo: hi",
            "reply_markup": json.dumps(KEYBOARD),
        }
        return "application/x-www-form-urlencoded", urlencode(form).encode()

    receiver.reply = reply
    before = await replies(hooks)
    id_format = "string" if dialect == "native-json" else "number"
    await s.as_bot("setWebhook", url=receiver.url("/m"), id_format=id_format)
    try:
        await s.say("hi")

        async def echoed() -> list[str] | None:
            texts = await bot_texts(s)
            return texts if texts else None

        assert await eventually(echoed, "the echo") == ["echo: hi"]
        await counted(hooks, before, done=1)
        if dialect == "telegram-form":
            messages = await history(s.as_user, s.chat_id)
            assert messages[-1]["reply_markup"] == KEYBOARD
        await settled(s)
    finally:
        await s.as_bot("deleteWebhook")


async def test_an_invalid_reply_is_counted_and_the_update_is_not_retried(
    hooks: Process,
    stack: Stack,
    settings: Settings,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    s = await scene(stack, settings, http)
    answers: dict[str, tuple[str, bytes]] = {
        # no text: validation refuses it
        "bad": as_json({"method": "sendMessage"}),
        "unknown": as_json({"method": "noSuchMethod", "text": "x"}),
        "broken": ("application/json", b'{"method": "sendMessage", "chat_id": '),
        "nameless": as_json({"method": 42}),
        "file": ("multipart/form-data; boundary=x", UPLOAD),
        "other json": as_json({"ok": True}),  # not a call: a plain confirmation
    }

    def reply(delivery: Delivery) -> tuple[str, bytes] | None:
        text = message_text(delivery)
        if text in answers:
            if text == "bad":
                chat_id = delivery.update["message"]["chat"]["id"]
                return as_json({"method": "sendMessage", "chat_id": chat_id})
            return answers[text]
        return None

    receiver.reply = reply
    before = await replies(hooks)
    await s.as_bot("setWebhook", url=receiver.url("/bad"), id_format="number")
    try:
        await s.say(*answers, "last")
        # one chat's updates are delivered in order: a retry of any would come first
        await receiver.wait_for(lambda: any(message_text(d) == "last" for d in receiver.to("/bad")))
        texts = [message_text(d) for d in receiver.to("/bad")]
        assert texts == ["/start", *answers, "last"]
        await counted(hooks, before, refused=2, malformed=2, unsupported=1, done=0)
        info = await settled(s)
        assert "last_error_date" not in info and info["active"] is True
        assert await bot_texts(s) == []  # nothing was sent
    finally:
        await s.as_bot("deleteWebhook")


async def test_a_repeated_delivery_replays_its_reply_instead_of_repeating_it(
    hooks: Process,
    stack: Stack,
    settings: Settings,
    store: Store,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    """The state a dispatcher leaves when it dies after the reply ran but before it
    committed the update: the update is delivered again, the receiver answers with
    the same reply, and the reply's Idempotency-Key makes it a replay."""
    s = await scene(stack, settings, http)

    def reply(delivery: Delivery) -> tuple[str, bytes] | None:
        if message_text(delivery) != "ping":
            return None
        chat_id = delivery.update["message"]["chat"]["id"]
        return as_json({"method": "sendMessage", "chat_id": chat_id, "text": "pong"})

    receiver.reply = reply
    before = await replies(hooks)
    await s.as_bot("setWebhook", url=receiver.url("/again"), id_format="number")
    try:
        await s.say("ping")
        await counted(hooks, before, done=1)
        await settled(s)
        assert await bot_texts(s) == ["pong"]
        # the committed cursor forgotten, as if it had never been written
        assert await store.redis.hdel(keys.bot_cursors(s.bot_id), "default", "default#n") >= 1
        await s.say("after")  # wakes the delivery, which starts from the oldest update
        await receiver.wait_for(
            lambda: any(message_text(d) == "after" for d in receiver.to("/again"))
        )
        delivered = [message_text(d) for d in receiver.to("/again")]
        assert delivered == ["/start", "ping", "/start", "ping", "after"]
        await counted(hooks, before, done=1, replayed=1)
        await settled(s)
        assert await bot_texts(s) == ["pong"]  # once
    finally:
        await s.as_bot("deleteWebhook")
