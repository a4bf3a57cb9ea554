"""Users are bounded and loss is never silent: send limits, history bounds, gap markers,
Idempotency-Key, and long polls that re-authenticate. Real REST, gateway and webhook
processes against the test Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botgw.local_redis import LocalRedis
from shared import keys
from shared.settings import Settings
from shared.store import Store
from tests.api import (
    Account,
    BotAccount,
    Caller,
    bot_api,
    client_api,
    create_bot,
    create_user,
    manage_api,
)
from tests.conftest import (
    UNBOUNDED_USERS,
    Process,
    Stack,
    rest_process,
    running,
    unique,
    wait_s,
)
from tests.e2e.test_telegram_dialect import telegram_token
from tests.e2e.test_webhooks_receiver import Receiver, dispatcher
from tests.gwtools import open_raw, recv_frame

pytestmark = pytest.mark.asyncio


def _rest(redis_url: str, tmp: Path, name: str, *, bounded: bool = False, **env: str) -> Process:
    """A REST process; ``bounded``: with the users' send limits as shipped (the
    suite's processes have none, see ``tests.conftest.UNBOUNDED_USERS``)."""
    process = rest_process(redis_url, tmp, name, **env)
    if bounded:
        for name_ in UNBOUNDED_USERS:
            process.env.pop(name_)
    return process


@pytest.fixture(scope="module")
def small_log(
    redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """REST with a log cap of 100 updates per bot and no user limits (a flood)."""
    process = _rest(
        redis_server.url,
        tmp_path_factory.mktemp("small"),
        "rest-small-log",
        BOTGW_LOG_MAXLEN="100",
        BOTGW_CHAT_HISTORY_MAX_MESSAGES="50",
    )
    with running(process):
        yield process


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as client:
        yield client


async def _private_chat(
    settings: Settings, http: httpx.AsyncClient, prefix: str
) -> tuple[Account, BotAccount, Caller, Caller, str]:
    owner = await create_user(settings, unique(prefix))
    bot = await create_bot(settings, owner, unique(prefix) + "_bot")
    user = client_api(http, owner)
    chat = await user("startBot", username=bot.username)
    return owner, bot, user, bot_api(http, bot), str(chat["id"])


async def _flood(user: Caller, chat: str, count: int, prefix: str = "m") -> list[httpx.Response]:
    """``count`` sendMessage calls, 8 at a time, as fast as the server answers."""
    answers: list[httpx.Response] = []
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            n = queue.pop(0)
            answers.append(await user.raw("sendMessage", chat_id=chat, text=f"{prefix}{n}"))

    await asyncio.gather(*(worker() for _ in range(8)))
    return answers


async def _drain(bot: Caller, consumer: str, *, offset: int = 0) -> list[dict[str, Any]]:
    """Every update of ``consumer`` from ``offset`` on, confirming as it goes."""
    got: list[dict[str, Any]] = []
    while True:
        batch = await bot("getUpdates", consumer=consumer, offset=offset, timeout=0)
        if not batch:
            return got
        got.extend(batch)
        offset = int(batch[-1]["update_id"]) + 1


# -- send limits ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_limits(
    redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    """REST with the users' send limits as shipped."""
    process = _rest(
        redis_server.url, tmp_path_factory.mktemp("limits"), "rest-limits", bounded=True
    )
    with running(process):
        yield process


async def test_a_flooding_user_is_refused_before_a_bots_updates_are_at_risk(
    settings: Settings, default_limits: Process
) -> None:
    base = default_limits.url
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await _refused_past_the_limit(settings, http)


async def _refused_past_the_limit(settings: Settings, http: httpx.AsyncClient) -> None:
    _, _, user, bot, chat = await _private_chat(settings, http, "fl")
    started = time.monotonic()
    answers = await _flood(user, chat, 200)
    elapsed = time.monotonic() - started
    accepted = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 429]
    assert len(accepted) + len(refused) == 200
    # the burst, and what the rate refilled meanwhile (10/s): never the whole flood
    burst, rate = settings.client_rate_burst, settings.client_rate_per_second
    assert burst <= len(accepted) <= burst + rate * elapsed + 1
    body = refused[0].json()
    assert body["code"] == "TOO_MANY_REQUESTS" and body["parameters"]["retry_after"] >= 1
    assert refused[0].headers["retry-after"] == str(body["parameters"]["retry_after"])
    # what was accepted is all in the bot's log; what was refused was never stored
    texts = [u["message"]["text"] for u in await _drain(bot, "flood")]
    assert texts[1:] == sorted(
        (a.json()["result"]["text"] for a in accepted), key=lambda t: texts.index(t)
    )
    assert len(texts) == 1 + len(accepted)
    # reads are not limited, and after retry_after the user is let through again
    await user("getChatHistory", chat_id=chat, limit=5)
    await asyncio.sleep(body["parameters"]["retry_after"])
    assert (await user.raw("sendMessage", chat_id=chat, text="later")).status_code == 200


async def test_users_of_one_chat_share_its_limit(
    redis_server: LocalRedis, settings: Settings, tmp_path: Path
) -> None:
    rest = _rest(
        redis_server.url,
        tmp_path,
        "rest-chat-limit",
        BOTGW_CLIENT_RATE_PER_SECOND="1000",
        BOTGW_CLIENT_RATE_BURST="1000",
        BOTGW_CLIENT_CHAT_RATE_PER_SECOND="0.5",
        BOTGW_CLIENT_CHAT_RATE_BURST="6",
    ).start()
    try:
        rest.wait_healthy()
        async with httpx.AsyncClient(base_url=rest.url) as http:
            owner = await create_user(settings, unique("cl"))
            other = await create_user(settings, unique("cl"))
            alice, bob = client_api(http, owner), client_api(http, other)
            group = str((await alice("createGroup", title="limits"))["id"])
            await alice("addChatMember", chat_id=group, username=other.username)
            codes = []
            for n in range(5):
                for user in (alice, bob):
                    answer = await user.raw("sendMessage", chat_id=group, text=f"x{n}")
                    codes.append(answer.status_code)
            assert codes.count(200) == 6 and codes.count(429) == 4  # one bucket for both
            refused = await bob.raw("sendMessage", chat_id=group, text="again")
            assert "in this chat" in refused.json()["description"]
            # another chat of the same users is not held back
            solo = str((await bob("createGroup", title="mine"))["id"])
            assert (await bob.raw("sendMessage", chat_id=solo, text="hi")).status_code == 200
    finally:
        rest.stop()


# -- no silent loss ------------------------------------------------------------------


async def test_a_reader_that_fell_out_of_the_log_is_told_on_every_reader(
    stack: Stack,
    settings: Settings,
    store: Store,
    small_log: Process,
    tmp_path: Path,
) -> None:
    base = small_log.url
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        _, account, user, bot, chat = await _private_chat(settings, http, "gp")
        early = await bot("getUpdates", consumer="early", timeout=0)  # the /start
        confirmed = int(early[0]["update_id"])
        await bot("getUpdates", consumer="early", offset=confirmed + 1, timeout=0)
        epoch = await store.log.epoch(account.bot_id)
        assert epoch is not None
        answers = await _flood(user, chat, 400)
        assert all(a.status_code == 200 for a in answers)
        total = 401  # the /start and the flood
        info = await store.log.info(account.bot_id)
        assert info.length < total  # the cap trimmed the oldest updates

        # native getUpdates: a consumer that confirmed the /start, and a new one
        for consumer, confirmed_count, offset in (("early", 1, 0), ("fresh", 0, 0)):
            got = await _drain(bot, consumer, offset=offset)
            marker, updates = got[0], got[1:]
            gap = marker["gap"]
            assert gap["reason"] == "trimmed" and marker["update_id"] == gap["last_update_id"]
            assert int(gap["last_update_id"]) < int(updates[0]["update_id"])
            # exact: lost + read = every update it had not confirmed
            assert gap["count"] + len(updates) == total - confirmed_count, consumer
            assert all("message" in u for u in updates)
            assert int(updates[-1]["update_id"]) == info.newest
        # confirmed past the marker: the consumer is in the log again, no marker
        assert await bot("getUpdates", consumer="early", timeout=0) == []

        # the Telegram dialect stays silent, as Telegram is
        path = f"/bot{telegram_token(account.token)}/getUpdates"
        answer = (await http.post(path, json={"consumer": "tg", "limit": 100})).json()
        assert answer["ok"] and all("gap" not in u for u in answer["result"])
        assert "message" in answer["result"][0]

        # webhook (native): the marker comes first, delivered and confirmed like an update
        receiver = await Receiver().start()
        hooks = dispatcher(stack.redis_url, tmp_path, "hooks-gap").start()
        try:
            await bot("setWebhook", url=receiver.url("/g"))
            await receiver.wait_for(lambda: len(receiver.to("/g")) >= 1 + info.length)
            first, *rest = receiver.to("/g")
            gap = first.update["gap"]
            assert first.update_id == first.update["update_id"] == gap["last_update_id"]
            assert gap["count"] + len(rest) == total  # consumer default had confirmed none
            assert all("message" in d.update for d in rest)
            await bot("deleteWebhook")
        finally:
            hooks.stop()
            await receiver.stop()

    # the gateway: a cursor from before the trim gets its gap signal
    cursor = {"epoch": epoch, "update_id": str(confirmed)}
    ws, frame = await open_raw(stack.ws_url, account.token, cursor=cursor, consumer="gw")
    assert frame["op"] == "gap" and frame["reason"] == "retention"
    assert (await recv_frame(ws))["code"] == 4504
    await ws.close()


async def test_chat_history_is_capped(settings: Settings, store: Store, small_log: Process) -> None:
    base = small_log.url
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        owner = await create_user(settings, unique("hc"))
        user = client_api(http, owner)
        group = str((await user("createGroup", title="capped"))["id"])
        sent = [await user("sendMessage", chat_id=group, text=f"h{n}") for n in range(120)]
        held = await store.redis.hlen(keys.chat_messages(int(group)))
        assert held == 50  # BOTGW_CHAT_HISTORY_MAX_MESSAGES
        history = await user("getChatHistory", chat_id=group, limit=100)
        assert [m["text"] for m in history] == [f"h{n}" for n in range(70, 120)]
        oldest = history[0]["message_id"]
        assert oldest == sent[70]["message_id"]
        first = sent[0]["message_id"]
        too_old = await user.raw("editMessageText", chat_id=group, message_id=first, text="x")
        assert too_old.json()["code"] == "MESSAGE_NOT_FOUND"
        assert (await user("getChatHistory", chat_id=group, before=oldest)) == []


async def test_chat_history_retention_trims_the_hours_past_it(store: Store) -> None:
    """The retention of the chat write script, on a store set to keep one day."""
    kept = Store.connect(
        Settings.from_env({}, redis_url=store.settings.redis_url, chat_history_retention_days=1)
    )
    try:
        db = kept.entities
        from shared.models import MessageRecord

        chat_id = int(time.time() * 1000) % 1_000_000_000 + 10_000_000
        old = [
            (await db.add_message(MessageRecord(id=0, chat_id=chat_id, sender="u1", date=n))).id
            for n in range(5)
        ]
        hours = keys.chat_history_hours(chat_id)
        assert await kept.redis.zcard(hours) == 1
        # the hour these five were written in is moved back two days
        now_hour = int(time.time() // 3600)
        await kept.redis.delete(hours)
        await kept.redis.zadd(hours, {str(old[0]): now_hour - 48})
        await kept.redis.hdel(keys.chat_history(chat_id), "hour", "horizon")  # as an hour on
        new = await db.add_message(MessageRecord(id=0, chat_id=chat_id, sender="u1", date=9))
        assert [m.id for m in await db.get_message_range(chat_id, 1, 2**53)] == [new.id]
        assert await kept.redis.zcard(keys.chat_message_ids(chat_id)) == 1
        for key in (keys.chat_messages(chat_id), keys.chat_message_ids(chat_id)):
            ttl = await kept.redis.pttl(key)
            assert 86_400_000 < ttl <= 86_400_000 + 2 * 3_600_000  # idle chats expire whole
    finally:
        await kept.close()


# -- Idempotency-Key -----------------------------------------------------------------


async def test_a_retried_call_with_its_key_returns_the_first_result(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    owner, account, user, bot, chat = await _private_chat(settings, http, "ik")
    auth = {"Authorization": f"Bearer {owner.token}"}

    async def client_send(key: str, text: str) -> httpx.Response:
        return await http.post(
            "/client/sendMessage",
            json={"chat_id": chat, "text": text},
            headers={**auth, "Idempotency-Key": key},
        )

    first, again = await client_send("k-1", "once"), await client_send("k-1", "other text")
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    history = await user("getChatHistory", chat_id=chat, limit=10)
    assert [m["text"] for m in history].count("once") == 1
    assert "other text" not in [m["text"] for m in history]

    # the bot, in both dialects: one key, one message, the result in each dialect's ids
    bot_auth = {"Authorization": f"Bot {account.token}"}
    bot_chat = (await bot("getUpdates", consumer="ik", timeout=0))[0]["message"]["chat"]["id"]
    native = await http.post(
        "/bot/sendMessage",
        json={"chat_id": bot_chat, "text": "from the bot"},
        headers={**bot_auth, "Idempotency-Key": "b-1"},
    )
    telegram = await http.post(
        f"/bot{telegram_token(account.token)}/sendMessage",
        json={"chat_id": int(bot_chat), "text": "from the bot"},
        headers={"Idempotency-Key": "b-1"},
    )
    n, t = native.json()["result"], telegram.json()["result"]
    assert n["message_id"] == str(t["message_id"]) and isinstance(t["message_id"], int)
    texts = [m["text"] for m in await user("getChatHistory", chat_id=chat, limit=10)]
    assert texts.count("from the bot") == 1

    # a key of another method, a malformed key
    reused = await http.post(
        "/bot/sendChatAction",
        json={"chat_id": bot_chat, "action": "typing"},
        headers={**bot_auth, "Idempotency-Key": "b-1"},
    )
    assert (reused.status_code, reused.json()["code"]) == (400, "IDEMPOTENCY_KEY_REUSED")
    bad = await client_send("has space", "x")
    assert (bad.status_code, bad.json()["code"]) == (400, "INVALID_IDEMPOTENCY_KEY")
    # a call that failed wrote nothing and keeps nothing: its retry runs
    failed = await http.post(
        "/client/sendMessage",
        json={"chat_id": chat, "text": "x", "reply_to_message_id": "999999"},
        headers={**auth, "Idempotency-Key": "k-2"},
    )
    assert failed.json()["code"] == "MESSAGE_NOT_FOUND"
    assert (await client_send("k-2", "second try")).json()["result"]["text"] == "second try"
    # keys are per caller: another user's same key is another call
    other = await create_user(settings, unique("ik"))
    group = await client_api(http, other)("createGroup", title="g")
    theirs = await http.post(
        "/client/sendMessage",
        json={"chat_id": group["id"], "text": "theirs"},
        headers={"Authorization": f"Bearer {other.token}", "Idempotency-Key": "k-1"},
    )
    assert theirs.json()["result"]["text"] == "theirs"


# -- tokens stay revoked -------------------------------------------------------------


async def test_a_waiting_long_poll_re_authenticates_before_it_answers(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    owner, account, user, bot, chat = await _private_chat(settings, http, "lp")
    await _drain(bot, "lp")
    manage = manage_api(http, owner)

    poll = asyncio.create_task(bot.raw("getUpdates", consumer="lp", timeout=20))
    await asyncio.sleep(wait_s(0.5))
    rotated = await manage("rotateToken", bot_id=str(account.bot_id))
    await user("sendMessage", chat_id=chat, text="after the rotation")  # wakes the poll
    answer = await asyncio.wait_for(poll, wait_s(20))
    assert (answer.status_code, answer.json()["code"]) == (401, "UNAUTHORIZED")
    # the update the old token's poll did not hand out waits for the new token
    bot = bot_api(http, BotAccount(account.bot_id, account.username, rotated["token"]))
    texts = [u["message"]["text"] for u in await _drain(bot, "lp")]
    assert texts == ["after the rotation"]

    poll = asyncio.create_task(bot.raw("getUpdates", consumer="lp", timeout=20))
    await asyncio.sleep(wait_s(0.5))
    await manage("revokeBot", bot_id=str(account.bot_id))  # its announcement wakes the poll
    answer = await asyncio.wait_for(poll, wait_s(20))
    assert (answer.status_code, answer.json()["code"]) == (412, "BOT_INACTIVE")


async def test_a_request_over_the_socket_carries_its_idempotency_key(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    _, account, user, bot, chat = await _private_chat(settings, http, "iw")
    bot_chat = (await bot("getUpdates", consumer="iw", timeout=0))[0]["message"]["chat"]["id"]
    ws, ready = await open_raw(stack.ws_url, account.token, consumer="iw-ws")
    assert ready["op"] == "ready"
    results = []
    for request_id in ("r1", "r2"):  # the retry of a request whose result was lost
        await ws.send(
            json.dumps(
                {
                    "op": "request",
                    "id": request_id,
                    "method": "sendMessage",
                    "params": {"chat_id": bot_chat, "text": "over the socket"},
                    "idempotency_key": "ws-1",
                }
            )
        )
        while (frame := await recv_frame(ws))["op"] != "result":
            pass
        results.append(frame)
    await ws.close()
    assert results[0]["ok"] and results[0]["result"] == results[1]["result"]
    texts = [m["text"] for m in await user("getChatHistory", chat_id=chat, limit=10)]
    assert texts.count("over the socket") == 1
