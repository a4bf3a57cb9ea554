"""One benchmark run: Redis, the servers under test, the load generators, the bots.

A :class:`Run` owns every process it starts (see :mod:`bench.procs`) and the
Unix socket its load generators report to. Servers are started as real
processes: the botgw gateway and REST service through ``python -m botgw``,
the ceiling and the peer through their modules here.

The store is one Redis node (``node``, started with the run) or, for the cluster
variants of the workloads, a local 3-primary Redis Cluster (``cluster``, started
by :meth:`Run.start_cluster` and stopped by :meth:`Run.stop_cluster`). A botgw
server, the bots it serves and the appenders' writes all name the same store.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.cluster import BenchCluster
from bench.config import Scale
from bench.control import ControlServer, Remote
from bench.procs import Child, CpuSample, Pinning, Processes
from botgw.local_redis import find_redis_server, free_port
from shared.settings import Settings

__all__ = ["Bot", "Run", "Server"]

SECRET = "bench-server-secret"


@dataclass(frozen=True)
class Bot:
    id: int
    token: str
    chat_id: int  # the chat id the load generator writes into its updates


@dataclass
class Server:
    """A server under test (or a ceiling, or the peer) and where to reach it."""

    kind: str  # "botgw", "ceiling", "peer", "rest"
    child: Child
    port: int
    compression: bool = False
    store: str = "node"  # the Redis it runs on: "node" or "cluster"

    @property
    def ws_url(self) -> str:
        if self.kind == "peer":
            return f"http://127.0.0.1:{self.port}"
        return f"ws://127.0.0.1:{self.port}/bot/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Window:
    """CPU seconds per process over a measured interval."""

    samples: list[CpuSample] = field(default_factory=list)
    load_cpus: int = 1

    def role(self, role: str) -> float:
        return sum(s.seconds for s in self.samples if s.role == role)

    def named(self, prefix: str) -> float:
        return sum(s.seconds for s in self.samples if s.name.startswith(prefix))

    def busiest(self, role: str) -> float:
        return max((s.seconds for s in self.samples if s.role == role), default=0.0)


class Run:
    """Everything one ``python -m bench`` invocation starts; stopped on exit."""

    def __init__(
        self, scale: Scale, *, pin: bool = True, keep: bool = False, gc_log: bool = False
    ) -> None:
        self.scale = scale
        self.gc_log = gc_log
        self.dir = Path(tempfile.mkdtemp(prefix="botgw-bench-"))
        self.keep = keep
        self.procs = Processes(self.dir, Pinning.detect(pin))
        self.control = ControlServer(self.dir / "control.sock")
        self.redis_port = 0
        self.redis: Child | None = None
        self.cluster: BenchCluster | None = None
        self.agents: list[Remote] = []
        self.appenders: list[Remote] = []
        self._names = 0

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def store_url(self, store: str = "node") -> str:
        """The ``BOTGW_REDIS_URL`` of ``store`` (the cluster must be started)."""
        if store == "node":
            return self.redis_url
        assert store == "cluster" and self.cluster is not None, f"no {store} store"
        return self.cluster.url

    def redis_ports(self, store: str = "node") -> list[int]:
        """The ports of the Redis nodes of ``store`` (each primary of the cluster)."""
        if store == "node":
            return [self.redis_port]
        assert store == "cluster" and self.cluster is not None, f"no {store} store"
        return self.cluster.ports

    # -- lifecycle ------------------------------------------------------------

    async def __aenter__(self) -> Run:
        await self.control.start()
        await self._start_redis()
        return self

    async def __aexit__(self, *exc: object) -> None:
        for remote in (*self.agents, *self.appenders):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(remote.close(), timeout=10)
        self.procs.stop_all()
        await self.control.close()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    async def _start_redis(self) -> None:
        self.redis_port = free_port()
        data = self.dir / "redis"
        data.mkdir()
        args = [
            find_redis_server(),
            *("--port", str(self.redis_port), "--bind", "127.0.0.1"),
            *("--dir", str(data), "--appendonly", "no", "--save", ""),
            *("--daemonize", "no", "--protected-mode", "yes", "--maxclients", "20000"),
        ]
        self.redis = self.procs.spawn("redis", args, role="redis")
        for _ in range(300):
            with contextlib.suppress(OSError):
                reader, writer = await asyncio.open_connection("127.0.0.1", self.redis_port)
                writer.write(b"PING\r\n")
                pong = await reader.read(7)
                writer.close()
                if pong.startswith(b"+PONG"):
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"redis-server did not start:\n{self.redis.tail()}")

    async def start_cluster(self) -> BenchCluster:
        """Start the local 3-primary cluster (once) and give the appenders a store on it."""
        if self.cluster is None:
            cluster = BenchCluster(self.procs, self.dir / self._name("cluster"))
            self.cluster = await cluster.start()
        for remote in self.appenders:
            await remote.call("setup", redis_url=self.cluster.url, store="cluster")
        return self.cluster

    async def stop_cluster(self) -> None:
        if self.cluster is None:
            return
        for remote in self.appenders:
            # on the way out of a failed workload too: an appender that died is no reason
            # to leave the nodes running
            with contextlib.suppress(Exception):
                await asyncio.wait_for(remote.call("forget", store="cluster"), timeout=10)
        self.cluster.stop()
        self.cluster = None

    def settings(self, store: str = "node") -> Settings:
        return Settings.from_env({}, redis_url=self.store_url(store), secret=SECRET)

    def botgw_env(self, store: str = "node", **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOTGW_")}
        env.update(
            BOTGW_REDIS_URL=self.store_url(store),
            BOTGW_SECRET=SECRET,
            BOTGW_DATA_DIR=str(self.dir / "data"),
            # the workloads put up to 1 000 connections on one bot and identify
            # thousands of connections per second: lift the per-bot admission limits
            BOTGW_WS_MAX_CONNECTIONS_PER_BOT="1000000",
            BOTGW_WS_IDENTIFY_PER_MINUTE="1000000",
            BOTGW_DRAIN_SECONDS="0",
            BOTGW_RATE_GLOBAL_PER_SECOND="1000000",
            BOTGW_RATE_PRIVATE_PER_SECOND="1000000",
            BOTGW_RATE_PRIVATE_BURST="1000000",
            BOTGW_RATE_GROUP_PER_MINUTE="1000000",
            # the load generators open thousands of sockets from a few addresses
            BOTGW_WS_MAX_UNIDENTIFIED_PER_PEER="0",
            BOTGW_CLIENT_RATE_PER_SECOND="1000000",
            BOTGW_CLIENT_RATE_BURST="1000000",
            BOTGW_CLIENT_CHAT_RATE_PER_SECOND="1000000",
            BOTGW_CLIENT_CHAT_RATE_BURST="1000000",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def _name(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}-{self._names}"

    # -- servers --------------------------------------------------------------

    def _server(self, name: str, module_args: list[str], env: dict[str, str] | None) -> Child:
        if self.gc_log:
            module_args = ["bench.gcprobe", *module_args]
        return self.procs.python(self._name(name), module_args, role="server", env=env)

    def gc_pauses(self, server: Server) -> list[float]:
        """Collector pauses (ms) the server logged so far (``--gc-log``)."""
        from bench.gcprobe import pauses

        return [ms for _, ms in pauses(server.child.log_path)]

    async def _healthy(self, child: Child, url: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=1.0) as http:
            while time.monotonic() < deadline:
                if not child.alive():
                    raise RuntimeError(f"{child.name} exited at start:\n{child.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{child.name} did not answer {url}:\n{child.tail()}")

    async def gateway(
        self, *, compression: bool = False, store: str = "node", **env: str
    ) -> Server:
        port = free_port()
        child = self._server(
            "gateway",
            [
                "botgw",
                "gateway",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            self.botgw_env(store, BOTGW_WS_COMPRESSION="true" if compression else "false", **env),
        )
        server = Server("botgw", child, port, compression, store=store)
        await self._healthy(child, f"{server.http_url}/healthz")
        return server

    async def rest(self, *, workers: int = 1, store: str = "node", **env: str) -> Server:
        port = free_port()
        child = self._server(
            "rest",
            [
                "botgw",
                "rest",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
            ],
            self.botgw_env(store, **env),
        )
        server = Server("rest", child, port, store=store)
        await self._healthy(child, f"{server.http_url}/healthz")
        return server

    async def ceiling(self, *, compression: bool = False) -> Server:
        port = free_port()
        args = ["bench.ceiling", "--port", str(port), "--redis-url", self.redis_url]
        if compression:
            args.append("--compression")
        if self.scale.ceiling_uvloop:
            args.append("--uvloop")
        child = self._server("ceiling", args, None)
        server = Server("ceiling", child, port, compression)
        await self._healthy(child, f"{server.http_url}/healthz")
        return server

    async def peer(self) -> Server:
        port = free_port()
        args = ["bench.peer", "--port", str(port), "--redis-url", self.redis_url]
        child = self._server("peer", args, None)
        server = Server("peer", child, port)
        await self._healthy(child, f"{server.http_url}/healthz")
        return server

    def stop(self, server: Server) -> None:
        self.procs.stop(server.child)

    # -- load generators ------------------------------------------------------------

    async def workers(self, module: str, count: int, prefix: str) -> list[Remote]:
        """``count`` worker processes of ``bench.<module>``, connected and ready."""
        started = []
        for _ in range(count):
            name = self._name(prefix)
            child = self.procs.spawn(
                name,
                [
                    sys.executable,
                    "-m",
                    f"bench.{module}",
                    "--control",
                    str(self.control.path),
                    "--name",
                    name,
                    "--uvloop",
                ],
                role="load",
            )
            started.append((name, child))
        return [
            await self.control.remote(name, alive=child.alive, timeout=60)
            for name, child in started
        ]

    async def ensure_load(self) -> None:
        if not self.agents:
            self.agents = await self.workers("agents", self.scale.agent_procs, "agents")
        if not self.appenders:
            self.appenders = await self.workers("appender", self.scale.appender_procs, "appender")
            for remote in self.appenders:
                await remote.call("setup", redis_url=self.redis_url)
                if self.cluster is not None:
                    await remote.call("setup", redis_url=self.cluster.url, store="cluster")

    async def stop_workers(self, remotes: Sequence[Remote]) -> None:
        for remote in remotes:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(remote.close(), timeout=30)
        names = {r.name for r in remotes}
        for child in list(self.procs.children):
            if child.name in names:
                self.procs.stop(child)

    # -- fixtures -------------------------------------------------------------

    async def bots(self, count: int, store: str = "node") -> list[Bot]:
        """``count`` fresh bots with one owner (created directly in ``store``)."""
        from botgw.admin import messenger_session
        from shared.ids import random_id

        async with messenger_session(self.settings(store)) as messenger:
            owner, _ = await messenger.accounts.create_user(f"bench{random_id() % 10**12}")
            out: list[Bot] = []
            for start in range(0, count, 100):
                batch = await asyncio.gather(
                    *(
                        messenger.accounts.create_bot(
                            owner,
                            username=f"b{random_id() % 10**14}_bot",
                            name="Bench bot",
                        )
                        for _ in range(start, min(count, start + 100))
                    )
                )
                out.extend(Bot(bot.id, token, random_id()) for bot, token in batch)
            return out

    # -- measuring --------------------------------------------------------------

    def cpu_marks(self) -> dict[int, float]:
        return self.procs.cpu_marks()

    def window(self, marks: dict[int, float]) -> Window:
        return Window(self.procs.cpu_since(marks), load_cpus=len(self.procs.pinning.load))

    def pinning_note(self) -> str:
        return self.procs.pinning.describe()


def split(items: Sequence[Any], parts: int) -> list[list[Any]]:
    """``items`` dealt round-robin into ``parts`` lists."""
    out: list[list[Any]] = [[] for _ in range(max(1, parts))]
    for i, item in enumerate(items):
        out[i % len(out)].append(item)
    return out
