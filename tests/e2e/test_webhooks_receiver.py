"""A real webhook receiver for the webhook tests, and dispatcher processes.

``Receiver`` is a small HTTP/1.1 server on 127.0.0.1 (asyncio streams, keep-alive)
that records every request and answers as told: ``ok`` (200), ``500``, ``hang``
(never answers), ``reset`` (closes the connection with a TCP reset), ``redirect``
(302 elsewhere) or ``slow`` (200 after ``slow_s``). A 200 carries the body and
content type ``reply(delivery)`` gives, if it is set and gives one (a webhook
reply), else ``ok`` as text.

``dispatcher`` makes a ``botgw webhooks`` process serving ``/healthz``, ``/readyz``
and ``/metrics`` on a port of its own; ``scrape`` reads its metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from botgw.local_redis import free_port
from tests.conftest import Process, process_env, wait_s

if TYPE_CHECKING:
    from tests.e2e.test_getupdates_offsets import Scene

FAST_RETRIES = "0.2,0.4,0.8"
RETRY_DELAYS = (0.2, 0.4, 0.8)
TIMEOUT_S = 1.0


@dataclass
class Delivery:
    """One request the receiver got."""

    at: float  # monotonic time it arrived
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    answer: str  # how the receiver answered it

    @property
    def update(self) -> dict[str, Any]:
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value

    @property
    def update_id(self) -> str:
        return self.headers["x-botgw-update-id"]

    @property
    def text(self) -> str:
        message = self.update.get("message") or {}
        return str(message.get("text", ""))


@dataclass
class Receiver:
    """The HTTP server; ``mode`` (or ``plan(path)``) decides each answer."""

    mode: str = "ok"
    slow_s: float = 0.2
    plan: Callable[[str], str] | None = None
    reply: Callable[[Delivery], tuple[str, bytes] | None] | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in tuple(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def to(self, path: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.path == path]

    async def wait_for(
        self, check: Callable[[], bool], timeout: float = 30.0, what: str = "deliveries"
    ) -> None:
        """Wait until ``check()`` holds (re-checked after every request)."""
        deadline = time.monotonic() + wait_s(timeout)
        while not check():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"timed out waiting for {what}: got {self.summary()}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def summary(self) -> list[tuple[str, str, str]]:
        return [(d.path, d.answer, d.text) for d in self.deliveries[-30:]]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request_line = await reader.readline()
        if not request_line:
            return False
        _, path, _ = request_line.decode().split(" ", 2)
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        answer = self.plan(path) if self.plan is not None else self.mode
        delivery = Delivery(time.monotonic(), path, headers, body, answer)
        self.deliveries.append(delivery)
        self._changed.set()
        if answer == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if answer == "hang":
            await reader.read()  # until the dispatcher gives up and closes
            return False
        if answer == "redirect":
            self._write(writer, 302, b"", extra=f"Location: {self.url('/elsewhere')}\r\n")
        elif answer == "500":
            self._write(writer, 500, b"broken")
        else:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                if answer == "slow":
                    await asyncio.sleep(self.slow_s)
            finally:
                self.in_flight -= 1
            given = self.reply(delivery) if self.reply is not None else None
            content_type, content = given if given is not None else ("text/plain", b"ok")
            self._write(writer, 200, content, content_type=content_type)
        await writer.drain()
        return True

    @staticmethod
    def _write(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        extra: str = "",
        content_type: str = "text/plain",
    ) -> None:
        reason = {200: "OK", 302: "Found", 500: "Internal Server Error"}[status]
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: {content_type}\r\n{extra}\r\n"
        )
        writer.write(head.encode() + body)


def dispatcher(redis_url: str, tmp: Path, name: str, **env: str) -> Process:
    """A ``botgw webhooks`` process with fast retries (not started), its health and
    metrics on a free port."""
    settings = {
        "BOTGW_WEBHOOK_RETRY_DELAYS": FAST_RETRIES,
        "BOTGW_WEBHOOK_TIMEOUT": str(TIMEOUT_S),
        **env,
    }
    port = free_port()
    return Process(
        name=name,
        args=["webhooks", "--log-level", "info", "--host", "127.0.0.1", "--port", str(port)],
        env=process_env(redis_url, **settings),
        log_path=tmp / f"{name}.log",
        port=port,
    )


async def scrape(process: Process) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A process's ``/metrics``: value by (sample name, sorted labels)."""
    async with httpx.AsyncClient(timeout=wait_s(10)) as client:
        answer = await client.get(f"{process.url}/metrics")
    answer.raise_for_status()
    out = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


async def webhook_info(s: Scene, check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """getWebhookInfo once ``check`` holds for it."""
    info: dict[str, Any] = {}
    for _ in range(int(wait_s(300))):
        info = await s.as_bot("getWebhookInfo")
        if check(info):
            return info
        await asyncio.sleep(0.05)
    raise AssertionError(f"getWebhookInfo never got there: {info}")


async def settled(s: Scene, pending: int = 0) -> dict[str, Any]:
    """getWebhookInfo once pending_update_count reaches ``pending``."""
    return await webhook_info(s, lambda info: info["pending_update_count"] == pending)
