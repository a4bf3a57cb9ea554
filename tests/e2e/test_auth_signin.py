"""Ed25519 sign-in against a real REST process, signed with PyNaCl (an implementation
independent of the server's ``cryptography``): a correct signature yields a token;
a replayed, expired, foreign or wrong one is refused with the envelope."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import nacl.signing
import pytest

from shared import keys
from shared.store import Store
from tests.conftest import rest_url_fixture, unique

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]

KEY_PER_MINUTE = 4
signin_rest = rest_url_fixture(
    "rest-signin",
    BOTGW_AUTH_KEY_PER_MINUTE=str(KEY_PER_MINUTE),
    BOTGW_AUTH_PEER_PER_MINUTE="1000000",
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Key:
    signer: nacl.signing.SigningKey

    @classmethod
    def new(cls) -> Key:
        return cls(nacl.signing.SigningKey.generate())

    @property
    def public(self) -> str:
        return b64(bytes(self.signer.verify_key))

    def sign(self, message: bytes) -> str:
        return b64(self.signer.sign(message).signature)


@pytest.fixture
async def http(signin_rest: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=signin_rest, timeout=30) as client:
        yield client


async def call(http: httpx.AsyncClient, path: str, **params: Any) -> httpx.Response:
    return await http.post(path, json=params)


async def ok(http: httpx.AsyncClient, path: str, **params: Any) -> Any:
    response = await call(http, path, **params)
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True, body
    return body["result"]


async def refused(http: httpx.AsyncClient, path: str, **params: Any) -> tuple[int, str]:
    """(status, code) of a call that must fail with the envelope."""
    response = await call(http, path, **params)
    body = response.json()
    assert body["ok"] is False and body["error_code"] == response.status_code
    assert body["description"]
    return response.status_code, body["code"]


def message(audience: str, public_key: str, challenge: str) -> bytes:
    """The documented message, built here from docs/api.md, not from the server's code."""
    return "\n".join(["botgw-auth-v1", audience, public_key, challenge]).encode()


async def challenge_for(http: httpx.AsyncClient, key: Key) -> dict[str, Any]:
    found: dict[str, Any] = await ok(http, "/client/auth/challenge", public_key=key.public)
    host = http.base_url.netloc.decode()
    assert found["audience"] == host
    assert found["message"] == message(host, key.public, found["challenge"]).decode()
    return found


async def signed(http: httpx.AsyncClient, key: Key, **extra: Any) -> dict[str, Any]:
    """The parameters of a correct verification of a new challenge of ``key``."""
    found = await challenge_for(http, key)
    signature = key.sign(message(found["audience"], key.public, found["challenge"]))
    return {
        "public_key": key.public,
        "challenge": found["challenge"],
        "signature": signature,
        **extra,
    }


async def me(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/client/getMe", headers={"Authorization": f"Bearer {token}"})


async def test_a_new_key_registers_and_signs_in_again(http: httpx.AsyncClient) -> None:
    key = Key.new()
    name = unique("sig")
    params = await signed(http, key, username=name, name="Signer")
    first = await ok(http, "/client/auth/verify", **params)
    assert first["created"] is True and first["user"]["username"] == name
    assert first["token"].startswith("usr_")
    found = (await me(http, first["token"])).json()["result"]
    assert found["username"] == name and found["first_name"] == "Signer"

    # replayed: the challenge was used up
    assert await refused(http, "/client/auth/verify", **params) == (401, "CHALLENGE_INVALID")

    # the same key signs in to the same user, with a new token; the old one is dead
    again = await ok(http, "/client/auth/verify", **await signed(http, key, username="ignored"))
    assert again["created"] is False and again["user"]["id"] == first["user"]["id"]
    assert again["user"]["username"] == name and again["token"] != first["token"]
    assert (await me(http, again["token"])).status_code == 200
    assert (await me(http, first["token"])).status_code == 401


async def test_a_derived_username_when_none_is_asked_for(http: httpx.AsyncClient) -> None:
    result = await ok(http, "/client/auth/verify", **await signed(http, Key.new()))
    assert result["created"] is True and result["user"]["username"].startswith("key_")


async def test_wrong_signatures_are_refused_and_use_the_challenge_up(
    http: httpx.AsyncClient,
) -> None:
    key, other = Key.new(), Key.new()
    for signer, audience, shape in (
        (other, "", "documented"),  # another key
        (key, "evil.example", "documented"),  # for another server
        (key, "", "short"),  # not the documented message
    ):
        found = await challenge_for(http, key)
        params = {"public_key": key.public, "challenge": found["challenge"]}
        if shape == "short":
            signature = signer.sign(b"botgw-auth-v1\n" + found["challenge"].encode())
        else:
            text = message(audience or found["audience"], key.public, found["challenge"])
            signature = signer.sign(text)
        got = await refused(http, "/client/auth/verify", **params, signature=signature)
        assert got == (401, "SIGNATURE_INVALID")
        # the right signature comes too late: that challenge is gone
        right = key.sign(message(found["audience"], key.public, found["challenge"]))
        got = await refused(http, "/client/auth/verify", **params, signature=right)
        assert got == (401, "CHALLENGE_INVALID")
    # nobody was registered for the key: its first good sign-in creates its user
    result = await ok(http, "/client/auth/verify", **await signed(http, key))
    assert result["created"] is True


async def test_a_challenge_is_bound_to_its_key(http: httpx.AsyncClient) -> None:
    key, thief = Key.new(), Key.new()
    found = await challenge_for(http, key)
    stolen = thief.sign(message(found["audience"], thief.public, found["challenge"]))
    got = await refused(
        http,
        "/client/auth/verify",
        public_key=thief.public,
        challenge=found["challenge"],
        signature=stolen,
    )
    assert got == (401, "CHALLENGE_INVALID")
    # and the owner's challenge still stands
    right = key.sign(message(found["audience"], key.public, found["challenge"]))
    await ok(
        http,
        "/client/auth/verify",
        public_key=key.public,
        challenge=found["challenge"],
        signature=right,
    )


async def test_an_expired_challenge_is_refused(http: httpx.AsyncClient, store: Store) -> None:
    key = Key.new()
    params = await signed(http, key)
    stored = keys.auth_challenge(key.public, params["challenge"])
    ttl_ms = await store.wire.call("PTTL", stored)
    assert 0 < ttl_ms <= 120_000  # the default auth_challenge_ttl_seconds
    # let it expire now rather than in two minutes (an expiry time in the past)
    await store.wire.call("PEXPIREAT", stored, 1)
    assert not await store.wire.call("EXISTS", stored)
    assert await refused(http, "/client/auth/verify", **params) == (401, "CHALLENGE_INVALID")


async def test_two_racing_verifications_get_one_token(http: httpx.AsyncClient) -> None:
    params = await signed(http, Key.new())
    answers = await asyncio.gather(*(call(http, "/client/auth/verify", **params) for _ in range(4)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 401, 401, 401]
    assert {a.json().get("code") for a in answers if a.status_code == 401} == {"CHALLENGE_INVALID"}


@pytest.mark.parametrize("same_name", [True, False])
async def test_racing_first_sign_ins_of_a_key_make_one_user(
    http: httpx.AsyncClient, same_name: bool
) -> None:
    key, name = Key.new(), unique("race")
    attempts = [
        await signed(http, key, username=name if same_name else f"{name}{i}") for i in range(4)
    ]
    answers = await asyncio.gather(*(call(http, "/client/auth/verify", **p) for p in attempts))
    results = [a.json()["result"] for a in answers]
    assert all(a.status_code == 200 for a in answers)
    assert len({r["user"]["id"] for r in results}) == 1
    assert [r["created"] for r in results].count(True) == 1
    # the one token that still works is the newest one issued; the user is whole
    working = [r["token"] for r in results if (await me(http, r["token"])).status_code == 200]
    assert len(working) == 1
    found = (await me(http, working[0])).json()["result"]
    assert found["id"] == results[0]["user"]["id"]
    if not same_name:
        # the names of users taken back after losing the race are free again
        for i in range(4):
            if f"{name}{i}" != found["username"]:
                other = await signed(http, Key.new(), username=f"{name}{i}")
                assert (await ok(http, "/client/auth/verify", **other))["created"] is True


async def test_malformed_requests_change_nothing(http: httpx.AsyncClient) -> None:
    key = Key.new()
    for bad, code in (
        ("", "INVALID_PUBLIC_KEY"),
        (key.public[:-1], "INVALID_PUBLIC_KEY"),
        (key.public + "=", "INVALID_PUBLIC_KEY"),
        (bytes(key.signer.verify_key).hex(), "INVALID_PUBLIC_KEY"),
        (bytes(key.signer.verify_key).hex() + "00", "INVALID_PARAMETER"),
    ):
        got = await refused(http, "/client/auth/challenge", public_key=bad)
        assert got == (400, code), (bad, got)
    params = await signed(http, key)
    for broken, code in (
        ({"signature": params["signature"][:-2]}, "INVALID_SIGNATURE"),
        ({"challenge": params["challenge"] + "A"}, "INVALID_CHALLENGE"),
        ({"username": "Bad Name"}, "INVALID_USERNAME"),
        ({"username": "someone_bot"}, "INVALID_USERNAME"),
    ):
        assert await refused(http, "/client/auth/verify", **{**params, **broken}) == (400, code)
    got = await refused(http, "/client/auth/verify", public_key=key.public)
    assert got == (400, "MISSING_PARAMETER")
    # none of them used the challenge up
    result = await ok(http, "/client/auth/verify", **params)
    assert result["created"] is True


async def test_a_taken_username_is_refused_and_binds_nothing(http: httpx.AsyncClient) -> None:
    name = unique("tk")
    await ok(http, "/client/auth/verify", **await signed(http, Key.new(), username=name))
    key = Key.new()
    got = await refused(http, "/client/auth/verify", **await signed(http, key, username=name))
    assert got == (409, "USERNAME_TAKEN")
    result = await ok(http, "/client/auth/verify", **await signed(http, key, username=name + "2"))
    assert result["created"] is True and result["user"]["username"] == name + "2"


async def test_challenges_are_rate_limited_per_key(http: httpx.AsyncClient) -> None:
    key = Key.new()
    for _ in range(KEY_PER_MINUTE):
        await ok(http, "/client/auth/challenge", public_key=key.public)
    response = await call(http, "/client/auth/challenge", public_key=key.public)
    body = response.json()
    assert response.status_code == 429 and body["code"] == "TOO_MANY_REQUESTS"
    assert body["parameters"]["retry_after"] >= 1
    assert response.headers["Retry-After"] == str(body["parameters"]["retry_after"])
    # another key is not held up by it
    await ok(http, "/client/auth/challenge", public_key=Key.new().public)


async def test_openapi_lists_the_sign_in_without_a_token(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json")).json()["paths"]
    for name in ("challenge", "verify"):
        operation = paths[f"/client/auth/{name}"]["post"]
        assert operation["security"] == []
        assert (
            "public_key"
            in operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
        )
    assert "get" not in paths["/client/auth/verify"]
    assert (await http.get("/client/auth/verify")).status_code == 405
