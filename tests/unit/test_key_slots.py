"""The key layout on Redis Cluster: each entity's keys in one slot, no class of
keys in one slot (the bucketed indexes spread over the cluster)."""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable
from typing import Any

from redis.crc import key_slot

from shared import keys

# builders whose single slot is by design: read once per process, a lease taken
# every few seconds by one process, or channels
FIXED = {
    "server_secret",
    "backlog_leader",
    "webhook_dispatchers",
    "webhook_dispatchers_channel",
    "idle_channel",
    "entities_channel",
}
NOT_KEYS = {"INDEX_BUCKETS", "index_bucket"}
PRIMARIES = ((0, 5460), (5461, 10922), (10923, 16383))  # a 3-primary cluster's split

Builder = Callable[..., str]


def slot(key: str) -> int:
    return int(key_slot(key.encode()))


def builders() -> dict[str, Builder]:
    found = {name: getattr(keys, name) for name in keys.__all__ if name not in NOT_KEYS}
    assert all(callable(f) for f in found.values())
    return found


def sample(name: str, i: int) -> Any:
    """An argument for parameter ``name``: the i-th of many different ones."""
    if name == "bucket":
        return i % keys.INDEX_BUCKETS
    if name == "caller":
        return f"b{1_000_003 * i + 17}"
    if name == "username":
        return f"name_{i}"
    if name in ("file_id", "query_id"):
        return secrets.token_urlsafe(12)
    if name.endswith("_id"):
        return 1_000_003 * i + 17
    return f"s{i}"


def call(builder: Builder, i: int, **fixed: Any) -> str:
    params = inspect.signature(builder).parameters
    args = {name: fixed.get(name, sample(name, i)) for name in params}
    return builder(**args)


def family(parameter: str) -> dict[str, Builder]:
    """The builders whose first parameter is ``parameter`` (one entity's keys)."""
    out = {}
    for name, builder in builders().items():
        params = list(inspect.signature(builder).parameters)
        if params and params[0] == parameter:
            out[name] = builder
    return out


def test_only_the_secret_and_the_channels_have_a_fixed_slot() -> None:
    for name, builder in builders().items():
        slots = {slot(call(builder, i)) for i in range(40)}
        if name in FIXED:
            assert len(slots) == 1, name
        else:
            assert len(slots) > 20, f"{name} puts its keys in {len(slots)} slot(s)"


def test_every_key_of_a_bot_shares_its_slot() -> None:
    bot_keys = family("bot_id")
    assert {"bot_info", "bot_log", "bot_cursors", "bot_webhook", "bot_webhook_lease"} <= set(
        bot_keys
    )
    assert {"poll_state", "bot_wakeup_channel", "bot_reader", "bot_rate"} <= set(bot_keys)
    for bot_id in (1, 2**52 - 1, 4_503_599_627_370_495, 731_902_512_345):
        expected = slot(keys.bot_info(bot_id))
        for name, builder in bot_keys.items():
            for i in range(5):
                assert slot(call(builder, i, bot_id=bot_id)) == expected, name
        assert slot(keys.call_result(f"b{bot_id}", "k")) == expected


def test_every_key_of_a_chat_shares_its_slot() -> None:
    chat_keys = family("chat_id")
    assert {"chat_info", "chat_members", "chat_messages", "chat_outbox", "poll_votes"} <= set(
        chat_keys
    )
    for chat_id in (1, 2**52 - 1, 88_123_456_789):
        expected = slot(keys.chat_info(chat_id))
        for name, builder in chat_keys.items():
            for i in range(5):
                assert slot(call(builder, i, chat_id=chat_id)) == expected, name


def test_every_key_of_a_user_shares_its_slot() -> None:
    user_keys = family("user_id")
    assert {"user_info", "user_chats", "user_rate", "bots_by_owner"} <= set(user_keys)
    for user_id in (1, 2**52 - 1, 55_555_555):
        expected = slot(keys.user_info(user_id))
        for name, builder in user_keys.items():
            assert slot(call(builder, 0, user_id=user_id)) == expected, name
        assert slot(keys.call_result(f"u{user_id}", "k")) == expected


def test_every_key_of_a_file_shares_its_slot() -> None:
    file_keys = family("file_id")
    assert {"files", "file_chats", "file_carriers", "file_uploader"} == set(file_keys)
    for _ in range(20):
        file_id = secrets.token_urlsafe(24)
        expected = slot(keys.files(file_id))
        for name, builder in file_keys.items():
            assert slot(builder(file_id)) == expected, name


def test_every_key_of_a_sign_in_key_shares_its_slot() -> None:
    key_keys = family("public_key")
    assert {"auth_challenge", "auth_key_user", "auth_key_rate"} == set(key_keys)
    for _ in range(20):
        public_key = secrets.token_urlsafe(32)
        expected = slot(keys.auth_key_user(public_key))
        for name, builder in key_keys.items():
            for i in range(5):
                assert slot(call(builder, i, public_key=public_key)) == expected, name


def test_a_username_and_a_callback_query_are_each_one_key_of_their_own() -> None:
    assert len({slot(keys.username_owner(f"user_{i}")) for i in range(200)}) > 150
    assert len({slot(keys.callback_answers(secrets.token_urlsafe(12))) for _ in range(200)}) > 150


def test_the_bucketed_indexes_spread_over_the_cluster() -> None:
    for index in (keys.bot_index, keys.webhook_index):
        slots = [slot(index(bucket)) for bucket in range(keys.INDEX_BUCKETS)]
        assert len(set(slots)) == keys.INDEX_BUCKETS, index.__name__
        for low, high in PRIMARIES:  # each primary holds a fair share of the buckets
            share = sum(1 for s in slots if low <= s <= high)
            assert share >= keys.INDEX_BUCKETS // 6, (index.__name__, low, share)
    bot_ids = [secrets.randbits(52) for _ in range(5000)]
    buckets = [keys.index_bucket(bot_id) for bot_id in bot_ids]
    assert set(buckets) == set(range(keys.INDEX_BUCKETS))
    assert max(buckets.count(b) for b in range(keys.INDEX_BUCKETS)) < 3 * 5000 / 64


def test_no_key_uses_the_old_global_tags() -> None:
    for name, builder in builders().items():
        key = call(builder, 3)
        tag = key[key.index("{") + 1 : key.index("}")]
        if name not in FIXED:
            assert tag not in ("idx", "wh", "f", "q"), (name, key)
