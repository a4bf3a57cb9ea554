"""A local Redis Cluster of three primaries for the cluster variants of the workloads.

Each node is a ``redis-server`` child of the run (role ``redis``: unpinned like the
single node, its CPU counted the same way) on a free loopback port, with its own
directory and ``nodes.conf``, no persistence. ``redis-cli --cluster create`` deals
the slots out; the cluster is ready when every node says ``cluster_state:ok``, has
every slot assigned and knows every other node. It needs Redis 7 (the cluster bus
port is set explicitly, and the store uses sharded pub/sub there); without it,
:func:`cluster_missing` says how to get it and the cluster workloads are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from pathlib import Path

import hiredis

from bench.procs import Child, Processes
from botgw.local_redis import find_redis_server, free_port, redis_server_version

__all__ = ["BenchCluster", "cluster_missing"]

SLOTS = 16384
PRIMARIES = 3


def _redis_cli() -> str | None:
    beside = Path(find_redis_server()).with_name("redis-cli")
    if beside.is_file():
        return str(beside)
    return shutil.which("redis-cli")


async def ask(port: int, *words: str, timeout: float = 5.0) -> str:
    """One command to the node at ``port`` on a connection of its own; the reply as
    text (an error reply raises ``RuntimeError``)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        request = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
        writer.write(request.encode())
        parser = hiredis.Reader()
        while (reply := parser.gets()) is False:
            data = await asyncio.wait_for(reader.read(65536), timeout)
            if not data:
                raise ConnectionError(f"node {port} closed the connection")
            parser.feed(data)
    finally:
        writer.close()
    if isinstance(reply, hiredis.ReplyError):
        raise RuntimeError(f"node {port}: {reply}")
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def cluster_missing() -> str | None:
    """None when a local cluster can be started here, else why not and what to do."""
    hint = "apt-get install redis-server (Debian 12 has 7.0) or set BOTGW_REDIS_SERVER"
    try:
        binary = find_redis_server()
        version = redis_server_version(binary)
    except (FileNotFoundError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return f"no usable redis-server ({exc}): {hint}"
    if version < (7,):
        found = ".".join(map(str, version))
        return f"the cluster needs redis-server 7 or newer, found {found} at {binary}: {hint}"
    if _redis_cli() is None:
        return "no redis-cli beside redis-server or on PATH: apt-get install redis-tools"
    return None


class BenchCluster:
    """Three cluster-enabled ``redis-server`` children, slots dealt, stopped with
    :meth:`stop` (or with the rest of the run's processes)."""

    def __init__(self, procs: Processes, directory: Path) -> None:
        self.procs = procs
        self.directory = directory
        self.nodes: list[tuple[int, Child]] = []

    @property
    def ports(self) -> list[int]:
        return [port for port, _ in self.nodes]

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every primary as a seed (what botgw is given)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    async def start(self, *, timeout: float = 60.0) -> BenchCluster:
        missing = cluster_missing()
        if missing is not None:
            raise RuntimeError(missing)
        try:
            for index in range(PRIMARIES):
                self._spawn(index)
            await asyncio.gather(
                *(self._answers(port, child, timeout) for port, child in self.nodes)
            )
            cli = _redis_cli()
            assert cli is not None  # checked by cluster_missing
            create = await asyncio.create_subprocess_exec(
                cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            output, _ = await asyncio.wait_for(create.communicate(), timeout)
            if create.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed:\n{output.decode()}")
            await self._settled(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, index: int) -> None:
        port = free_port()
        data = self.directory / f"node-{index}"
        data.mkdir(parents=True)
        args = [
            find_redis_server(),
            *("--port", str(port), "--bind", "127.0.0.1"),
            *("--dir", str(data), "--appendonly", "no", "--save", ""),
            *("--daemonize", "no", "--protected-mode", "yes", "--maxclients", "20000"),
            *("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"),
            "--cluster-node-timeout",
            "5000",
            # the bus port is chosen too: port + 10000 may be taken, or past 65535
            # for a free port from the ephemeral range
            *("--cluster-port", str(free_port())),
        ]
        child = self.procs.spawn(f"redis-cluster-{index}", args, role="redis")
        self.nodes.append((port, child))

    async def _answers(self, port: int, child: Child, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited at start:\n{child.tail()}")
            with contextlib.suppress(OSError, TimeoutError, RuntimeError):
                if await ask(port, "PING", timeout=1.0) == "PONG":
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{child.name} did not answer on port {port}:\n{child.tail()}")

    async def _not_settled(self) -> str | None:
        """None once every node says ``cluster_state:ok``, with every slot served and
        every node known; else what is missing."""
        for port in self.ports:
            text = await ask(port, "CLUSTER", "INFO")
            fields = dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)
            if fields.get("cluster_state") != "ok":
                return f"node {port}: cluster_state {fields.get('cluster_state')}"
            if fields.get("cluster_slots_ok") != str(SLOTS):
                return f"node {port}: {fields.get('cluster_slots_ok')} slots ok"
            if fields.get("cluster_known_nodes") != str(len(self.nodes)):
                return f"node {port}: knows {fields.get('cluster_known_nodes')} nodes"
        return None

    async def _settled(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        why: str | None = "not asked yet"
        while time.monotonic() < deadline:
            try:
                why = await self._not_settled()
            except (OSError, TimeoutError, RuntimeError) as exc:
                why = f"{type(exc).__name__}: {exc}"
            if why is None:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"the cluster did not settle in {timeout:g} s ({why})")

    def stop(self) -> None:
        for _, child in self.nodes:
            self.procs.stop(child)
        self.nodes.clear()
