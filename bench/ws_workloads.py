"""Gateway workloads: fan-out, ingress-to-agent latency, idle memory, reconnect storm.

Each function runs one repetition against one server (botgw, the ceiling or the
peer) and returns its figures plus what the correctness check found. Agents hold
the connections (``bench.agents`` or, for the peer, ``bench.sio_agents``);
appenders write the updates (``bench.appender``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from bench.control import Remote
from bench.harness import Bot, Run, Server, Window, split
from bench.stats import percentile

__all__ = ["fanout", "idle_memory", "latency", "storm"]

Result = dict[str, Any]

SETTLE_SECONDS = 90.0


def _local_addr(index: int) -> str:
    # one loopback source address per agent process: 10 000 connections and their
    # reconnects stay far from the ephemeral port range of a single address
    return f"127.0.0.{10 + index}"


async def connect(
    remotes: Sequence[Remote],
    server: Server,
    conns: list[list[Any]],
    *,
    latency: bool = False,
    concurrency: int = 100,
    attempts: int = 1,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Open ``conns`` spread over the agent processes; fails if any cannot connect."""
    parts = split(conns, len(remotes))
    started = time.monotonic()
    replies = await asyncio.gather(
        *(
            remote.call(
                "connect",
                url=server.ws_url,
                conns=part,
                local_addr=_local_addr(i),
                compression=server.compression,
                latency=latency,
                concurrency=concurrency,
                attempts=attempts,
                timeout=timeout,
            )
            for i, (remote, part) in enumerate(zip(remotes, parts, strict=True))
            if part
        )
    )
    failed = sum(r["failed"] for r in replies)
    if failed:
        errors = sorted({e for r in replies for e in r["errors"]})[:5]
        raise RuntimeError(
            f"{failed} of {len(conns)} connections failed to {server.kind}: {errors}"
        )
    return {"seconds": time.monotonic() - started, "retried": sum(r["retried"] for r in replies)}


async def collect(remotes: Sequence[Remote], *, latency: bool = False) -> list[dict[str, Any]]:
    replies: list[dict[str, Any]] = await asyncio.gather(
        *(r.call("stats", latency=latency) for r in remotes)
    )
    return replies


def verdict(stats: list[dict[str, Any]], expected: dict[int, int]) -> Result:
    """Totals of the per-connection checks against the updates each bot got.

    ``lost``: updates a connection's stream skipped (a later one arrived first and
    the skipped one never did). ``behind``: updates not delivered yet when the
    workload stopped waiting; nothing is missing from the stream, it is late.
    """
    received = dups = ooo = lost = behind = conns = 0
    for reply in stats:
        for _, bot, got, next_seq, d, o, skipped, _resumes, _live in reply["conns"]:
            conns += 1
            received += got
            dups += d
            ooo += o
            lost += skipped
            behind += max(0, expected.get(bot, 0) - next_seq)
    return {
        "connections": conns,
        "received": received,
        "duplicates": dups,
        "out_of_order": ooo,
        "lost": lost,
        "behind": behind,
        "correct": dups == 0 and ooo == 0 and lost == 0 and behind == 0,
    }


def cpu_figures(window: Window, seconds: float) -> Result:
    """CPU seconds by role; percentages of one CPU (server) and of the load CPUs."""
    if seconds <= 0:
        seconds = 1e-9
    return {
        "server_cpu_s": window.role("server"),
        "redis_cpu_s": window.role("redis"),
        "load_cpu_s": window.role("load"),
        "server_cpu_pct": window.role("server") / seconds * 100,
        "load_cpus_pct": window.role("load") / (seconds * window.load_cpus) * 100,
        "load_busiest_pct": window.busiest("load") / seconds * 100,
        "cpu_by_process": {s.name: round(s.seconds, 3) for s in window.samples},
    }


async def _close(remotes: Sequence[Remote]) -> None:
    await asyncio.gather(*(r.call("close") for r in remotes))


async def fanout(run: Run, server: Server, remotes: Sequence[Remote], rep: int) -> Result:
    """A burst of updates to one bot with ``fanout_conns`` connections."""
    scale = run.scale
    burst = scale.peer_burst if server.kind == "peer" else scale.fanout_burst
    (bot,) = await run.bots(1, server.store)
    conns = [[i, bot.id, bot.token, f"fan{rep}-{i}"] for i in range(scale.fanout_conns)]
    await connect(remotes, server, conns)
    await asyncio.gather(*(r.call("mark") for r in remotes))
    appender = run.appenders[0]
    marks = run.cpu_marks()
    sent = await appender.call(
        "burst",
        bots=[[bot.id, bot.chat_id]],
        n=burst,
        peer=server.kind == "peer",
        store=server.store,
    )
    expected = {bot.id: burst}
    waits = await asyncio.gather(
        *(r.call("wait", expected={str(bot.id): burst}, timeout=120) for r in remotes)
    )
    window = run.window(marks)
    stats = await collect(remotes)
    await _close(remotes)
    last = max(w["last_ns"] for w in waits)
    seconds = (last - sent["first_ns"]) / 1e9
    check = verdict(stats, expected)
    deliveries = check["received"]
    server_cpu = window.role("server")
    return {
        "deliveries_per_s": deliveries / seconds if seconds > 0 else 0.0,
        "deliveries_per_cpu_s": deliveries / server_cpu if server_cpu > 0 else 0.0,
        "seconds": seconds,
        "burst": burst,
        "append_seconds": (sent["last_ns"] - sent["first_ns"]) / 1e9,
        "frames": sum(s["frames"] for s in stats),
        **cpu_figures(window, seconds),
        **check,
    }


async def latency(run: Run, server: Server, remotes: Sequence[Remote], rep: int) -> Result:
    """``latency_bots`` bots, one connection each, ``latency_rate`` appends/s in total.

    The same on a botgw gateway whose store is the cluster (``server.store``): the
    bots are created there and the appenders write there."""
    scale = run.scale
    peer = server.kind == "peer"
    rate = scale.peer_latency_rate if peer else scale.latency_rate
    bots = await run.bots(scale.latency_bots, server.store)
    conns = [[i, b.id, b.token, f"lat{rep}"] for i, b in enumerate(bots)]
    await connect(remotes, server, conns, latency=True)
    await asyncio.gather(*(r.call("mark", latency=True) for r in remotes))
    parts: list[list[Bot]] = split(bots, len(run.appenders))
    marks = run.cpu_marks()
    started = time.monotonic()
    sent = await asyncio.gather(
        *(
            a.call(
                "rate",
                bots=[[b.id, b.chat_id] for b in part],
                rate=rate / len(run.appenders),
                seconds=scale.latency_seconds,
                peer=peer,
                store=server.store,
            )
            for a, part in zip(run.appenders, parts, strict=True)
        )
    )
    expected = await _expected(run, bots)
    await asyncio.gather(
        *(
            r.call("wait", expected={str(k): v for k, v in expected.items()}, timeout=30)
            for r in remotes
        )
    )
    seconds = time.monotonic() - started
    window = run.window(marks)
    stats = await collect(remotes, latency=True)
    await _close(remotes)
    samples = sorted(x for s in stats for x in s["latency_us"])
    check = verdict(stats, expected)
    total_sent = sum(s["sent"] for s in sent)
    return {
        "p50_ms": percentile(samples, 50) / 1000,
        "p99_ms": percentile(samples, 99) / 1000,
        "p999_ms": percentile(samples, 99.9) / 1000,
        "max_ms": (samples[-1] / 1000) if samples else 0.0,
        "samples": len(samples),
        "offered_rate": rate,
        "achieved_rate": sum(s["rate"] for s in sent),
        "appender_lag_p99_ms": max(s["lag_p99_ms"] for s in sent),
        "sent": total_sent,
        "frames": sum(s["frames"] for s in stats),
        **cpu_figures(window, seconds),
        **check,
    }


async def _expected(run: Run, bots: Sequence[Bot]) -> dict[int, int]:
    wanted = {b.id for b in bots}
    seqs: dict[int, int] = {}
    for appender in run.appenders:
        for bot, seq in (await appender.call("seqs")).items():
            if int(bot) in wanted:
                seqs[int(bot)] = int(seq)
    return seqs


def _rss_settled(server: Server, seconds: float = 1.0) -> int:
    """The RSS once it stops moving (sampled every 100 ms, at most ``seconds``)."""
    last = server.child.rss()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = server.child.rss()
        if abs(now - last) < 64 * 1024:
            return now
        last = now
    return last


async def idle_memory(
    run: Run, server: Server, remotes: Sequence[Remote], bots: Sequence[Bot], tag: str
) -> Result:
    """RSS growth of the server per idle, identified connection."""
    scale = run.scale
    per_bot = max(1, scale.idle_conns // len(bots))
    conns = [
        [i, bots[i % len(bots)].id, bots[i % len(bots)].token, f"{tag}-{i // len(bots)}"]
        for i in range(per_bot * len(bots))
    ]
    await asyncio.sleep(0.5)
    before = _rss_settled(server)
    connected = await connect(remotes, server, conns, concurrency=50, attempts=20)
    await asyncio.sleep(1.0)
    after = _rss_settled(server, 3.0)
    return {
        "kib_per_conn": (after - before) / len(conns) / 1024,
        "rss_before_mib": before / 2**20,
        "rss_after_mib": after / 2**20,
        "connections": len(conns),
        "connect_seconds": connected["seconds"],
        "connects_per_s": len(conns) / connected["seconds"],
        "connect_retries": connected["retried"],
    }


async def storm(run: Run, server: Server, remotes: Sequence[Remote], bots: Sequence[Bot]) -> Result:
    """Drop every (idle, identified) connection at once while updates flow; all resume."""
    scale = run.scale
    parts: list[list[Bot]] = split(bots, len(run.appenders))
    seconds = 4.0
    marks = run.cpu_marks()
    rating = asyncio.gather(
        *(
            a.call(
                "rate",
                bots=[[b.id, b.chat_id] for b in part],
                rate=scale.storm_rate / len(run.appenders),
                seconds=seconds,
            )
            for a, part in zip(run.appenders, parts, strict=True)
        )
    )
    await asyncio.sleep(1.0)
    drops = await asyncio.gather(*(r.call("drop", jitter=0.5) for r in remotes))
    drop_ns = min(d["drop_ns"] for d in drops)
    resumed = await asyncio.gather(
        *(r.call("wait_resumed", since_ns=drop_ns, timeout=scale.storm_timeout) for r in remotes)
    )
    await rating
    expected = await _expected(run, bots)
    # not measured: every connection gets the time to resume and catch up, so the
    # check can tell lost updates (none may be) from late ones
    waits = await asyncio.gather(
        *(
            r.call(
                "wait",
                expected={str(k): v for k, v in expected.items()},
                timeout=SETTLE_SECONDS,
            )
            for r in remotes
        )
    )
    caught_up_ns = time.monotonic_ns()
    window = run.window(marks)
    stats = await collect(remotes)
    check = verdict(stats, expected)
    total = sum(r["total"] for r in resumed)
    all_resumed = sum(r["resumed"] for r in resumed)
    last_ready = max(r["last_ready_ns"] for r in resumed)
    closes: dict[str, int] = {}
    for s in stats:
        for code, count in s["closes"].items():
            closes[code] = closes.get(code, 0) + count
    ready_ms = sorted(ms for r in resumed for ms in r["ready_after_ms"])

    def quantile(q: float) -> float:
        return ready_ms[min(len(ready_ms) - 1, int(q * len(ready_ms)))] / 1e3 if ready_ms else 0.0

    return {
        "resumed_s": (last_ready - drop_ns) / 1e9 if all_resumed == total else float("inf"),
        "resumed_p50_s": quantile(0.5),
        "resumed_p90_s": quantile(0.9),
        "resumed_p99_s": quantile(0.99),
        "connect_failures": sum(r["failures"] for r in resumed),
        "resumed": all_resumed,
        "dropped": sum(d["dropped"] for d in drops),
        "caught_up_s": (caught_up_ns - drop_ns) / 1e9
        if all(w["done"] for w in waits)
        else float("inf"),
        "updates_sent": sum(expected.values()),
        "close_codes": closes,
        **cpu_figures(window, (caught_up_ns - drop_ns) / 1e9 + 1.0),
        **check,
    }
