"""Koto v1 webhooks, delivered by a real dispatcher to a real receiver: the
document's delivery format, its X-Koto-Signature checked by the document's own
Node.js verifySignature, and its retry policy (3 retries, then inactive until
set again).

The module's dispatcher retries fast (tests/e2e/conftest.py); that the settings'
defaults are the document's 5 s / 5, 15, 45 s is checked on the settings.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.api import Account, create_user
from tests.conftest import Process, unique
from tests.e2e.koto_examples import WEBHOOK_PAYLOAD, assert_like, document_json, verify_signature_js
from tests.e2e.telegram_bots import eventually
from tests.e2e.test_webhooks_receiver import RETRY_DELAYS, Receiver

SECRET = "my_webhook_secret"


def test_the_default_retry_policy_is_the_documents() -> None:
    settings = Settings.from_env({"BOTGW_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert settings.webhook_timeout == 5.0  # "respond with HTTP 200 within 5 seconds"
    assert settings.webhook_retry_delays == (5.0, 15.0, 45.0)  # "retried 3 times"


class KotoUser:
    """A user of the Koto v1 API with one registered bot."""

    def __init__(self, http: httpx.AsyncClient, account: Account) -> None:
        self.http = http
        self.account = account
        self.bot_id = ""
        self.bot_token = ""

    async def post(self, path: str, **body: Any) -> dict[str, Any]:
        response = await self.http.post(
            path, json=body, headers={"Authorization": f"Bearer {self.account.token}"}
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    async def register(self) -> None:
        answer = await self.post("/v1/bot/register", displayName=unique("Hook"))
        self.bot_id = answer["bot"]["botId"]
        self.bot_token = answer["botToken"]

    async def set_webhook(self, url: str, secret: str | None = SECRET) -> None:
        body = {"botToken": self.bot_token, "url": url}
        if secret is not None:
            body["secret"] = secret
        answer = await self.http.post("/v1/bot/setWebhook", json=body)
        assert answer.json() == {"status": "ok"}, answer.text

    async def webhook_info(self) -> dict[str, Any]:
        native = await self.http.get(
            "/bot/getWebhookInfo", headers={"Authorization": f"Bot {self.bot_token}"}
        )
        info: dict[str, Any] = native.json()["result"]
        return info


async def koto_user(http: httpx.AsyncClient, settings: Settings) -> KotoUser:
    user = KotoUser(http, await create_user(settings, unique("kwh")))
    await user.register()
    return user


@pytest.mark.asyncio
async def test_deliveries_have_the_documents_format_and_signature(
    http: httpx.AsyncClient,
    settings: Settings,
    hooks: Process,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    user = await koto_user(http, settings)
    await user.set_webhook(receiver.url("/webhook/nova"))
    assert (await user.webhook_info())["id_format"] == "koto"
    await user.post("/v1/bot/conversation/start", botId=user.bot_id)
    await receiver.wait_for(lambda: len(receiver.to("/webhook/nova")) >= 1)
    [delivery] = receiver.to("/webhook/nova")
    payload = delivery.update
    assert_like(document_json(WEBHOOK_PAYLOAD), payload, "payload")
    assert payload["type"] == 0
    signature = delivery.headers["x-koto-signature"]
    assert await verify_signature_js(delivery.body, signature, SECRET, tmp_path)
    assert not await verify_signature_js(delivery.body + b" ", signature, SECRET, tmp_path)
    assert not await verify_signature_js(delivery.body, signature, "another_secret", tmp_path)
    # the secret itself never travels, nor botgw's own signature
    assert "x-telegram-bot-api-secret-token" not in delivery.headers
    assert "x-botgw-signature" not in delivery.headers

    # a button of the bot's, pressed: a CALLBACK update
    sent = await http.post(
        "/v1/bot/send",
        json={
            "botToken": user.bot_token,
            "recipientFingerprint": payload["senderFingerprint"],
            "content": "Choose:",
            "inlineButtons": [{"text": "Yes", "callbackData": "yes"}],
        },
    )
    assert sent.status_code == 200, sent.text
    message_id = sent.json()["messageId"]
    await user.post("/v1/bot/callback", botId=user.bot_id, messageId=message_id, callbackData="yes")
    await receiver.wait_for(lambda: len(receiver.to("/webhook/nova")) >= 2)
    pressed = receiver.to("/webhook/nova")[1]
    update = pressed.update
    assert update["type"] == 1 and update["callbackData"] == "yes"
    assert update["messageId"] == message_id
    assert update["chatId"] == payload["chatId"]
    assert int(update["updateId"]) > int(payload["updateId"])
    assert await verify_signature_js(
        pressed.body, pressed.headers["x-koto-signature"], SECRET, tmp_path
    )


@pytest.mark.asyncio
async def test_without_a_secret_deliveries_are_not_signed(
    http: httpx.AsyncClient, settings: Settings, hooks: Process, receiver: Receiver
) -> None:
    user = await koto_user(http, settings)
    await user.set_webhook(receiver.url("/plain"), secret=None)
    await user.post("/v1/bot/conversation/start", botId=user.bot_id)
    await receiver.wait_for(lambda: len(receiver.to("/plain")) >= 1)
    [delivery] = receiver.to("/plain")
    assert delivery.update["content"] == "/start"
    assert "x-koto-signature" not in delivery.headers


@pytest.mark.asyncio
async def test_three_retries_then_inactive_until_set_again(
    http: httpx.AsyncClient, settings: Settings, hooks: Process, receiver: Receiver
) -> None:
    user = await koto_user(http, settings)
    receiver.mode = "500"
    await user.set_webhook(receiver.url("/failing"))
    await user.post("/v1/bot/conversation/start", botId=user.bot_id)
    attempts = 1 + len(RETRY_DELAYS)  # the first attempt and 3 retries
    await receiver.wait_for(lambda: len(receiver.to("/failing")) >= attempts)

    # the dispatcher marks it inactive right after the last attempt failed
    async def inactive() -> dict[str, Any] | None:
        info = await user.webhook_info()
        return None if info["active"] else info

    info = await eventually(inactive, "the webhook to turn inactive")
    failed = receiver.to("/failing")
    assert len(failed) == attempts == 4
    assert len({d.body for d in failed}) == 1  # the same update every time
    assert "4 attempts" in info["last_error_message"]

    # "Re-set to reactivate": the update is delivered after all
    receiver.mode = "ok"
    await user.set_webhook(receiver.url("/failing"))
    await receiver.wait_for(lambda: len(receiver.to("/failing")) > attempts)
    delivered = receiver.to("/failing")[attempts]
    assert delivered.answer == "ok" and delivered.body == failed[0].body
    assert (await user.webhook_info())["active"] is True


@pytest.mark.asyncio
async def test_a_koto_webhook_refuses_types_it_has_no_shape_for(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    user = await koto_user(http, settings)
    response = await http.post(
        "/bot/setWebhook",
        json={"url": "http://127.0.0.1:9/x", "id_format": "koto", "allowed_updates": ["poll"]},
        headers={"Authorization": f"Bot {user.bot_token}"},
    )
    assert response.status_code == 400 and response.json()["code"] == "INVALID_PARAMETER"
    assert (await user.webhook_info())["url"] == ""
    chosen = await http.post(
        "/bot/setWebhook",
        json={"url": "http://127.0.0.1:9/x", "id_format": "koto"},
        headers={"Authorization": f"Bot {user.bot_token}"},
    )
    assert chosen.json()["result"] is True
    info = await user.webhook_info()
    assert info["allowed_updates"] == ["callback_query", "message"]


@pytest.mark.asyncio
async def test_a_webhook_bots_answer_is_the_synchronous_reply(
    http: httpx.AsyncClient, settings: Settings, hooks: Process, receiver: Receiver
) -> None:
    user = await koto_user(http, settings)
    await user.post("/v1/bot/conversation/start", botId=user.bot_id)
    await user.set_webhook(receiver.url("/replying"))
    await receiver.wait_for(lambda: len(receiver.to("/replying")) >= 1)  # its /start

    async def answer_the_next_delivery() -> None:
        await receiver.wait_for(lambda: len(receiver.to("/replying")) >= 2)
        update = receiver.to("/replying")[1].update
        assert update["content"] == "/help" and update["contentType"] == 2
        sent = await http.post(
            "/v1/bot/send",
            json={
                "botToken": user.bot_token,
                "recipientFingerprint": update["senderFingerprint"],
                "content": "Try /start",
            },
        )
        assert sent.status_code == 200, sent.text

    answered = asyncio.create_task(answer_the_next_delivery())
    try:
        replied = await user.post("/v1/bot/user-message", botId=user.bot_id, content="/help")
    finally:
        await answered
    assert replied["botReply"]["content"] == "Try /start"
    assert "inlineButtons" not in replied["botReply"]
    assert int(replied["botReply"]["messageId"]) > int(replied["messageId"])
