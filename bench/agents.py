"""Agent load generator: many WebSocket connections in one process, checking every update.

``python -m bench.agents --control SOCK --name N`` connects back to the harness
and holds the connections it is told to open, as bots would: ``hello``,
``identify`` (with a cursor when it has one), ``ready``, then ``updates``
frames. It speaks the botgw protocol, which the bare ceiling server speaks too;
``bench.sio_agents`` holds the Socket.IO peer's clients.

Correctness is checked on every frame: each update's text is ``"<seq> <t_ns>"``
(a per-bot sequence number and the monotonic time of its append), so a
connection knows exactly which update comes next. Duplicates, gaps (lost
updates) and ids that do not increase are counted per connection.

All connections of a process usually receive the same frame bytes, so a frame is
parsed once per process (a bounded cache keyed by its bytes); each connection
then only checks that the frame continues where its last one ended.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import socket
import time
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from bench import wsclient
from bench.checks import Check, FrameSummary, summarize_updates
from bench.control import Handler, run_worker

__all__ = ["main"]

UPDATES_PREFIX = b'{"op":"updates"'
CACHE_LIMIT = 2048
MAX_ATTEMPTS = 50


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class Dropped(Exception):
    """The connection ended while a frame was expected."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"connection closed ({code})")
        self.code = code


@dataclass(eq=False)
class Conn:
    """One agent connection and its running check."""

    index: int
    bot: int
    token: str
    consumer: str
    check: Check
    epoch: str | None = None
    ws: Any = None  # a wsclient.RawWebSocket, or aiohttp's with compression
    ready_ns: int = 0
    resumes: int = 0
    attempts: int = 0
    failures: int = 0
    failed: str | None = None
    closes: dict[int, int] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class Agents:
    """The connections of this process and the commands the harness sends."""

    def __init__(self) -> None:
        self.conns: list[Conn] = []
        self.url = ""
        self.local_addr: str | None = None
        self.compression = False
        self.track_latency = False
        self.resume = False
        self.attempts = 1
        self.jitter = 0.5
        self.failures_at_drop = 0
        self.gate = asyncio.Semaphore(200)
        self.cache: dict[bytes, FrameSummary] = {}
        self.frames = 0
        self.first_ns = 0
        self.last_ns = 0
        self.latency_us: array[int] = array("q")
        self.heartbeat_s = 0.0
        self.stopping = False
        self.session: aiohttp.ClientSession | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        raise_nofile()

    # -- frames ---------------------------------------------------------------

    def summary(self, frame: bytes) -> FrameSummary:
        found = self.cache.get(frame)
        if found is None:
            if len(self.cache) >= CACHE_LIMIT:
                self.cache.clear()
            found = self.cache[frame] = summarize_updates(orjson.loads(frame)["updates"])
        return found

    def on_updates(self, conn: Conn, frame: bytes) -> None:
        now = time.monotonic_ns()
        summary = self.summary(frame)
        conn.check.feed(summary)
        self.frames += 1
        if not self.first_ns:
            self.first_ns = now
        self.last_ns = now
        if self.track_latency:
            for sent in summary.sent_ns:
                self.latency_us.append((now - sent) // 1000)

    # -- one connection -----------------------------------------------------------

    def _session(self) -> aiohttp.ClientSession:
        if self.session is None:
            local = (self.local_addr, 0) if self.local_addr else None
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, local_addr=local),
                timeout=aiohttp.ClientTimeout(total=None, connect=60),
            )
        return self.session

    async def _recv(self, ws: Any) -> bytes:
        message = await ws.receive()
        if message.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            data: bytes = message.data
            return data
        raise Dropped(ws.close_code)

    async def _open(self, conn: Conn) -> Any:
        headers = {"Authorization": f"Bot {conn.token}"}
        ws: Any
        if self.compression:  # permessage-deflate: aiohttp's client
            ws = await self._session().ws_connect(
                self.url,
                headers=headers,
                compress=15,
                autoping=True,
                max_msg_size=0,
                decode_text=False,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
            )
        else:
            local = (self.local_addr, 0) if self.local_addr else None
            ws = await wsclient.connect(self.url, headers=headers, local_addr=local)
        try:
            hello = orjson.loads(await self._recv(ws))
            if hello.get("op") != "hello":
                raise RuntimeError(f"expected hello, got {hello!r:.200}")
            self.heartbeat_s = hello.get("heartbeat_interval_ms", 30000) / 1000
            identify: dict[str, Any] = {"op": "identify", "consumer": conn.consumer}
            last = conn.check.last_id
            if conn.epoch is not None and last is not None:
                identify["cursor"] = {"epoch": conn.epoch, "update_id": str(last)}
            await ws.send_str(orjson.dumps(identify).decode())
            while True:
                frame = orjson.loads(await self._recv(ws))
                op = frame.get("op")
                if op == "ready":
                    conn.epoch = frame["epoch"]
                    if last is None:
                        conn.check.start_after(int(frame["cursor"]["update_id"]))
                    return ws
                if op == "close":
                    code, reason = frame.get("code"), frame.get("reason")
                    raise RuntimeError(f"closed at identify: {code} {reason}")
                if op != "heartbeat_ack":
                    raise RuntimeError(f"expected ready, got {frame!r:.200}")
        except BaseException:
            await ws.close()
            raise

    async def _receive(self, conn: Conn, ws: Any) -> None:
        while True:
            message = await ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                if message.type is aiohttp.WSMsgType.BINARY:
                    continue
                code = ws.close_code
                if code is not None:
                    conn.closes[code] = conn.closes.get(code, 0) + 1
                return
            frame: bytes = message.data
            if frame.startswith(UPDATES_PREFIX):
                self.on_updates(conn, frame)
                continue
            control = orjson.loads(frame)
            if control.get("op") == "close":
                code = int(control.get("code", 0))
                conn.closes[code] = conn.closes.get(code, 0) + 1

    async def run(self, conn: Conn) -> None:
        """Open, receive until the connection drops, resume when asked to."""
        while not self.stopping:
            conn.attempts += 1
            try:
                async with self.gate:
                    ws = await self._open(conn)
            except (OSError, aiohttp.ClientError, Dropped, RuntimeError, TimeoutError) as exc:
                conn.failed = f"{type(exc).__name__}: {exc}"[:300]
                conn.failures += 1
                if conn.attempts >= (MAX_ATTEMPTS if self.resume else self.attempts):
                    conn.ready.set()
                    return
                # jittered exponential backoff (docs/protocol.md, client guidance)
                delay = min(30.0, 0.5 * 2 ** min(conn.attempts, 6))
                await asyncio.sleep(random.uniform(0, delay))
                continue
            conn.ws = ws
            conn.failed = None
            conn.attempts = 0
            conn.ready_ns = time.monotonic_ns()
            conn.ready.set()
            try:
                await self._receive(conn, ws)
            finally:
                conn.ws = None
                if not ws.closed:
                    await ws.close()
            if not self.resume or self.stopping:
                return
            conn.resumes += 1
            await asyncio.sleep(random.uniform(0, self.jitter))

    async def _heartbeats(self) -> None:
        """Heartbeat every connection once per advertised interval, acking what it has."""
        while not self.stopping:
            interval = self.heartbeat_s or 30.0
            await asyncio.sleep(interval * 0.8)
            for i, conn in enumerate(tuple(self.conns)):
                ws = conn.ws
                if ws is None:
                    continue
                frame: dict[str, Any] = {"op": "heartbeat"}
                if conn.check.last_id is not None:
                    frame["ack"] = str(conn.check.last_id)
                with contextlib.suppress(ConnectionError, aiohttp.ClientError):
                    await ws.send_str(orjson.dumps(frame).decode())
                if i % 200 == 199:
                    await asyncio.sleep(0)

    # -- commands -------------------------------------------------------------------

    async def cmd_connect(self, p: dict[str, Any]) -> dict[str, Any]:
        self.url = p["url"]
        self.local_addr = p.get("local_addr")
        self.compression = bool(p.get("compression", False))
        self.track_latency = bool(p.get("latency", False))
        self.resume = bool(p.get("resume", False))
        self.attempts = int(p.get("attempts", 1))
        self.gate = asyncio.Semaphore(int(p.get("concurrency", 200)))
        started = time.monotonic()
        new = []
        for index, bot, token, consumer in p["conns"]:
            conn = Conn(index=index, bot=bot, token=token, consumer=consumer, check=Check())
            new.append(conn)
        self.conns.extend(new)
        for conn in new:
            conn.task = asyncio.get_running_loop().create_task(self.run(conn))
        await asyncio.wait_for(
            asyncio.gather(*(c.ready.wait() for c in new)), timeout=float(p.get("timeout", 120))
        )
        if self._heartbeat is None:
            self._heartbeat = asyncio.get_running_loop().create_task(self._heartbeats())
        failed = [c.failed for c in new if c.ws is None]
        return {
            "connected": len(new) - len(failed),
            "failed": len(failed),
            "retried": sum(c.failures for c in new),
            "errors": sorted(set(f for f in failed if f))[:5],
            "seconds": time.monotonic() - started,
        }

    async def cmd_mark(self, p: dict[str, Any]) -> None:
        self.frames = 0
        self.first_ns = 0
        self.last_ns = 0
        self.latency_us = array("q")
        self.track_latency = bool(p.get("latency", self.track_latency))

    async def cmd_stats(self, p: dict[str, Any]) -> dict[str, Any]:
        closes: dict[str, int] = {}
        for conn in self.conns:
            for code, count in conn.closes.items():
                closes[str(code)] = closes.get(str(code), 0) + count
        out: dict[str, Any] = {
            "conns": [
                [c.index, c.bot, *c.check.row(), c.resumes, c.ws is not None] for c in self.conns
            ],
            "frames": self.frames,
            "first_ns": self.first_ns,
            "last_ns": self.last_ns,
            "closes": closes,
            "errors": sorted(set(c.failed for c in self.conns if c.failed))[:5],
            "failures": sum(c.failures for c in self.conns) - self.failures_at_drop,
        }
        if p.get("latency"):
            out["latency_us"] = self.latency_us.tolist()
        return out

    async def cmd_wait(self, p: dict[str, Any]) -> dict[str, Any]:
        """Wait until every connection has seen the sequence its bot is expected to reach."""
        return await wait_expected(self.conns, p, lambda: self.last_ns)

    async def cmd_drop(self, p: dict[str, Any]) -> dict[str, Any]:
        """Abort every connection at once (a network blip); each one resumes."""
        self.resume = True
        self.jitter = float(p.get("jitter", 0.5))
        self.failures_at_drop = sum(c.failures for c in self.conns)
        dropped = 0
        now = time.monotonic_ns()
        for conn in self.conns:
            ws = conn.ws
            conn.ready.clear()
            sock = ws.get_extra_info("socket") if ws is not None else None
            if sock is not None:
                # both directions shut at once (on a duplicate of the descriptor: the
                # event loop's socket object does not offer shutdown)
                with (
                    contextlib.suppress(OSError),
                    socket.socket(fileno=os.dup(sock.fileno())) as raw,
                ):
                    raw.shutdown(socket.SHUT_RDWR)
                    dropped += 1
        return {"dropped": dropped, "drop_ns": now}

    async def cmd_wait_resumed(self, p: dict[str, Any]) -> dict[str, Any]:
        since = int(p["since_ns"])
        deadline = time.monotonic() + float(p.get("timeout", 60))
        while time.monotonic() < deadline:
            if all(c.ws is not None and c.ready_ns > since for c in self.conns):
                break
            await asyncio.sleep(0.01)
        resumed = [c.ready_ns for c in self.conns if c.ws is not None and c.ready_ns > since]
        return {
            "resumed": len(resumed),
            "total": len(self.conns),
            "last_ready_ns": max(resumed, default=0),
            # when each connection was back, for the resumption's shape over time
            "ready_after_ms": sorted(round((r - since) / 1e6, 1) for r in resumed),
            "failures": sum(c.failures for c in self.conns) - self.failures_at_drop,
        }

    async def cmd_close(self, p: dict[str, Any]) -> None:
        self.stopping = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        sockets = [c.ws for c in self.conns if c.ws is not None]
        for i in range(0, len(sockets), 500):
            await asyncio.gather(
                *(ws.close() for ws in sockets[i : i + 500]), return_exceptions=True
            )
        if self.session is not None:
            await self.session.close()
            self.session = None
        for conn in self.conns:
            if conn.task is not None:
                conn.task.cancel()
        await asyncio.gather(*(c.task for c in self.conns if c.task), return_exceptions=True)
        self.conns.clear()
        self.cache.clear()
        self.stopping = False
        self._heartbeat = None


async def wait_expected(
    conns: list[Any], p: dict[str, Any], last_ns: Callable[[], int]
) -> dict[str, Any]:
    """Poll until each receiver's ``check.next_seq`` reaches ``p["expected"][bot]``."""
    expected = {int(k): int(v) for k, v in p["expected"].items()}
    deadline = time.monotonic() + float(p.get("timeout", 60))
    done = False
    while time.monotonic() < deadline:
        if all(c.check.next_seq >= expected.get(c.bot, 0) for c in conns):
            done = True
            break
        await asyncio.sleep(0.02)
    behind = sum(1 for c in conns if c.check.next_seq < expected.get(c.bot, 0))
    return {"done": done, "behind": behind, "last_ns": last_ns()}


def handlers(args: argparse.Namespace) -> dict[str, Handler]:
    agents = Agents()
    return {
        "wait": agents.cmd_wait,
        "connect": agents.cmd_connect,
        "mark": agents.cmd_mark,
        "stats": agents.cmd_stats,
        "drop": agents.cmd_drop,
        "wait_resumed": agents.cmd_wait_resumed,
        "close": agents.cmd_close,
    }


def main() -> None:
    run_worker(handlers)


if __name__ == "__main__":
    main()
