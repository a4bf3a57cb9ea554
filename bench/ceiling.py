"""The same-run ceiling: a bare ``websockets`` broadcast server reading the same logs.

``python -m bench.ceiling --port P --redis-url URL [--compression] [--uvloop]``
speaks just enough of the gateway protocol for the same agents (``hello``,
``identify`` -> ``ready``, ``updates``, ``heartbeat_ack``) and does the least
work a server needs for the same delivery: one ``XREAD BLOCK`` loop over the
streams of the bots it serves, each entry decoded and encoded once, one frame
per batch and bot, ``websockets.broadcast`` to that bot's connections. No
authentication, cursors, acks, flow control or drain: what is left is the cost
of Redis reads, encoding and WebSocket writes on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import http
import signal
from typing import Any

import orjson
import redis.asyncio as aioredis
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from bench.serving import server_main
from shared import keys
from shared.codecs import json_dumps, unpack
from shared.dialect import native_ids
from shared.ids import parse_bot_token, update_id_from_stream_id

__all__ = ["main"]

READ_COUNT = 500
HELLO = orjson.dumps(
    {"op": "hello", "v": 1, "connection_id": "ceiling", "heartbeat_interval_ms": 30000}
)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Ceiling:
    def __init__(self, redis_url: str) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=32)
        self.redis = aioredis.Redis(connection_pool=pool)
        self.conns: dict[int, set[ServerConnection]] = {}
        self.registered: dict[int, asyncio.Future[str]] = {}
        self.positions: dict[int, str] = {}
        self.stream_bot: dict[bytes, int] = {}
        self.changed = asyncio.Event()

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "ok\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        header = ws.request.headers.get("Authorization", "") if ws.request else ""
        parsed = parse_bot_token(header.partition(" ")[2].strip())
        if parsed is None:
            await ws.close(4501, "bad token")
            return
        bot_id = parsed.bot_id
        await ws.send(HELLO, text=True)
        await ws.recv()  # identify
        registered = self.registered.get(bot_id)
        if registered is None:
            registered = self.registered[bot_id] = asyncio.get_running_loop().create_future()
            newest = await self.redis.xrevrange(keys.bot_log(bot_id), "+", "-", count=1)
            epoch = _text(await self.redis.get(keys.bot_epoch(bot_id)) or b"ceiling")
            self.positions[bot_id] = _text(newest[0][0]) if newest else "0-0"
            self.stream_bot[keys.bot_log(bot_id).encode()] = bot_id
            self.conns[bot_id] = set()
            self.changed.set()
            registered.set_result(epoch)
        epoch = await registered
        position = str(update_id_from_stream_id(self.positions[bot_id]))
        ready = {
            "op": "ready",
            "epoch": epoch,
            "cursor": {"epoch": epoch, "update_id": position},
            "head": position,
        }
        self.conns.setdefault(bot_id, set()).add(ws)
        # long-lived connection objects leave the collector's generations: a full
        # collection would otherwise walk all of them (pauses of 100 ms at 1 000)
        gc.freeze()
        try:
            await ws.send(orjson.dumps(ready), text=True)
            async for message in ws:
                frame = orjson.loads(message)
                if frame.get("op") == "heartbeat":
                    await ws.send(b'{"op":"heartbeat_ack"}', text=True)
        except ConnectionClosed:
            pass
        finally:
            conns = self.conns.get(bot_id)
            if conns is not None:
                conns.discard(ws)
                if not conns and self.registered.get(bot_id) is registered:
                    # the bot's last connection: stop reading its stream, or every
                    # later XREAD would carry the streams of every earlier workload
                    del self.conns[bot_id], self.registered[bot_id], self.positions[bot_id]
                    self.stream_bot.pop(keys.bot_log(bot_id).encode(), None)

    def _broadcast(self, bot_id: int, entries: list[Any]) -> None:
        items = []
        for entry_id, fields in entries:
            body = unpack(fields[b"d"])
            update_id = update_id_from_stream_id(_text(entry_id))
            items.append(json_dumps(native_ids({"update_id": update_id, **body})))
        frame = b'{"op":"updates","updates":[' + b",".join(items) + b"]}"
        broadcast(self.conns.get(bot_id, ()), frame, text=True)

    async def read_loop(self) -> None:
        while True:
            if not self.positions:
                self.changed.clear()
                await self.changed.wait()
                continue
            streams: dict[Any, Any] = {keys.bot_log(b): p for b, p in self.positions.items()}
            reply: Any = await self.redis.xread(streams, count=READ_COUNT, block=50)
            if not reply:
                continue
            pairs = reply.items() if isinstance(reply, dict) else reply
            for stream, value in pairs:
                entries = value[0] if isinstance(reply, dict) else value
                bot_id = self.stream_bot.get(bytes(stream))
                if bot_id is None:
                    continue  # its connections closed during the read
                self.positions[bot_id] = _text(entries[-1][0])
                self._broadcast(bot_id, entries)


async def run(args: argparse.Namespace) -> None:
    ceiling = Ceiling(args.redis_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reader = loop.create_task(ceiling.read_loop())
    async with serve(
        ceiling.handler,
        "127.0.0.1",
        args.port,
        process_request=ceiling.process_request,
        compression="deflate" if args.compression else None,
        ping_interval=30,
        ping_timeout=30,
        max_size=1 << 20,
        backlog=4096,
        server_header=None,
    ):
        await stop.wait()
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await ceiling.redis.aclose()


def main() -> None:
    server_main(__doc__, run, compression=True)


if __name__ == "__main__":
    main()
