"""Small clients for the three REST surfaces, used by integration and e2e tests."""

from __future__ import annotations

from dataclasses import dataclass
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
