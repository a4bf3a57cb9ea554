"""Account administration used by the ``botgw users|bots`` commands and the dev stack."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from rest.messenger import Messenger
from shared.errors import ApiError
from shared.models import BotRecord, UserRecord
from shared.settings import Settings
from shared.store import Store

__all__ = ["messenger_session", "revoke_bot", "run_admin"]


@contextlib.asynccontextmanager
async def messenger_session(settings: Settings) -> AsyncIterator[Messenger]:
    store = Store.connect(settings)
    try:
        secret = await store.entities.server_secret(settings.secret)
        yield Messenger(store, settings, secret)
    finally:
        await store.close()


async def revoke_bot(messenger: Messenger, bot: BotRecord) -> None:
    """Irreversible: the token stops working and later calls get 412 BOT_INACTIVE."""
    await messenger.db.update_bot(bot.id, {"active": False})


async def _owner(messenger: Messenger, username: str) -> UserRecord:
    user = await messenger.user_by_username(username)
    if user is None:
        raise SystemExit(f"botgw: there is no user called {username!r}")
    return user


async def _bot(messenger: Messenger, username: str) -> BotRecord:
    bot = await messenger.bot_by_username(username)
    if bot is None:
        raise SystemExit(f"botgw: there is no bot called {username!r}")
    return bot


def _print_bot(bot: BotRecord, **extra: Any) -> None:
    state = "active" if bot.active else "revoked"
    line = f"{bot.username}  id={bot.id}  name={bot.name!r}  {state}"
    for key, value in extra.items():
        line += f"  {key}={value}"
    print(line)


async def run_admin(settings: Settings, action: str, args: argparse.Namespace) -> int:
    async with messenger_session(settings) as messenger:
        try:
            if action == "users.create":
                user, token = await messenger.create_user(args.name)
                print(f"user {user.username}  id={user.id}")
                print(f"token: {token}")
            elif action == "bots.create":
                owner = await _owner(messenger, args.owner)
                name = args.name or args.username.removesuffix("_bot").replace("_", " ").title()
                bot, token = await messenger.create_bot(
                    owner, username=args.username, name=name, description=args.description
                )
                _print_bot(bot)
                print(f"token: {token}")
            elif action == "bots.list":
                db = messenger.db
                if args.owner:
                    ids = await db.bots_of_owner((await _owner(messenger, args.owner)).id)
                    for bot in (await db.get_bots(ids)).values():
                        _print_bot(bot)
                else:
                    raise SystemExit("botgw: name the owner with --owner")
            elif action == "bots.revoke":
                bot = await _bot(messenger, args.username)
                await revoke_bot(messenger, bot)
                print(f"revoked {bot.username}")
            elif action == "bots.rotate":
                bot = await _bot(messenger, args.username)
                token = await messenger.rotate_token(bot)
                print(f"new token for {bot.username}: {token}")
            else:
                raise AssertionError(action)
        except ApiError as exc:
            raise SystemExit(f"botgw: {exc.description}") from None
    return 0
