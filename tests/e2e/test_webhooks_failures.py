"""A failing receiver: retries on schedule with one idempotency key, then inactive
with the reason; once it is back and the webhook is set again, every update
arrives, in order, exactly from where delivery stopped."""

from __future__ import annotations

import httpx
import pytest

from shared.settings import Settings
from shared.store import Store
from tests.conftest import Process, Stack
from tests.e2e.test_getupdates_offsets import scene
from tests.e2e.test_webhooks_receiver import (
    RETRY_DELAYS,
    TIMEOUT_S,
    Receiver,
    settled,
    webhook_info,
)

pytestmark = pytest.mark.asyncio

ATTEMPTS = len(RETRY_DELAYS) + 1


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("500", "the receiver answered HTTP 500"),
        ("hang", f"no answer within {TIMEOUT_S:g} s"),
        ("reset", "the connection failed"),
    ],
)
async def test_failing_receiver_retries_gives_up_and_resumes_in_order(
    mode: str,
    reason: str,
    hooks: Process,
    stack: Stack,
    settings: Settings,
    store: Store,
    http: httpx.AsyncClient,
    receiver: Receiver,
) -> None:
    s = await scene(stack, settings, http)
    receiver.mode = mode
    url = receiver.url(f"/{mode}")
    await s.as_bot("setWebhook", url=url, secret_token="k_" + mode, drop_pending_updates=True)
    try:
        await s.say("m1", "m2")
        await receiver.wait_for(lambda: len(receiver.to(f"/{mode}")) >= ATTEMPTS)
        info = await webhook_info(s, lambda i: not i["active"])
        attempts = receiver.to(f"/{mode}")

        # one update, attempted on the configured schedule with the same idempotency key
        assert len(attempts) == ATTEMPTS and {a.text for a in attempts} == {"m1"}
        assert len({a.update_id for a in attempts}) == 1
        for before, after, delay in zip(attempts[:-1], attempts[1:], RETRY_DELAYS, strict=True):
            floor = delay + (TIMEOUT_S if mode == "hang" else 0)
            assert after.at - before.at >= floor * 0.95, (mode, after.at - before.at, floor)

        # then inactive, with the reason; the updates wait in the log
        assert info["active"] is False, info
        assert reason in info["last_error_message"]
        assert attempts[0].update_id in info["last_error_message"]
        assert isinstance(info["last_error_date"], int)
        assert info["pending_update_count"] == 2
        await s.say("m3")
        assert (await s.as_bot("getWebhookInfo"))["pending_update_count"] == 3
        assert len(receiver.to(f"/{mode}")) == ATTEMPTS  # nothing more is sent

        # the receiver comes back; setting the webhook again resumes where it stopped
        receiver.mode = "ok"
        await s.as_bot("setWebhook", url=url, secret_token="k_" + mode)
        await receiver.wait_for(lambda: sum(d.answer == "ok" for d in receiver.to(f"/{mode}")) >= 3)
        await settled(s)
        delivered = [d for d in receiver.to(f"/{mode}") if d.answer == "ok"]
        assert [d.text for d in delivered] == ["m1", "m2", "m3"]
        assert delivered[0].update_id == attempts[0].update_id  # the same key again
        info = await s.as_bot("getWebhookInfo")
        assert info["active"] is True and "last_error_message" not in info
    finally:
        await s.as_bot("deleteWebhook")


async def test_errors_show_while_retrying_and_a_new_url_takes_over_at_once(
    hooks: Process, stack: Stack, settings: Settings, http: httpx.AsyncClient
) -> None:
    s = await scene(stack, settings, http)
    broken = await Receiver(mode="500").start()
    fixed = await Receiver().start()
    try:
        await s.as_bot("setWebhook", url=broken.url("/x"))
        await broken.wait_for(lambda: len(broken.deliveries) >= 1)
        info = await webhook_info(s, lambda i: "last_error_message" in i)
        assert "HTTP 500" in info["last_error_message"]
        # setting it again cuts the retry wait short and resumes with the new URL
        await s.as_bot("setWebhook", url=fixed.url("/y"))
        await fixed.wait_for(lambda: len(fixed.deliveries) >= 1)
        assert [d.text for d in fixed.deliveries] == ["/start"]
        info = await settled(s)
        assert info["active"] is True and "last_error_message" not in info
    finally:
        await s.as_bot("deleteWebhook")
        await broken.stop()
        await fixed.stop()
