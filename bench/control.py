"""The harness talks to its load-generator processes over a Unix socket.

The harness listens; each worker process connects, names itself, then answers
requests (one JSON object per line: ``{"id", "cmd", ...}`` in, ``{"id", "ok",
"result" | "error"}`` out). Requests run concurrently in the worker, so a
long-running one (a timed load) can be followed by another (a drop, a stats
read). ``exit`` ends the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

__all__ = ["ControlServer", "Handler", "Remote", "RemoteError", "run_worker", "worker_args"]

log = logging.getLogger("bench.control")

LINE_LIMIT = 256 * 1024 * 1024

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


class RemoteError(RuntimeError):
    """A request failed inside a worker process."""


class Remote:
    """The harness's handle on one worker process."""

    def __init__(self, name: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.name = name
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                line = await self._reader.readline()
                if not line:
                    break
                reply = orjson.loads(line)
                future = self._pending.pop(reply["id"], None)
                if future is None or future.done():
                    continue
                if reply.get("ok"):
                    future.set_result(reply.get("result"))
                else:
                    future.set_exception(RemoteError(f"{self.name}: {reply.get('error')}"))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(RemoteError(f"{self.name}: worker went away"))
            self._pending.clear()

    async def call(self, cmd: str, *, rpc_timeout: float = 900.0, **params: Any) -> Any:
        request_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._writer.write(orjson.dumps({"id": request_id, "cmd": cmd, **params}) + b"\n")
        await self._writer.drain()
        return await asyncio.wait_for(future, timeout=rpc_timeout)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.call("exit", rpc_timeout=5)
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class ControlServer:
    """The Unix socket the workers of a run connect back to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._arrived: dict[str, Remote] = {}
        self._changed = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(
            self._accept, path=str(self.path), limit=LINE_LIMIT
        )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if not line:
            writer.close()
            return
        name = orjson.loads(line)["name"]
        self._arrived[name] = Remote(name, reader, writer)
        self._changed.set()

    async def remote(
        self, name: str, *, timeout: float = 30.0, alive: Callable[[], bool]
    ) -> Remote:
        """Wait for worker ``name`` to connect (fails early when it has exited)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while name not in self._arrived:
            if not alive():
                raise RuntimeError(f"worker {name} exited before connecting")
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"worker {name} did not connect in {timeout} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(left, 0.2))
        return self._arrived.pop(name)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        with contextlib.suppress(OSError):
            self.path.unlink()


def worker_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--control", required=True, help="the harness's Unix socket")
    parser.add_argument("--name", required=True)
    parser.add_argument("--uvloop", action="store_true")
    return parser.parse_args(argv)


async def _serve(path: str, name: str, handlers: dict[str, Handler]) -> None:
    reader, writer = await asyncio.open_unix_connection(path, limit=LINE_LIMIT)
    writer.write(orjson.dumps({"name": name}) + b"\n")
    await writer.drain()
    done = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()
    lock = asyncio.Lock()

    async def reply(message: dict[str, Any]) -> None:
        data = orjson.dumps(message) + b"\n"
        async with lock:
            writer.write(data)
            await writer.drain()

    async def run(request: dict[str, Any]) -> None:
        request_id = request.pop("id")
        cmd = request.pop("cmd")
        if cmd == "exit":
            await reply({"id": request_id, "ok": True, "result": None})
            done.set()
            return
        handler = handlers.get(cmd)
        try:
            if handler is None:
                raise KeyError(f"unknown command {cmd!r}")
            result = await handler(request)
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            await reply({"id": request_id, "ok": False, "error": f"{type(exc).__name__}: {exc}"})
        else:
            await reply({"id": request_id, "ok": True, "result": result})

    async def read() -> None:
        while True:
            line = await reader.readline()
            if not line:
                done.set()
                return
            task = asyncio.get_running_loop().create_task(run(orjson.loads(line)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    reading = asyncio.get_running_loop().create_task(read())
    await done.wait()
    reading.cancel()
    for task in tuple(tasks):
        task.cancel()
    writer.close()


def run_worker(
    make_handlers: Callable[[argparse.Namespace], dict[str, Handler]],
    argv: list[str] | None = None,
) -> None:
    """Entry point of a worker module: connect back and serve requests until ``exit``."""
    args = worker_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")

    async def main() -> None:
        await _serve(args.control, args.name, make_handlers(args))

    if args.uvloop:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
