"""The playground's login codes and sign-up flag in the store (real Redis, on one
node and on a cluster): a code works once, only until it expires, and its key
names the code's hash only."""

from __future__ import annotations

import asyncio

import pytest

from shared.store import Store
from shared.store.logins import LoginCodes, Redeemed
from tests.conftest import wait_s

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]


async def test_a_code_is_redeemed_once(store: Store) -> None:
    codes = LoginCodes(wire=store.wire)
    code = await codes.issue(42, "usr_42:secret")
    assert len(code) >= 32
    assert await codes.redeem(code) == Redeemed(42, "usr_42:secret")
    assert await codes.redeem(code) is None
    assert await codes.redeem("a-code-nobody-issued") is None
    other = await codes.issue(42, "usr_42:secret")
    assert other != code


async def test_a_code_expires(store: Store) -> None:
    codes = LoginCodes(wire=store.wire)
    code = await codes.issue(7, "usr_7:secret", ttl=1)
    keeper = await codes.issue(7, "usr_7:secret")
    # the short-lived one's key, looked at without spending the code
    short = [k for k in await _login_keys(store) if 0 < await store.wire.call("PTTL", k) <= 1000]
    assert len(short) == 1
    for _ in range(int(wait_s(300))):  # until Redis expires it
        if not await store.wire.call("EXISTS", short[0]):
            break
        await asyncio.sleep(0.1)
    assert await codes.redeem(code) is None
    assert await codes.redeem(keeper) == Redeemed(7, "usr_7:secret")


async def test_keys_name_no_code_and_sign_up_is_closed_until_opened(store: Store) -> None:
    codes = LoginCodes(wire=store.wire)
    code = await codes.issue(9, "usr_9:secret")
    assert all(code not in key for key in await _login_keys(store))
    await codes.set_signup(False)
    assert not await codes.signup_open()
    await codes.set_signup(True)
    assert await codes.signup_open()
    await codes.set_signup(False)
    assert not await codes.signup_open()


async def _login_keys(store: Store) -> list[str]:
    found: list[str] = []
    for answer in await store.wire.each_primary(("KEYS", "botgw:{login:*")):
        found.extend(k.decode() if isinstance(k, bytes) else k for k in answer)
    return found
