"""Webhook dispatchers share the bots evenly, hand them over without repeating an
update, and cost Redis per bot they own, not per bot there is.

Real ``botgw webhooks`` processes, a real HTTP receiver, a Redis of each test's own
(so no other test's webhooks are shared out too): one node, and for the restart
also a 3-primary Redis Cluster. Nothing is timed: the tests wait for states, and
count deliveries at the receiver and commands at Redis (MONITOR).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botgw.local_redis import LocalRedis
from shared.settings import Settings
from shared.store import Store
from tests.conftest import Process, make_settings, wait_s
from tests.e2e.test_webhooks_receiver import RETRY_DELAYS, Receiver, dispatcher, scrape
from tests.topologies import LocalCluster, require_redis_7
from webhooks.delivery import RECHECK_S
from webhooks.dispatcher import BEATS_PER_TTL, INDEX_REFRESH_S, lease_ttl

pytestmark = pytest.mark.asyncio

BOTS = 30
CHATS = 3  # per bot: lanes of one batch, each chat in order
UPDATES = 5000
# the default timeout: a receiver on a busy test machine answers well within it, so
# no attempt times out and is retried (which would be a legitimate repeat)
TIMEOUT_S = "5"


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[LocalRedis]:
    server = LocalRedis(directory=tmp_path / "redis", appendonly=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def store(redis: LocalRedis) -> AsyncIterator[Store]:
    store = Store.connect(make_settings(redis.url))
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture(params=["node", "cluster"])
def redis_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A Redis of the test's own: one node, or a local 3-primary Redis Cluster."""
    server: LocalRedis | LocalCluster
    if request.param == "cluster":
        require_redis_7()
        server = LocalCluster(tmp_path / "cluster").start()
    else:
        server = LocalRedis(directory=tmp_path / "redis", appendonly=False).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    try:
        yield server
    finally:
        await server.stop()


def dispatchers(redis_url: str, tmp: Path, count: int, **env: str) -> list[Process]:
    return [dispatcher(redis_url, tmp, f"hooks{i}", **env) for i in range(count)]


async def healthy(process: Process) -> None:
    """Wait (without blocking the receiver's loop) until ``/healthz`` answers."""
    async with httpx.AsyncClient(timeout=1.0) as client:
        for _ in range(int(wait_s(600))):
            assert process.proc is not None
            if process.proc.poll() is not None:
                raise AssertionError(f"{process.name} exited: {process.log_path.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{process.url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise AssertionError(f"{process.name} never became healthy")


async def gauges(process: Process) -> dict[str, float]:
    metrics = await scrape(process)
    names = ("botgw_webhook_owned_bots", "botgw_webhook_leased_bots", "botgw_webhook_dispatchers")
    out = {name.removeprefix("botgw_webhook_"): metrics[(name, ())] for name in names}
    out["lease_attempts"] = metrics[("botgw_webhook_lease_attempts_total", ())]
    for change in ("acquired", "released", "lost"):
        out[change] = metrics.get(("botgw_webhook_lease_changes_total", (("change", change),)), 0.0)
    return out


async def until(check: Any, what: str, timeout: float = 120.0) -> Any:
    """Poll the async ``check()`` until it returns something true; returns it."""
    last: Any = None
    for _ in range(int(wait_s(timeout) / 0.1)):
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {last!r}")


async def holders(store: Store, bot_ids: list[int]) -> Counter[int]:
    """How many of ``bot_ids`` each dispatcher pid holds the lease of (0: nobody)."""
    found = await asyncio.gather(*(store.readers.lease_holder(b) for b in bot_ids))
    return Counter(int(h.split(":")[1]) if h else 0 for h in found)


def pid(process: Process) -> int:
    assert process.proc is not None
    return process.proc.pid


# -- three dispatchers, one restarted --------------------------------------------------


async def test_three_dispatchers_one_restarted_lose_nothing_repeat_nothing_share_evenly(
    redis_url: str, receiver: Receiver, tmp_path: Path
) -> None:
    store = Store.connect(make_settings(redis_url))
    try:
        await _restart_one_of_three(redis_url, store, receiver, tmp_path)
    finally:
        await store.close()


async def _restart_one_of_three(
    redis_url: str, store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    rng = random.Random()
    bot_ids = rng.sample(range(1, 2**52), BOTS)
    path_of = {bot_id: f"/{i}" for i, bot_id in enumerate(bot_ids)}
    for bot_id in bot_ids:
        await store.readers.set_webhook(
            bot_id,
            url=receiver.url(path_of[bot_id]),
            secret=None,
            max_connections=CHATS,
            allowed_updates=None,
            id_format="string",
            drop_pending=False,
        )
    appended: dict[str, list[int]] = {path: [] for path in path_of.values()}
    sent = 0

    async def send(count: int) -> None:
        """``count`` more updates over every bot and chat, 50 appends at a time."""
        nonlocal sent
        for start in range(sent, sent + count, 50):
            batch = range(start, min(start + 50, sent + count))
            targets = [(bot_ids[n % BOTS], (n // BOTS) % CHATS + 1, n) for n in batch]
            results = await asyncio.gather(
                *(
                    store.log.append(
                        bot_id,
                        kind="message",
                        chat_id=chat,
                        body={"message": {"chat": {"id": chat}, "text": f"n{n}"}},
                    )
                    for bot_id, chat, n in targets
                )
            )
            for (bot_id, _, _), result in zip(targets, results, strict=True):
                appended[path_of[bot_id]].append(result.update_id)
        sent += count

    def delivered() -> int:
        return len({(d.path, d.update_id) for d in receiver.deliveries})

    processes = dispatchers(redis_url, tmp_path, 3, BOTGW_WEBHOOK_TIMEOUT=TIMEOUT_S)
    restarted = processes[1]
    try:
        # a clean start with a backlog: the first dispatcher up takes every bot, then
        # hands two thirds over while it delivers, batches of three chats in flight
        await send(1000)
        for process in processes:
            process.start()
        await asyncio.gather(*(healthy(p) for p in processes))
        await send(1500)

        # SIGTERM one mid-stream: the other two own its bots at once and take them
        # as it gives each back at a safe point
        await receiver.wait_for(lambda: delivered() >= 1500, timeout=120)
        survivors = {pid(processes[0]), pid(processes[2])}
        signalled = time.monotonic()
        restarted.signal(signal.SIGTERM)
        await send(500)
        assert restarted.proc is not None
        assert await asyncio.to_thread(restarted.proc.wait, wait_s(60)) == 0
        await until(
            lambda: _only(holders(store, bot_ids), survivors), "the survivors to hold every bot"
        )
        taken_over_s = time.monotonic() - signalled
        await send(1000)

        # started again: the assignment gives it its share back
        restarted.start()
        await healthy(restarted)
        restarted_pid = pid(restarted)

        async def settled() -> tuple[dict[int, int], list[dict[str, float]]] | None:
            """Every bot held by its owner: the lease holders are what each owns."""
            held = await holders(store, bot_ids)
            metrics = [await gauges(p) for p in processes]
            shares = {pid(p): held[pid(p)] for p in processes}
            owned = {pid(p): m["owned_bots"] for p, m in zip(processes, metrics, strict=True)}
            leased = {pid(p): m["leased_bots"] for p, m in zip(processes, metrics, strict=True)}
            if sum(shares.values()) == BOTS and shares == owned == leased:
                return shares, metrics
            return None

        # the others hand its share over while they deliver the last updates
        rejoined = time.monotonic()
        rebalance = asyncio.create_task(until(settled, "every bot held by its owner"))
        await send(1000)
        await rebalance
        rebalanced_s = time.monotonic() - rejoined
        assert sent == UPDATES
        await receiver.wait_for(lambda: delivered() >= UPDATES, timeout=300)
        shares, metrics = await until(settled, "every bot held by its owner")
    finally:
        for process in processes:
            process.stop()

    # 0 lost, 0 repeated, each chat in log order
    got: dict[str, list[int]] = {path: [] for path in appended}
    chats: dict[tuple[str, Any], list[int]] = {}
    for d in receiver.deliveries:
        update_id = int(d.update_id)
        got[d.path].append(update_id)
        chats.setdefault((d.path, d.update["message"]["chat"]["id"]), []).append(update_id)
    repeated = sum(len(ids) - len(set(ids)) for ids in got.values())
    lost = sum(len(set(appended[p]) - set(got[p])) for p in appended)
    assert (lost, repeated) == (0, 0), (lost, repeated)
    assert sum(len(ids) for ids in got.values()) == UPDATES
    for key, ids in chats.items():
        assert ids == sorted(ids), key
    assert len(chats) == BOTS * CHATS

    # the restarted dispatcher owns and delivers bots again; each about a third
    assert all(0.2 * BOTS <= n <= 0.5 * BOTS for n in shares.values()), shares
    for process, gauge in zip(processes, metrics, strict=True):
        assert gauge["dispatchers"] == 3, (process.name, gauge)
        assert gauge["lost"] == 0, (process.name, gauge)  # no lease ever ran out
    assert metrics[1]["acquired"] >= shares[restarted_pid] > 0
    print(
        f"\nshares after the restart: {sorted(shares.values())} of {BOTS}; all held by the "
        f"survivors {taken_over_s:.2f} s after SIGTERM; rebalanced {rebalanced_s:.2f} s after "
        f"the restart was healthy; lease changes "
        f"{[(m['acquired'], m['released'], m['lost']) for m in metrics]}"
    )


async def _only(held: Any, pids: set[int]) -> bool:
    counts: Counter[int] = await held
    return set(counts) <= pids and sum(counts.values()) == BOTS


# -- the idle cost -----------------------------------------------------------------------


class Monitor:
    """Redis MONITOR on a connection of its own: the commands each client sends."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.by_client: Counter[str] = Counter()  # "ip:port" -> commands
        self.by_command: Counter[tuple[str, str]] = Counter()  # (client, command)
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> Monitor:
        self._task = asyncio.create_task(self._read())
        await asyncio.wait_for(self._ready.wait(), wait_s(10))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _read(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(b"MONITOR\r\n")
            assert await reader.readline() == b"+OK\r\n"
            self._ready.set()
            while line := await reader.readline():
                # +1700000000.123456 [0 127.0.0.1:51234] "EVALSHA" "..." ...
                head, _, command = line.decode(errors="replace").partition("] ")
                client = head.rpartition(" ")[2]
                if client == "lua":  # a command a script ran: its EVALSHA is counted
                    continue
                self.by_client[client] += 1
                words = command.split(" ", 2)
                name = words[0].strip('"').upper()
                if name == "SET" and len(words) > 1 and words[1].endswith(':webhook:lease"'):
                    name = "SET lease"  # (other SETs: a bot's log epoch, made when first read)
                self.by_command[(client, name)] += 1
        finally:
            writer.close()


async def clients_of(store: Store, process: Process) -> set[str]:
    """The addresses of a process's Redis connections (named ``botgw-webhooks-<host>-<pid>``)."""
    listing = (await store.redis.execute_command("CLIENT", "LIST")).decode()
    out = set()
    for line in listing.splitlines():
        fields = dict(part.split("=", 1) for part in line.split(" ") if "=" in part)
        if fields.get("name", "").endswith(f"-{pid(process)}"):
            out.add(fields["addr"])
    return out


async def test_an_idle_dispatcher_costs_per_bot_it_owns_not_per_bot(
    redis: LocalRedis, store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    settings: Settings = make_settings(redis.url, webhook_timeout=1.0)
    ttl = lease_ttl(settings)
    processes = dispatchers(redis.url, tmp_path, 3)
    rng = random.Random()
    bot_ids: list[int] = []
    report = []
    try:
        for process in processes:
            process.start()
        await asyncio.gather(*(healthy(p) for p in processes))
        for size in (20, 200):
            for bot_id in rng.sample(range(1, 2**52), size - len(bot_ids)):
                bot_ids.append(bot_id)
                await store.readers.set_webhook(
                    bot_id,
                    url=receiver.url("/idle"),
                    secret=None,
                    max_connections=40,
                    allowed_updates=None,
                    id_format="string",
                    drop_pending=False,
                )

            async def settled(size: int = size) -> list[dict[str, float]] | None:
                now = [await gauges(p) for p in processes]
                owned = [g["owned_bots"] for g in now]
                if sum(owned) == size and all(g["leased_bots"] == g["owned_bots"] for g in now):
                    return now
                return None

            await until(settled, f"{size} bots owned and leased")
            clients = {p.name: await clients_of(store, p) for p in processes}
            before = [await gauges(p) for p in processes]
            began = time.monotonic()
            async with Monitor(redis.port) as monitor:
                await asyncio.sleep(wait_s(3 * ttl))  # the window counted, not asserted on
            window = time.monotonic() - began
            after = [await gauges(p) for p in processes]
            assert [g["owned_bots"] for g in after] == [g["owned_bots"] for g in before]
            beats = window / (ttl / BEATS_PER_TTL) + 2  # at most, with both ends
            for process, was, now in zip(processes, before, after, strict=True):
                mine = clients[process.name]
                owned = now["owned_bots"]
                commands = sum(monitor.by_client[c] for c in mine)
                by_name = Counter(
                    {name: n for (c, name), n in monitor.by_command.items() if c in mine}
                )
                # no lease is asked for while nothing changes: none of another's
                assert now["lease_attempts"] == was["lease_attempts"], process.name
                assert by_name["SET lease"] == 0, (process.name, by_name)
                # a heartbeat and a renewal per owned bot each beat ...
                assert by_name["EVALSHA"] <= beats * (1 + owned), (process.name, by_name)
                # ... and, besides, each owned bot's look at its log and a read of
                # the index now and then: nothing per bot it does not own
                looks = owned * 6 * (window // RECHECK_S + 1)
                budget = beats * (1 + owned) + looks + 64 * (window // INDEX_REFRESH_S + 1)
                assert commands <= budget, (process.name, commands, budget, by_name)
                report.append((size, process.name, owned, round(commands / window, 1)))
    finally:
        for process in processes:
            process.stop()
    rates = {(size, name): (owned, rate) for size, name, owned, rate in report}
    for process in processes:
        owned_small, small = rates[(20, process.name)]
        owned_large, large = rates[(200, process.name)]
        # ten times the bots: the rate grows with the bots owned (plus the fixed
        # heartbeat), never with the bots the others own
        assert large <= small * owned_large / max(owned_small, 1) * 1.25 + 5, rates
    print(f"\n(bots, dispatcher, owned, commands/s while idle): {report}")


# -- health, readiness, metrics ----------------------------------------------------------


async def test_health_readiness_and_metrics_of_a_dispatcher(
    redis: LocalRedis, store: Store, receiver: Receiver, tmp_path: Path
) -> None:
    receiver.plan = lambda path: "500" if path == "/bad" else "ok"
    good, bad = random.Random().sample(range(1, 2**52), 2)
    process = dispatcher(redis.url, tmp_path, "hooks")
    process.start()
    try:
        await healthy(process)
        async with httpx.AsyncClient(base_url=process.url, timeout=wait_s(10)) as http:
            ready = await http.get("/readyz")
            assert (ready.status_code, ready.json()["result"]) == (200, {"status": "ready"})
            missing = await http.get("/nope")
            assert (missing.status_code, missing.json()["code"]) == (404, "NOT_FOUND")

            for bot_id, path in ((good, "/good"), (bad, "/bad")):
                await store.readers.set_webhook(
                    bot_id,
                    url=receiver.url(path),
                    secret=None,
                    max_connections=1,
                    allowed_updates=None,
                    id_format="string",
                    drop_pending=False,
                )
            for n in range(3):
                await store.log.append(good, kind="message", chat_id=1, body={"n": n})
            await store.log.append(bad, kind="message", chat_id=1, body={"n": 0})
            await receiver.wait_for(lambda: len(receiver.to("/good")) == 3)

            async def gave_up() -> bool:
                config = await store.readers.get_webhook(bad)
                return config is not None and not config.active

            await until(gave_up, "the failing webhook to turn inactive")
            # the one left is owned, leased and delivered; the other was given back
            await until(
                lambda: _gauge_is(process, "botgw_webhook_owned_bots", 1.0), "one bot owned"
            )
            metrics = await scrape(process)

            def value(name: str, **labels: str) -> float:
                return metrics.get((name, tuple(sorted(labels.items()))), 0.0)

            attempts = len(RETRY_DELAYS) + 1
            assert value("botgw_webhook_deliveries_total", outcome="delivered") == 3
            assert value("botgw_webhook_deliveries_total", outcome="http_error") == attempts
            assert value("botgw_webhook_gave_up_total") == 1
            assert value("botgw_webhook_delivery_seconds_count") == 3 + attempts
            assert value("botgw_webhook_leased_bots") == 1
            assert value("botgw_webhook_dispatchers") == 1
            assert value("botgw_webhook_lease_changes_total", change="acquired") == 2
            assert value("botgw_webhook_lease_changes_total", change="released") == 1

            # Redis gone: not ready (alive still); back: ready again by itself
            redis.stop()
            unready = await http.get("/readyz")
            assert unready.status_code == 503
            assert unready.json()["code"] == "BACKEND_UNAVAILABLE"
            assert (await http.get("/healthz")).status_code == 200
            redis.start()

            async def ready_again() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await until(ready_again, "/readyz to answer 200 again")
        # SIGTERM: it leaves, gives its lease back and exits by itself
        assert process.proc is not None
        process.signal(signal.SIGTERM)
        assert await asyncio.to_thread(process.proc.wait, wait_s(30)) == 0
        assert await store.readers.lease_holder(good) is None
        assert await store.readers.leave("nobody") == ()  # no member left
    finally:
        process.stop()


async def _gauge_is(process: Process, name: str, expected: float) -> bool:
    return (await scrape(process)).get((name, ())) == expected
