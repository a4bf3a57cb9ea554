"""Webhook replies run by the REST methods against real Redis: once per update,
after a run that died, and refused as a call would be (``webhooks.replies`` with
``rest.webhook_replies``)."""

from __future__ import annotations

import pytest

from rest.webhook_replies import API, reply_runner
from shared.settings import Settings
from shared.store import Store
from tests.api import BotAccount, create_bot, create_user
from tests.conftest import unique
from webhooks.replies import Reply, Unreadable, carry_out, reply_key

pytestmark = pytest.mark.asyncio


async def new_bot(settings: Settings) -> BotAccount:
    owner = await create_user(settings, unique("wro"))
    return await create_bot(settings, owner, unique("wr") + "_bot")


def describe(text: str) -> Reply:
    # as a Telegram library's form would send it
    return Reply("setmydescription", {"description": text}, from_text=True)


async def description(store: Store, bot: BotAccount) -> str:
    record = await store.entities.get_bot(bot.bot_id)
    assert record is not None
    return record.description


async def test_a_reply_runs_once_per_update(settings: Settings, store: Store) -> None:
    bot = await new_bot(settings)
    runner = reply_runner(settings, store, store.wakeups())
    assert await carry_out(runner, bot.bot_id, "telegram", 11, describe("first")) == "done"
    assert await description(store, bot) == "first"
    # the same update again (a repeated delivery): the first run's result stands
    assert await carry_out(runner, bot.bot_id, "telegram", 11, describe("again")) == "replayed"
    assert await description(store, bot) == "first"
    # the next update is a call of its own
    assert await carry_out(runner, bot.bot_id, "telegram", 12, describe("second")) == "done"
    assert await description(store, bot) == "second"


async def test_a_reply_waits_out_a_run_that_died_holding_its_key(
    settings: Settings, store: Store
) -> None:
    """A dispatcher killed while it ran the reply leaves the key claimed; the next
    delivery's reply waits until the claim expires and then runs."""
    bot = await new_bot(settings)
    claim = await store.calls.claim(f"b{bot.bot_id}", API, reply_key(21), "setMyDescription")
    assert claim.state == "new"
    runner = reply_runner(settings, store, store.wakeups())
    assert await carry_out(runner, bot.bot_id, "telegram", 21, describe("late")) == "done"
    assert await description(store, bot) == "late"


async def test_replies_are_refused_as_calls_are(settings: Settings, store: Store) -> None:
    bot = await new_bot(settings)
    runner = reply_runner(settings, store, store.wakeups())
    initial = await description(store, bot)
    refused = [
        Reply("sendMessage", {"text": "no chat"}, from_text=False),  # a missing parameter
        Reply("noSuchMethod", {}, from_text=False),
        Reply("getUpdates", {"timeout": 50}, from_text=False),  # would hold up deliveries
        Reply("setmydescription", {}, from_text=True),  # native names are exact
    ]
    for number, reply in enumerate(refused):
        dialect = "native" if reply.method == "setmydescription" else "telegram"
        assert await carry_out(runner, bot.bot_id, dialect, 30 + number, reply) == "refused"
    assert await description(store, bot) == initial  # nothing was changed
    # a revoked bot's replies, as its calls
    await store.entities.update_bot(bot.bot_id, {"active": False})
    assert await carry_out(runner, bot.bot_id, "telegram", 40, describe("x")) == "refused"
    # what cannot be read, and a dispatcher that runs no methods
    unreadable = Unreadable("malformed", "the answer's body is not valid JSON")
    assert await carry_out(runner, bot.bot_id, "telegram", 41, unreadable) == "malformed"
    assert await carry_out(None, bot.bot_id, "telegram", 42, describe("x")) == "unsupported"
