"""What idle sockets cost Redis: commands counted by Redis itself (INFO commandstats).

A real redis-server (one node, or a local 3-primary cluster) of this module's own,
so nothing but the gateway workers started here talks to it; real gateway
processes; real WebSocket clients that identify and then stay quiet. After the
sockets are ready the counters are reset (CONFIG RESETSTAT), the test waits a
fixed window and reads what the workers sent meanwhile.

The periodic work of an idle worker is per bot it serves, never per connection
(docs/operations.md, Redis cost model); with the intervals of :data:`INTERVALS`
and a window of ``W`` seconds, the commands a worker may send are at most

    bound(bots) = CONSTANT + bots * sum(ceil(W / period) + 1 for each per-bot term)

the per-bot terms being the slow head sweep (``Hub._sweep``: one XREVRANGE a bot),
the reader-lease renewal (``Worker._reader_loop``: one SET a bot) and the
credentials recheck (``Worker._credentials_loop``: one HMGET a bot). The counts
are what Redis executed, not a timing: a slower machine sends no more of them.
"""

from __future__ import annotations

import asyncio
import math
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection

from botgw.local_redis import LocalRedis, free_port
from shared.settings import Settings
from shared.store import Store
from tests.api import BotAccount
from tests.conftest import Process, make_settings, process_env, wait_s
from tests.gwtools import collect, ingest, new_bot, open_raw, seq_of
from tests.topologies import LocalCluster, require_redis_7

# short periods, so that a window of a few seconds holds several of each
INTERVALS = {
    "BOTGW_WS_WAKEUP_SWEEP_SECONDS": 2.0,
    "BOTGW_WS_READER_TTL_SECONDS": 6.0,  # renewed every third of it
    "BOTGW_WS_CREDENTIALS_RECHECK_SECONDS": 2.0,
}
PERIODS = (
    INTERVALS["BOTGW_WS_WAKEUP_SWEEP_SECONDS"],
    INTERVALS["BOTGW_WS_READER_TTL_SECONDS"] / 3,
    INTERVALS["BOTGW_WS_CREDENTIALS_RECHECK_SECONDS"],
)
WINDOW_S = 6.0
# the backlog exporter measures every consumer of every bot, on one worker of all
# (docs/operations.md): its own term, kept out of the window here
BACKLOG_S = 3600.0
CONSTANT = 4  # per worker whatever it serves: none is periodic within the window
IGNORED = ("config", "info", "cluster", "ping", "command", "client", "hello")


def bound(bots: int) -> int:
    """The most commands one idle worker serving ``bots`` may send in the window."""
    return CONSTANT + bots * sum(math.ceil(WINDOW_S / p) + 1 for p in PERIODS)


@dataclass
class Redis:
    """This module's Redis: its URL and the ports of its primaries."""

    url: str
    ports: list[int]


@pytest.fixture(scope="module", params=["node", "cluster"])
def own_redis(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Redis]:
    server: LocalRedis | LocalCluster
    if request.param == "cluster":
        require_redis_7()
        cluster = LocalCluster(tmp_path_factory.mktemp("idle-cluster")).start()
        server = cluster
        found = Redis(cluster.url, cluster.live_ports())
    else:
        node = LocalRedis(directory=tmp_path_factory.mktemp("idle-redis"), appendonly=False).start()
        server = node
        found = Redis(node.url, [node.port])
    try:
        yield found
    finally:
        server.stop()


@pytest.fixture(scope="module")
def bots(own_redis: Redis) -> list[BotAccount]:
    settings = make_settings(own_redis.url)

    async def create() -> list[BotAccount]:
        return [await new_bot(settings, "idle") for _ in range(100)]

    return asyncio.run(create())


def gateway(redis: Redis, tmp: Path, name: str) -> Process:
    port = free_port()
    env = process_env(
        redis.url,
        BOTGW_REST_PORT=str(free_port()),
        BOTGW_BACKLOG_INTERVAL_SECONDS=str(BACKLOG_S),
        **{name: str(value) for name, value in INTERVALS.items()},
    )
    return Process(
        name=name,
        args=["gateway", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        log_path=tmp / f"{name}.log",
        port=port,
    )


async def commands(redis: Redis, reset: bool) -> dict[str, int]:
    """Calls per command on every primary since the last reset (and reset them)."""
    total: dict[str, int] = {}
    for port in redis.ports:
        client: Any = aioredis.Redis(port=port)
        try:
            stats = await client.info("commandstats")
            if reset:
                await client.config_resetstat()
        finally:
            await client.aclose()
        for name, value in stats.items():
            command = name.removeprefix("cmdstat_")
            if command.split("|")[0] not in IGNORED:
                total[command] = total.get(command, 0) + int(value["calls"])
    return total


# the commands of restore_readers.lua, run by a worker's first lease renewal after
# sockets of a bot came or went there (docs/operations.md, Redis cost model: churn)
RESTORE = ("get", "exists")


async def settle(redis: Redis) -> None:
    """Wait until the churn of the sockets opened and closed ends: a renewal period
    in which no worker restored reader marks. (What follows is idle; the wait is
    for a condition, and fails only if the workers never stop restoring.)"""
    period = INTERVALS["BOTGW_WS_READER_TTL_SECONDS"] / 3
    seen: dict[str, int] = {}
    for _ in range(int(wait_s(20))):
        await commands(redis, reset=True)
        await asyncio.sleep(period + 0.5)
        seen = await commands(redis, reset=False)
        if not any(seen.get(command) for command in RESTORE):
            return
    raise AssertionError(f"the workers kept restoring reader marks: {seen}")


async def idle_commands(
    redis: Redis, workers: list[Process], bots: list[BotAccount], connections: int
) -> dict[str, int]:
    """``connections`` ready sockets spread over ``bots`` and ``workers`` (a consumer
    each, so that none takes another over), quiet for the window: what Redis ran."""
    sockets: list[ClientConnection] = []

    async def connect(index: int) -> None:
        bot = bots[index % len(bots)]
        worker = workers[(index // len(bots)) % len(workers)]  # each bot on every worker
        ws, ready = await open_raw(worker.ws_url, bot.token, consumer=f"c{index}")
        sockets.append(ws)
        assert ready["op"] == "ready", ready

    try:
        for start in range(0, connections, 50):
            await asyncio.gather(*(connect(i) for i in range(start, min(start + 50, connections))))
        await settle(redis)
        await commands(redis, reset=True)
        await asyncio.sleep(WINDOW_S)
        return await commands(redis, reset=False)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)


@pytest.fixture(scope="module")
def one_worker(own_redis: Redis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = gateway(own_redis, tmp_path_factory.mktemp("idle-gw"), "idle-gateway").start()
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()


def test_idle_load_does_not_grow_with_connections(
    own_redis: Redis, one_worker: Process, bots: list[BotAccount]
) -> None:
    async def run() -> None:
        few = await idle_commands(own_redis, [one_worker], bots[:10], 20)
        many = await idle_commands(own_redis, [one_worker], bots[:10], 200)
        wide = await idle_commands(own_redis, [one_worker], bots, 200)
        print(f"\nidle commands in {WINDOW_S} s: 10 bots, 20 sockets {sum(few.values())} {few}")
        print(f"10 bots, 200 sockets {sum(many.values())} {many}")
        print(f"100 bots, 200 sockets {sum(wide.values())} {wide}")
        # ten times the sockets on the same bots: nothing more than the bots' terms
        assert sum(few.values()) <= bound(10)
        assert sum(many.values()) <= bound(10)
        assert sum(wide.values()) <= bound(100)
        # and no more than one round of each per-bot term apart (a window holds
        # three or four of each): the 180 more sockets added nothing
        assert abs(sum(many.values()) - sum(few.values())) <= 10 * len(PERIODS)

    asyncio.run(run())


def test_two_workers_each_within_the_bound(
    own_redis: Redis, tmp_path_factory: pytest.TempPathFactory, bots: list[BotAccount]
) -> None:
    tmp = tmp_path_factory.mktemp("idle-two")
    workers = [gateway(own_redis, tmp, f"idle-{i}").start() for i in range(2)]
    try:
        for worker in workers:
            worker.wait_healthy()

        async def run() -> None:
            # every bot on both workers: each serves all 10 (or all 100)
            few = await idle_commands(own_redis, workers, bots[:10], 40)
            wide = await idle_commands(own_redis, workers, bots, 200)
            print(f"\ntwo workers, idle commands in {WINDOW_S} s:")
            print(f"10 bots, 40 sockets {sum(few.values())} {few}")
            print(f"100 bots, 200 sockets {sum(wide.values())} {wide}")
            assert sum(few.values()) <= 2 * bound(10)
            assert sum(wide.values()) <= 2 * bound(100)

        asyncio.run(run())
    finally:
        for worker in workers:
            worker.stop()


def test_settings_parse() -> None:
    names = {name.removeprefix("BOTGW_").lower() for name in INTERVALS}
    settings = Settings.from_env({name: str(value) for name, value in INTERVALS.items()})
    assert {getattr(settings, name) for name in names} == set(INTERVALS.values())


def test_an_update_appended_while_pubsub_was_down_comes_without_the_sweep(
    own_redis: Redis, tmp_path_factory: pytest.TempPathFactory, bots: list[BotAccount]
) -> None:
    """The wake-up is certainly lost: the worker is stopped while Redis drops its
    pub/sub connection and the update is appended. The sweep is an hour away, so
    only the look after the re-subscription can find the update."""
    process = gateway(own_redis, tmp_path_factory.mktemp("idle-lost"), "idle-lost")
    process.env["BOTGW_WS_WAKEUP_SWEEP_SECONDS"] = "3600"
    process.start()
    try:
        process.wait_healthy()

        async def run() -> None:
            bot = bots[0]
            ws, ready = await open_raw(process.ws_url, bot.token, consumer="lost")
            assert ready["op"] == "ready"
            store = Store.connect(make_settings(own_redis.url), role="test")
            try:
                process.signal(signal.SIGSTOP)
                try:
                    killed = 0
                    for port in own_redis.ports:
                        client: Any = aioredis.Redis(port=port)
                        try:
                            killed += int(await client.client_kill_filter(_type="pubsub"))
                        finally:
                            await client.aclose()
                    assert killed >= 1
                    await ingest(store, bot.bot_id, 1)
                finally:
                    process.signal(signal.SIGCONT)
                (update,) = await collect(ws, 1)
                assert seq_of(update) == 1
            finally:
                await ws.close()
                await store.close()

        asyncio.run(run())
    finally:
        process.stop()
