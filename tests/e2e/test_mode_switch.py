"""One consumer read by all three readers in turn: WebSocket -> getUpdates ->
webhook -> WebSocket. Counts lost and repeated updates: none lost, and the only
repeats are updates that were delivered but not confirmed when the bot switched.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from shared.store import Store
from tests.conftest import Process, Stack, wait_s
from tests.e2e.test_getupdates_offsets import scene
from tests.e2e.test_walking_skeleton import connect, receive_updates, wait_committed
from tests.e2e.test_webhooks_receiver import Receiver, settled

pytestmark = pytest.mark.asyncio


def text(update: dict[str, Any]) -> str:
    return str(update["message"]["text"])


async def reader_gone(store: Store, bot_id: int) -> None:
    for _ in range(int(wait_s(200))):
        if await store.log.reader(bot_id, "default") is None:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the WebSocket still holds consumer default")


async def test_websocket_polling_webhook_websocket_lose_nothing_repeat_only_unconfirmed(
    hooks: Process,
    stack: Stack,
    settings: Settings,
    store: Store,
    receiver: Receiver,
) -> None:
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        s = await scene(stack, settings, http)
        token = s.as_bot.auth.split(" ", 1)[1]
        received: list[tuple[str, str]] = []  # (reader, text) in arrival order
        unconfirmed_at_switch: list[str] = []

        # 1. WebSocket: everything arrives; acks stop at w6, so w7..w10 are unconfirmed
        ws = await connect(stack, token)
        await s.say(*[f"w{i}" for i in range(1, 11)])
        updates = await receive_updates(ws, 11)
        received += [("ws", text(u)) for u in updates]
        acked = next(u for u in updates if text(u) == "w6")
        await ws.send(json.dumps({"op": "ack", "update_id": acked["update_id"]}))
        await ws.close()
        await wait_committed(store, s.bot_id, "default", int(acked["update_id"]))
        await reader_gone(store, s.bot_id)
        unconfirmed_at_switch += ["w7", "w8", "w9", "w10"]

        # 2. getUpdates: starts after the last ack; confirms up to p3, not p4 and p5
        await s.say(*[f"p{i}" for i in range(1, 6)])
        first = await s.poll(limit=7)
        second = await s.poll(offset=int(first[-1]["update_id"]) + 1)
        received += [("poll", text(u)) for u in first + second]
        unconfirmed_at_switch += ["p4", "p5"]

        # 3. webhook: starts with what the poller had not confirmed
        assert await s.as_bot("setWebhook", url=receiver.url("/switch")) is True
        await s.say(*[f"h{i}" for i in range(1, 6)])
        await receiver.wait_for(lambda: "h5" in [d.text for d in receiver.deliveries])
        await settled(s)
        received += [("webhook", d.text) for d in receiver.deliveries]
        assert await s.as_bot("deleteWebhook") is True

        # 4. WebSocket again, no cursor: after the last update the receiver confirmed
        await s.say("x1", "x2", "x3")
        ws = await connect(stack, token)
        updates = await receive_updates(ws, 3)
        received += [("ws", text(u)) for u in updates]
        await ws.close()

    sent = (
        ["/start"]
        + [f"w{i}" for i in range(1, 11)]
        + [f"p{i}" for i in range(1, 6)]
        + [f"h{i}" for i in range(1, 6)]
        + ["x1", "x2", "x3"]
    )
    counts = Counter(t for _, t in received)
    lost = [t for t in sent if counts[t] == 0]
    repeated = sorted(t for t, n in counts.items() if n > 1)
    print(
        f"\nmode switch: {len(sent)} sent, {len(received)} received, lost {lost}, "
        f"repeated {repeated}"
    )
    assert lost == []
    assert repeated == sorted(unconfirmed_at_switch)
    assert all(counts[t] == 2 for t in repeated)
    assert set(counts) == set(sent)  # nothing that was never sent
    for reader in ("ws", "poll", "webhook"):  # each reader saw its part in log order
        mine = [t for r, t in received if r == reader]
        assert mine == sorted(mine, key=sent.index), (reader, mine)
