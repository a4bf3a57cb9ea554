"""The test topologies themselves (``tests/topologies.py``), checked with plain redis-py
clients: a cluster that serves every primary's slots, a slot that moves with its keys
while a client writes, a primary killed and replaced, and a Sentinel failover."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import MovedError

from tests.conftest import unique, wait_s
from tests.topologies import LocalCluster, LocalSentinel, require_redis_7, slot_of


def _hosts(url: str) -> list[tuple[str, int]]:
    """The ``host:port`` list of a ``redis+cluster://`` or ``redis+sentinel://`` URL."""
    netloc = urlsplit(url).netloc
    return [(host, int(port)) for host, port in (a.rsplit(":", 1) for a in netloc.split(","))]


def _cluster_client(cluster: LocalCluster) -> RedisCluster:
    assert cluster.url.startswith("redis+cluster://")
    seeds = [ClusterNode(host, port) for host, port in _hosts(cluster.url)]
    return RedisCluster(startup_nodes=seeds, decode_responses=True)


def _key_on(cluster: LocalCluster, port: int, prefix: str) -> str:
    """A key (with a hash tag of its own) whose slot the primary at ``port`` serves."""
    for n in range(100_000):
        key = f"{{{prefix}{n}}}"
        if cluster.primary_of(slot_of(key)) == port:
            return key
    raise AssertionError(f"no key of {prefix} lands on {port}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    require_redis_7()
    started = LocalCluster(tmp_path_factory.mktemp("cluster")).start(timeout=wait_s(60))
    try:
        yield started
    finally:
        started.stop()


async def test_the_cluster_serves_keys_in_every_primarys_slots(cluster: LocalCluster) -> None:
    primaries = [node.port for node in cluster.nodes if node.role == "primary"]
    assert len(primaries) == 3 and sorted(primaries) == sorted(p for _, p in _hosts(cluster.url))
    owners = {cluster.primary_of(slot) for slot in (0, 8000, 16383)}
    assert owners == set(primaries)  # the slots are spread over all three
    prefix = unique("spread")
    keys = {port: _key_on(cluster, port, prefix) for port in primaries}
    client = _cluster_client(cluster)
    try:
        for port, key in keys.items():
            assert await client.set(key, str(port))
        for port, key in keys.items():
            assert await client.get(key) == str(port)
            # the key lives on the primary that serves its slot, and only there
            with redis.Redis(port=port, decode_responses=True) as node:
                assert node.get(key) == str(port)
            for other in primaries:
                if other != port:
                    with redis.Redis(port=other) as node, pytest.raises(MovedError):
                        node.get(key)
    finally:
        await client.aclose()


async def test_a_moved_slot_takes_its_keys_while_a_client_writes(cluster: LocalCluster) -> None:
    tag = unique("move")
    slot = slot_of(f"{{{tag}}}")
    source = cluster.primary_of(slot)
    [target, *_] = [n.port for n in cluster.nodes if n.role == "primary" and n.port != source]
    client = _cluster_client(cluster)
    written: list[str] = []
    stop = asyncio.Event()

    async def write() -> None:
        # keys of the moving slot, written one after another before, during and after
        # the migration: every acknowledged one must survive it
        while not stop.is_set() or len(written) < 300:
            key = f"{{{tag}}}:{len(written)}"
            assert await client.set(key, key)
            written.append(key)

    try:
        writer = asyncio.create_task(write())
        deadline = asyncio.get_running_loop().time() + wait_s(30)
        while len(written) < 200:  # enough keys for several MIGRATE batches
            assert asyncio.get_running_loop().time() < deadline, len(written)
            await asyncio.sleep(0.01)
        before = len(written)
        await asyncio.to_thread(cluster.move_slot, slot, target, batch=50)
        assert len(written) > before  # the client wrote while the slot moved
        stop.set()
        await asyncio.wait_for(writer, wait_s(30))
        assert cluster.primary_of(slot) == target
        # the same client, whose slot map predates the move, reads every key
        assert await client.mget(written) == written
        with redis.Redis(port=target) as node:
            assert node.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == len(written)
        with redis.Redis(port=source) as node:
            assert node.execute_command("CLUSTER", "COUNTKEYSINSLOT", slot) == 0
    finally:
        stop.set()
        await client.aclose()


async def test_a_killed_primary_is_replaced_by_its_replica(tmp_path: Path) -> None:
    require_redis_7()
    cluster = LocalCluster(tmp_path / "cluster", replicas=1).start(timeout=wait_s(60))
    try:
        roles = [node.role for node in cluster.nodes]
        assert roles.count("primary") == 3 and roles.count("replica") == 3
        victim = cluster.primary_of(0)
        key = _key_on(cluster, victim, unique("kill"))
        client = _cluster_client(cluster)
        try:
            assert await client.set(key, "kept")
            with redis.Redis(port=victim) as node:
                assert node.wait(1, int(wait_s(5) * 1000)) == 1  # on its replica too
            cluster.kill(victim)
            await asyncio.to_thread(cluster.wait_ok, timeout=wait_s(60))
            promoted = cluster.primary_of(slot_of(key))
            assert promoted != victim
            assert victim not in [node.port for node in cluster.nodes]
            with redis.Redis(port=promoted, decode_responses=True) as node:
                assert node.get(key) == "kept"
        finally:
            await client.aclose()
    finally:
        cluster.stop()


async def test_a_sentinel_failover_swaps_primary_and_replica(tmp_path: Path) -> None:
    require_redis_7()
    group = LocalSentinel(tmp_path / "sentinel").start(timeout=wait_s(60))
    try:
        assert group.url.startswith("redis+sentinel://") and group.url.endswith("/botgw")
        sentinel = Sentinel(_hosts(group.url), decode_responses=True)  # type: ignore[no-untyped-call]
        old, replica = group.primary_port(), group.replica_port()
        assert await sentinel.discover_master("botgw") == ("127.0.0.1", old)
        before = sentinel.master_for("botgw")
        try:
            assert await before.set("before", "1")
            assert await before.wait(1, int(wait_s(5) * 1000)) == 1
        finally:
            await before.aclose()

        new = await asyncio.to_thread(group.failover, timeout=wait_s(90))
        assert new == replica and group.primary_port() == new
        assert await sentinel.discover_master("botgw") == ("127.0.0.1", new)
        after = sentinel.master_for("botgw")
        try:
            assert await after.set("after", "2")
            assert await after.wait(1, int(wait_s(5) * 1000)) == 1
        finally:
            await after.aclose()
        with redis.Redis.from_url(group.node_url(new), decode_responses=True) as node:
            assert node.execute_command("ROLE")[0] == "master"
            assert node.mget(["before", "after"]) == ["1", "2"]
        with redis.Redis.from_url(group.node_url(old), decode_responses=True) as node:
            assert node.execute_command("ROLE")[0] == "slave"
            assert node.mget(["before", "after"]) == ["1", "2"]  # replicated back
            with pytest.raises(redis.ReadOnlyError):
                node.set("stray", "x")
    finally:
        group.stop()
