"""1 000 concurrent long polls on one REST worker, each woken by its own bot's update.

The module runs its own redis-server and REST process: every command of the
process goes over its one pipelined connection, wake-ups over its one subscription,
and neither grows with load. The worker's connections to Redis are counted from the operating
system's view of its sockets (Linux /proc) while the polls start, wait and wake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from botgw.admin import messenger_session
from botgw.local_redis import LocalRedis
from shared import keys
from shared.settings import Settings
from tests.conftest import (
    Process,
    make_settings,
    rest_process,
    running,
    unique,
    wait_s,
)

pytestmark = pytest.mark.asyncio

POLLS = 1000


@dataclass
class Worker:
    redis: LocalRedis
    rest: Process
    settings: Settings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest.port}"


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("thousand")
    redis = LocalRedis(directory=tmp / "redis", appendonly=False).start()
    try:
        rest = rest_process(redis.url, tmp, "rest-thousand")
        with running(rest):
            yield Worker(redis, rest, make_settings(redis.url))
    finally:
        redis.stop()


def redis_connections(pid: int, redis_port: int) -> int:
    """Established TCP connections from process ``pid`` to the Redis port (Linux /proc)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            link = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].rsplit(":", 1)[1], 16)
            if remote_port == redis_port and fields[3] == "01" and fields[9] in inodes:
                count += 1
    return count


class ConnectionSampler:
    """Samples the REST worker's Redis connections, and Redis's own client count."""

    def __init__(self, worker: Worker) -> None:
        assert worker.rest.proc is not None
        self.pid = worker.rest.proc.pid
        self.port = worker.redis.port
        self.client = aioredis.Redis.from_url(worker.redis.url, single_connection_client=True)
        self.peak = 0  # the worker's connections
        self.peak_server = 0  # every client Redis sees, but the sampler
        self.samples = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    async def _run(self) -> None:
        # it ends between samples when told to, never cancelled inside a command
        while not self._stopping.is_set():
            used = await asyncio.to_thread(redis_connections, self.pid, self.port)
            info = await self.client.info("clients")
            self.peak = max(self.peak, used)
            self.peak_server = max(self.peak_server, int(info["connected_clients"]) - 1)
            self.samples += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), 0.02)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, wait_s(30))
        await asyncio.wait_for(self.client.aclose(), wait_s(30))


async def post_json(port: int, path: str, body: Any, authorization: str) -> tuple[int, Any]:
    """One HTTP/1.1 POST on its own connection; (status, decoded JSON body).

    (httpx keeps one pool per client: a pool of 1 000 busy connections costs the
    test quadratic bookkeeping, and 1 000 clients cost a TLS context each.)
    """
    data = json.dumps(body).encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: {authorization}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()
        status_line = await reader.readline()
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        payload = await reader.readexactly(length)
        return int(status_line.split()[1]), json.loads(payload)
    finally:
        writer.close()


@pytest.fixture
async def sampler(worker: Worker) -> AsyncIterator[ConnectionSampler]:
    sampler = ConnectionSampler(worker)
    yield sampler
    await sampler.stop()


async def test_one_thousand_long_polls_wake_on_their_bots_updates_with_a_bounded_pool(
    worker: Worker, sampler: ConnectionSampler
) -> None:
    phases: dict[str, float] = {}  # how long each step took, printed (not asserted)
    mark = time.monotonic()
    async with messenger_session(worker.settings) as messenger:
        user, user_token = await messenger.accounts.create_user(unique("many"))
        creating = asyncio.Semaphore(20)

        async def create() -> tuple[Any, str]:
            async with creating:
                return await messenger.accounts.create_bot(
                    user, username=unique("k") + "_bot", name="Poll Bot"
                )

        bots = await asyncio.gather(*(create() for _ in range(POLLS)))
    phases["bots created"] = time.monotonic() - mark

    sampler.start()
    async with httpx.AsyncClient(base_url=worker.url, timeout=wait_s(60)) as users:

        async def poll(token: str) -> tuple[int, Any]:
            return await post_json(
                worker.rest.port, "/bot/getUpdates", {"timeout": 60}, f"Bot {token}"
            )

        tasks = [asyncio.create_task(poll(token)) for _, token in bots]
        channels = [keys.bot_wakeup_channel(bot.id) for bot, _ in bots]
        # wait until every poll is waiting on its bot's wake-up channel
        for _ in range(int(wait_s(1200))):
            counts = await sampler.client.pubsub_numsub(*channels)
            if all(n >= 1 for _, n in counts):
                break
            assert not any(t.done() for t in tasks), "a poll answered before any update"
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the polls never all subscribed")
        assert not any(t.done() for t in tasks)
        phases["polls waiting"] = time.monotonic() - mark - sum(phases.values())

        began = time.monotonic()
        gate = asyncio.Semaphore(20)

        async def start(username: str) -> None:
            async with gate:
                response = await users.post(
                    "/client/startBot",
                    json={"username": username},
                    headers={"Authorization": f"Bearer {user_token}"},
                )
                assert response.status_code == 200, response.text

        await asyncio.gather(*(start(bot.username) for bot, _ in bots))
        phases["bots started"] = time.monotonic() - began
        responses = await asyncio.wait_for(asyncio.gather(*tasks), wait_s(120))
        woke_in = time.monotonic() - began

    for status, body in responses:
        assert status == 200, body
        updates = body["result"]
        assert len(updates) == 1 and updates[0]["message"]["text"] == "/start"
    assert sampler.samples > 0
    fixed = 2  # the pipelined connection and the wake-up subscription
    assert 0 < sampler.peak <= fixed, f"{sampler.peak} connections (expected at most {fixed})"
    steps = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in phases.items())
    print(
        f"\n{steps}; {POLLS} long polls woken in {woke_in:.2f} s; "
        f"the worker's peak Redis connections "
        f"{sampler.peak} (Redis saw at most {sampler.peak_server} clients "
        f"including the test's own; {sampler.samples} samples)"
    )
