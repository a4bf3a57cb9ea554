"""The dispatcher's HTTP port: ``/healthz``, ``/readyz`` and ``/metrics``.

A dispatcher serves no API, so this is a few lines of HTTP/1.1 on asyncio streams
(one request per connection, ``GET`` or ``HEAD``) rather than a web framework:

* ``/healthz``: 200 while the process runs (it does not look at Redis, so an
  outage of Redis does not get dispatchers restarted);
* ``/readyz``: 200 when the store takes writes and the dispatcher is not stopping,
  else 503 with the reason (the error envelope of the other processes);
* ``/metrics``: Prometheus text (:mod:`webhooks.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from shared.codecs import json_dumps
from shared.errors import error_envelope

__all__ = ["HealthServer"]

log = logging.getLogger("botgw.webhooks")

READ_TIMEOUT_S = 5.0
MAX_HEAD_BYTES = 8192
REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    503: "Service Unavailable",
}

# None when ready, else (error code, description)
Readiness = Callable[[], Awaitable[tuple[str, str] | None]]


class HealthServer:
    """Answers the three routes on ``host:port`` until :meth:`close`."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the port (useful with ``port=0``)."""
        self._server = await asyncio.start_server(self._serve, host, port)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            status, content_type, body, head_only = await self._answer(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, content_type, body, head_only = 400, "text/plain", b"bad request\n", False
        except ConnectionError:
            writer.close()
            return
        try:
            writer.write(
                (
                    f"HTTP/1.1 {status} {REASONS[status]}\r\n"
                    f"Content-Type: {content_type}\r\n"
                    f"Content-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n"
                ).encode()
                + (b"" if head_only else body)
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _answer(self, head: bytes) -> tuple[int, str, bytes, bool]:
        if len(head) > MAX_HEAD_BYTES:
            return 400, "text/plain", b"request too large\n", False
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(parts) != 3:
            return 400, "text/plain", b"bad request\n", False
        method, target, _ = parts
        head_only = method == "HEAD"
        if method not in ("GET", "HEAD"):
            return 405, *_json(error_envelope(405, "METHOD_NOT_ALLOWED", "use GET")), False
        path = target.split("?", 1)[0]
        if path == "/healthz":
            return 200, *_json({"ok": True, "result": {"status": "alive"}}), head_only
        if path == "/readyz":
            problem = await self.readiness()
            if problem is not None:
                code, description = problem
                return 503, *_json(error_envelope(503, code, description)), head_only
            return 200, *_json({"ok": True, "result": {"status": "ready"}}), head_only
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(), head_only
        description = f"no route {path}; this port serves /healthz, /readyz and /metrics"
        return 404, *_json(error_envelope(404, "NOT_FOUND", description)), head_only


def _json(value: Any) -> tuple[str, bytes]:
    return "application/json", json_dumps(value)
