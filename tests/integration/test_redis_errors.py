"""Configuration errors are told apart from outages: a cluster node named as one
node, a wrong password. They raise StoreMisconfigured at once (no "retry shortly"
loop), and readiness says what is wrong, naming the setting to fix."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from botgw.local_redis import LocalRedis
from shared.store import Store, StoreMisconfigured
from tests.conftest import make_settings
from tests.topologies import LocalCluster, require_redis_7, slot_of

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    require_redis_7()
    topology = LocalCluster(tmp_path_factory.mktemp("cluster-errors")).start()
    try:
        yield topology
    finally:
        topology.stop()


async def test_a_cluster_node_named_as_one_node_is_a_configuration_error(
    cluster: LocalCluster,
) -> None:
    port = cluster.nodes[0].port
    store = Store.connect(make_settings(f"redis://127.0.0.1:{port}"))
    try:
        # a key whose slot another node serves: Redis answers MOVED
        key = next(
            f"probe{n}" for n in range(10_000) if cluster.primary_of(slot_of(f"probe{n}")) != port
        )
        with pytest.raises(StoreMisconfigured, match="redis\\+cluster://"):
            await store.redis.get(key)
        problem = await store.unready()
        assert problem is not None and "BOTGW_REDIS_URL" in problem
    finally:
        await store.close()
    # named as the cluster it is, the same key is read
    right = Store.connect(make_settings(cluster.url))
    try:
        assert await right.redis.get(key) is None
        assert await right.unready() is None
    finally:
        await right.close()


async def test_a_wrong_password_is_a_configuration_error(tmp_path: Path) -> None:
    server = LocalRedis(
        directory=tmp_path / "redis",
        appendonly=False,
        extra_args=("--user", "botgw", "on", ">right", "~*", "&*", "+@all"),
    ).start()
    try:
        wrong = Store.connect(make_settings(f"redis://botgw:wrong@127.0.0.1:{server.port}/0"))
        try:
            with pytest.raises(StoreMisconfigured, match="refused the login"):
                await wrong.redis.get("k")
            assert "refused the login" in (await wrong.unready() or "")
        finally:
            await wrong.close()
        right = Store.connect(make_settings(f"redis://botgw:right@127.0.0.1:{server.port}/0"))
        try:
            await right.redis.set("k", "v")
            assert await right.redis.get("k") == b"v"
            assert await right.unready() is None
        finally:
            await right.close()
    finally:
        server.stop()
