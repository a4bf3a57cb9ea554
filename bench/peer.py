"""The peer: python-socketio with its Redis manager, as a Python user would deploy it.

``python -m bench.peer --port P --redis-url URL [--uvloop]`` runs an
``AsyncServer`` (aiohttp mode, WebSocket transport) whose ``AsyncRedisManager``
receives what a write-only manager in the load generator emits, one event per
update to the room of the bot (``b<bot id>``). A client names its bot in the
connect ``auth`` and is put in that room. No logs, cursors or acks: Socket.IO
delivers at most once.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

import socketio  # type: ignore[import-untyped, unused-ignore]
from aiohttp import web

from bench.serving import server_main

__all__ = ["main"]


async def run(args: argparse.Namespace) -> None:
    manager = socketio.AsyncRedisManager(args.redis_url)
    sio = socketio.AsyncServer(
        async_mode="aiohttp", client_manager=manager, logger=False, engineio_logger=False
    )
    app = web.Application()
    sio.attach(app)

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app.router.add_get("/healthz", healthz)

    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> bool:
        bot = auth.get("bot") if isinstance(auth, dict) else None
        if bot is None:
            return False
        await sio.enter_room(sid, f"b{bot}")
        return True

    sio.on("connect", connect)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=4096)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def main() -> None:
    server_main(__doc__, run)


if __name__ == "__main__":
    main()
