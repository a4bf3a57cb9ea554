"""Ingress load generator: appends updates the way the REST layer does.

``python -m bench.appender --control SOCK --name N`` appends with
``store.log.append`` (the Lua append script, its wake-up included), one update
in flight per bot so that a bot's sequence numbers follow its log order. For the
Socket.IO peer it emits the same updates through a write-only
``AsyncRedisManager``; for the write-path ceiling it pipelines the append script.
It can hold a store per Redis topology (``setup`` names it: ``node`` by default,
``cluster`` for the 3-primary cluster) and every command writes to the one named.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.checks import body_text
from bench.control import Handler, run_worker
from bench.stats import percentile
from shared.codecs import pack
from shared.settings import Settings
from shared.store import Store

__all__ = ["main", "message_body"]

USER = {"id": 4_000_000_000_001, "is_bot": False, "first_name": "Bench", "username": "bench_user"}


def message_body(seq: int, chat_id: int, sent_ns: int) -> dict[str, Any]:
    """A realistic private-chat message update whose text carries seq and send time."""
    return {
        "message": {
            "message_id": seq + 1,
            "from": USER,
            "chat": {"id": chat_id, "type": "private", "first_name": "Bench"},
            "date": int(time.time()),
            "text": body_text(seq, sent_ns),
        }
    }


class Appender:
    def __init__(self) -> None:
        self.stores: dict[str, Store] = {}
        self.shas: dict[str, str] = {}
        self.sio: Any = None
        self.seqs: dict[int, int] = {}

    def _store(self, name: str) -> Store:
        assert name in self.stores, f"setup store {name!r} first"
        return self.stores[name]

    async def cmd_setup(self, p: dict[str, Any]) -> None:
        name = str(p.get("store", "node"))
        settings = Settings.from_env({}, redis_url=p["redis_url"], secret="bench")
        if name in self.stores:
            await self.stores.pop(name).close()
        store = self.stores[name] = Store.connect(settings)
        await store.redis.ping()
        # the store's own script: on a cluster its wake-up is a shard publish
        self.shas[name] = await store.scripts["append_update"].load()
        if p.get("sio"):
            self.sio = _collecting_manager(p["redis_url"])

    async def cmd_forget(self, p: dict[str, Any]) -> None:
        """Close the store named ``store`` (before its Redis goes away)."""
        store = self.stores.pop(str(p["store"]), None)
        if store is not None:
            await store.close()

    def _next(self, bot_id: int) -> int:
        seq = self.seqs.get(bot_id, 0)
        self.seqs[bot_id] = seq + 1
        return seq

    async def cmd_reset(self, p: dict[str, Any]) -> None:
        self.seqs.clear()

    async def _send(self, batch: list[tuple[int, int]], *, peer: bool, name: str) -> int:
        """Append one update to each (bot, chat) of ``batch``, pipelined on one connection.

        Each is the script call ``store.log.append`` makes (for the peer: the
        publish ``AsyncRedisManager.emit`` makes); one batch is in flight at a time,
        so every bot's updates reach Redis in sequence order. Returns the send time
        written into the updates.
        """
        sent = time.monotonic_ns()
        store = self._store(name)
        if peer:
            for bot_id, chat_id in batch:
                seq = self._next(bot_id)
                update = {"update_id": str(seq + 1), **message_body(seq, chat_id, sent)}
                await self.sio.emit("updates", update, room=f"b{bot_id}")
            messages, self.sio.outbox = self.sio.outbox, []
            async with store.redis.pipeline(transaction=False) as pipe:
                for message in messages:
                    pipe.publish(self.sio.channel, self.sio.json.dumps(message))
                await pipe.execute()
            return sent
        updates = [
            (bot_id, chat_id, message_body(self._next(bot_id), chat_id, sent))
            for bot_id, chat_id in batch
        ]
        await self._pipelined(await _script_calls(store, name, updates), name)
        return sent

    async def _pipelined(self, calls: list[tuple[list[str], list[Any]]], name: str) -> None:
        """The append script calls written together on the store's pipelined
        connection (as the REST process sends them), by sha (loaded once at setup)."""
        store = self._store(name)
        sha = self.shas[name]
        await store.wire.calls(
            [
                ("EVALSHA", sha, len(call_keys), *call_keys, *call_args)
                for call_keys, call_args in calls
            ]
        )

    async def cmd_burst(self, p: dict[str, Any]) -> dict[str, Any]:
        """``n`` updates to each bot, sent ``depth`` at a time as fast as Redis takes them."""
        n = int(p["n"])
        depth = int(p.get("depth", 50))
        peer = bool(p.get("peer"))
        name = str(p.get("store", "node"))
        bots = [(int(b), int(c)) for b, c in p["bots"]]
        first = 0
        for start in range(0, n, depth):
            batch = [bot for bot in bots for _ in range(min(depth, n - start))]
            sent = await self._send(batch, peer=peer, name=name)
            first = first or sent
        return {"first_ns": first, "last_ns": time.monotonic_ns(), "appended": n * len(bots)}

    async def cmd_rate(self, p: dict[str, Any]) -> dict[str, Any]:
        """``rate`` updates/s for ``seconds``, round-robin over the bots (open loop).

        Every millisecond or so the updates that are due go out as one batch; how
        late a batch leaves against its schedule is reported as the lag.
        """
        bots = [(int(b), int(c)) for b, c in p["bots"]]
        rate = float(p["rate"])
        peer = bool(p.get("peer"))
        name = str(p.get("store", "node"))
        total = int(rate * float(p["seconds"]))
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        lags: list[float] = []
        first_ns = 0
        done = 0
        while done < total:
            now = loop.time()
            due = min(total, int((now - start) * rate) + 1, done + MAX_BATCH)
            if due <= done:
                await asyncio.sleep(max(TICK, start + done / rate - now))
                continue
            lags.append(now - (start + done / rate))
            batch = [bots[k % len(bots)] for k in range(done, due)]
            sent = await self._send(batch, peer=peer, name=name)
            first_ns = first_ns or sent
            done = due
        elapsed = loop.time() - start
        lags.sort()
        return {
            "sent": done,
            "rate": done / elapsed if elapsed > 0 else 0.0,
            "lag_p50_ms": percentile(lags, 50) * 1000,
            "lag_p99_ms": percentile(lags, 99) * 1000,
            "first_ns": first_ns,
            "last_ns": time.monotonic_ns(),
        }

    async def cmd_seqs(self, p: dict[str, Any]) -> dict[str, int]:
        return {str(bot): seq for bot, seq in self.seqs.items()}

    async def cmd_prefill(self, p: dict[str, Any]) -> int:
        """``n`` updates per bot through a pipeline (setup for readers, not measured)."""
        name = str(p.get("store", "node"))
        store = self._store(name)
        n = int(p["n"])
        total = 0
        for bot_id, chat_id in p["bots"]:
            updates = []
            for _ in range(n):
                body = message_body(self._next(bot_id), chat_id, time.monotonic_ns())
                updates.append((bot_id, chat_id, body))
            await self._pipelined(await _script_calls(store, name, updates), name)
            total += n
        return total

    async def cmd_write_ceiling(self, p: dict[str, Any]) -> dict[str, Any]:
        """The append script pipelined ``depth`` deep for ``seconds``: the write path's ceiling."""
        name = str(p.get("store", "node"))
        store = self._store(name)
        depth = int(p.get("depth", 100))
        bots = [(int(b), int(c)) for b, c in p["bots"]]
        deadline = time.monotonic() + float(p["seconds"])
        started = time.monotonic()
        total = 0
        i = 0
        while time.monotonic() < deadline:
            updates = []
            for _ in range(depth):
                bot_id, chat_id = bots[i % len(bots)]
                i += 1
                body = message_body(self._next(bot_id), chat_id, time.monotonic_ns())
                updates.append((bot_id, chat_id, body))
            await self._pipelined(await _script_calls(store, name, updates), name)
            total += depth
        elapsed = time.monotonic() - started
        return {"appended": total, "seconds": elapsed, "rate": total / elapsed}


MAX_BATCH = 500
TICK = 0.001


def _collecting_manager(redis_url: str) -> Any:
    """A write-only ``AsyncRedisManager`` whose publishes are collected, not sent."""
    import socketio  # type: ignore[import-untyped, unused-ignore]

    class Collecting(socketio.AsyncRedisManager):  # type: ignore[misc]
        outbox: list[Any]

        async def _publish(self, data: Any) -> None:
            self.outbox.append(data)

    manager = Collecting(redis_url, write_only=True)
    manager.outbox = []
    return manager


class _Capture:
    """Stands in for the append script to learn the exact keys and args ``append`` sends."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], list[Any]]] = []

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        self.calls.append((keys, args))
        return [b"1-0", b"bench", b"0-0", 0, 0]


_TEMPLATES: dict[tuple[str, int, int], tuple[list[str], list[Any], int]] = {}
_MARK = {"bench": "payload-mark"}


async def _template(
    store: Store, name: str, bot_id: int, chat_id: int
) -> tuple[list[str], list[Any], int]:
    """The script call ``store.log.append`` makes for a bot's messages, learnt once.

    Only the payload differs from one update to the next (the candidate epoch is
    used only by a bot's very first append, so reusing one is harmless); the
    index of the payload among the arguments is found with a marker body.
    """
    found = _TEMPLATES.get((name, bot_id, chat_id))
    if found is None:
        capture = _Capture()
        real = store.scripts["append_update"]
        store.scripts["append_update"] = capture  # type: ignore[assignment]
        try:
            await store.log.append(bot_id, kind="message", chat_id=chat_id, body=_MARK)
        finally:
            store.scripts["append_update"] = real
        ((call_keys, call_args),) = capture.calls
        index = call_args.index(pack(_MARK))
        found = _TEMPLATES[(name, bot_id, chat_id)] = (call_keys, call_args, index)
    return found


async def _script_calls(
    store: Store, name: str, updates: list[tuple[int, int, dict[str, Any]]]
) -> list[tuple[list[str], list[Any]]]:
    """The append script calls ``store.log.append`` would make for ``updates``."""
    calls = []
    for bot_id, chat_id, body in updates:
        call_keys, call_args, index = await _template(store, name, bot_id, chat_id)
        args = list(call_args)
        args[index] = pack(body)
        calls.append((call_keys, args))
    return calls


def handlers(args: argparse.Namespace) -> dict[str, Handler]:
    appender = Appender()
    return {
        "setup": appender.cmd_setup,
        "forget": appender.cmd_forget,
        "reset": appender.cmd_reset,
        "burst": appender.cmd_burst,
        "rate": appender.cmd_rate,
        "seqs": appender.cmd_seqs,
        "prefill": appender.cmd_prefill,
        "write_ceiling": appender.cmd_write_ceiling,
    }


def main() -> None:
    run_worker(handlers)


if __name__ == "__main__":
    main()
