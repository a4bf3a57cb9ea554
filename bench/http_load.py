"""HTTP load generator: REST requests in a closed loop, and long-poll readers.

``python -m bench.http_load --control SOCK --name N``. ``requests`` keeps
``concurrency`` requests in flight on keep-alive connections for ``seconds`` and
counts the answers that are ``{"ok": true}``. ``poll`` runs one ``getUpdates``
loop per bot (each call confirming the previous batch with ``offset``), checks
every update once and in order, and measures each update's wake-up: from its
append (the time in its text) to the arrival of the response carrying it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from array import array
from typing import Any

import aiohttp
import orjson

from bench.checks import Check, parse_text
from bench.control import Handler, run_worker
from bench.stats import percentile

__all__ = ["main"]


class HttpLoad:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    def _session(self, limit: int) -> aiohttp.ClientSession:
        if self.session is None:
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=limit, keepalive_timeout=120),
                timeout=aiohttp.ClientTimeout(total=120),
                json_serialize=lambda v: orjson.dumps(v).decode(),
            )
        return self.session

    async def cmd_requests(self, p: dict[str, Any]) -> dict[str, Any]:
        """POST ``items`` (path, Authorization, JSON body) round-robin, closed loop."""
        base = p["base"]
        items = [
            (base + path, {"Authorization": auth}, orjson.dumps(body))
            for path, auth, body in p["items"]
        ]
        concurrency = int(p["concurrency"])
        session = self._session(concurrency)
        headers_json = {"Content-Type": "application/json"}
        ok = 0
        errors: dict[str, int] = {}
        latencies: array[int] = array("q")
        next_item = 0
        deadline = time.monotonic() + float(p["seconds"])
        results: list[Any] = []

        async def worker() -> None:
            nonlocal ok, next_item
            while time.monotonic() < deadline:
                url, auth, body = items[next_item % len(items)]
                next_item += 1
                started = time.monotonic_ns()
                try:
                    async with session.post(url, data=body, headers={**auth, **headers_json}) as r:
                        payload = await r.read()
                        status = r.status
                except (aiohttp.ClientError, TimeoutError) as exc:
                    key = type(exc).__name__
                    errors[key] = errors.get(key, 0) + 1
                    continue
                latencies.append((time.monotonic_ns() - started) // 1000)
                if status == 200 and payload.startswith(b'{"ok":true'):
                    ok += 1
                    if p.get("keep_results"):
                        results.append(orjson.loads(payload)["result"])
                else:
                    key = f"{status} {payload[:120].decode(errors='replace')}"
                    errors[key] = errors.get(key, 0) + 1

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
        if p.get("keep_results"):
            out["results"] = results
        return out

    async def cmd_poll(self, p: dict[str, Any]) -> dict[str, Any]:
        """One getUpdates loop per (token, bot): until ``expected`` updates or ``seconds``."""
        base = p["base"]
        limit = int(p.get("limit", 100))
        timeout = float(p.get("timeout", 30))
        expected = {int(k): int(v) for k, v in p.get("expected", {}).items()}
        deadline = time.monotonic() + float(p["seconds"])
        session = self._session(len(p["pollers"]) + 8)
        wakeups: array[int] = array("q")
        calls = 0
        empty = 0
        errors: dict[str, int] = {}
        rows: list[list[int]] = []

        async def poller(token: str, bot: int) -> None:
            nonlocal calls, empty
            check = Check()
            offset: int | None = None
            url = f"{base}/bot/getUpdates"
            headers = {"Authorization": f"Bot {token}", "Content-Type": "application/json"}
            want = expected.get(bot)
            while time.monotonic() < deadline and (want is None or check.next_seq < want):
                body: dict[str, Any] = {"limit": limit, "timeout": timeout}
                if offset is not None:
                    body["offset"] = offset
                try:
                    async with session.post(url, data=orjson.dumps(body), headers=headers) as r:
                        payload = await r.read()
                        status = r.status
                except (aiohttp.ClientError, TimeoutError) as exc:
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
        if self.session is not None:
            await self.session.close()
            self.session = None


def handlers(args: argparse.Namespace) -> dict[str, Handler]:
    load = HttpLoad()
    return {"requests": load.cmd_requests, "poll": load.cmd_poll, "close": load.cmd_close}


def main() -> None:
    run_worker(handlers)


if __name__ == "__main__":
    main()
