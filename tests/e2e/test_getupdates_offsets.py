"""getUpdates offsets, case by case, as Telegram defines them (docs/design.md, Readers and cursors).

A real REST process; a user writes to the bot through the client API and the bot
polls with httpx. Each test uses its own bot, so consumers start fresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared import keys
from shared.ids import stream_id_from_update_id
from shared.settings import Settings
from shared.store import Store
from tests.api import Caller, bot_api, client_api, create_bot, create_user
from tests.conftest import Stack, unique

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]


@dataclass
class Scene:
    """A bot, a user who started it, and the user's chat id."""

    http: httpx.AsyncClient
    bot_id: int
    as_bot: Caller
    as_user: Caller
    chat_id: str

    async def say(self, *texts: str) -> None:
        for text in texts:
            await self.as_user("sendMessage", chat_id=self.chat_id, text=text)

    async def poll(self, **params: Any) -> list[dict[str, Any]]:
        params.setdefault("timeout", 0)
        result = await self.as_bot("getUpdates", **params)
        assert isinstance(result, list)
        return result


async def scene(stack: Stack, settings: Settings, http: httpx.AsyncClient) -> Scene:
    user = await create_user(settings, unique("pol"))
    bot = await create_bot(settings, user, unique("o") + "_bot")
    as_user = client_api(http, user)
    chat = await as_user("startBot", username=bot.username)
    return Scene(http, bot.bot_id, bot_api(http, bot), as_user, chat["id"])


def texts(updates: list[dict[str, Any]]) -> list[str]:
    return [u["message"]["text"] for u in updates]


def ids(updates: list[dict[str, Any]]) -> list[int]:
    return [int(u["update_id"]) for u in updates]


@pytest.fixture
async def http(stack: Stack) -> Any:
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as client:
        yield client


async def test_omitted_and_zero_offset_return_unconfirmed_updates_from_the_oldest(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    await s.say("a", "b")
    first = await s.poll()
    assert texts(first) == ["/start", "a", "b"]
    assert ids(first) == sorted(ids(first)) and all(isinstance(u["update_id"], str) for u in first)
    again = await s.poll(offset=0)  # 0 is the same as no offset: nothing was confirmed
    assert again == first


async def test_last_plus_one_confirms_everything_and_returns_only_newer_updates(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    await s.say("a")
    batch = await s.poll()
    offset = ids(batch)[-1] + 1
    assert await s.poll(offset=offset) == []
    assert await s.poll() == []  # confirmed: never returned again
    await s.say("b")
    newer = await s.poll(offset=offset)
    assert texts(newer) == ["b"] and ids(newer)[0] >= offset


async def test_a_middle_offset_returns_from_it_and_confirms_the_ones_before(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    await s.say("a", "b", "c")
    everything = await s.poll()
    middle = ids(everything)[2]
    assert texts(await s.poll(offset=middle)) == ["b", "c"]
    assert texts(await s.poll()) == ["b", "c"]  # earlier ones are confirmed
    # an offset at or before the committed position does not bring them back
    assert texts(await s.poll(offset=ids(everything)[0])) == ["b", "c"]


async def test_a_negative_offset_returns_the_last_updates_and_forgets_earlier_ones(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    await s.say("a", "b", "c", "d")
    assert texts(await s.poll(offset=-2)) == ["c", "d"]
    assert texts(await s.poll()) == ["c", "d"]  # the last two are not confirmed yet
    assert texts(await s.poll(offset=-10, limit=1)) == ["d"]  # at most `limit`
    last = ids(await s.poll(offset=-1, consumer="x"))
    assert len(last) == 1
    assert await s.poll(offset=last[0] + 1) == []
    assert await s.poll(offset=-3) == []  # everything is confirmed: nothing to return


async def test_an_offset_beyond_the_head_skips_no_future_update(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    await s.say("a")
    head = ids(await s.poll())[-1]
    assert await s.poll(offset=head + 10**12) == []
    await s.say("b")
    assert texts(await s.poll()) == ["b"]  # not skipped although its id < that offset


async def test_an_offset_older_than_retention_starts_at_the_oldest_retained_update(
    stack: Stack, settings: Settings, store: Store, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    await s.say("a", "b", "c", "d")
    everything = await s.poll(consumer="probe")
    oldest_kept = ids(everything)[3]
    # retention removes the oldest entries (exactly, for the test)
    await store.redis.xtrim(
        keys.bot_log(s.bot_id), minid=stream_id_from_update_id(oldest_kept), approximate=False
    )
    got = await s.poll(offset=ids(everything)[0])
    # the native answer says so first: the three oldest were trimmed before they were read
    marker, *kept = got
    assert marker == {
        "update_id": str(ids(everything)[2]),
        "gap": {
            "reason": "trimmed",
            "after_update_id": str(ids(everything)[0] - 1),
            "last_update_id": str(ids(everything)[2]),
            # the offset named a position whose neighbours were trimmed already
            "count": None,
        },
    }
    assert texts(kept) == ["c", "d"] and ids(kept)[0] == oldest_kept
    # until it is confirmed the marker comes again; confirming it confirms the range
    assert (await s.poll())[0] == marker
    assert texts(await s.poll(offset=int(marker["update_id"]) + 1)) == ["c", "d"]


async def test_limit_and_timeout_are_clamped_not_refused(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    await s.say(*[f"m{i}" for i in range(120)])
    assert len(await s.poll(limit=0)) == 1
    assert len(await s.poll(limit=1000, consumer="big")) == 100
    assert len(await s.poll(limit=-5, timeout=-3, consumer="neg")) == 1


async def test_allowed_updates_filter_when_reading_and_are_remembered(
    stack: Stack, settings: Settings, store: Store, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    chat = (await s.poll(consumer="probe"))[0]["message"]["chat"]
    poll_body = {"poll": {"id": "p1", "question": "?", "options": []}}
    await store.log.append(s.bot_id, kind="poll", chat_id=int(chat["id"]), body=poll_body)
    await s.say("after")
    polls_only = await s.poll(allowed_updates=["poll"])
    assert [list(u)[1] for u in polls_only] == ["poll"]
    assert await s.poll(offset=0, consumer="probe") != []  # other consumers see everything
    remembered = await s.poll(offset=ids(polls_only)[0])  # no allowed_updates: kept
    assert [list(u)[1] for u in remembered] == ["poll"]
    everything = await s.poll(allowed_updates=[], consumer="default")
    assert [list(u)[1] for u in everything] == ["poll", "message"]  # nothing was lost


async def test_wrong_parameters_get_400_naming_them_and_change_nothing(
    stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    await s.say("a")
    for params, name in (
        ({"offset": "abc"}, "offset"),
        ({"offset": 1.5}, "offset"),
        ({"allowed_updates": ["message", "nope"]}, "allowed_updates"),
        ({"allowed_updates": "message"}, "allowed_updates"),
        ({"consumer": "no spaces"}, "consumer"),
        ({"consumer": ""}, "consumer"),
        ({"limit": "many"}, "limit"),
    ):
        response = await s.as_bot.raw("getUpdates", **{"offset": 10**15, **params})
        body = response.json()
        assert response.status_code == 400 and body["ok"] is False, params
        assert body["code"] == "INVALID_PARAMETER" and f"'{name}'" in body["description"]
    assert texts(await s.poll()) == ["/start", "a"]  # the bad offsets confirmed nothing
    response = await http.get(
        "/bot/getUpdates",
        params={"offset": "-1", "limit": "5"},
        headers={"Authorization": s.as_bot.auth},
    )
    assert response.status_code == 200 and texts(response.json()["result"]) == ["a"]
