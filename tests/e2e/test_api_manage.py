"""The management API and the ``botgw bots ...`` command line."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from shared import keys
from shared.settings import Settings
from shared.store import Store
from tests.api import Account, Caller, client_api, create_user, error, manage_api
from tests.conftest import Stack, process_env, unique

pytestmark = pytest.mark.asyncio


@dataclass
class Owner:
    http: httpx.AsyncClient
    account: Account
    manage: Caller

    def bot(self, token: str) -> Caller:
        return Caller(self.http, "bot", f"Bot {token}")


@pytest.fixture
async def owner(stack: Stack, settings: Settings) -> AsyncIterator[Owner]:
    account = await create_user(settings, unique("mg"))
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        yield Owner(http, account, manage_api(http, account))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def test_create_list_get_and_edit(owner: Owner, settings: Settings, store: Store) -> None:
    username = unique("w") + "_bot"
    created = await owner.manage(
        "createBot", username=username, name="Weather", description="Forecasts"
    )
    assert created["username"] == username and created["token"].startswith("bot_")
    assert created["owner_id"] == str(owner.account.user_id) and created["active"] is True
    assert created["privacy_mode"] is True
    me = await owner.bot(created["token"])("getMe")
    assert me["id"] == created["id"] and me["first_name"] == "Weather"

    # only the SHA-256 of the token is stored
    raw = await store.redis.hgetall(keys.bot_info(int(created["id"])))
    stored = {_text(k): _text(v) for k, v in raw.items()}
    assert stored["token_hash"] == hashlib.sha256(created["token"].encode()).hexdigest()
    assert not any(created["token"].split(":")[1] in value for value in stored.values())

    listed = await owner.manage("listBots")
    assert [b["username"] for b in listed] == [username] and "token" not in listed[0]
    assert await owner.manage("getBot", bot_id=created["id"]) == listed[0]

    edited = await owner.manage(
        "editBot", bot_id=created["id"], name="Weather 2", description="", privacy_mode=False
    )
    assert (edited["name"], edited["description"], edited["privacy_mode"]) == (
        "Weather 2",
        "",
        False,
    )
    me = await owner.bot(created["token"])("getMe")
    assert me["first_name"] == "Weather 2" and me["can_read_all_group_messages"] is True
    unchanged = await owner.manage("editBot", bot_id=created["id"])
    assert unchanged == edited

    for params, status, code in (
        ({"username": username, "name": "Again"}, 409, "USERNAME_TAKEN"),
        ({"username": "Bad-Name_bot", "name": "Bad"}, 400, "INVALID_PARAMETER"),
        ({"username": unique("x") + "_bod", "name": "Bad"}, 400, "INVALID_PARAMETER"),
        ({"username": unique("n") + "_bot", "name": "ab"}, 400, "INVALID_PARAMETER"),
        (
            {"username": unique("n") + "_bot", "name": "Okay", "description": "d" * 257},
            400,
            "INVALID_PARAMETER",
        ),
        ({"name": "Nameless"}, 400, "MISSING_PARAMETER"),
    ):
        assert await error(owner.manage, "createBot", **params) == (status, code), params
    assert await error(owner.manage, "editBot", bot_id=created["id"], name="x" * 33) == (
        400,
        "INVALID_PARAMETER",
    )
    assert await error(owner.manage, "getBot", bot_id="123") == (404, "BOT_NOT_FOUND")
    assert [b["username"] for b in await owner.manage("listBots")] == [username]


async def test_only_the_owner_may_touch_a_bot(owner: Owner, settings: Settings) -> None:
    created = await owner.manage("createBot", username=unique("o") + "_bot", name="Mine")
    intruder = manage_api(owner.http, await create_user(settings, unique("in")))
    for method in ("getBot", "editBot", "rotateToken", "revokeBot"):
        assert await error(intruder, method, bot_id=created["id"]) == (403, "NOT_OWNER")
    assert await intruder("listBots") == []
    assert (await owner.manage("getBot", bot_id=created["id"]))["active"] is True
    response = await owner.http.post("/manage/listBots", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401 and response.json()["code"] == "UNAUTHORIZED"


async def test_rotate_and_revoke(owner: Owner) -> None:
    created = await owner.manage("createBot", username=unique("r") + "_bot", name="Rotor")
    old = owner.bot(created["token"])
    rotated = await owner.manage("rotateToken", bot_id=created["id"])
    assert rotated["token"] != created["token"] and rotated["id"] == created["id"]
    assert await error(old, "getMe") == (401, "UNAUTHORIZED")
    new = owner.bot(rotated["token"])
    assert (await new("getMe"))["id"] == created["id"]

    as_user = client_api(owner.http, owner.account)
    await as_user("startBot", username=created["username"])
    revoked = await owner.manage("revokeBot", bot_id=created["id"])
    assert revoked["active"] is False and "token" not in revoked
    for method in ("getMe", "getUpdates"):
        assert await error(new, method) == (412, "BOT_INACTIVE")
    assert await error(new, "sendMessage", chat_id=1, text="x") == (412, "BOT_INACTIVE")
    assert await error(owner.manage, "rotateToken", bot_id=created["id"]) == (412, "BOT_INACTIVE")
    assert await error(owner.manage, "editBot", bot_id=created["id"], name="Back") == (
        412,
        "BOT_INACTIVE",
    )
    assert await error(owner.manage, "revokeBot", bot_id=created["id"]) == (412, "BOT_INACTIVE")
    assert await error(as_user, "startBot", username=created["username"]) == (412, "BOT_INACTIVE")
    assert (await owner.manage("getBot", bot_id=created["id"]))["active"] is False


def run_botgw(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botgw", *args],
        env=process_env(stack.redis_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def botgw(stack: Stack, *args: str) -> str:
    result = run_botgw(stack, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def token_of(output: str) -> str:
    return next(line.split()[-1] for line in output.splitlines() if "token" in line)


async def test_command_line(owner: Owner, stack: Stack) -> None:
    username = unique("cli") + "_bot"
    created = botgw(
        stack, "bots", "create", "--owner", owner.account.username, "--username", username
    )
    token = token_of(created)
    assert username in created and (await owner.bot(token)("getMe"))["username"] == username
    assert username in botgw(stack, "bots", "list", "--owner", owner.account.username)
    assert username in botgw(stack, "bots", "list")
    new_token = token_of(botgw(stack, "bots", "rotate", username))
    assert await error(owner.bot(token), "getMe") == (401, "UNAUTHORIZED")
    assert (await owner.bot(new_token)("getMe"))["username"] == username
    assert "revoked" in botgw(stack, "bots", "revoke", username)
    assert await error(owner.bot(new_token), "getMe") == (412, "BOT_INACTIVE")
    listing = botgw(stack, "bots", "list", "--owner", owner.account.username)
    assert f"{username}" in listing and "revoked" in listing
    failed = run_botgw(stack, "bots", "rotate", username)
    assert failed.returncode != 0 and "revoked" in failed.stderr
