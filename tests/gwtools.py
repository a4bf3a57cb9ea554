"""Helpers for gateway tests: bots with an update log, raw socket sessions, counting."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from shared.codecs import unpack
from shared.settings import Settings
from shared.store import Store
from tests.api import BotAccount, create_bot, create_user
from tests.conftest import unique, wait_s


async def new_bot(settings: Settings, prefix: str = "g") -> BotAccount:
    owner = await create_user(settings, unique("own"))
    return await create_bot(settings, owner, unique(prefix) + "_bot")


async def ingest(store: Store, bot_id: int, seq: int, *, chat_id: int = 1, size: int = 0) -> int:
    """Append one message update carrying ``seq`` (the ingress write path)."""
    body = {
        "message": {
            "message_id": seq,
            "chat": {"id": chat_id, "type": "private"},
            "date": 0,
            "text": str(seq) + ("." * size),
        }
    }
    result = await store.log.append(bot_id, kind="message", chat_id=chat_id, body=body)
    return result.update_id


async def http_get(url: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=wait_s(10)) as http:
        return await http.get(url)


def seq_of(update: dict[str, Any]) -> int:
    return int(update["message"]["text"].split(".")[0])


async def open_raw(
    url: str, token: str, *, max_queue: int | None = 16, **identify: Any
) -> tuple[ClientConnection, dict[str, Any]]:
    """A raw socket after identify; returns it and the ready (or first non-hello) frame."""
    ws = await websockets.connect(
        url,
        additional_headers={"Authorization": f"Bot {token}"},
        max_queue=max_queue,
        max_size=16 * 1024 * 1024,
    )
    hello = await recv_frame(ws)
    assert hello["op"] == "hello"
    await ws.send(json.dumps({"op": "identify", **identify}))
    return ws, await recv_frame(ws)


async def recv_frame(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    data = await asyncio.wait_for(ws.recv(), timeout=wait_s(timeout))
    value = json.loads(data) if isinstance(data, str) else unpack(data)
    assert isinstance(value, dict)
    return value


async def collect(ws: ClientConnection, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < count:
        frame = await recv_frame(ws, timeout)
        if frame["op"] == "updates":
            out.extend(frame["updates"])
    return out


@dataclass
class Tally:
    """What an agent's application saw: per-bot sequences, counted for loss and order."""

    seen: dict[int, list[int]] = field(default_factory=dict)

    def add(self, bot_id: int, seq: int) -> None:
        self.seen.setdefault(bot_id, []).append(seq)

    def report(self, expected: dict[int, int]) -> dict[str, int]:
        lost = duplicated = reordered = 0
        for bot_id, count in expected.items():
            got = self.seen.get(bot_id, [])
            lost += len(set(range(1, count + 1)) - set(got))
            duplicated += len(got) - len(set(got))
            reordered += sum(1 for a, b in itertools.pairwise(got) if b <= a)
        return {"lost": lost, "duplicated": duplicated, "reordered": reordered}
