"""setWebhook / deleteWebhook / getWebhookInfo through the REST API (no dispatcher:
nothing is delivered here) and the SSRF guard's refusals."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.settings import Settings
from shared.store import Store
from tests.conftest import Stack, unique
from tests.e2e.test_getupdates_offsets import Scene, scene

pytestmark = pytest.mark.asyncio

NOWHERE = "http://127.0.0.1:9/hook"  # allowed (loopback) in tests; nobody listens


async def refused(s: Scene, **params: Any) -> dict[str, Any]:
    response = await s.as_bot.raw("setWebhook", **params)
    body = response.json()
    assert response.status_code == 400 and body["ok"] is False, body
    assert isinstance(body, dict)
    return body


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("https://10.0.0.1/hook", "10.0.0.1, a private address"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://[::ffff:127.0.0.1]/hook", "IPv4-mapped"),
        ("https://[fd00::1]/hook", "unique local"),
        ("http://10.1.1.1/hook", "https://"),
        ("ftp://example.com/hook", "https://"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://no-such-host.invalid/hook", "could not be resolved"),
        ("notaurl", "https://"),
    ],
)
async def test_unsafe_urls_are_refused_saying_why_and_nothing_changes(
    stack: Stack, settings: Settings, http: httpx.AsyncClient, url: str, words: str
) -> None:
    s = await scene(stack, settings, http)
    body = await refused(s, url=url)
    assert body["code"] == "WEBHOOK_URL_REFUSED" and words in body["description"]
    info = await s.as_bot("getWebhookInfo")
    assert info["url"] == "" and info["active"] is False
    assert info["pending_update_count"] == 1  # /start is still waiting for a reader


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"url": "https://8.8.8.8/" + "a" * 2100}, "url"),
        ({"url": NOWHERE, "secret_token": "has space"}, "secret_token"),
        ({"url": NOWHERE, "secret_token": "x" * 257}, "secret_token"),
        ({"url": NOWHERE, "max_connections": 0}, "max_connections"),
        ({"url": NOWHERE, "max_connections": 101}, "max_connections"),
        ({"url": NOWHERE, "allowed_updates": ["message", "typo"]}, "allowed_updates"),
        ({"url": NOWHERE, "id_format": "hex"}, "id_format"),
        ({"url": NOWHERE, "drop_pending_updates": "maybe"}, "drop_pending_updates"),
        ({"url": 5}, "url"),
    ],
)
async def test_bad_parameters_get_400_naming_them(
    stack: Stack, settings: Settings, http: httpx.AsyncClient, params: dict[str, Any], name: str
) -> None:
    s = await scene(stack, settings, http)
    body = await refused(s, **params)
    assert body["code"] == "INVALID_PARAMETER" and f"'{name}'" in body["description"]
    assert (await s.as_bot("getWebhookInfo"))["url"] == ""
    missing = await s.as_bot.raw("setWebhook")
    assert missing.status_code == 400 and missing.json()["code"] == "MISSING_PARAMETER"


async def test_info_shows_the_configuration_but_never_the_secret(
    stack: Stack, settings: Settings, store: Store, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    secret = "top_secret_" + unique()
    assert await s.as_bot(
        "setWebhook",
        url=NOWHERE,
        secret_token=secret,
        max_connections=7,
        allowed_updates=["message", "callback_query"],
    )
    try:
        response = await s.as_bot.raw("getWebhookInfo")
        assert secret not in response.text
        info = response.json()["result"]
        assert info == {
            "url": NOWHERE,
            "has_custom_certificate": False,
            "pending_update_count": 1,
            "active": True,
            "max_connections": 7,
            "id_format": "string",
            "signed": True,
            "allowed_updates": ["callback_query", "message"],
        }
        got = await s.as_bot.http.get(
            "/bot/getWebhookInfo", headers={"Authorization": s.as_bot.auth}
        )
        assert got.status_code == 200 and got.json()["result"] == info
        # setting it again replaces everything (no secret now, all types)
        assert await s.as_bot("setWebhook", url=NOWHERE + "2")
        info = await s.as_bot("getWebhookInfo")
        assert info["signed"] is False and "allowed_updates" not in info
        assert info["url"] == NOWHERE + "2"
    finally:
        assert await s.as_bot("deleteWebhook") is True


async def test_empty_url_and_delete_remove_the_webhook_and_may_drop_pending(
    stack: Stack, settings: Settings, store: Store, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    await s.say("one", "two")
    assert await s.as_bot("setWebhook", url=NOWHERE) is True
    assert await s.as_bot("setWebhook", url="") is True  # Telegram's way to remove it
    info = await s.as_bot("getWebhookInfo")
    assert info["url"] == "" and info["pending_update_count"] == 3
    assert await s.as_bot("deleteWebhook") is True  # none set: still true
    assert await s.as_bot("setWebhook", url=NOWHERE) is True
    assert await s.as_bot("deleteWebhook", drop_pending_updates=True) is True
    assert (await s.as_bot("getWebhookInfo"))["pending_update_count"] == 0
    assert await s.poll() == []  # dropped for consumer default ...
    assert len(await s.poll(consumer="other")) == 3  # ... but still in the log
    await s.say("three")
    assert [u["message"]["text"] for u in await s.poll()] == ["three"]
