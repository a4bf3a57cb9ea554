"""The generic ``/v1/bot-api`` dialect route by route: its errors, its paging and
what one bot may see of another's, against a real REST process.

Every refused request is answered in the dialect's format (``statusCode``,
``error``, ``code``, ``message``) with its status, and changes nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.ids import SEQ_PER_MS
from shared.settings import Settings
from tests.api import Scene, build_scene, manage_api
from tests.conftest import Stack, rest_url_fixture

pytestmark = pytest.mark.asyncio

# one message per private chat, then a token every 100 s: the second is refused;
# documents of at most 2 KiB; /metrics on the API port
strict_rest = rest_url_fixture(
    "v1-strict",
    BOTGW_RATE_PRIVATE_PER_SECOND="0.01",
    BOTGW_RATE_PRIVATE_BURST="1",
    BOTGW_MAX_DOCUMENT_BYTES="2048",
    BOTGW_REST_METRICS_ON_API_PORT="true",
)

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


@dataclass
class V1:
    """Calls ``/v1/bot-api`` with one access key, sent raw."""

    http: httpx.AsyncClient
    key: str

    async def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": self.key, **kwargs.pop("headers", {})}
        return await self.http.request(method, "/v1/bot-api" + path, headers=headers, **kwargs)

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self.call(method, path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()

    async def refused(self, method: str, path: str, **kwargs: Any) -> tuple[int, str, str]:
        """(status, code, message) of a request that must fail, its format checked."""
        response = await self.call(method, path, **kwargs)
        body = response.json()
        assert set(body) >= {"statusCode", "error", "code", "message"}, body
        assert body["statusCode"] == response.status_code >= 400
        assert body["error"] and body["message"]
        return response.status_code, body["code"], body["message"]


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as client:
        yield client


async def _private(http: httpx.AsyncClient, settings: Settings) -> tuple[Scene, V1]:
    scene = await build_scene(http, settings, "v1r", private=True)
    return scene, V1(http, scene.bot.token)


async def test_the_key_is_the_token_raw_and_anything_else_is_401(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    scene, v1 = await _private(http, settings)
    assert (await v1.ok("GET", "/bot"))["id"] == str(scene.bot.bot_id)
    assert (await V1(http, f"Bearer {scene.bot.token}").ok("GET", "/bot"))["name"] == "Test Bot"
    bot_id, _, secret = scene.bot.token.partition(":")
    for key in ("", "nonsense", f"{bot_id}:{'x' * 43}", f"{bot_id}:{secret[:-1]}"):
        status, code, _ = await V1(http, key).refused("GET", "/bot")
        assert (status, code) == (401, "UNAUTHORIZED")
    rotated = await manage_api(http, scene.user)("rotateToken", bot_id=scene.bot.bot_id)
    assert (await v1.refused("GET", "/bot"))[:2] == (401, "UNAUTHORIZED")
    await manage_api(http, scene.user)("revokeBot", bot_id=scene.bot.bot_id)
    assert (await V1(http, rotated["token"]).refused("GET", "/chats?user_id=1"))[:2] == (
        401,
        "BOT_INACTIVE",
    )


async def test_unknown_routes_are_404_and_other_methods_405(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    _, v1 = await _private(http, settings)
    assert (await v1.refused("GET", "/nothing/here"))[:2] == (404, "ROUTE_NOT_FOUND")
    response = await v1.call("PATCH", "/bot", json={"name": "x"})
    assert response.status_code == 405 and response.headers["allow"] == "GET, PUT"
    assert response.json()["code"] == "METHOD_NOT_ALLOWED"


async def test_edit_bot_checks_every_field_before_writing_any(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    _, v1 = await _private(http, settings)
    before = await v1.ok("GET", "/bot")
    assert before["avatar"] is None and before["description"] == ""
    cases: list[tuple[Any, str]] = [
        ({"description": "kept?", "name": "n" * 65}, "'name'"),
        ({"description": "kept?", "name": ""}, "'name'"),
        ({"name": "Kept?", "description": "d" * 513}, "'description'"),
        ({"name": "Kept?", "avatar": "ftp://example.com/a.png"}, "'avatar'"),
        ({"name": 7}, "'name'"),
    ]
    for body, named in cases:
        status, code, message = await v1.refused("PUT", "/bot", json=body)
        assert (status, code) == (400, "INVALID_PARAMETER") and named in message, message
    for content in (b"{", b"[]", b'"name"'):
        assert (await v1.refused("PUT", "/bot", content=content))[:2] == (400, "BAD_REQUEST")
    assert await v1.ok("GET", "/bot") == before
    after = await v1.ok("PUT", "/bot", json={"description": "Forecasts", "avatar": ""})
    assert after == {**before, "description": "Forecasts"}


async def test_commands_keep_their_ids_and_refusals_name_the_position(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    _, v1 = await _private(http, settings)
    added = await v1.ok("POST", "/bot/commands", json=[{"alias": "a", "description": "A"}])
    status, code, message = await v1.refused(
        "POST",
        "/bot/commands",
        json=[{"alias": "b", "description": "B"}, {"alias": "Not Valid", "description": "x"}],
    )
    assert (status, code) == (400, "INVALID_PARAMETER") and message.startswith("[1].alias")
    assert (await v1.refused("POST", "/bot/commands", json=[]))[:2] == (400, "BAD_REQUEST")
    assert await v1.ok("GET", "/bot/commands") == added
    # adding an alias again replaces its description; its id stays
    again = await v1.ok("POST", "/bot/commands", json={"alias": "a", "description": "A2"})
    assert again[0]["id"] == added[0]["id"]
    assert await v1.ok("GET", "/bot/commands") == again
    unknown = "0" * 26
    assert (await v1.refused("DELETE", f"/bot/command/{unknown}"))[:2] == (
        404,
        "COMMAND_NOT_FOUND",
    )
    assert await v1.ok("DELETE", f"/bot/command/{added[0]['id']}") == again[0]
    assert await v1.ok("GET", "/bot/commands") == []
    # at most 100 in all: the 101st is refused, and the 100 stay
    hundred = [{"alias": f"c{n}", "description": "C"} for n in range(100)]
    assert len(await v1.ok("POST", "/bot/commands", json=hundred)) == 100
    one_more = await v1.refused("POST", "/bot/commands", json={"alias": "z", "description": "Z"})
    assert one_more[:2] == (400, "INVALID_PARAMETER") and "100" in one_more[2]
    assert [c["alias"] for c in await v1.ok("GET", "/bot/commands")] == [
        f"c{n}" for n in range(100)
    ]
    for command in await v1.ok("GET", "/bot/commands"):
        await v1.ok("DELETE", f"/bot/command/{command['id']}")
    # the native API sees the same list
    assert await v1.ok("POST", "/bot/commands", json={"alias": "x", "description": "X"})
    native = await http.get("/bot/getMyCommands", headers={"Authorization": f"Bot {v1.key}"})
    assert native.json()["result"] == [{"command": "x", "description": "X"}]


async def test_webhook_refusals_change_nothing(http: httpx.AsyncClient, settings: Settings) -> None:
    _, v1 = await _private(http, settings)
    assert (await v1.refused("GET", "/bot/webhook"))[:2] == (404, "WEBHOOK_NOT_FOUND")
    assert (await v1.refused("DELETE", "/bot/webhook"))[:2] == (404, "WEBHOOK_NOT_FOUND")
    cases: list[tuple[Any, int, str, str]] = [
        ({}, 400, "MISSING_PARAMETER", "'url'"),
        ({"url": ""}, 400, "INVALID_PARAMETER", "'url'"),
        (
            {"url": "http://127.0.0.1:9/h", "secret": "has spaces"},
            400,
            "INVALID_PARAMETER",
            "'secret'",
        ),
        ({"url": "http://10.1.2.3/hook"}, 400, "WEBHOOK_URL_REFUSED", "refused"),
    ]
    for body, status, code, named in cases:
        got = await v1.refused("POST", "/bot/webhook", json=body)
        assert got[:2] == (status, code) and named in got[2], got
    assert (await v1.refused("GET", "/bot/webhook"))[:2] == (404, "WEBHOOK_NOT_FOUND")
    hook = await v1.ok("POST", "/bot/webhook", json={"url": "http://127.0.0.1:9/h"})
    assert hook["secret"] is None and await v1.ok("GET", "/bot/webhook") == hook
    assert await v1.ok("DELETE", "/bot/webhook") == hook


async def test_chats_are_the_ones_the_bot_shares_with_the_user(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    scene = await build_scene(http, settings, "v1c", users=2, private=True, group="Club")
    v1 = V1(http, scene.bot.token)
    user_id = scene.bot_chat  # a bot names a user as it names their private chat
    bot_id = str(scene.bot.bot_id)
    await scene.as_user("sendMessage", chat_id=scene.group, text=f"@{scene.bot.username} hi")
    chats = await v1.ok("GET", f"/chats?user_id={user_id}")
    assert chats == [
        {"id": user_id, "userId": user_id, "botId": bot_id},
        {"id": scene.group, "userId": user_id, "botId": bot_id},
    ]
    # after the bot left the group, only the private chat
    await http.post(
        "/bot/leaveChat", json={"chat_id": scene.group}, headers={"Authorization": f"Bot {v1.key}"}
    )
    assert await v1.ok("GET", f"/chats?user_id={user_id}") == chats[:1]
    assert (await v1.refused("GET", "/chats"))[:2] == (400, "MISSING_PARAMETER")
    for unknown in ("1", "01hc71yz5pny5bmf0b4055zbjw", str(scene.user.user_id)):
        assert (await v1.refused("GET", f"/chats?user_id={unknown}"))[:2] == (
            404,
            "USER_NOT_FOUND",
        )
    # another bot knows nobody by this bot's ids
    other = await build_scene(http, settings, "v1o", private=True)
    got = await V1(http, other.bot.token).refused("GET", f"/chats?user_id={user_id}")
    assert got[:2] == (404, "USER_NOT_FOUND")


async def test_send_message_refusals_name_the_dialects_fields(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    scene, v1 = await _private(http, settings)
    chat = scene.bot_chat
    cases: list[tuple[Any, int, str, str]] = [
        ([], 400, "BAD_REQUEST", "object"),
        ({"body": "x"}, 400, "MISSING_PARAMETER", "'chatId'"),
        ({"chatId": True, "body": "x"}, 400, "INVALID_PARAMETER", "'chatId'"),
        ({"chatId": chat}, 400, "MISSING_PARAMETER", "'body'"),
        ({"chatId": chat, "body": 5}, 400, "INVALID_PARAMETER", "'body'"),
        ({"chatId": chat, "body": "x" * 4097}, 400, "INVALID_PARAMETER", "'body'"),
        ({"chatId": chat, "body": ""}, 400, "INVALID_PARAMETER", "'body'"),
        (
            {"chatId": chat, "body": "x", "attachmentIds": "a"},
            400,
            "INVALID_PARAMETER",
            "'attachmentIds'",
        ),
        (
            {"chatId": chat, "body": "x", "attachmentIds": ""},
            400,
            "INVALID_PARAMETER",
            "'attachmentIds'",
        ),
        (
            {"chatId": chat, "body": "x", "attachmentIds": ["a" * 8, "b" * 8]},
            400,
            "INVALID_PARAMETER",
            "'attachmentIds'",
        ),
        (
            {"chatId": chat, "body": "x", "attachmentIds": ["../x"]},
            404,
            "FILE_NOT_FOUND",
            "'attachmentIds'",
        ),
        (
            {"chatId": chat, "body": "x", "attachmentIds": ["a" * 32]},
            404,
            "FILE_ID_INVALID",
            "'attachmentIds'",
        ),
        ({"chatId": "01hc7aa947s4fdwywwjqr14wh7", "body": "x"}, 404, "CHAT_NOT_FOUND", "chat"),
        ({"chatId": "12345", "body": "x"}, 404, "CHAT_NOT_FOUND", "chat"),
    ]
    for body, status, code, named in cases:
        got = await v1.refused("POST", "/chat/message", json=body)
        assert got[:2] == (status, code) and named in got[2], (body, got)
    page = await v1.ok("GET", f"/chat/{chat}/messages")
    assert [m["body"] for m in page["messages"]] == ["/start"]  # nothing was sent


async def test_messages_page_by_number_oldest_first(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    scene, v1 = await _private(http, settings)
    chat = scene.bot_chat
    for n in range(1, 5):
        await scene.as_user("sendMessage", chat_id=scene.private, text=f"u{n}")
    mine = await v1.ok("POST", "/chat/message", json={"chatId": chat, "body": "b1"})
    await scene.as_user("sendMessage", chat_id=scene.private, text="u5")
    bodies = ["/start", "u1", "u2", "u3", "u4", "b1", "u5"]
    pages = [await v1.ok("GET", f"/chat/{chat}/messages?limit=3&page={n}") for n in (1, 2, 3, 4)]
    assert [[m["body"] for m in p["messages"]] for p in pages] == [
        bodies[0:3],
        bodies[3:6],
        bodies[6:],
        [],
    ]
    assert {(p["total"], p["limit"], p["chatId"]) for p in pages} == {(7, 3, chat)}
    assert [p["page"] for p in pages] == [1, 2, 3, 4]
    every = [m for p in pages for m in p["messages"]]
    stamps = [m["timestamp"] for m in every]
    assert stamps == sorted(stamps)
    assert {m["senderId"] for m in every} == {chat, str(scene.bot.bot_id)}
    # the default page: 20 of them, page 1
    first = await v1.ok("GET", f"/chat/{chat}/messages")
    assert (first["page"], first["limit"], first["messages"]) == (1, 20, every)
    # one sender, and since a time
    by_bot = await v1.ok("GET", f"/chat/{chat}/messages?sender_id={scene.bot.bot_id}")
    assert (by_bot["total"], by_bot["messages"]) == (1, [mine])
    by_user = await v1.ok("GET", f"/chat/{chat}/messages?sender_id={chat}&limit=2&page=3")
    assert by_user["total"] == 6 and [m["body"] for m in by_user["messages"]] == ["u4", "u5"]
    since = await v1.ok("GET", f"/chat/{chat}/messages?since={mine['timestamp']}")
    # from the millisecond of b1 on (a message just before it may share it)
    assert since["messages"] == [m for m in every if m["timestamp"] >= mine["timestamp"]]
    assert since["messages"][-2:] == [mine, every[-1]] and since["total"] >= 2
    later = every[-1]["timestamp"] + 1
    assert (await v1.ok("GET", f"/chat/{chat}/messages?since={later}"))["total"] == 0
    for query, named in [
        ("page=0", "'page'"),
        ("limit=0", "'limit'"),
        ("limit=101", "'limit'"),
        ("limit=ten", "'limit'"),
        ("since=-1", "'since'"),
    ]:
        got = await v1.refused("GET", f"/chat/{chat}/messages?{query}")
        assert got[:2] == (400, "INVALID_PARAMETER") and named in got[2], got
    for missing in ("12345", "abc", "01hc7aa947s4fdwywwjqr14wh7"):
        assert (await v1.refused("GET", f"/chat/{missing}/messages"))[:2] == (
            404,
            "CHAT_NOT_FOUND",
        )
    assert (await v1.refused("GET", f"/chat/{chat}/messages?sender_id=99"))[:2] == (
        404,
        "USER_NOT_FOUND",
    )


async def test_a_bot_sees_nothing_of_another_bots_chats_messages_or_files(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    scene, v1 = await _private(http, settings)
    other_scene, other = await _private(http, settings)
    sent = await v1.ok("POST", "/chat/message", json={"chatId": scene.bot_chat, "body": "mine"})
    assert await v1.ok("GET", f"/chat/message/{sent['id']}") == sent
    assert (await other.refused("GET", f"/chat/message/{sent['id']}"))[:2] == (
        404,
        "MESSAGE_NOT_FOUND",
    )
    got = await other.refused("GET", f"/chat/{scene.bot_chat}/messages")
    assert got[:2] == (404, "CHAT_NOT_FOUND")
    got = await other.refused("POST", "/chat/message", json={"chatId": scene.bot_chat, "body": "x"})
    assert got[:2] == (404, "CHAT_NOT_FOUND")
    chat, _, number = sent["id"].partition("_")
    for missing in (f"{chat}_{int(number) + 1}", f"{chat}_1", "nonsense", f"{chat}-{number}"):
        assert (await v1.refused("GET", f"/chat/message/{missing}"))[:2] == (
            404,
            "MESSAGE_NOT_FOUND",
        )
    # another bot's upload can neither be attached nor downloaded
    (upload,) = await other.ok("POST", "/files", files={"file": ("a.png", PNG, "image/png")})
    body = {"chatId": scene.bot_chat, "body": "x", "attachmentIds": [upload["id"]]}
    assert (await v1.refused("POST", "/chat/message", json=body))[:2] == (404, "FILE_ID_INVALID")
    download = await http.get("/" + upload["path"], headers={"Authorization": v1.key})
    assert download.status_code == 404
    mine = await http.get("/" + upload["path"], headers={"Authorization": other.key})
    assert mine.status_code == 200 and mine.content == PNG
    assert other_scene.bot.bot_id != scene.bot.bot_id


async def test_in_a_group_privacy_mode_hides_what_is_not_addressed_to_the_bot(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    scene = await build_scene(http, settings, "v1g", group="Club")
    v1 = V1(http, scene.bot.token)
    hidden = await scene.as_user("sendMessage", chat_id=scene.group, text="just us")
    await scene.as_user("sendMessage", chat_id=scene.group, text=f"@{scene.bot.username} hi")
    page = await v1.ok("GET", f"/chat/{scene.group}/messages")
    assert [m["body"] for m in page["messages"]] == [f"@{scene.bot.username} hi"]
    assert page["total"] == 1
    got = await v1.refused("GET", f"/chat/message/{scene.group}_{hidden['message_id']}")
    assert got[:2] == (404, "MESSAGE_NOT_FOUND")
    seen = page["messages"][0]
    assert await v1.ok("GET", f"/chat/message/{seen['id']}") == seen
    assert seen["timestamp"] == int(seen["id"].partition("_")[2]) // SEQ_PER_MS


async def test_uploads_are_refused_without_a_file_part(
    http: httpx.AsyncClient, settings: Settings
) -> None:
    _, v1 = await _private(http, settings)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"json": {"file": "x"}}, 400, "BAD_REQUEST"),
        ({"files": {"other": ("a.txt", b"abc", "text/plain")}}, 400, "MISSING_PARAMETER"),
        ({"files": {"file": ("a.txt", b"", "text/plain")}}, 400, "FILE_EMPTY"),
        ({"data": {"file": "not a file"}, "files": {"x": ("a", b"a")}}, 400, "INVALID_PARAMETER"),
    ]
    for kwargs, status, code in cases:
        assert (await v1.refused("POST", "/files", **kwargs))[:2] == (status, code), kwargs
    two = await v1.ok(
        "POST",
        "/files",
        files=[("file", ("a.txt", b"abc", "text/plain")), ("file", ("b.csv", b"1,2", "text/csv"))],
    )
    assert [(f["name"], f["size"], f["mimeType"]) for f in two] == [
        ("a.txt", 3, "text/plain"),
        ("b.csv", 3, "text/csv"),
    ]
    assert (
        await http.get(
            "/v1/bot-api/files/documents/nothing123.txt", headers={"Authorization": v1.key}
        )
    ).status_code == 404


async def test_an_idempotency_key_sends_once(http: httpx.AsyncClient, settings: Settings) -> None:
    scene, v1 = await _private(http, settings)
    body = {"chatId": scene.bot_chat, "body": "once"}
    key = {"Idempotency-Key": "v1-once-1"}
    first = await v1.call("POST", "/chat/message", json=body, headers=key)
    again = await v1.call("POST", "/chat/message", json=body, headers=key)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    page = await v1.ok("GET", f"/chat/{scene.bot_chat}/messages")
    assert [m["body"] for m in page["messages"]] == ["/start", "once"]
    bad = await v1.refused("POST", "/chat/message", json=body, headers={"Idempotency-Key": ""})
    assert bad[:2] == (400, "INVALID_IDEMPOTENCY_KEY")


async def test_past_the_send_limit_429_says_when_to_retry_and_sends_nothing(
    strict_rest: str, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=strict_rest, timeout=30) as http:
        scene, v1 = await _private(http, settings)
        body = {"chatId": scene.bot_chat, "body": "first"}
        await v1.ok("POST", "/chat/message", json=body)
        response = await v1.call("POST", "/chat/message", json={**body, "body": "second"})
        answer = response.json()
        assert response.status_code == answer["statusCode"] == 429
        assert answer["code"] == "TOO_MANY_REQUESTS" and answer["retryAfter"] >= 1
        assert response.headers["retry-after"] == str(answer["retryAfter"])
        page = await v1.ok("GET", f"/chat/{scene.bot_chat}/messages")
        assert [m["body"] for m in page["messages"]] == ["/start", "first"]


async def test_uploads_over_the_limit_are_413_and_store_nothing(
    strict_rest: str, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=strict_rest, timeout=30) as http:
        _, v1 = await _private(http, settings)
        over = await v1.refused("POST", "/files", files={"file": ("big.bin", b"x" * 2049)})
        assert over[:2] == (413, "FILE_TOO_LARGE") and "2048" in over[2]
        body = {"file": ("huge.bin", b"x" * (300 * 1024))}
        assert (await v1.refused("POST", "/files", files=body))[:2] == (413, "BODY_TOO_LARGE")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: streamed
            head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="s.bin"\r\n\r\n'
            yield head
            for _ in range(40):
                yield b"x" * 8192
            yield b"\r\n--b--\r\n"

        streamed = await v1.call(
            "POST",
            "/files",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert streamed.status_code == 413 and streamed.json()["code"] == "BODY_TOO_LARGE"
        fits = await v1.ok("POST", "/files", files={"file": ("ok.bin", b"x" * 2048)})
        assert fits[0]["size"] == 2048


async def test_requests_are_counted_by_route(strict_rest: str, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=strict_rest, timeout=30) as http:
        _, v1 = await _private(http, settings)
        await v1.ok("GET", "/bot")
        await v1.ok("GET", "/bot")
        await v1.refused("GET", "/chat/12345/messages")
        text = (await http.get("/metrics")).text
    counted = {
        (sample.labels["method"], sample.labels["status"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "botgw_rest_requests_total" and sample.labels.get("api") == "bot-api"
    }
    assert counted[("GET /bot", "200")] >= 2
    assert counted[("GET /chat/{id}/messages", "404")] >= 1
