"""Faults on real gateway workers, counting lost, duplicated and reordered updates.

* crash: two workers, 50 agents on 50 bots, 20 000 updates; a worker is SIGKILLed
  and restarted every 2 seconds;
* drain: the same load while one worker is SIGTERMed (drained) and replaced;
* Redis drops: the same load while Redis closes every connection of the workers
  (pub/sub, pipelined, pooled) once a second;
* slow consumer: a connection that stops reading for 10 s neither slows another
  connection on the same worker nor grows the worker's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.client import GatewayClient
from shared.settings import Settings
from shared.store import Store
from tests.api import BotAccount
from tests.conftest import Process, Stack, wait_s
from tests.gwtools import Tally, collect, ingest, new_bot, open_raw, seq_of

pytestmark = pytest.mark.asyncio

BOTS = 50
PER_BOT = 400  # 20 000 updates in all


@pytest.fixture
def workers(stack: Stack) -> Iterator[list[Process]]:
    pair = [
        stack.new_gateway(f"fault-{i}", BOTGW_HEARTBEAT_INTERVAL="5", BOTGW_DRAIN_SECONDS="2")
        for i in range(2)
    ]
    for worker in pair:
        worker.start()
    for worker in pair:
        worker.wait_healthy()
    try:
        yield pair
    finally:
        for worker in pair:
            worker.stop()


def restart(worker: Process) -> None:
    worker.start()
    worker.wait_healthy()


async def run_load(
    store: Store, bots: list[BotAccount], urls: list[str], disrupt: asyncio.Task[None] | None
) -> tuple[dict[str, int], int, int]:
    """Agents on every bot while updates are ingested; returns the tally report."""
    tally = Tally()
    clients: list[GatewayClient] = []
    done = asyncio.Event()
    finished = 0

    async def agent(index: int, bot: BotAccount) -> None:
        nonlocal finished
        # half the agents start on each worker; each moves to the other on reconnect
        order = urls[index % 2 :] + urls[: index % 2]
        client = GatewayClient(order, bot.token, max_backoff=0.5)
        clients.append(client)
        async with client:
            async for update in client:
                seq = seq_of(update)
                tally.add(bot.bot_id, seq)
                if len(set(tally.seen[bot.bot_id])) == PER_BOT:
                    finished += 1
                    if finished == len(bots):
                        done.set()
                    return

    agents = [asyncio.create_task(agent(i, bot)) for i, bot in enumerate(bots)]
    for seq in range(1, PER_BOT + 1):
        await asyncio.gather(*(ingest(store, bot.bot_id, seq) for bot in bots))
        await asyncio.sleep(0.02)
    try:
        await asyncio.wait_for(done.wait(), timeout=wait_s(120))
    except TimeoutError:
        stuck = [
            (i, len(set(tally.seen.get(bot.bot_id, []))), agents[i])
            for i, bot in enumerate(bots)
            if len(set(tally.seen.get(bot.bot_id, []))) < PER_BOT
        ]
        details = [
            (i, n, t.exception() if t.done() and not t.cancelled() else "running")
            for i, n, t in stuck
        ]
        raise AssertionError(f"agents never got everything: {details}") from None
    finally:
        if disrupt is not None:
            disrupt.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await disrupt
        for task in agents:
            task.cancel()
        await asyncio.gather(*agents, return_exceptions=True)
    report = tally.report({bot.bot_id: PER_BOT for bot in bots})
    reconnects = sum(c.reconnects for c in clients)
    wire_duplicates = sum(c.duplicates_dropped for c in clients)
    return report, reconnects, wire_duplicates


async def test_sigkill_a_worker_every_two_seconds_loses_nothing(
    stack: Stack, settings: Settings, store: Store, workers: list[Process]
) -> None:
    bots = [await new_bot(settings, "k") for _ in range(BOTS)]
    urls = [f"ws://127.0.0.1:{w.port}/bot/ws" for w in workers]
    kills = 0

    async def killer() -> None:
        nonlocal kills
        victim = 0
        while True:
            await asyncio.sleep(2)
            workers[victim].kill()
            kills += 1
            await asyncio.to_thread(restart, workers[victim])
            victim = 1 - victim

    report, reconnects, wire_duplicates = await run_load(
        store, bots, urls, asyncio.create_task(killer())
    )
    print(
        f"crash: {report}, kills={kills}, reconnects={reconnects}, "
        f"redelivered on the wire={wire_duplicates}"
    )
    assert kills >= 2 and reconnects > 0
    assert report == {"lost": 0, "duplicated": 0, "reordered": 0}


async def test_redis_dropping_every_connection_of_the_workers_loses_nothing(
    stack: Stack, settings: Settings, store: Store, workers: list[Process]
) -> None:
    """Every second Redis drops the workers' pub/sub, pipelined and pooled connections
    (a failover or a restart looks the same to them): they reconnect, re-subscribe,
    look at every log again, and the agents resume where they were."""

    async def subscribers() -> int:
        listing = await store.wire.call("CLIENT", "LIST", "TYPE", "pubsub")
        return len([line for line in listing.decode().splitlines() if line])

    bots = [await new_bot(settings, "r") for _ in range(BOTS)]
    urls = [f"ws://127.0.0.1:{w.port}/bot/ws" for w in workers]
    before = await subscribers()  # the workers' and the rest of the stack's
    assert before >= 2
    dropped = 0

    async def dropper() -> None:
        nonlocal dropped
        while True:
            await asyncio.sleep(1)
            # sent on the test's own pipelined connection, which SKIPME spares
            killed = await store.wire.call("CLIENT", "KILL", "TYPE", "pubsub")
            killed += await store.wire.call("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            dropped += int(killed)

    report, reconnects, wire_duplicates = await run_load(
        store, bots, urls, asyncio.create_task(dropper())
    )
    print(
        f"redis drops: {report}, connections dropped={dropped}, reconnects={reconnects}, "
        f"redelivered on the wire={wire_duplicates}"
    )
    assert dropped >= 4  # at least the two workers' pub/sub and pipelined connections
    assert report == {"lost": 0, "duplicated": 0, "reordered": 0}
    # and every process subscribed again (not only the slow safety sweep reading)
    subscribed = 0
    for _ in range(int(wait_s(50))):
        subscribed = await subscribers()
        if subscribed >= before:
            break
        await asyncio.sleep(0.2)
    assert subscribed == before


async def test_draining_a_worker_under_load_loses_and_repeats_nothing(
    stack: Stack, settings: Settings, store: Store, workers: list[Process]
) -> None:
    bots = [await new_bot(settings, "d") for _ in range(BOTS)]
    urls = [f"ws://127.0.0.1:{w.port}/bot/ws" for w in workers]

    async def drain_once() -> None:
        await asyncio.sleep(2)
        workers[0].signal(signal.SIGTERM)
        assert workers[0].proc is not None
        await asyncio.to_thread(workers[0].proc.wait, wait_s(30))
        await asyncio.to_thread(restart, workers[0])
        await asyncio.sleep(3600)

    report, reconnects, wire_duplicates = await run_load(
        store, bots, urls, asyncio.create_task(drain_once())
    )
    print(f"drain: {report}, reconnects={reconnects}, redelivered on the wire={wire_duplicates}")
    assert reconnects > 0
    assert report == {"lost": 0, "duplicated": 0, "reordered": 0}


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_a_slow_consumer_neither_slows_others_nor_grows_memory(
    stack: Stack, settings: Settings, store: Store
) -> None:
    worker = stack.new_gateway("slow", BOTGW_WS_SEND_BUFFER_BYTES="262144").start()
    try:
        worker.wait_healthy()
        assert worker.proc is not None
        url = f"ws://127.0.0.1:{worker.port}/bot/ws"
        bot = await new_bot(settings, "sl")
        slow, ready = await open_raw(url, bot.token, consumer="slow", max_queue=1)
        fast, _ = await open_raw(url, bot.token, consumer="fast")
        assert ready["op"] == "ready"
        count, size = 20_000, 2_000  # 40 MB of updates
        await ingest(store, bot.bot_id, 0)  # one of each before measuring
        assert [seq_of(u) for u in await collect(fast, 1)] == [0]
        baseline = rss_bytes(worker.proc.pid)

        async def produce() -> None:
            for start in range(1, count + 1, 100):
                await asyncio.gather(
                    *(ingest(store, bot.bot_id, s, size=size) for s in range(start, start + 100))
                )

        producer = asyncio.create_task(produce())
        fast_updates = await collect(fast, count, timeout=60)
        await producer
        # everything, in log order (appends ran 100 at a time, so ids, not seqs, are ordered)
        fast_ids = [int(u["update_id"]) for u in fast_updates]
        assert fast_ids == sorted(set(fast_ids))
        assert sorted(seq_of(u) for u in fast_updates) == list(range(1, count + 1))
        await asyncio.sleep(10)  # the slow reader sleeps 10 s (the scenario, not a timeout)
        grown = rss_bytes(worker.proc.pid) - baseline
        print(f"slow consumer: worker RSS grew by {grown / 1e6:.1f} MB for 40 MB of backlog")
        assert grown < 24 * 1024 * 1024

        slow_updates = await collect(slow, count + 1, timeout=120)
        assert [int(u["update_id"]) for u in slow_updates[1:]] == fast_ids
        assert seq_of(slow_updates[0]) == 0
        await slow.close()
        await fast.close()
    finally:
        worker.stop()
