"""REST workloads: sendMessage ingress (client and Bot API), long-poll getUpdates.

The REST service runs as one uvicorn worker pinned to its own CPU, so its
requests/s are requests/s per core. Load comes from ``bench.http_load``
processes; updates for the pollers from ``bench.appender``. Every workload runs
on the store of the REST server it is given (``server.store``): one Redis node,
or the 3-primary cluster for the cluster variant of sendMessage.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis

from bench.control import Remote
from bench.harness import Bot, Run, Server, split
from bench.stats import percentile
from bench.ws_workloads import cpu_figures

__all__ = ["Chats", "long_poll", "make_chats", "rest_ingress", "wake_up", "write_ceiling"]

Result = dict[str, Any]


@dataclass
class Chats:
    """Users who started bots: what the client and Bot API requests address."""

    bots: list[Bot]
    client_items: list[list[Any]]
    bot_items: list[list[Any]]


async def make_chats(run: Run, n_bots: int, n_users: int, store: str = "node") -> Chats:
    from botgw.admin import messenger_session
    from shared.ids import random_id

    bots = await run.bots(n_bots, store)
    client_items: list[list[Any]] = []
    bot_items: list[list[Any]] = []
    async with messenger_session(run.settings(store)) as messenger:
        records = {b.id: await messenger.db.get_bot(b.id) for b in bots}
        for i in range(n_users):
            bot = bots[i % len(bots)]
            record = records[bot.id]
            assert record is not None
            user, token = await messenger.accounts.create_user(f"u{random_id() % 10**12}")
            chat = await messenger.start_bot(user, record.username)
            text = "hello @someone, see https://example.org"
            client_items.append(
                ["/client/sendMessage", f"Bearer {token}", {"chat_id": str(chat.id), "text": text}]
            )
            bot_chat = messenger.bot_chat_id(bot.id, chat)
            bot_items.append(
                ["/bot/sendMessage", f"Bot {bot.token}", {"chat_id": str(bot_chat), "text": "hi"}]
            )
    return Chats(bots=bots, client_items=client_items, bot_items=bot_items)


async def redis_commands(run: Run, store: str = "node") -> int:
    """Commands the Redis nodes of ``store`` have executed so far (INFO commandstats
    of each, summed), scripts' inner calls included."""
    total = 0
    for port in run.redis_ports(store):
        client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
        try:
            stats = await client.info("commandstats")
        finally:
            await client.aclose()
        total += sum(
            int(v["calls"]) for v in stats.values() if isinstance(v, dict) and "calls" in v
        )
    return total


async def _log_lengths(run: Run, bots: list[Bot], store_name: str) -> int:
    from shared.store import Store

    store = Store.connect(run.settings(store_name))
    try:
        total = 0
        for bot in bots:
            total += (await store.log.info(bot.id)).length
        return total
    finally:
        await store.close()


async def rest_ingress(
    run: Run, server: Server, loaders: list[Remote], chats: Chats, which: str
) -> Result:
    """Closed-loop ``sendMessage`` requests; client ones must each append one update."""
    scale = run.scale
    items = chats.client_items if which == "client" else chats.bot_items
    parts = split(items, len(loaders))
    before = await _log_lengths(run, chats.bots, server.store)
    commands = await redis_commands(run, server.store)
    marks = run.cpu_marks()
    replies = await asyncio.gather(
        *(
            loader.call(
                "requests",
                base=server.http_url,
                items=part,
                concurrency=max(1, scale.rest_concurrency // len(loaders)),
                seconds=scale.rest_seconds,
            )
            for loader, part in zip(loaders, parts, strict=True)
        )
    )
    seconds = max(r["seconds"] for r in replies)
    window = run.window(marks)
    commands = await redis_commands(run, server.store) - commands
    after = await _log_lengths(run, chats.bots, server.store)
    ok = sum(r["ok"] for r in replies)
    errors: dict[str, int] = {}
    for r in replies:
        for key, count in r["errors"].items():
            errors[key] = errors.get(key, 0) + count
    appended = after - before
    expected = ok if which == "client" else 0
    server_cpu = window.role("server")
    return {
        "requests_per_s": ok / seconds,
        "requests_per_cpu_s": ok / server_cpu if server_cpu > 0 else 0.0,
        "requests": ok,
        "errors": sum(errors.values()),
        "error_samples": sorted(errors)[:3],
        "p50_ms": max(r["p50_ms"] for r in replies),
        "p99_ms": max(r["p99_ms"] for r in replies),
        "updates_appended": appended,
        "redis_commands_per_request": commands / ok if ok else 0.0,
        **cpu_figures(window, seconds),
        "correct": not errors and appended == expected,
    }


async def write_ceiling(run: Run, chats: Chats) -> Result:
    """The append script, pipelined from one process: the write path without HTTP."""
    marks = run.cpu_marks()
    reply = await run.appenders[0].call(
        "write_ceiling",
        bots=[[b.id, b.chat_id] for b in chats.bots],
        seconds=min(3.0, run.scale.rest_seconds),
        depth=100,
    )
    window = run.window(marks)
    return {
        "appends_per_s": reply["rate"],
        "redis_cpu_pct": window.role("redis") / reply["seconds"] * 100,
    }


def _poll_totals(replies: list[dict[str, Any]], expected: dict[int, int]) -> Result:
    received = dups = ooo = lost = behind = 0
    for reply in replies:
        for bot, got, next_seq, d, o, skipped in reply["rows"]:
            received += got
            dups += d
            ooo += o
            lost += skipped
            behind += max(0, expected.get(bot, 0) - next_seq)
    errors: dict[str, int] = {}
    for reply in replies:
        for key, count in reply["errors"].items():
            errors[key] = errors.get(key, 0) + count
    return {
        "received": received,
        "duplicates": dups,
        "out_of_order": ooo,
        "lost": lost,
        "behind": behind,
        "errors": sum(errors.values()),
        "error_samples": sorted(errors)[:3],
        "correct": dups == 0 and ooo == 0 and lost == 0 and behind == 0 and not errors,
    }


async def long_poll(run: Run, server: Server, loaders: list[Remote]) -> Result:
    """getUpdates calls/s: every poller drains its pre-filled log one update per call."""
    scale = run.scale
    bots = await run.bots(scale.poll_bots, server.store)
    await run.appenders[0].call(
        "prefill",
        bots=[[b.id, b.chat_id] for b in bots],
        n=scale.poll_prefill,
        store=server.store,
    )
    expected = {b.id: scale.poll_prefill for b in bots}
    parts = split(bots, len(loaders))
    marks = run.cpu_marks()
    replies = await asyncio.gather(
        *(
            loader.call(
                "poll",
                base=server.http_url,
                pollers=[[b.token, b.id] for b in part],
                expected={str(b.id): scale.poll_prefill for b in part},
                limit=1,
                timeout=30,
                seconds=120,
            )
            for loader, part in zip(loaders, parts, strict=True)
        )
    )
    seconds = max(r["seconds"] for r in replies)
    window = run.window(marks)
    calls = sum(r["calls"] for r in replies)
    server_cpu = window.role("server")
    return {
        "calls_per_s": calls / seconds,
        "calls_per_cpu_s": calls / server_cpu if server_cpu > 0 else 0.0,
        "calls": calls,
        **cpu_figures(window, seconds),
        **_poll_totals(replies, expected),
    }


async def wake_up(run: Run, server: Server, loaders: list[Remote]) -> Result:
    """Waiting long-polls woken by appends: append-to-response latency."""
    scale = run.scale
    bots = await run.bots(scale.wake_bots, server.store)
    parts = split(bots, len(loaders))
    # the appender goes round-robin: bot k gets total // n updates, one more if k < total % n
    total = int(scale.wake_rate * scale.wake_seconds)
    expected = {b.id: total // len(bots) + (k < total % len(bots)) for k, b in enumerate(bots)}
    polling = asyncio.gather(
        *(
            loader.call(
                "poll",
                base=server.http_url,
                pollers=[[b.token, b.id] for b in part],
                expected={str(b.id): expected[b.id] for b in part},
                limit=100,
                timeout=30,
                seconds=scale.wake_seconds + 15,
                latency=True,
            )
            for loader, part in zip(loaders, parts, strict=True)
        )
    )
    await asyncio.sleep(1.0)  # every poller is waiting
    marks = run.cpu_marks()
    started = time.monotonic()
    sent = await run.appenders[0].call(
        "rate",
        bots=[[b.id, b.chat_id] for b in bots],
        rate=scale.wake_rate,
        seconds=scale.wake_seconds,
        store=server.store,
    )
    seconds = time.monotonic() - started
    window = run.window(marks)
    replies = await polling
    samples = sorted(x for r in replies for x in r["wakeup_us"])
    calls = sum(r["calls"] for r in replies)
    return {
        "p50_ms": percentile(samples, 50) / 1000,
        "p99_ms": percentile(samples, 99) / 1000,
        "max_ms": samples[-1] / 1000 if samples else 0.0,
        "samples": len(samples),
        "calls_per_s": calls / seconds,
        "sent": sent["sent"],
        **cpu_figures(window, seconds),
        **_poll_totals(replies, expected),
    }
