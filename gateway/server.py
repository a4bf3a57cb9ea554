"""The gateway process: ``GET /bot/ws`` plus ``/healthz``, ``/readyz``, ``/metrics``.

One asyncio process; any number of them on any hosts (they share nothing but
Redis). SIGTERM drains: stop accepting, send ``reconnect`` with a deadline, keep
delivering until it, then close 1012; a second SIGTERM closes at once.

Upgrades are refused over HTTP before any socket opens: a bad token (401), a
revoked bot (412), or too many sockets waiting for identify (429 or 503, see
:meth:`Worker.hold_unidentified`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
from dataclasses import replace

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from websockets.asyncio.server import ServerConnection as WebSocket
from websockets.asyncio.server import serve as ws_serve
from websockets.http11 import Request, Response

from gateway import metrics
from gateway.backlog import BacklogExporter
from gateway.worker import Worker, http_response, json_response
from gateway.wsconn import Connection
from shared.errors import error_envelope
from shared.ids import tokens_equal
from shared.settings import Settings
from shared.store import Store

__all__ = ["process_request", "serve_worker"]

log = logging.getLogger("botgw.gateway")


async def process_request(
    worker: Worker, connection: WebSocket, request: Request
) -> Response | None:
    """Answer the HTTP routes, and refuse an upgrade before any socket opens."""
    path = request.path.split("?", 1)[0]
    if path == "/healthz":
        return json_response(200, {"ok": True, "result": {"status": "alive"}})
    if path == "/readyz":
        if worker.draining:
            return json_response(503, error_envelope(503, "DRAINING", "this worker is draining"))
        problem = await worker.store.unready()
        if problem is not None:
            return json_response(
                503,
                error_envelope(
                    503, "BACKEND_UNAVAILABLE", f"the store cannot take writes: {problem}"
                ),
            )
        return json_response(200, {"ok": True, "result": {"status": "ready"}})
    if path == "/metrics":
        return http_response(200, generate_latest(), CONTENT_TYPE_LATEST)
    if path != "/bot/ws":
        return json_response(404, error_envelope(404, "NOT_FOUND", f"no route {path}; use /bot/ws"))
    if worker.draining:
        return json_response(503, error_envelope(503, "DRAINING", "this worker is draining"))
    refusal = worker.hold_unidentified(connection)
    if refusal is not None:
        return refusal
    header = request.headers.get("Authorization")
    if header is None:
        return None  # a browser: the token comes in identify
    scheme, _, token = header.strip().partition(" ")
    found = None
    if scheme.lower() in ("bot", "bearer") and token.strip():
        try:
            found = await worker.store.entities.bot_for_token(token.strip())
            if found is not None:
                # the stored credentials, not a cached record: a bot revoked or a
                # token rotated a moment ago is refused here, not after identify
                (stored,) = await worker.store.entities.bot_credentials([found[0].id])
                if stored is None or not tokens_equal(found[1], stored[0]):
                    found = None
                elif not stored[1]:
                    found = (replace(found[0], active=False), found[1])
        except Exception:
            log.exception("token lookup failed")
            worker.release_unidentified(connection)
            return json_response(
                503, error_envelope(503, "BACKEND_UNAVAILABLE", "the store is unavailable")
            )
    if found is None:
        worker.release_unidentified(connection)
        metrics.REFUSED.labels("UNAUTHORIZED").inc()
        return json_response(
            401,
            error_envelope(
                401,
                "UNAUTHORIZED",
                "a valid bot token is required: 'Authorization: Bot bot_<id>:<secret>'",
            ),
        )
    bot, _ = found
    if not bot.active:
        # the token is right but the bot is gone for good: the REST API's 412
        worker.release_unidentified(connection)
        metrics.REFUSED.labels("BOT_INACTIVE").inc()
        return json_response(
            412, error_envelope(412, "BOT_INACTIVE", "this bot was revoked by its owner")
        )
    if isinstance(connection, Connection):
        connection.upgrade = found
    return None


async def serve_worker(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """Run a worker until SIGTERM/SIGINT, then drain."""
    store = Store.connect(settings, role="gateway")
    worker = Worker(settings, store)
    await worker.start()
    backlogs = BacklogExporter(
        store,
        store.wire.name or f"gateway-{os.getpid()}",
        interval=settings.backlog_interval_seconds,
    )
    backlogs.start()
    stop = asyncio.Event()
    signals = 0

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            stop.set()
        else:
            worker.close_all()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    server = await ws_serve(
        worker.handler,
        settings.gateway_host,
        settings.gateway_port,
        process_request=functools.partial(process_request, worker),
        create_connection=worker.connection_class(),
        max_size=max(4 * settings.ws_max_frame_bytes, 1 << 20),
        compression="deflate" if settings.ws_compression else None,
        # no keepalive task per connection: Worker._ping_loop pings them all, and
        # the sessions' heartbeat deadlines drop peers that went away
        ping_interval=None,
        ping_timeout=None,
        close_timeout=2,
        server_header=None,
        # a reconnect storm brings thousands of SYNs at once: with the default
        # backlog of 100 the kernel drops them and clients wait 1-3 s to retry
        backlog=4096,
    )
    log.info("gateway listening on %s:%s", settings.gateway_host, settings.gateway_port)
    if ready is not None:
        ready.set()
    await stop.wait()
    log.info("draining %d connections for %.1f s", len(worker.all_sessions), settings.drain_seconds)
    await worker.drain(settings.drain_seconds)
    deadline = loop.time() + settings.drain_seconds + 5
    while worker.all_sessions and loop.time() < deadline:
        metrics.DRAINING.set(len(worker.all_sessions))
        await asyncio.sleep(0.05)
    metrics.DRAINING.set(len(worker.all_sessions))
    server.close(close_connections=True)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(server.wait_closed(), timeout=5)
    await backlogs.stop()
    await worker.stop()
    await store.close()
