"""HTTP load generator: REST requests in a closed loop, and long-poll readers.

``python -m bench.http_load --control SOCK --name N``. ``requests`` keeps
``concurrency`` requests in flight for ``seconds``, one per keep-alive connection
of a :class:`bench.rawhttp.Pool`, and counts the answers that are ``{"ok": true}``.
``poll`` runs one ``getUpdates`` loop per bot (each call confirming the previous
batch with ``offset``), checks every update once and in order, and measures each
update's wake-up: from its append (the time in its text) to the arrival of the
response carrying it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from array import array
from typing import Any

import orjson

from bench.checks import Check, parse_text
from bench.control import Handler, run_worker
from bench.rawhttp import HttpError, Pool
from bench.stats import percentile

__all__ = ["main"]

REQUEST_TIMEOUT = 120.0


class HttpLoad:
    def __init__(self) -> None:
        self.pools: dict[str, Pool] = {}

    def _pool(self, base: str) -> Pool:
        pool = self.pools.get(base)
        if pool is None:
            pool = self.pools[base] = Pool(base, timeout=REQUEST_TIMEOUT)
        return pool

    async def cmd_requests(self, p: dict[str, Any]) -> dict[str, Any]:
        """POST ``items`` (path, Authorization, JSON body) round-robin, closed loop."""
        pool = self._pool(p["base"])
        items = [pool.build(path, orjson.dumps(body), auth) for path, auth, body in p["items"]]
        concurrency = int(p["concurrency"])
        keep_results = bool(p.get("keep_results"))
        ok = 0
        errors: dict[str, int] = {}
        latencies: array[int] = array("q")
        next_item = 0
        deadline = time.monotonic() + float(p["seconds"])
        results: list[Any] = []

        async def worker() -> None:
            nonlocal ok, next_item
            conn = pool.acquire()
            try:
                while time.monotonic() < deadline:
                    data = items[next_item % len(items)]
                    next_item += 1
                    started = time.monotonic_ns()
                    try:
                        status, payload = await conn.request(data)
                    except (OSError, HttpError) as exc:
                        key = type(exc).__name__
                        errors[key] = errors.get(key, 0) + 1
                        continue
                    latencies.append((time.monotonic_ns() - started) // 1000)
                    if status == 200 and payload.startswith(b'{"ok":true'):
                        ok += 1
                        if keep_results:
                            results.append(orjson.loads(payload)["result"])
                    else:
                        key = f"{status} {payload[:120].decode(errors='replace')}"
                        errors[key] = errors.get(key, 0) + 1
            finally:
                pool.release(conn)

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
        ordered = sorted(latencies)
        out: dict[str, Any] = {
            "ok": ok,
            "errors": errors,
            "seconds": elapsed,
            "rate": ok / elapsed,
            "p50_ms": percentile(ordered, 50) / 1000,
            "p99_ms": percentile(ordered, 99) / 1000,
        }
        if keep_results:
            out["results"] = results
        return out

    async def cmd_poll(self, p: dict[str, Any]) -> dict[str, Any]:
        """One getUpdates loop per (token, bot): until ``expected`` updates or ``seconds``."""
        pool = self._pool(p["base"])
        limit = int(p.get("limit", 100))
        timeout = float(p.get("timeout", 30))
        expected = {int(k): int(v) for k, v in p.get("expected", {}).items()}
        deadline = time.monotonic() + float(p["seconds"])
        wakeups: array[int] = array("q")
        calls = 0
        empty = 0
        errors: dict[str, int] = {}
        rows: list[list[int]] = []

        async def poller(token: str, bot: int) -> None:
            nonlocal calls, empty
            check = Check()
            offset: int | None = None
            auth = f"Bot {token}"
            want = expected.get(bot)
            conn = pool.acquire()
            try:
                while time.monotonic() < deadline and (want is None or check.next_seq < want):
                    body: dict[str, Any] = {"limit": limit, "timeout": timeout}
                    if offset is not None:
                        body["offset"] = offset
                    data = pool.build("/bot/getUpdates", orjson.dumps(body), auth)
                    try:
                        status, payload = await conn.request(data)
                    except (OSError, HttpError) as exc:
                        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                        await asyncio.sleep(0.05)
                        continue
                    now = time.monotonic_ns()
                    calls += 1
                    if status != 200:
                        key = f"{status} {payload[:120].decode(errors='replace')}"
                        errors[key] = errors.get(key, 0) + 1
                        await asyncio.sleep(0.05)
                        continue
                    updates = orjson.loads(payload)["result"]
                    if not updates:
                        empty += 1
                        continue
                    for update in updates:
                        seq, sent = parse_text(update.get("message", {}).get("text"))
                        check.feed_one(int(update["update_id"]), seq)
                        if sent:
                            wakeups.append((now - sent) // 1000)
                    offset = int(updates[-1]["update_id"]) + 1
            finally:
                pool.release(conn)
            rows.append([bot, *check.row()])

        started = time.monotonic()
        await asyncio.gather(*(poller(token, int(bot)) for token, bot in p["pollers"]))
        elapsed = time.monotonic() - started
        return {
            "calls": calls,
            "empty": empty,
            "seconds": elapsed,
            "errors": errors,
            "rows": rows,
            "wakeup_us": wakeups.tolist() if p.get("latency") else [],
        }

    async def cmd_close(self, p: dict[str, Any]) -> None:
        pools = list(self.pools.values())
        self.pools.clear()
        for pool in pools:
            await pool.close()


def handlers(args: argparse.Namespace) -> dict[str, Handler]:
    load = HttpLoad()
    return {"requests": load.cmd_requests, "poll": load.cmd_poll, "close": load.cmd_close}


def main() -> None:
    run_worker(handlers)


if __name__ == "__main__":
    main()
