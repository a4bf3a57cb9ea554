"""The peer's agents: python-socketio clients, checked like the botgw agents.

``python -m bench.sio_agents --control SOCK --name N``; each event carries one
update (``update_id`` and a message whose text is ``"<seq> <t_ns>"``).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from array import array
from dataclasses import dataclass
from typing import Any

import aiohttp
import socketio  # type: ignore[import-untyped, unused-ignore]

from bench.agents import raise_nofile, wait_expected
from bench.checks import Check, parse_text
from bench.control import Handler, run_worker

__all__ = ["main"]


@dataclass(eq=False)
class SioConn:
    index: int
    bot: int
    check: Check
    client: socketio.AsyncClient | None = None


class SioAgents:
    def __init__(self) -> None:
        self.conns: list[SioConn] = []
        self.session: aiohttp.ClientSession | None = None
        self.track_latency = False
        self.frames = 0
        self.first_ns = 0
        self.last_ns = 0
        self.latency_us: array[int] = array("q")
        raise_nofile()

    def _on_update(self, conn: SioConn, update: dict[str, Any]) -> None:
        now = time.monotonic_ns()
        seq, sent = parse_text(update.get("message", {}).get("text"))
        conn.check.feed_one(int(update["update_id"]), seq)
        self.frames += 1
        if not self.first_ns:
            self.first_ns = now
        self.last_ns = now
        if self.track_latency and sent:
            self.latency_us.append((now - sent) // 1000)

    async def _open(self, conn: SioConn, url: str, gate: asyncio.Semaphore) -> str | None:
        client = socketio.AsyncClient(reconnection=False, http_session=self.session)

        async def on_updates(data: dict[str, Any]) -> None:
            self._on_update(conn, data)

        client.on("updates", on_updates)
        try:
            async with gate:
                await client.connect(
                    url, transports=["websocket"], auth={"bot": conn.bot}, wait_timeout=60
                )
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        conn.client = client
        return None

    async def cmd_connect(self, p: dict[str, Any]) -> dict[str, Any]:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, force_close=False)
            )
        self.track_latency = bool(p.get("latency", False))
        gate = asyncio.Semaphore(int(p.get("concurrency", 100)))
        started = time.monotonic()
        new = [SioConn(index=i, bot=int(bot), check=Check()) for i, bot, *_ in p["conns"]]
        self.conns.extend(new)
        errors = await asyncio.gather(*(self._open(c, p["url"], gate) for c in new))
        failed = [e for e in errors if e]
        return {
            "connected": len(new) - len(failed),
            "failed": len(failed),
            "retried": 0,
            "errors": sorted(set(failed))[:5],
            "seconds": time.monotonic() - started,
        }

    async def cmd_mark(self, p: dict[str, Any]) -> None:
        self.frames = 0
        self.first_ns = 0
        self.last_ns = 0
        self.latency_us = array("q")
        self.track_latency = bool(p.get("latency", self.track_latency))

    async def cmd_wait(self, p: dict[str, Any]) -> dict[str, Any]:
        return await wait_expected(self.conns, p, lambda: self.last_ns)

    async def cmd_stats(self, p: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {
            "conns": [
                [c.index, c.bot, *c.check.row(), 0, c.client is not None and c.client.connected]
                for c in self.conns
            ],
            "frames": self.frames,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "closes": {},
            "errors": [],
        }
        if p.get("latency"):
            out["latency_us"] = self.latency_us.tolist()
        return out

    async def cmd_close(self, p: dict[str, Any]) -> None:
        clients = [c.client for c in self.conns if c.client is not None]
        for i in range(0, len(clients), 200):
            await asyncio.gather(*(c.disconnect() for c in clients[i : i + 200]))
        self.conns.clear()
        if self.session is not None:
            await self.session.close()
            self.session = None


def handlers(args: argparse.Namespace) -> dict[str, Handler]:
    agents = SioAgents()
    return {
        "connect": agents.cmd_connect,
        "mark": agents.cmd_mark,
        "wait": agents.cmd_wait,
        "stats": agents.cmd_stats,
        "close": agents.cmd_close,
    }


def main() -> None:
    run_worker(handlers)


if __name__ == "__main__":
    main()
