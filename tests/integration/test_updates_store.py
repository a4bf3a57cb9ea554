"""Reader coordination in Redis: poll starts, webhook configuration, leases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from shared import keys
from shared.control import Control, PollStarted, WebhookChanged
from shared.ids import Cursor, random_id
from shared.store import Store, Wakeup
from shared.store.readers import ReaderStore
from tests.conftest import wait_s

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]


async def append(store: Store, bot_id: int, count: int, kind: str = "message") -> list[int]:
    ids = []
    for i in range(count):
        result = await store.log.append(
            bot_id, kind=kind, chat_id=7, body={kind: {"text": f"t{i}"}}
        )
        ids.append(result.update_id)
    return ids


async def committed(store: Store, bot_id: int, consumer: str = "default") -> int | None:
    cursor = await store.log.get_cursor(bot_id, consumer)
    return None if cursor is None else cursor.update_id


async def test_a_fresh_consumer_starts_before_the_oldest_update(store: Store) -> None:
    bot = random_id()
    await append(store, bot, 3)
    start = await store.readers.begin_poll(bot, "default", offset=None, timeout_s=0, allowed=None)
    assert start.status == "ok" and start.after == 0 and start.generation == 1
    assert start.allowed is None and start.epoch == await store.log.epoch(bot)
    assert await committed(store, bot) is None  # reading alone confirms nothing


async def test_offset_confirms_earlier_updates_and_never_moves_back(store: Store) -> None:
    bot = random_id()
    ids = await append(store, bot, 4)
    start = await store.readers.begin_poll(bot, "c", offset=ids[2], timeout_s=0, allowed=None)
    assert start.after == ids[2] - 1
    assert await committed(store, bot, "c") == ids[2] - 1
    back = await store.readers.begin_poll(bot, "c", offset=ids[0], timeout_s=0, allowed=None)
    assert back.after == ids[2] - 1  # confirmed updates are never returned again
    assert await committed(store, bot, "c") == ids[2] - 1


async def test_an_offset_beyond_the_head_confirms_only_what_exists(store: Store) -> None:
    bot = random_id()
    ids = await append(store, bot, 2)
    far = ids[-1] + 10**12
    start = await store.readers.begin_poll(bot, "default", offset=far, timeout_s=0, allowed=None)
    assert start.after == ids[-1] and await committed(store, bot) == ids[-1]
    later = await append(store, bot, 1)
    entries = await store.log.read_after(bot, start.after, 10)
    assert [e.update_id for e in entries] == later  # the next update is not skipped


async def test_a_bot_without_updates_gets_an_epoch_and_position_zero(store: Store) -> None:
    bot = random_id()
    start = await store.readers.begin_poll(bot, "default", offset=99, timeout_s=0, allowed=None)
    assert start.status == "ok" and start.after == 0 and start.epoch
    assert await store.log.epoch(bot) == start.epoch
    result = await store.log.append(bot, kind="message", chat_id=1, body={"message": {}})
    assert result.epoch == start.epoch  # the first append keeps the epoch


async def test_a_cursor_of_another_epoch_is_ignored(store: Store) -> None:
    bot = random_id()
    ids = await append(store, bot, 2)
    await store.redis.hset(keys.bot_cursors(bot), "default", f"old-epoch:{ids[-1]}")
    start = await store.readers.begin_poll(bot, "default", offset=None, timeout_s=0, allowed=None)
    assert start.after == 0


async def test_allowed_updates_are_remembered_per_consumer(store: Store) -> None:
    bot = random_id()
    polls = store.readers
    first = await polls.begin_poll(bot, "a", offset=None, timeout_s=0, allowed=["poll", "message"])
    assert first.allowed == frozenset({"message", "poll"})
    kept = await polls.begin_poll(bot, "a", offset=1, timeout_s=0, allowed=None)
    assert kept.allowed == frozenset({"message", "poll"})
    other = await polls.begin_poll(bot, "b", offset=None, timeout_s=0, allowed=None)
    assert other.allowed is None
    reset = await polls.begin_poll(bot, "a", offset=2, timeout_s=0, allowed=[])
    assert reset.allowed is None


async def test_a_live_websocket_or_an_active_webhook_refuses_and_changes_nothing(
    store: Store,
) -> None:
    bot = random_id()
    ids = await append(store, bot, 3)
    await store.log.set_reader(bot, "default", "conn-1", 30)
    refused = await store.readers.begin_poll(
        bot, "default", offset=ids[2], timeout_s=0, allowed=["poll"]
    )
    assert refused.status == "reader" and refused.reader == "conn-1"
    assert await committed(store, bot) is None
    await store.log.clear_reader(bot, "default", "conn-1")

    await _set_webhook(store.readers, bot, url="https://8.8.8.8/hook")
    refused = await store.readers.begin_poll(
        bot, "default", offset=ids[2], timeout_s=0, allowed=None
    )
    assert refused.status == "webhook" and await committed(store, bot) is None
    other = await store.readers.begin_poll(bot, "audit", offset=ids[2], timeout_s=0, allowed=None)
    assert other.status == "ok" and other.allowed is None  # the refused call stored nothing
    await store.readers.delete_webhook(bot, drop_pending=False)
    ok = await store.readers.begin_poll(bot, "default", offset=ids[2], timeout_s=0, allowed=None)
    assert ok.status == "ok" and ok.after == ids[2] - 1


async def _set_webhook(hooks: ReaderStore, bot: int, **options: Any) -> int:
    """``set_webhook`` with the options these tests mostly leave as they are."""
    fields: dict[str, Any] = {
        "secret": None,
        "max_connections": 1,
        "allowed_updates": None,
        "id_format": "string",
        "drop_pending": False,
        **options,
    }
    return await hooks.set_webhook(bot, **fields)


class _Controls:
    """The control messages a bot's channel carries, as one process hears them."""

    def __init__(self) -> None:
        self.seen: list[Control] = []
        self.got = asyncio.Event()

    def listener(self, wakeup: Wakeup) -> None:
        if wakeup.control is not None:
            self.seen.append(wakeup.control)
            self.got.set()

    async def next(self) -> None:
        await asyncio.wait_for(self.got.wait(), wait_s(10))
        self.got.clear()


@contextlib.asynccontextmanager
async def _listening(store: Store, bot: int) -> AsyncIterator[_Controls]:
    controls = _Controls()
    wakeups = store.wakeups()
    wakeups.start()
    wakeups.add(bot, controls.listener)
    try:
        await wakeups.subscribed(bot)
        yield controls
    finally:
        wakeups.remove(bot, controls.listener)
        await wakeups.stop()


async def test_a_newer_poll_announces_itself_while_an_older_one_may_wait(store: Store) -> None:
    bot = random_id()
    async with _listening(store, bot) as controls:
        polls = store.readers
        first = await polls.begin_poll(bot, "default", offset=None, timeout_s=0, allowed=None)
        # the first poll had no timeout: nobody waits, nothing is announced
        waiting = await polls.begin_poll(bot, "default", offset=5, timeout_s=30, allowed=None)
        assert waiting.generation == first.generation + 1 and not controls.seen
        assert await polls.poll_current(bot, "default", waiting.generation) == "ok"
        newer = await polls.begin_poll(bot, "default", offset=6, timeout_s=30, allowed=None)
        await controls.next()
        # begin_poll.lua's spelling is the codec's
        assert controls.seen == [PollStarted("default", newer.generation)]
        assert await polls.poll_current(bot, "default", waiting.generation) == "poll"
        assert await polls.poll_current(bot, "default", newer.generation) == "ok"
        await store.log.set_reader(bot, "default", "conn-2", 30)
        assert await polls.poll_current(bot, "default", newer.generation) == "reader"


async def test_a_repeated_identical_poll_is_slowed(store: Store) -> None:
    bot = random_id()
    polls = store.readers
    first = await polls.begin_poll(bot, "default", offset=None, timeout_s=0, allowed=None)
    assert not first.repeated and first.timeout_s == 0 and first.pace_s == 0
    again = await polls.begin_poll(bot, "default", offset=None, timeout_s=0, allowed=None)
    assert again.repeated and again.timeout_s >= 3 and 0 < again.pace_s <= 1
    moved = await polls.begin_poll(bot, "default", offset=1, timeout_s=0, allowed=None)
    assert not moved.repeated and moved.timeout_s == 0
    # a different timeout is a different call, not a loop (a long poll after a quick
    # one, or a confirming timeout=0 poll on shut-down after a long poll)
    long = await polls.begin_poll(bot, "default", offset=1, timeout_s=25, allowed=None)
    assert not long.repeated and long.timeout_s == 25
    again = await polls.begin_poll(bot, "default", offset=1, timeout_s=25, allowed=None)
    assert again.repeated and again.timeout_s == 25  # a long poll is not shortened
    confirm = await polls.begin_poll(bot, "default", offset=1, timeout_s=0, allowed=None)
    assert not confirm.repeated and confirm.pace_s == 0


async def test_webhook_configuration_versions_and_state(store: Store) -> None:
    bot = random_id()
    hooks = store.readers
    assert await hooks.get_webhook(bot) is None
    version = await _set_webhook(
        hooks,
        bot,
        url="https://8.8.8.8/a",
        secret="sec",
        max_connections=3,
        allowed_updates=["message", "poll"],
        id_format="number",
    )
    config = await hooks.get_webhook(bot)
    assert config is not None and config.version == version and config.active
    assert (config.url, config.secret, config.max_connections) == ("https://8.8.8.8/a", "sec", 3)
    assert config.allowed_updates == frozenset({"message", "poll"})
    assert config.id_format == "number" and config.last_error_date is None
    assert bot in await hooks.active_bots()

    assert await hooks.record_error(bot, version, 1_700_000_000, "HTTP 500")
    assert not await hooks.record_error(bot, version - 1, 1, "stale dispatcher")
    config = await hooks.get_webhook(bot)
    assert config is not None and config.last_error_message == "HTTP 500"

    assert await hooks.deactivate(bot, version, 1_700_000_001, "gave up")
    config = await hooks.get_webhook(bot)
    assert config is not None and not config.active and config.last_error_message == "gave up"
    assert bot not in await hooks.active_bots()

    again = await _set_webhook(hooks, bot, url="https://8.8.4.4/b")
    config = await hooks.get_webhook(bot)
    assert again == version + 1 and config is not None and config.active
    assert config.secret is None and config.allowed_updates is None  # nothing left over
    assert config.last_error_message is None and bot in await hooks.active_bots()
    assert not await hooks.deactivate(bot, version, 1, "a stale dispatcher gives up")
    assert await hooks.delete_webhook(bot, drop_pending=False)
    assert await hooks.get_webhook(bot) is None and bot not in await hooks.active_bots()
    assert not await hooks.delete_webhook(bot, drop_pending=False)


async def test_unlisting_keeps_a_webhook_set_concurrently(store: Store) -> None:
    bot = random_id()
    hooks = store.readers
    version = await _set_webhook(hooks, bot, url="https://8.8.8.8/a")
    # a delete whose removal from the list lands after a newer set: the list keeps it
    await _set_webhook(hooks, bot, url="https://8.8.8.8/b")
    await store.redis.srem(keys.webhook_index(keys.index_bucket(bot)), str(bot))
    assert not await hooks.deactivate(bot, version, 1, "stale")
    await hooks._unlist(bot)
    assert bot in await hooks.active_bots()
    await hooks.delete_webhook(bot, drop_pending=False)


async def test_pending_count_and_dropping_pending_updates(store: Store) -> None:
    bot = random_id()
    hooks = store.readers
    assert await hooks.pending_count(bot) == 0
    ids = await append(store, bot, 5)
    assert await hooks.pending_count(bot) == 5
    epoch = await store.log.epoch(bot)
    assert epoch is not None
    await store.log.commit_cursor(bot, "default", Cursor(epoch, ids[1]))
    assert await hooks.pending_count(bot) == 3
    assert await hooks.pending_count(bot, limit=2) == 2
    await _set_webhook(hooks, bot, url="https://8.8.8.8/a", drop_pending=True)
    assert await committed(store, bot) == ids[-1] and await hooks.pending_count(bot) == 0
    more = await append(store, bot, 2)
    assert await hooks.pending_count(bot) == 2
    await hooks.delete_webhook(bot, drop_pending=True)
    assert await committed(store, bot) == more[-1]
    assert await committed(store, bot, "other") is None  # other consumers keep theirs


async def test_delivery_leases_are_exclusive_renewable_and_released(store: Store) -> None:
    bots = [random_id(), random_id()]
    hooks = store.readers
    assert await hooks.acquire_leases(bots, "a", 10) == bots
    assert await hooks.acquire_leases(bots, "b", 10) == []
    assert await hooks.renew_leases(bots, "a", 10) == []
    assert await hooks.renew_leases(bots, "b", 10) == bots  # b holds none of them
    assert not await hooks.release_lease(bots[0], "b")
    assert await hooks.lease_holder(bots[0]) == "a"
    assert await hooks.release_lease(bots[0], "a")
    assert await hooks.acquire_leases(bots, "b", 10) == [bots[0]]
    assert await hooks.renew_leases(bots, "a", 10) == [bots[0]]  # a lost the first
    short = random_id()
    assert await hooks.acquire_leases([short], "a", 0.05) == [short]
    for _ in range(int(wait_s(100))):
        if await hooks.lease_holder(short) is None:
            break
        await asyncio.sleep(0.02)
    assert await hooks.acquire_leases([short], "b", 10) == [short]  # an expired lease is free


async def test_closing_a_reader_commits_forward_and_clears_only_its_own_mark(
    store: Store,
) -> None:
    bot = random_id()
    log = store.log
    ids = await append(store, bot, 3)
    epoch = await log.epoch(bot)
    assert epoch is not None
    await log.set_reader(bot, "default", "conn-1", 30)
    await log.close_reader(bot, "default", "conn-1", Cursor(epoch, ids[1]))
    assert await log.get_cursor(bot, "default") == Cursor(epoch, ids[1])
    assert await log.reader(bot, "default") is None
    # an older cursor does not move it back; another reader's mark stays
    await log.set_reader(bot, "default", "conn-2", 30)
    await log.close_reader(bot, "default", "conn-1", Cursor(epoch, ids[0]))
    assert await log.get_cursor(bot, "default") == Cursor(epoch, ids[1])
    assert await log.reader(bot, "default") == "conn-2"
    # nothing to commit, a cursor of another epoch: the mark is still let go
    await log.close_reader(bot, "default", "conn-2", None)
    assert await log.reader(bot, "default") is None
    await log.set_reader(bot, "default", "conn-3", 30)
    await log.close_reader(bot, "default", "conn-3", Cursor("other", ids[2]))
    assert await log.get_cursor(bot, "default") == Cursor(epoch, ids[1])
    assert await log.reader(bot, "default") is None
    # the plain commit (two keys) still answers how it went
    assert await log.commit_cursor(bot, "default", Cursor(epoch, ids[2])) == 1
    assert await log.commit_cursor(bot, "default", Cursor(epoch, ids[2])) == 0
    assert await log.commit_cursor(bot, "default", Cursor("other", ids[2])) == -1


async def test_webhook_changes_announce_themselves_in_the_codecs_spelling(store: Store) -> None:
    bot = random_id()
    async with _listening(store, bot) as controls:
        version = await _set_webhook(store.readers, bot, url="https://example.com/hook")
        await controls.next()
        assert await store.readers.delete_webhook(bot, drop_pending=False)
        await controls.next()
        # webhook_config.lua's spelling is the codec's
        assert controls.seen == [WebhookChanged(version), WebhookChanged(None)]
