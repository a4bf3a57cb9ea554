"""Koto v1's error table, case by case: every error is ``{"error": "<text>"}``
with the document's status (400, 401, 403, 404, 409, 412, 429 with Retry-After, 500), and a refused
request changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from botgw.local_redis import LocalRedis
from shared.settings import Settings
from tests.api import Account, create_user
from tests.conftest import make_settings, rest_process, rest_url_fixture, running, unique, wait_s
from tests.e2e.koto_examples import koto_server

pytestmark = pytest.mark.asyncio

slow_rest = rest_url_fixture(
    "koto-slow", BOTGW_RATE_PRIVATE_PER_SECOND="0.01", BOTGW_RATE_PRIVATE_BURST="1"
)


def refused(response: httpx.Response, status: int, *words: str) -> str:
    """The error text of a refused call, checked: the status, the document's
    format (only ``error``) and the words it must contain."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]
    for word in words:
        assert word in body["error"], body["error"]
    text: str = body["error"]
    return text


class Koto:
    """A user of the Koto v1 API on one REST process."""

    def __init__(self, http: httpx.AsyncClient, account: Account) -> None:
        self.http = http
        self.account = account
        self.auth = {"Authorization": f"Bearer {account.token}"}

    async def call(self, path: str, body: Any = None) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.auth)

    async def register(self, name: str | None = None) -> tuple[str, str]:
        answer = await self.call("/v1/bot/register", {"displayName": name or unique("Err")})
        assert answer.status_code == 200, answer.text
        bot = answer.json()
        return bot["bot"]["botId"], bot["botToken"]

    async def bots(self) -> list[dict[str, Any]]:
        listed = await self.http.get("/v1/bot/list", headers=self.auth)
        bots: list[dict[str, Any]] = listed.json()["bots"]
        return bots

    async def fingerprint(self, bot_id: str, token: str) -> str:
        """Start a conversation with the bot; the user as the bot sees them."""
        started = await self.call("/v1/bot/conversation/start", {"botId": bot_id})
        assert started.json() == {"status": "ok"}
        polled = await self.http.get(
            "/v1/bot/getUpdates?timeout=10", headers={"Authorization": f"Bearer {token}"}
        )
        sender: str = polled.json()["updates"][-1]["senderFingerprint"]
        return sender


async def koto(http: httpx.AsyncClient, settings: Settings) -> Koto:
    return Koto(http, await create_user(settings, unique("kerr")))


async def test_400_invalid_request_body_or_missing_fields(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    user = await koto(http, settings)
    refused(await user.call("/v1/bot/register", {}), 400, "'displayName'")
    refused(await user.call("/v1/bot/register", {"displayName": 7}), 400, "'displayName'")
    refused(await user.call("/v1/bot/register", {"displayName": "!!"}), 400, "'displayName'")
    long = {"displayName": unique("Long"), "description": "x" * 257}
    refused(await user.call("/v1/bot/register", long), 400, "'description'")
    not_json = await http.post(
        "/v1/bot/register",
        content=b"{displayName: MyBot",
        headers={**user.auth, "Content-Type": "application/json"},
    )
    refused(not_json, 400, "JSON")
    assert await user.bots() == []  # nothing was registered

    bot_id, token = await user.register()
    fingerprint = await user.fingerprint(bot_id, token)
    send = {"botToken": token, "recipientFingerprint": fingerprint, "content": "hi"}
    refused(await http.post("/v1/bot/send", json={**send, "contentType": 3}), 400, "contentType")
    refused(await http.post("/v1/bot/send", json={**send, "content": ""}), 400, "'content'")
    no_content = {key: value for key, value in send.items() if key != "content"}
    refused(await http.post("/v1/bot/send", json=no_content), 400, "'content'")
    no_recipient = {key: value for key, value in send.items() if key != "recipientFingerprint"}
    refused(await http.post("/v1/bot/send", json=no_recipient), 400, "'recipientFingerprint'")
    bad_buttons = {**send, "inlineButtons": [{"text": "A"}]}
    refused(await http.post("/v1/bot/send", json=bad_buttons), 400, "inlineButtons[0]")
    long_data = {**send, "inlineButtons": [{"text": "A", "callbackData": "x" * 65}]}
    refused(await http.post("/v1/bot/send", json=long_data), 400, "inlineButtons[0].callbackData")

    commands = [{"command": f"/c{i}", "description": "d"} for i in range(31)]
    too_many = {"botToken": token, "commands": commands}
    refused(await http.post("/v1/bot/setMyCommands", json=too_many), 400, "30")
    no_slash = {"botToken": token, "commands": [{"command": "help", "description": "d"}]}
    refused(await http.post("/v1/bot/setMyCommands", json=no_slash), 400, "/")
    menu = await http.get(f"/v1/bot/{bot_id}/commands")
    assert menu.json() == {"commands": []}  # nothing was set

    bearer = {"Authorization": f"Bearer {token}"}
    refused(await http.get("/v1/bot/getUpdates?offset=abc", headers=bearer), 400, "offset")
    media = {"botToken": token, "recipientFingerprint": fingerprint, "contentType": "image/png"}
    refused(await http.post("/v1/bot/sendMedia", json={**media, "sizeBytes": 0}), 400, "sizeBytes")
    refused(
        await http.post("/v1/bot/sendMedia", json={**media, "sizeBytes": 10, "contentType": "png"}),
        400,
        "contentType",
    )
    unsent = await http.post("/v1/bot/sendMedia", json={**media, "sizeBytes": 10})
    media_id = unsent.json()["mediaId"]
    confirm = {"botToken": token, "mediaId": media_id}
    refused(await http.post("/v1/bot/confirmMedia", json=confirm), 400, "upload")


async def test_401_missing_or_invalid_token(http: httpx.AsyncClient, settings: Settings) -> None:
    user = await koto(http, settings)
    bot_id, token = await user.register()
    name = {"displayName": unique("NoAuth")}
    refused(await http.post("/v1/bot/register", json=name), 401)
    refused(
        await http.post(
            "/v1/bot/register", json=name, headers={"Authorization": f"Bearer {token}"}
        ),
        401,
    )
    refused(await http.get("/v1/bot/list"), 401)
    refused(await http.get(f"/v1/bot/{bot_id}"), 401)
    send = {"recipientFingerprint": "1", "content": "hi"}
    refused(await http.post("/v1/bot/send", json=send), 401, "botToken")
    refused(await http.post("/v1/bot/send", json={**send, "botToken": token + "x"}), 401)
    refused(await http.post("/v1/bot/send", json={**send, "botToken": user.account.token}), 401)
    refused(await http.get("/v1/bot/getUpdates?timeout=0"), 401)
    refused(await http.post("/v1/bot/setWebhook", json={"url": ""}), 401)
    assert len(await user.bots()) == 1


async def test_403_another_users_bot(http: httpx.AsyncClient, settings: Settings) -> None:
    owner = await koto(http, settings)
    other = await koto(http, settings)
    bot_id, token = await owner.register()
    refused(await other.call("/v1/bot/revoke", {"botId": bot_id}), 403, "owner")
    refused(await http.get(f"/v1/bot/{bot_id}", headers=other.auth), 403)
    assert (await owner.bots())[0]["active"] is True  # not revoked
    # a user may talk to anyone's bot, and a bot write to whoever started it
    other_fingerprint = await other.fingerprint(bot_id, token)
    sent = await http.post(
        "/v1/bot/send",
        json={"botToken": token, "recipientFingerprint": other_fingerprint, "content": "hi"},
    )
    assert sent.status_code == 200
    # but not to a user who never started it
    another_id, another_token = await other.register()
    stranger = await owner.fingerprint(another_id, another_token)
    refused(
        await http.post(
            "/v1/bot/send",
            json={"botToken": token, "recipientFingerprint": stranger, "content": "hi"},
        ),
        404,
        "chat",
    )


async def test_404_bot_or_resource_not_found(http: httpx.AsyncClient, settings: Settings) -> None:
    user = await koto(http, settings)
    refused(await http.get("/v1/bot/nobody_here_bot", headers=user.auth), 404, "nobody_here_bot")
    refused(await http.get("/v1/bot/nobody_here_bot/commands"), 404)
    refused(await user.call("/v1/bot/conversation/start", {"botId": "nobody_here_bot"}), 404)
    refused(await user.call("/v1/bot/nothing", {}), 404, "/v1/bot/nothing")
    refused(await http.delete("/v1/bot/register"), 404, "POST")
    refused(await http.get("/v1/bot/send"), 404, "POST")
    refused(await http.post("/v1/bot/list"), 404, "GET")
    refused(await http.get("/v1/bot"), 404)

    bot_id, token = await user.register()
    message = {"botId": bot_id, "content": "hello"}
    refused(await user.call("/v1/bot/user-message", message), 404, "conversation/start")
    fingerprint = await user.fingerprint(bot_id, token)
    press = {"botId": bot_id, "messageId": "123456", "callbackData": "x"}
    refused(await user.call("/v1/bot/callback", press), 404)
    refused(
        await http.post(
            "/v1/bot/send",
            json={"botToken": token, "recipientFingerprint": "424242", "content": "hi"},
        ),
        404,
    )
    # a media id is the bot's own: another bot's token finds nothing there
    media = await http.post(
        "/v1/bot/sendMedia",
        json={
            "botToken": token,
            "recipientFingerprint": fingerprint,
            "sizeBytes": 10,
            "contentType": "text/plain",
        },
    )
    _, other_token = await user.register()
    confirm = {"botToken": other_token, "mediaId": media.json()["mediaId"]}
    refused(await http.post("/v1/bot/confirmMedia", json=confirm), 404)
    refused(await http.post("/v1/bot/confirmMedia", json={**confirm, "mediaId": "med_x"}), 404)


async def test_409_duplicate_bot_id(http: httpx.AsyncClient, settings: Settings) -> None:
    user = await koto(http, settings)
    name = unique("Twice")
    bot_id, _ = await user.register(name)
    text = refused(await user.call("/v1/bot/register", {"displayName": name.upper()}), 409)
    assert bot_id in text
    assert [bot["botId"] for bot in await user.bots()] == [bot_id]


async def test_412_inactive_bot_or_revoked_token(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    user = await koto(http, settings)
    bot_id, token = await user.register()
    fingerprint = await user.fingerprint(bot_id, token)
    revoked = await user.call("/v1/bot/revoke", {"botId": bot_id})
    assert revoked.json() == {"status": "ok"}
    refused(await user.call("/v1/bot/revoke", {"botId": bot_id}), 412)
    send = {"botToken": token, "recipientFingerprint": fingerprint, "content": "hi"}
    refused(await http.post("/v1/bot/send", json=send), 412)
    bearer = {"Authorization": f"Bearer {token}"}
    refused(await http.get("/v1/bot/getUpdates?timeout=0", headers=bearer), 412)
    refused(await user.call("/v1/bot/conversation/start", {"botId": bot_id}), 412)
    refused(await user.call("/v1/bot/user-message", {"botId": bot_id, "content": "hi"}), 412)
    refused(await http.get(f"/v1/bot/{bot_id}/commands"), 412)


async def test_429_rate_limit_with_retry_after(slow_rest: str, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=slow_rest, timeout=30) as http:
        user = await koto(http, settings)
        bot_id, token = await user.register()
        fingerprint = await user.fingerprint(bot_id, token)
        send = {"botToken": token, "recipientFingerprint": fingerprint, "content": "one"}
        first = await http.post("/v1/bot/send", json=send)
        assert first.status_code == 200
        second = await http.post("/v1/bot/send", json={**send, "content": "two"})
        refused(second, 429)
        assert int(second.headers["retry-after"]) >= 1


async def test_500_when_the_store_is_unreachable(tmp_path: Path) -> None:
    redis = LocalRedis(directory=tmp_path / "redis", appendonly=False).start()
    try:
        process = rest_process(redis.url, tmp_path, "rest", BOTGW_REDIS_TIMEOUT="2")
        with running(process):
            account = await create_user(make_settings(redis.url), unique("k500"))
            redis.stop()
            async with httpx.AsyncClient(base_url=process.url, timeout=wait_s(60)) as http:
                user = Koto(http, account)
                refused(await user.call("/v1/bot/register", {"displayName": "Down"}), 500)
    finally:
        redis.stop()


ODD_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    2**70,
    1.5,
    "",
    "x" * 5000,
    "\u0000",
    [],
    {},
    [1],
    {"a": 1},
]
BOT_FIELDS = {
    "/v1/bot/send": ("recipientFingerprint", "content", "contentType", "inlineButtons"),
    "/v1/bot/setMyCommands": ("commands",),
    "/v1/bot/setWebhook": ("url", "secret"),
    "/v1/bot/sendMedia": ("recipientFingerprint", "sizeBytes", "contentType", "caption"),
    "/v1/bot/confirmMedia": ("mediaId",),
    "/v1/bot/getUpdates": ("offset", "limit", "timeout"),
}
USER_FIELDS = {
    "/v1/bot/register": ("displayName", "description"),
    "/v1/bot/revoke": ("botId",),
    "/v1/bot/conversation/start": ("botId",),
    "/v1/bot/user-message": ("botId", "content"),
    "/v1/bot/callback": ("botId", "messageId", "callbackData"),
}


async def test_no_odd_input_breaks_a_route(http: httpx.AsyncClient, settings: Settings) -> None:
    """Every field of every route given odd values, and odd bodies: each answer is
    a success or a Koto 4xx error, never a failure of the server."""
    user = await koto(http, settings)
    bot_id, token = await user.register()
    fingerprint = await user.fingerprint(bot_id, token)
    good = {
        "recipientFingerprint": fingerprint,
        "content": "hi",
        "botId": bot_id,
        "displayName": unique("Odd"),
    }
    answers: list[tuple[str, str, Any, int]] = []
    for routes, auth in ((BOT_FIELDS, {}), (USER_FIELDS, user.auth)):
        for path, fields in routes.items():
            for field in fields:
                for value in ODD_VALUES:
                    body = {**good, "botToken": token, field: value, "timeout": 0}
                    if path == "/v1/bot/revoke" and value == bot_id:
                        continue
                    response = await http.post(path, json=body, headers=auth)
                    answers.append((path, field, value, response.status_code))
                    if response.status_code != 200:
                        refused(response, response.status_code)
            for raw in (b"null", b"[]", b'"text"', b"{", b"\xff\xfe", b"{}" * 3):
                response = await http.post(
                    path, content=raw, headers={**auth, "Content-Type": "application/json"}
                )
                refused(response, 400)
    for odd in ("%00_bot", "%C3%A9t%C3%A9_bot", "x" * 300 + "_bot", "..%2F..%2Fetc_bot"):
        for path in (f"/v1/bot/{odd}", f"/v1/bot/{odd}/commands"):
            response = await http.get(path, headers=user.auth)
            answers.append((path, "path", odd, response.status_code))
            refused(response, 404)
    failed = [answer for answer in answers if answer[3] >= 500]
    assert failed == []
    assert {status for *_, status in answers} <= {200, 400, 401, 403, 404, 409, 412, 429}
    listed = await http.get(f"/v1/bot/{bot_id}", headers=user.auth)
    assert listed.status_code == 200  # the bot is still there, whatever was sent


async def test_every_answer_is_counted_once_under_api_koto(tmp_path: Path) -> None:
    with koto_server(tmp_path, BOTGW_REST_METRICS_ON_API_PORT="1") as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=wait_s(60)) as http:
            refused(await http.post("/v1/bot/register", json={"displayName": "Nope"}), 401)
            refused(await http.request("TRACE", "/v1/bot/nothing"), 404)
            refused(await http.get("/v1/bot/send"), 404)
            page = await http.get("/metrics")
    counted: dict[tuple[str, str, str], float] = {}
    for family in text_string_to_metric_families(page.text):
        for sample in family.samples:
            if sample.name == "botgw_rest_requests_total":
                labels = sample.labels
                counted[(labels["api"], labels["method"], labels["status"])] = sample.value
    assert counted[("koto", "register", "401")] == 1
    assert counted[("koto", "other", "404")] == 2
    assert not [key for key in counted if key[0] == "other" and key[2] in ("401", "404")]
