"""SIGTERM of REST while long polls wait: each is answered at once with its normal
empty answer, nothing fails, ``/readyz`` says ``DRAINING`` meanwhile, and the
process exits within its grace period; with several workers, each drains its own.

The grace period is shorter than the polls' timeout, so a drain that left them
waiting would cut them (uvicorn cancels what runs past it, and the client gets an
error); the polls are awaited with a deadline shorter still.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from shared import keys
from shared.settings import Settings
from tests.api import BotAccount, create_bot, create_user
from tests.conftest import (
    Process,
    RedisServer,
    assert_json_log,
    rest_process,
    running,
    unique,
    wait_s,
)

pytestmark = pytest.mark.asyncio

GRACE = 30.0
POLL_TIMEOUT = 50


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    status_line = await reader.readline()
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    payload = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, json.loads(payload) if payload else None


async def request(
    port: int, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    """One HTTP/1.1 request on a connection of its own: (status, headers, JSON body).

    (One connection per poll: an httpx pool of 200 busy connections costs the test
    more bookkeeping than the server its work.)
    """
    data = b"" if body is None else json.dumps(body).encode()
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    if body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + b"\r\n" + data)
        await writer.drain()
        return await _read_response(reader)
    finally:
        writer.close()


class HeldRequest:
    """A ``getMe`` whose body is held back: running on the server (it has asked
    for the body: ``100 Continue``) until :meth:`finish` sends it."""

    def __init__(self, port: int, bot: BotAccount, request_id: str) -> None:
        self.port = port
        self.bot = bot
        self.request_id = request_id
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def start(self) -> HeldRequest:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        writer.write(
            (
                f"POST /bot/getMe HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Authorization: Bot {self.bot.token}\r\nX-Request-Id: {self.request_id}\r\n"
                "Content-Type: application/json\r\nContent-Length: 2\r\n"
                "Expect: 100-continue\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), wait_s(20))
        assert interim.startswith(b"HTTP/1.1 100"), interim
        self.streams = (reader, writer)
        return self

    async def finish(self) -> tuple[int, dict[str, str], Any]:
        assert self.streams is not None
        reader, writer = self.streams
        try:
            writer.write(b"{}")
            await writer.drain()
            return await asyncio.wait_for(_read_response(reader), wait_s(20))
        finally:
            writer.close()


async def _bots(settings: Settings, count: int) -> list[BotAccount]:
    owner = await create_user(settings, unique("drain"))
    return [await create_bot(settings, owner, unique("dr") + "_bot") for _ in range(count)]


def _polls(port: int, bots: list[BotAccount], per_bot: int) -> list[asyncio.Task[Any]]:
    """``per_bot`` polls of each bot, each on a consumer of its own (one reader per
    consumer); the first of each bot in Telegram's dialect, the others native."""
    tasks = []
    for bot in bots:
        for index in range(per_bot):
            body = {"timeout": POLL_TIMEOUT, "consumer": f"c{index}"}
            if index == 0:
                call = request(port, "POST", f"/bot{bot.token}/getUpdates", body)
            else:
                auth = {"Authorization": f"Bot {bot.token}"}
                call = request(port, "POST", "/bot/getUpdates", body, auth)
            tasks.append(asyncio.create_task(call))
    return tasks


async def _until_waiting(
    redis_url: str, bots: list[BotAccount], per_bot: int, polls: list[asyncio.Task[Any]]
) -> None:
    """Until every poll has started (its consumer's poll state is in Redis) and the
    process listens to every bot's wake-ups."""
    states = [keys.poll_state(b.bot_id, f"c{i}") for b in bots for i in range(per_bot)]
    channels = [keys.bot_wakeup_channel(b.bot_id) for b in bots]
    client = aioredis.Redis.from_url(redis_url)
    try:
        deadline = asyncio.get_running_loop().time() + wait_s(60)
        while asyncio.get_running_loop().time() < deadline:
            assert not any(p.done() for p in polls), [p.result() for p in polls if p.done()]
            started = sum([await client.exists(key) for key in states])
            listened = await client.pubsub_numsub(*channels)
            if started == len(states) and all(n >= 1 for _, n in listened):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{started} of {len(states)} polls started")
    finally:
        await client.aclose()


def _assert_answered_empty(answers: list[tuple[int, dict[str, str], Any]]) -> None:
    for status, headers, body in answers:
        assert status == 200, body
        assert body == {"ok": True, "result": []}
        assert headers.get("connection") == "close"  # the client goes elsewhere


def _errors_logged(log: Path) -> list[dict[str, Any]]:
    return [line for line in assert_json_log(log) if line["level"] in ("error", "critical")]


async def _exit_code(process: Process, timeout: float) -> int:
    assert process.proc is not None
    return await asyncio.to_thread(process.proc.wait, timeout)


@pytest.fixture
def rest(redis_server: RedisServer, tmp_path: Path) -> Iterator[Process]:
    process = rest_process(
        redis_server.url, tmp_path, "rest-drain", BOTGW_REST_DRAIN_SECONDS=str(GRACE)
    )
    with running(process):
        yield process


async def test_sigterm_answers_200_waiting_polls_and_exits_in_the_grace_period(
    rest: Process, settings: Settings, redis_server: RedisServer
) -> None:
    bots = await _bots(settings, 10)
    polls = _polls(rest.port, bots, 20)
    await _until_waiting(redis_server.url, bots, 20, polls)
    # a request running at the signal: the worker listens on until it is done
    held = await HeldRequest(rest.port, bots[0], "held-request-1").start()
    assert not any(p.done() for p in polls)

    rest.signal(signal.SIGTERM)
    # the signal is seen within a tick of uvicorn's loop: until then it is ready
    deadline = asyncio.get_running_loop().time() + wait_s(10)
    while True:
        status, headers, readiness = await request(rest.port, "GET", "/readyz")
        if status != 200 or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.02)
    assert status == 503 and readiness["code"] == "DRAINING", readiness
    assert re.fullmatch(r"[0-9a-f]{16}", headers["x-request-id"])  # made for it

    answers = await asyncio.wait_for(asyncio.gather(*polls), wait_s(20))
    assert len(answers) == 200
    _assert_answered_empty(answers)
    status, headers, me = await held.finish()
    assert status == 200 and me["result"]["id"] == str(bots[0].bot_id)  # native ids
    assert headers["x-request-id"] == "held-request-1"  # the client's own, kept

    assert await _exit_code(rest, GRACE) == 0
    assert _errors_logged(rest.log_path) == []


async def test_each_of_several_workers_drains_its_own_polls(
    redis_server: RedisServer, settings: Settings, tmp_path: Path
) -> None:
    process = rest_process(
        redis_server.url,
        tmp_path,
        "rest-drain-workers",
        "--workers",
        "2",
        BOTGW_REST_DRAIN_SECONDS=str(GRACE),
    )
    with running(process):
        bots = await _bots(settings, 4)
        polls = _polls(process.port, bots, 10)
        await _until_waiting(redis_server.url, bots, 10, polls)
        process.signal(signal.SIGTERM)
        answers = await asyncio.wait_for(asyncio.gather(*polls), wait_s(20))
        _assert_answered_empty(answers)
        assert await _exit_code(process, GRACE) == 0
    assert _errors_logged(process.log_path) == []
