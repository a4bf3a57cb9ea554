"""Small clients for the three REST surfaces, used by integration and e2e tests."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx

from botgw.admin import messenger_session
from shared.settings import Settings


class ApiFailure(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


@dataclass
class Caller:
    """Calls ``{base}/{prefix}/{method}`` with one token; raises ApiFailure on errors."""

    http: httpx.AsyncClient
    prefix: str
    auth: str

    async def raw(self, method: str, **params: Any) -> httpx.Response:
        return await self.http.post(
            f"/{self.prefix}/{method}", json=params, headers={"Authorization": self.auth}
        )

    async def __call__(self, method: str, **params: Any) -> Any:
        response = await self.raw(method, **params)
        body = response.json()
        if response.status_code != 200 or not body.get("ok"):
            raise ApiFailure(response.status_code, body)
        return body["result"]


async def error(caller: Caller, method: str, **params: Any) -> tuple[int, str]:
    """(HTTP status, code) of a call that must fail, checking its envelope: not ok,
    ``error_code`` the status, and a description that says what to fix."""
    response = await caller.raw(method, **params)
    body = response.json()
    assert body["ok"] is False and body["error_code"] == response.status_code
    assert body["description"]
    return response.status_code, body["code"]


@dataclass
class Account:
    user_id: int
    username: str
    token: str


@dataclass
class BotAccount:
    bot_id: int
    username: str
    token: str


async def create_user(settings: Settings, username: str) -> Account:
    async with messenger_session(settings) as messenger:
        user, token = await messenger.accounts.create_user(username)
    return Account(user.id, user.username, token)


async def create_bot(settings: Settings, owner: Account, username: str) -> BotAccount:
    async with messenger_session(settings) as messenger:
        user = await messenger.accounts.user_by_username(owner.username)
        assert user is not None
        bot, token = await messenger.accounts.create_bot(user, username=username, name="Test Bot")
    return BotAccount(bot.id, bot.username, token)


def bot_api(http: httpx.AsyncClient, bot: BotAccount) -> Caller:
    return Caller(http, "bot", f"Bot {bot.token}")


def client_api(http: httpx.AsyncClient, user: Account) -> Caller:
    return Caller(http, "client", f"Bearer {user.token}")


def manage_api(http: httpx.AsyncClient, user: Account) -> Caller:
    return Caller(http, "manage", f"Bearer {user.token}")


class Inbox:
    """A bot's updates through getUpdates. Each look starts after the last update seen,
    on a consumer of its own, so two looks in a row are never a repeated poll."""

    def __init__(self, bot: Caller) -> None:
        self.bot = bot
        self.after = 0
        self.looks = 0

    async def take(self) -> list[dict[str, Any]]:
        self.looks += 1
        found = await self.bot(
            "getUpdates", consumer=f"look{self.looks}", offset=self.after + 1, timeout=0
        )
        if found:
            self.after = int(found[-1]["update_id"])
        return list(found)


@dataclass
class Scene:
    """Users, a bot of the first user's, their callers and the bot's updates; optionally
    the first user's private chat with the bot (started) and a group of them all."""

    http: httpx.AsyncClient
    users: list[Account]
    bot: BotAccount
    as_users: list[Caller]
    as_bot: Caller
    private: str = ""  # the private chat as the first user knows it
    bot_chat: str = ""  # the same chat as the bot knows it
    start: str = ""  # the id of the private chat's first message, its /start
    group: str = ""

    inboxes: dict[str, Inbox] = field(default_factory=dict)

    @property
    def user(self) -> Account:
        return self.users[0]

    @property
    def other(self) -> Account:
        return self.users[1]

    @property
    def as_user(self) -> Caller:
        return self.as_users[0]

    @property
    def as_other(self) -> Caller:
        return self.as_users[1]

    async def updates(self, bot: Caller | None = None) -> list[dict[str, Any]]:
        """Every pending update of ``bot`` (the scene's bot by default), confirmed."""
        caller = bot or self.as_bot
        return await self.inboxes.setdefault(caller.auth, Inbox(caller)).take()


async def build_scene(
    http: httpx.AsyncClient,
    settings: Settings,
    prefix: str,
    *,
    users: int = 1,
    private: bool = False,
    group: str | None = None,
) -> Scene:
    """A Scene; with a chat (``private``, a ``group`` title) the updates those
    brought are taken, the private chat's first giving ``bot_chat``."""
    accounts = [
        await create_user(settings, f"{prefix}{n}{secrets.token_hex(4)}") for n in range(users)
    ]
    bot = await create_bot(settings, accounts[0], f"{prefix}{secrets.token_hex(4)}_bot")
    callers = [client_api(http, account) for account in accounts]
    scene = Scene(http, accounts, bot, callers, bot_api(http, bot))
    if private:
        scene.private = (await callers[0]("startBot", username=bot.username))["id"]
    if group is not None:
        scene.group = (await callers[0]("createGroup", title=group))["id"]
        for name in [*(account.username for account in accounts[1:]), bot.username]:
            await callers[0]("addChatMember", chat_id=scene.group, username=name)
    if private or group is not None:
        taken = await scene.updates()
        if private:
            scene.bot_chat = taken[0]["message"]["chat"]["id"]
            scene.start = taken[0]["message"]["message_id"]
    return scene


@asynccontextmanager
async def scene_at(
    base_url: str,
    settings: Settings,
    prefix: str,
    *,
    users: int = 1,
    private: bool = False,
    group: str | None = None,
) -> AsyncIterator[Scene]:
    """``build_scene`` on a client of its own for the REST at ``base_url``."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        yield await build_scene(http, settings, prefix, users=users, private=private, group=group)
