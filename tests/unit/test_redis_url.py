"""BOTGW_REDIS_URL: the three kinds of Redis, and a clear error for anything else."""

from __future__ import annotations

import pytest

from shared.redis_url import Address, parse_redis_url
from shared.settings import Settings, SettingsError


def test_one_node_urls() -> None:
    node = parse_redis_url("redis://user:pa%40ss@cache.internal:6380/2")
    assert node.kind == "node" and node.addresses == (Address("cache.internal", 6380),)
    assert (node.username, node.password, node.db, node.tls) == ("user", "pa@ss", 2, False)
    assert parse_redis_url("rediss://h").tls is True
    assert parse_redis_url("redis://h").addresses == (Address("h", 6379),)
    assert parse_redis_url("redis://:secret@h").password == "secret"
    unix = parse_redis_url("unix:///run/redis.sock?db=3")
    assert unix.addresses == (Address(path="/run/redis.sock"),) and unix.db == 3


def test_cluster_and_sentinel_urls() -> None:
    cluster = parse_redis_url("redis+cluster://a:7000,b:7001,[::1]:7002")
    assert cluster.kind == "cluster"
    assert cluster.addresses == (Address("a", 7000), Address("b", 7001), Address("::1", 7002))
    assert parse_redis_url("rediss+cluster://a:1").tls is True
    sentinel = parse_redis_url("redis+sentinel://:pw@s1,s2:26380/mymaster?db=1&sentinel_password=x")
    assert sentinel.kind == "sentinel" and sentinel.master == "mymaster"
    assert sentinel.addresses == (Address("s1", 26379), Address("s2", 26380))
    assert (sentinel.db, sentinel.password, sentinel.sentinel_password) == (1, "pw", "x")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://h:6379", "unknown scheme"),
        ("h:6379", "not a URL"),
        ("redis://a:1,b:2", "several hosts"),
        ("redis://h:port", "not a port"),
        ("redis://h:70000", "not a port"),
        ("redis+sentinel://s1:26379", "name the primary"),
        ("redis+cluster://a:1/3", "only database 0"),
        ("redis://h/x", "not a number"),
        ("unix://", "no socket path"),
    ],
)
def test_anything_else_names_the_variable_and_the_forms(url: str, why: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_redis_url(url)
    message = str(caught.value)
    assert message.startswith("BOTGW_REDIS_URL=") and why in message
    assert "redis+cluster://" in message and "redis+sentinel://" in message


def test_a_password_is_never_echoed() -> None:
    with pytest.raises(ValueError) as caught:
        parse_redis_url("redis://user:hunter2@h:port")
    assert "hunter2" not in str(caught.value)


def test_settings_refuse_a_bad_url_with_the_parsers_message() -> None:
    with pytest.raises(SettingsError, match=r"BOTGW_REDIS_URL=.*unknown scheme"):
        Settings.from_env({"BOTGW_REDIS_URL": "memcache://h"})
