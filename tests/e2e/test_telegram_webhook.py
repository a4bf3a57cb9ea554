"""The python-telegram-bot bot in webhook mode: PTB's own webhook server on loopback.

``Updater.start_webhook`` calls setWebhook through the Telegram dialect, so the
dispatcher (a ``botgw webhooks`` process of this module) delivers integer ids and
Telegram's ``X-Telegram-Bot-Api-Secret-Token``, which PTB checks. Loopback is an
allowed webhook target in the test settings (``BOTGW_WEBHOOK_ALLOW``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import pytest

from botgw.local_redis import LocalRedis, free_port
from shared.settings import Settings
from tests.api import client_api, create_bot, create_user
from tests.conftest import Process, Stack, process_env, unique, wait_s
from tests.e2e.telegram_bots import (
    Seen,
    conversation,
    ptb_application,
    telegram_token,
    webhook_ptb,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def webhooks(
    stack: Stack, redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """A webhook dispatcher against the stack's Redis."""
    tmp = tmp_path_factory.mktemp("telegram-webhooks")
    dispatcher = Process(
        name="webhooks",
        args=["webhooks", "--log-level", "warning"],
        env=process_env(redis_server.url, BOTGW_DATA_DIR=str(tmp / "data")),
        log_path=tmp / "webhooks.log",
        port=0,
    ).start()
    try:
        yield dispatcher
    finally:
        dispatcher.stop()


async def test_ptb_bot_holds_a_conversation_in_webhook_mode(
    stack: Stack, settings: Settings, webhooks: Process
) -> None:
    user = await create_user(settings, unique("whu"))
    bot = await create_bot(settings, user, unique("wh") + "_bot")
    token = telegram_token(bot.token)
    seen = Seen()
    app = ptb_application(stack.rest_url, token, seen)
    port = free_port()
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=wait_s(30)) as http:
        try:
            async with webhook_ptb(app, port=port, secret_token=secrets.token_urlsafe(32)):
                info = (await http.get(f"/bot{token}/getWebhookInfo")).json()["result"]
                assert info["url"] == f"http://127.0.0.1:{port}/telegram-hook"
                assert info["id_format"] == "number"
                as_user = client_api(http, user)
                chat = await as_user("startBot", username=bot.username)
                await conversation(as_user, http, chat["id"], seen)
        finally:
            # PTB leaves its webhook set when it stops (as on Telegram)
            response = await http.post(f"/bot{token}/deleteWebhook")
            assert response.json() == {"ok": True, "result": True}
        info = (await http.get(f"/bot{token}/getWebhookInfo")).json()["result"]
        assert info["url"] == "" and info["pending_update_count"] == 0
