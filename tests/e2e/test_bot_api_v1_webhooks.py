"""``/v1/bot-api`` webhooks, delivered by a real dispatcher to a real receiver:
each user message arrives as the document's message object ("a JSON body with a
message as described here"), with the secret to check where it came from.
"""

from __future__ import annotations

import hashlib
import hmac

import httpx
import pytest

from shared.settings import Settings
from tests.api import build_scene
from tests.bot_api_v1_doc import EXAMPLES, same_answer
from tests.conftest import Process
from tests.e2e.test_webhooks_receiver import Receiver

pytestmark = pytest.mark.asyncio

SECRET = "SOME_SECRET"


async def test_a_user_message_is_delivered_as_the_documents_message(
    http: httpx.AsyncClient, settings: Settings, hooks: Process, receiver: Receiver
) -> None:
    scene = await build_scene(http, settings, "v1w", private=True)
    key = {"Authorization": scene.bot.token}
    url = receiver.url("/webhook")
    set_ = await http.post(
        "/v1/bot-api/bot/webhook", json={"url": url, "secret": SECRET}, headers=key
    )
    assert set_.status_code == 200, set_.text
    native = await http.get(
        "/bot/getWebhookInfo", headers={"Authorization": f"Bot {scene.bot.token}"}
    )
    assert native.json()["result"]["allowed_updates"] == ["message"]
    sent = await scene.as_user("sendMessage", chat_id=scene.private, text="Hello bot!")
    # consumer "default" had confirmed nothing: the /start comes first
    await receiver.wait_for(lambda: len(receiver.to("/webhook")) >= 2)
    start, delivery = receiver.to("/webhook")
    assert start.update["body"] == "/start"
    message = delivery.update
    expected = {**EXAMPLES["send message"].answer_json, "body": "Hello bot!"}
    assert same_answer(expected, message), message
    assert message["chatId"] == message["senderId"] == scene.bot_chat
    assert message["id"] == f"{scene.bot_chat}_{sent['message_id']}"
    # the receiver checks the source: the secret, and a signature of the body under it
    assert delivery.headers["x-telegram-bot-api-secret-token"] == SECRET
    signed = delivery.headers["x-botgw-timestamp"].encode() + b"." + delivery.body
    digest = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
    assert delivery.headers["x-botgw-signature"] == f"sha256={digest}"
    # the message it names is the one the dialect shows
    got = await http.get(f"/v1/bot-api/chat/message/{message['id']}", headers=key)
    assert got.json() == message
