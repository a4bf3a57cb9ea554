"""Live-reader marks under a gateway worker's lease: live while the lease is, renewed
with one command a bot, restored when the lease did not hold them."""

from __future__ import annotations

import pytest

from shared import keys
from shared.ids import Cursor, random_id
from shared.store import Store
from shared.store.log import reader_mark

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]

LEASE = "w1"
OTHER = "w2"


async def claim(store: Store, bot: int, consumer: str, connection: str, lease: str = LEASE) -> str:
    mark = reader_mark(lease, connection)
    await store.log.claim_reader(bot, consumer, mark, "-", lease=lease, ttl=30)
    return mark


async def poll_status(store: Store, bot: int, consumer: str) -> str:
    start = await store.readers.begin_poll(bot, consumer, offset=None, timeout_s=0, allowed=None)
    return start.status


async def test_a_mark_is_live_while_its_lease_is(store: Store) -> None:
    bot = random_id()
    mark = await claim(store, bot, "default", "conn-1")
    assert await store.log.reader(bot, "default") == mark
    assert await poll_status(store, bot, "default") == "reader"
    start = await store.readers.begin_poll(bot, "other", offset=None, timeout_s=0, allowed=None)
    assert start.status == "ok"
    assert await store.readers.poll_current(bot, "other", start.generation) == "ok"
    await store.log.commit_cursor(bot, "default", Cursor(await store.log.ensure_epoch(bot), 0))
    readers = {b.consumer: b.reader for b in await store.backlog.measure([bot])}
    assert readers["default"] == "gateway"

    # the worker is gone: its lease runs out, and with it every mark it held
    await store.wire.call("DEL", keys.bot_reader_lease(bot, LEASE))
    assert await store.log.reader(bot, "default") is None
    readers = {b.consumer: b.reader for b in await store.backlog.measure([bot])}
    assert readers["default"] == "poll"
    start = await store.readers.begin_poll(bot, "default", offset=None, timeout_s=0, allowed=None)
    assert start.status == "ok"
    assert await store.wire.call("EXISTS", keys.bot_reader(bot, "default")) == 0  # cleaned

    # a socket that claims the consumer now ends the poll
    await claim(store, bot, "default", "conn-2")
    assert await store.readers.poll_current(bot, "default", start.generation) == "reader"


async def test_renewal_is_one_command_a_bot_and_restores_what_the_lease_did_not_hold(
    store: Store,
) -> None:
    bot = random_id()
    marks = [(f"c{i}", await claim(store, bot, f"c{i}", f"conn-{i}")) for i in range(5)]
    # just claimed: the lease names no digest yet, so the first renewal restores
    assert await store.log.renew_reader_leases([(bot, marks)], LEASE, 30) == [bot]
    await store.log.restore_readers([(bot, marks)], LEASE, 30)
    assert await store.log.renew_reader_leases([(bot, marks)], LEASE, 30) == []

    # a mark lost (a failover that missed it) is found by the digest and restored
    await store.wire.call("DEL", keys.bot_reader(bot, "c3"))
    await store.wire.call("SET", keys.bot_reader_lease(bot, LEASE), "older", "PX", 30_000)
    assert await store.log.renew_reader_leases([(bot, marks)], LEASE, 30) == [bot]
    await store.log.restore_readers([(bot, marks)], LEASE, 30)
    assert await store.log.reader(bot, "c3") == reader_mark(LEASE, "conn-3")

    # a consumer another worker took over meanwhile stays that worker's
    theirs = await claim(store, bot, "c1", "conn-9", lease=OTHER)
    await store.log.restore_readers([(bot, marks)], LEASE, 30)
    assert await store.log.reader(bot, "c1") == theirs

    # the lease runs out: nothing is live; the next renewal brings every mark back
    await store.wire.call("DEL", keys.bot_reader_lease(bot, LEASE))
    assert await store.log.reader(bot, "c0") is None
    assert await store.log.renew_reader_leases([(bot, marks)], LEASE, 30) == [bot]
    await store.log.restore_readers([(bot, marks)], LEASE, 30)
    assert await store.log.reader(bot, "c0") == reader_mark(LEASE, "conn-0")
    assert await store.log.reader(bot, "c1") == theirs


async def test_a_closing_reader_lets_go_of_its_mark_only(store: Store) -> None:
    bot = random_id()
    mark = await claim(store, bot, "default", "conn-1")
    await store.log.close_reader(bot, "default", reader_mark(LEASE, "conn-0"), None)
    assert await store.log.reader(bot, "default") == mark
    await store.log.close_reader(bot, "default", mark, None)
    assert await store.log.reader(bot, "default") is None
