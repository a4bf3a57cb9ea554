"""Serving REST: uvicorn with request deadlines, a connection cap and a metrics bind.

uvicorn closes a connection only once it has been idle after a response for
``timeout_keep_alive``. A connection that never completes its request line and
headers (a client sending a byte now and then) is never timed, and neither is one
that stops in the middle of a body. :class:`RestProtocol`, uvicorn's httptools
protocol with deadlines, closes both:

* the line and headers of a request must arrive within ``rest_header_timeout`` of
  its first byte; a new connection's clock starts when it is accepted, so one that
  sends nothing at all is closed as well;
* a body must keep arriving: a pause longer than ``rest_body_timeout`` while the
  server is reading it closes the connection.

Once the headers are complete nothing times the call itself, so a long poll waits
as long as it asked to; between requests the keep-alive timeout applies
(``rest_keepalive_timeout``). A request that runs out of time after sending some
bytes is answered ``408`` before the close; a connection that sent nothing is just
closed.

A request that arrives while the worker holds more than ``rest_max_connections``
connections, or runs that many requests, is answered ``503 OVERLOADED`` with
``Retry-After: 1`` and its connection is closed.

Every close and refusal is counted in
``botgw_rest_connections_closed_total{reason}`` (``header_timeout``,
``body_timeout``, ``overloaded``, ``invalid_http``).

Draining (SIGTERM or SIGINT, in each worker: :class:`RestServer`): the app's
:class:`Drain`, which it puts in its lifespan state, starts at once: ``/readyz``
answers 503 ``DRAINING`` and every waiting ``getUpdates`` is answered now with what
it has (normally nothing), as if its timeout had passed. Idle keep-alive
connections are closed, and every answer from then on closes its connection. The
worker keeps listening while the requests that were running at the signal
finish, so probes and load balancers see the 503 and a client that has not
noticed yet is still served; then it stops accepting, waits for what is left and
exits. ``rest_drain_grace`` bounds all of it: what still runs then is cancelled.

Metrics: with ``rest_metrics_port`` set, :func:`serve` answers ``/metrics`` on that
port from a thread of the serving process. With several workers the counters are
kept in prometheus_client's multiprocess files (a directory made for the run
unless ``PROMETHEUS_MULTIPROC_DIR`` names one), so that one bind reports the sum
of all workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import socketserver
import tempfile
import threading
from asyncio import TimerHandle
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import uvicorn
from prometheus_client import REGISTRY, CollectorRegistry, Counter, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState
from uvicorn.supervisors import Multiprocess
from uvicorn.supervisors import multiprocess as uvicorn_multiprocess

from rest.dispatch import count_error
from shared import logs
from shared.codecs import json_dumps
from shared.errors import error_envelope
from shared.settings import Settings

__all__ = [
    "DRAIN_STATE",
    "Drain",
    "RestConfig",
    "RestProtocol",
    "RestServer",
    "metrics_registry",
    "serve",
    "start_metrics_server",
]

log = logging.getLogger("botgw.rest")

# the key of the app's Drain in its lifespan state
DRAIN_STATE = "botgw.drain"

CLOSED = Counter(
    "botgw_rest_connections_closed_total",
    "REST connections closed or requests refused by the server's limits",
    ["reason"],
)

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_STARTUP_FAILURE = 3

# the phase of the request being read on a connection
_IDLE, _HEADERS, _BODY = 0, 1, 2

_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 15\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"Request Timeout"
)

_OVERLOADED_BODY = json_dumps(
    error_envelope(503, "OVERLOADED", "the server holds too many connections; retry in a second")
)
_OVERLOADED_HEADERS = [
    (b"content-type", b"application/json"),
    (b"content-length", str(len(_OVERLOADED_BODY)).encode()),
    (b"retry-after", b"1"),
    (b"connection", b"close"),
]


async def _overloaded(scope: Any, receive: Any, send: Any) -> None:
    """The answer to a request over the cap (an ASGI app)."""
    count_error(scope, 503)
    await send({"type": "http.response.start", "status": 503, "headers": _OVERLOADED_HEADERS})
    await send({"type": "http.response.body", "body": _OVERLOADED_BODY})


class Drain:
    """A worker's drain, as its app takes part in it.

    The app puts one in its lifespan state under :data:`DRAIN_STATE`;
    :class:`RestServer` starts it when it is told to stop, and the protocol reads
    ``active`` to close every connection after its answer.
    """

    def __init__(self, on_start: Callable[[], None]) -> None:
        self.active = False
        self._on_start = on_start

    def start(self) -> None:
        """Start draining (once): ``on_start`` answers what waits, at once."""
        if not self.active:
            self.active = True
            self._on_start()


class RestConfig(uvicorn.Config):
    """uvicorn's configuration with the REST deadlines and cap, the drain's grace
    period and botgw's logging.

    The configuration is what uvicorn hands to each worker (pickled, with several
    workers), so the protocol reads its limits from here, and each worker sets up
    its logging from it (uvicorn calls :meth:`configure_logging` in every worker).
    """

    def __init__(
        self,
        app: Any,
        *,
        header_timeout: float = 10.0,
        body_timeout: float = 30.0,
        max_connections: int = 0,
        drain_seconds: float = 5.0,
        log_format: str = "json",
        **kwargs: Any,
    ) -> None:
        # read by configure_logging, which uvicorn's __init__ calls
        self.log_format = log_format
        # uvicorn's own handlers would write plain text: records go to the root's
        kwargs.setdefault("log_config", None)
        super().__init__(app, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.max_connections = max_connections
        self.drain_seconds = drain_seconds

    def configure_logging(self) -> None:
        super().configure_logging()  # without log_config: only uvicorn's levels
        level = self.log_level if isinstance(self.log_level, str) else "info"
        logs.configure("rest", level=level, fmt=self.log_format)


class RestProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header and body deadlines and a cap.

    One timer per connection at most: armed when the connection is accepted,
    cancelled when the first request's headers are complete, and armed again only
    when a read ends with a request's headers or body still incomplete, so a
    request that arrives in one read (nearly all of them) costs no timer.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # uvicorn's own configuration (not a RestConfig) gets the defaults
        self._header_timeout: float = getattr(config, "header_timeout", 10.0)
        self._body_timeout: float = getattr(config, "body_timeout", 30.0)
        self._max_connections: int = getattr(config, "max_connections", 0)
        self._deadline: TimerHandle | None = None
        self._phase = _IDLE
        self._body_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self._header_timeout, self._expired)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        phase = self._phase
        if phase == _IDLE or self.transport.is_closing():
            return
        if phase == _BODY:
            self._body_at = self.loop.time()
            if self._deadline is None:
                self._deadline = self.loop.call_later(self._body_timeout, self._expired)
        elif self._deadline is None:
            # a request started in this read and its headers are not complete
            self._deadline = self.loop.call_later(self._header_timeout, self._expired)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEADERS

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        self._disarm()
        limit = self._max_connections
        if limit and (len(self.connections) > limit or len(self.tasks) >= limit):
            CLOSED.labels("overloaded").inc()
            app = self.app
            self.app = _overloaded
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        drain = self.app_state.get(DRAIN_STATE)
        if drain is not None and drain.active and self.cycle is not None:
            self.cycle.keep_alive = False  # draining: every answer closes its connection

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        self._disarm()  # a body timer armed by an earlier read
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        CLOSED.labels("invalid_http").inc()
        super().send_400_response(msg)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._phase == _BODY:
            waited = self.loop.time() - self._body_at
            if waited < self._body_timeout or self.flow.read_paused:
                # data came since the timer was armed, or the app is not reading yet
                delay = max(self._body_timeout - waited, 0.05)
                self._deadline = self.loop.call_later(delay, self._expired)
                return
            CLOSED.labels("body_timeout").inc()
            answer = cycle is not None and not cycle.response_started
        else:
            CLOSED.labels("header_timeout").inc()
            answer = self._phase == _HEADERS and (cycle is None or cycle.response_complete)
        if answer:
            self.transport.write(_TIMEOUT_RESPONSE)
        self.transport.close()


_registry: CollectorRegistry | None = None


def metrics_registry() -> CollectorRegistry:
    """The registry to expose: this process's, or the sum over the workers' files
    when prometheus_client runs in multiprocess mode."""
    global _registry
    if _MULTIPROC_ENV not in os.environ:
        return REGISTRY
    if _registry is None:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        _registry = registry
    return _registry


class _MetricsServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _MetricsHandler(WSGIRequestHandler):
    timeout = 10.0  # per socket operation: a stalled scraper does not keep a thread

    def log_message(self, format: str, *args: Any) -> None:
        pass


def start_metrics_server(host: str, port: int) -> WSGIServer:
    """``/metrics`` (Prometheus text format) on ``host:port``, served by a thread."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]

    class Server(_MetricsServer):
        address_family = family

    server = Server((host, port), _MetricsHandler)
    server.set_app(make_wsgi_app(metrics_registry()))
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def serve(settings: Settings, *, host: str, port: int, workers: int, log_level: str) -> int:
    """Run REST with uvicorn (and the metrics bind, if set) until it is stopped."""
    metrics_wanted = settings.rest_metrics_port is not None or settings.rest_metrics_on_api_port
    own_dir: str | None = None
    if workers > 1 and metrics_wanted and _MULTIPROC_ENV not in os.environ:
        # set before any worker starts: they pick the mode when they import the client
        own_dir = tempfile.mkdtemp(prefix="botgw-rest-metrics-")
        os.environ[_MULTIPROC_ENV] = own_dir
    metrics_server: WSGIServer | None = None
    try:
        if settings.rest_metrics_port is not None:
            metrics_host = settings.rest_metrics_host or host
            try:
                metrics_server = start_metrics_server(metrics_host, settings.rest_metrics_port)
            except OSError as exc:
                raise SystemExit(
                    f"botgw: cannot serve metrics on {metrics_host}:"
                    f"{settings.rest_metrics_port}: {exc}"
                ) from None
        config = RestConfig(
            "rest.app:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            http=RestProtocol,
            ws="none",
            drain_seconds=settings.rest_drain_grace,
            log_format=settings.log_format,
            # longer than clients' pool expiry (httpx: 5 s), so a client never reuses
            # a connection the server is closing at that very moment
            timeout_keep_alive=settings.rest_keepalive_timeout,
            header_timeout=settings.rest_header_timeout,
            body_timeout=settings.rest_body_timeout,
            max_connections=settings.rest_max_connections,
        )
        return _run(config)
    finally:
        if metrics_server is not None:
            metrics_server.shutdown()
            metrics_server.server_close()
        if own_dir is not None:
            os.environ.pop(_MULTIPROC_ENV, None)
            shutil.rmtree(own_dir, ignore_errors=True)


def _signalled_again(signum: int, frame: FrameType | None) -> None:
    """Where uvicorn's SIGTERM, raised again once it has shut down, ends up."""


class RestServer(uvicorn.Server):
    """uvicorn's server that drains on SIGTERM (or SIGINT) as the module says."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn raises the signal again once it has shut down, to its previous
        # handler: the default one would kill the process before its own cleanup
        # (the metrics files, the log's last lines), so it finds a harmless one
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _signalled_again) if main else None
        try:
            with super().capture_signals():
                yield
        finally:
            if main:
                signal.signal(signal.SIGTERM, previous)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        config = self.config
        assert isinstance(config, RestConfig)
        loop = asyncio.get_running_loop()
        grace = config.drain_seconds
        deadline = loop.time() + grace
        state = self.server_state
        running = set(state.tasks)
        drain = self.lifespan.state.get(DRAIN_STATE)
        log.info("draining: %d requests running, grace period %g s", len(running), grace)
        if isinstance(drain, Drain):
            drain.start()
        for connection in list(state.connections):
            connection.shutdown()  # idle: closed now; busy: closed after the answer
        # listening on while the requests of the moment finish: probes and load
        # balancers see /readyz answer 503, a client that has not yet is served
        # (a bounded poll, which a second Ctrl-C, force_exit, ends too)
        while running & state.tasks and loop.time() < deadline and not self.force_exit:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(state.connections):
            connection.shutdown()  # those accepted meanwhile
        try:
            async with asyncio.timeout(max(deadline - loop.time(), 0.1)):
                await self._wait_tasks_to_complete()
        except TimeoutError:
            log.error(
                "the grace period (%g s) is over: cancelling %d requests",
                grace,
                len(state.tasks),
            )
            for task in state.tasks:
                task.cancel(msg="the grace period of the drain is over")
        if not self.force_exit:
            await self.lifespan.shutdown()


class _WorkerProcess(uvicorn_multiprocess.Process):
    """A worker of uvicorn's supervisor that runs a :class:`RestServer`."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = RestServer(config=self.config)
        return self._server


@contextlib.contextmanager
def _draining_workers() -> Iterator[None]:
    """uvicorn's supervisor, starting :class:`_WorkerProcess` workers meanwhile (it
    names its worker class in its module; each worker is pickled with its class)."""
    original = uvicorn_multiprocess.Process
    setattr(uvicorn_multiprocess, "Process", _WorkerProcess)  # noqa: B010
    try:
        yield
    finally:
        setattr(uvicorn_multiprocess, "Process", original)  # noqa: B010


def _run(config: RestConfig) -> int:
    """What ``uvicorn.run`` does with a configuration, for one given here."""
    server = RestServer(config=config)
    try:
        if config.workers > 1:
            with _draining_workers():
                Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if config.workers == 1 and not server.started:
        return _STARTUP_FAILURE
    return 0
