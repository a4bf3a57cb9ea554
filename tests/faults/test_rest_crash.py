"""REST SIGKILLed under client sendMessage load: every stored message reaches every
recipient's log exactly once (0 orphans, 0 duplicates), counted.

Three bots (privacy off) in one group and one bot in a private chat; eight users'
senders write as fast as REST answers while REST is killed and restarted ten
times. A send that failed is retried with the same ``Idempotency-Key``.
Afterwards each stored user message is looked up in each recipient's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from botgw.local_redis import LocalRedis
from shared.codecs import unpack
from shared.settings import Settings
from shared.store import Store
from tests.api import Account, BotAccount, create_bot, create_user, manage_api
from tests.conftest import Process, rest_process, unique, wait_s

pytestmark = pytest.mark.asyncio

KILLS = 10
SENDERS = 8


def _rest(redis: LocalRedis, tmp: Path) -> Process:
    # full speed (no users' send limits in tests): the kills land mid-write
    return rest_process(redis.url, tmp, "rest-crash")


async def _post(http: httpx.AsyncClient, token: str, method: str, **params: object) -> Any:
    response = await http.post(
        f"/client/{method}", json=params, headers={"Authorization": f"Bearer {token}"}
    )
    body = response.json()
    assert body["ok"], body
    return body["result"]


async def _log_messages(store: Store, bot_id: int) -> Counter[tuple[int, int]]:
    """(chat id as the bot sees it, message id) of every message update in a log."""
    found: Counter[tuple[int, int]] = Counter()
    after = 0
    while True:
        entries = await store.log.read_after(bot_id, after, 1000)
        if not entries:
            return found
        for entry in entries:
            message = unpack(entry.payload).get("message")
            if message is not None:
                found[(int(message["chat"]["id"]), int(message["message_id"]))] += 1
        after = entries[-1].update_id


async def test_rest_sigkilled_under_load_leaves_no_orphan_and_no_duplicate(
    redis_server: LocalRedis, settings: Settings, store: Store, tmp_path: Path
) -> None:
    rest = _rest(redis_server, tmp_path)
    rest.start()
    rest.wait_healthy()
    owner = await create_user(settings, unique("crash"))
    users: list[Account] = [await create_user(settings, unique("crash")) for _ in range(SENDERS)]
    bots: list[BotAccount] = [
        await create_bot(settings, owner, unique("crash") + "_bot") for _ in range(4)
    ]
    base = f"http://127.0.0.1:{rest.port}"
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        manage = manage_api(http, owner)
        for bot in bots:
            await manage("editBot", bot_id=str(bot.bot_id), privacy_mode=False)
        group = await _post(http, owner.token, "createGroup", title="crash")
        members: list[Account | BotAccount] = [*users, *bots[:3]]
        for account in members:
            await _post(
                http, owner.token, "addChatMember", chat_id=group["id"], username=account.username
            )
        private = await _post(http, users[0].token, "startBot", username=bots[3].username)

    acked: set[str] = set()  # keys answered 200
    unanswered: set[str] = set()  # keys still being retried when the load stopped
    stop = asyncio.Event()

    async def sender(n: int) -> None:
        user = users[n]
        chat = private["id"] if n == 0 else group["id"]
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            i = 0
            while not stop.is_set():
                key = f"s{n}-{i}"
                while not stop.is_set():  # retried with the same key until it answers
                    with contextlib.suppress(httpx.HTTPError, ValueError):
                        response = await http.post(
                            "/client/sendMessage",
                            json={"chat_id": chat, "text": key},
                            headers={
                                "Authorization": f"Bearer {user.token}",
                                "Idempotency-Key": key,
                            },
                        )
                        if response.status_code == 200:
                            acked.add(key)
                            break
                    await asyncio.sleep(0.05)
                else:
                    unanswered.add(key)
                i += 1

    tasks = [asyncio.create_task(sender(n)) for n in range(SENDERS)]
    left = 0  # outbox entries a kill left behind (stored, not yet in every log)
    try:
        for _ in range(KILLS):
            await asyncio.sleep(random.uniform(0.3, 0.8))
            rest.kill()
            for chat_id in (int(group["id"]), int(private["id"])):
                left += await store.outbox.pending_count(chat_id)
            rest.start()
            await asyncio.to_thread(rest.wait_healthy)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.gather(*tasks)

    # what the crashes left in outboxes is appended by the restarted REST's replay
    group_id, private_id = int(group["id"]), int(private["id"])
    deadline = time.monotonic() + wait_s(40)
    while True:
        orphans, duplicates, texts = await _count(store, bots, group_id, private_id)
        # an entry appended everywhere whose removal a kill cut short is removed by
        # the replay too (once it is older than the replay's age)
        pending = [await store.outbox.pending_count(c) for c in (group_id, private_id)]
        if (orphans == 0 and pending == [0, 0]) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    rest.stop()
    del texts["/start"]  # startBot's
    stored = sum(texts.values())
    twice = sum(n - 1 for n in texts.values() if n > 1)  # one Idempotency-Key stored twice
    print(
        f"rest crash: kills={KILLS} acknowledged={len(acked)} stored={stored} "
        f"unanswered={len(unanswered)} left by kills={left} orphans={orphans} "
        f"duplicates={duplicates} stored twice={twice}"
    )
    assert len(acked) > 100
    assert orphans == 0 and duplicates == 0
    # every acknowledged call stored exactly once, retries included; nothing else stored
    # but the calls whose retries the end of the load cut short
    assert twice == 0 and acked <= set(texts) <= acked | unanswered
    assert pending == [0, 0]


async def _count(
    store: Store, bots: list[BotAccount], group_id: int, private_id: int
) -> tuple[int, int, Counter[str]]:
    """(orphans, duplicates) over every recipient's log, and how often each text
    (each call's Idempotency-Key) is stored."""
    db = store.entities
    orphans = duplicates = 0
    texts: Counter[str] = Counter()
    for chat_id, recipients in ((group_id, bots[:3]), (private_id, bots[3:])):
        last = await db.last_message_id(chat_id)
        messages = [m for m in await db.get_message_range(chat_id, 1, last) if m.sender[0] == "u"]
        texts.update(m.text or "" for m in messages)
        for bot in recipients:
            seen = await _log_messages(store, bot.bot_id)
            by_id = Counter({mid: n for (_, mid), n in seen.items()})
            for message in messages:
                count = by_id.get(message.id, 0)
                orphans += count == 0
                duplicates += max(0, count - 1)
    return orphans, duplicates, texts
