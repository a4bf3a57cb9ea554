"""The pipelined connection of the hot path against a real redis-server: replies in
order under concurrency, errors, cancelled callers, a lost connection, db selection."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from botgw.local_redis import LocalRedis
from shared.ids import random_id
from shared.store.wire import Wire

pytestmark = pytest.mark.asyncio


async def test_concurrent_callers_each_get_their_own_reply(redis_server: LocalRedis) -> None:
    wire = Wire(redis_server.url)
    try:
        key = f"wire:{random_id()}"
        replies = await asyncio.gather(*(wire.call("INCR", key) for _ in range(500)))
        assert sorted(replies) == list(range(1, 501))
        echoed = await asyncio.gather(*(wire.call("ECHO", f"m{i}") for i in range(200)))
        assert echoed == [f"m{i}".encode() for i in range(200)]
        assert await wire.calls([("SET", key, "x"), ("GET", key), ("GET", key + ":none")]) == [
            b"OK",
            b"x",
            None,
        ]
    finally:
        wire.close()


async def test_an_error_reply_raises_and_leaves_the_others_intact(redis_server: LocalRedis) -> None:
    wire = Wire(redis_server.url)
    try:
        key = f"wire:{random_id()}"
        await wire.call("SET", key, "text")
        with pytest.raises(ResponseError, match="not an integer"):
            await wire.call("INCR", key)
        with pytest.raises(ResponseError):
            await wire.calls([("GET", key), ("INCR", key), ("GET", key)])
        assert await wire.call("GET", key) == b"text"
    finally:
        wire.close()


async def test_a_cancelled_caller_does_not_shift_the_replies(redis_server: LocalRedis) -> None:
    wire = Wire(redis_server.url)
    try:
        await wire.call("PING")
        slow = asyncio.ensure_future(wire.call("DEBUG", "SLEEP", "0.2"))
        await asyncio.sleep(0.05)
        slow.cancel()
        assert await wire.call("ECHO", "after") == b"after"
    finally:
        wire.close()


async def test_a_lost_connection_fails_its_callers_and_the_next_call_reconnects(
    redis_server: LocalRedis,
) -> None:
    wire, killer = Wire(redis_server.url), Wire(redis_server.url)
    try:
        first = await wire.call("CLIENT", "ID")
        # a command that blocks only its own connection, still waiting when it is killed
        waiting = asyncio.ensure_future(wire.call("BLPOP", f"wire:{random_id()}", 5))
        await asyncio.sleep(0.05)
        assert await killer.call("CLIENT", "KILL", "ID", first) == 1
        with pytest.raises(RedisConnectionError):
            await waiting
        assert await wire.call("CLIENT", "ID", retry=True) != first  # a new connection
    finally:
        wire.close()
        killer.close()


async def test_the_database_of_the_url_is_selected(redis_server: LocalRedis) -> None:
    key = f"wire:{random_id()}"
    other = Wire(redis_server.url.rsplit("/", 1)[0] + "/3")
    default = Wire(redis_server.url)
    try:
        await other.call("SET", key, "in-3")
        assert await default.call("GET", key) is None
        assert await other.call("GET", key) == b"in-3"
    finally:
        other.close()
        default.close()
