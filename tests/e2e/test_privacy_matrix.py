"""Which group message reaches which bot: two users, two bots, privacy on and off.

Bot A keeps privacy mode on throughout; bot B has it on in the first pass and off
(through the management API) in the second. Every message is followed by reading
both bots' logs, so each row of the matrix is checked on its own.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.api import Caller, Inbox, bot_api, client_api, create_bot, create_user, manage_api
from tests.conftest import Stack, unique

pytestmark = pytest.mark.asyncio


async def test_privacy_matrix(stack: Stack, settings: Settings) -> None:
    alice = await create_user(settings, unique("alice"))
    bob = await create_user(settings, unique("bob"))
    bot_a = await create_bot(settings, alice, unique("a") + "_bot")
    bot_b = await create_bot(settings, alice, unique("b") + "_bot")
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        as_alice, as_bob = client_api(http, alice), client_api(http, bob)
        as_a, as_b = bot_api(http, bot_a), bot_api(http, bot_b)
        inboxes = {id(as_a): Inbox(as_a), id(as_b): Inbox(as_b)}

        async def drain(bot: Caller) -> list[dict[str, Any]]:
            return await inboxes[id(bot)].take()

        group = (await as_alice("createGroup", title="Matrix"))["id"]
        for name in (bob.username, bot_a.username, bot_b.username):
            await as_alice("addChatMember", chat_id=group, username=name)
        await drain(as_a)
        await drain(as_b)
        a_name, b_name = bot_a.username, bot_b.username

        async def reached(sender: Caller, text: str, **extra: Any) -> set[str]:
            """Send ``text``; the bots it reached, checking what they received."""
            sent = await sender("sendMessage", chat_id=group, text=text, **extra)
            got = set()
            for label, bot in (("A", as_a), ("B", as_b)):
                updates = await drain(bot)
                if updates:
                    (update,) = updates
                    assert update["message"]["message_id"] == sent["message_id"]
                    assert update["message"]["text"] == text
                    assert update["message"]["chat"]["id"] == group
                    got.add(label)
            return got

        users_said = await as_alice("sendMessage", chat_id=group, text="a user's words")
        a_said = await as_a("sendMessage", chat_id=group, text=f"A here, hi @{b_name}")
        b_said = await as_b("sendMessage", chat_id=group, text=f"B here, /cmd@{a_name}")
        assert await drain(as_a) == [] and await drain(as_b) == []

        def rows(b_open: bool) -> list[tuple[Caller, str, dict[str, Any], set[str]]]:
            b_all = {"B"} if b_open else set()
            return [
                (as_alice, "just chatting", {}, b_all),
                (as_bob, "/cmd without a name", {}, b_all),
                (as_alice, f"/cmd@{a_name} go", {}, {"A"} | b_all),
                (as_bob, f"/cmd@{b_name}", {}, {"B"}),
                (as_alice, f"hello @{a_name}!", {}, {"A"} | b_all),
                (as_bob, f"HELLO @{b_name.upper()}", {}, {"B"}),
                (as_alice, f"@{a_name} and @{b_name}", {}, {"A", "B"}),
                (as_bob, f"email me at x@{a_name}.org", {}, b_all),
                (as_alice, f"/cmd@{a_name}x", {}, b_all),
                (as_bob, "about A", {"reply_to_message_id": a_said["message_id"]}, {"A"} | b_all),
                (as_alice, "about B", {"reply_to_message_id": b_said["message_id"]}, {"B"}),
                (
                    as_bob,
                    f"quoting {a_name}",
                    {"reply_to_message_id": users_said["message_id"]},
                    b_all,
                ),
            ]

        for b_open in (False, True):
            if b_open:
                await manage_api(http, alice)("editBot", bot_id=bot_b.bot_id, privacy_mode=False)
            for sender, text, extra, expected in rows(b_open):
                assert await reached(sender, text, **extra) == expected, (b_open, text)
            # bots never receive bots' messages, whatever the privacy mode
            await as_a("sendMessage", chat_id=group, text=f"@{b_name} /cmd@{b_name}")
            await as_b(
                "sendMessage",
                chat_id=group,
                text="B talks",
                reply_to_message_id=b_said["message_id"],
            )
            # nor may a bot name another bot's message: it cannot see it
            refused = await as_b.raw(
                "sendMessage", chat_id=group, text="B", reply_to_message_id=a_said["message_id"]
            )
            assert (refused.status_code, refused.json()["code"]) == (400, "MESSAGE_NOT_FOUND")
            assert await drain(as_a) == [] and await drain(as_b) == []

        # an edit reaches the bots the edited message reaches
        plain = await as_bob("sendMessage", chat_id=group, text="typo")
        assert [len(await drain(b)) for b in (as_a, as_b)] == [0, 1]
        await as_bob(
            "editMessageText", chat_id=group, message_id=plain["message_id"], text=f"@{a_name}"
        )
        for bot in (as_a, as_b):
            (update,) = await drain(bot)
            assert update["edited_message"]["text"] == f"@{a_name}"
