"""Account administration used by the ``botgw users|bots`` commands and the dev stack.

``botgw bots create|list|revoke|rotate`` work on the store directly (no REST
process needed) with the same rules as the management API (``create --system``
makes the system bot, docs/systembot.md): usernames and names
are checked, tokens are printed once and stored only as SHA-256, a rotated token
stops working at once and a revoked bot gets 412 ``BOT_INACTIVE``.
"""

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
    store = Store.connect(settings, role="admin")
    try:
        secret = await store.entities.server_secret(settings.secret)
        yield Messenger(store, settings, secret)
    finally:
        await store.close()


async def revoke_bot(messenger: Messenger, bot: BotRecord) -> None:
    """Irreversible: the token stops working and later calls get 412 BOT_INACTIVE."""
    if not bot.active:
        raise ApiError(412, "BOT_INACTIVE", f"the bot '{bot.username}' was revoked already")
    await messenger.accounts.revoke_bot(bot)


async def _owner(messenger: Messenger, username: str) -> UserRecord:
    user = await messenger.accounts.user_by_username(username)
    if user is None:
        raise SystemExit(f"botgw: there is no user called {username!r}")
    return user


async def _bot(messenger: Messenger, username: str) -> BotRecord:
    bot = await messenger.accounts.bot_by_username(username)
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
                user, token = await messenger.accounts.create_user(args.name)
                print(f"user {user.username}  id={user.id}")
                print(f"token: {token}")
            elif action == "bots.create":
                owner = await _owner(messenger, args.owner)
                name = args.name or args.username.removesuffix("_bot").replace("_", " ").title()
                bot, token = await messenger.accounts.create_bot(
                    owner, username=args.username, name=name, description=args.description
                )
                if args.system:
                    await messenger.accounts.make_system_bot(bot)
                _print_bot(bot, **({"system": "yes"} if args.system else {}))
                print(f"token: {token}")
            elif action == "bots.list":
                db = messenger.db
                if args.owner:
                    ids = await db.bots_of_owner((await _owner(messenger, args.owner)).id)
                else:
                    ids = await db.all_bot_ids()
                bots = await db.get_bots(ids)
                for bot in sorted(bots.values(), key=lambda b: b.username):
                    _print_bot(bot)
            elif action == "bots.revoke":
                bot = await _bot(messenger, args.username)
                await revoke_bot(messenger, bot)
                print(f"revoked {bot.username}")
            elif action == "bots.rotate":
                bot = await _bot(messenger, args.username)
                token = await messenger.accounts.rotate_token(bot)
                print(f"new token for {bot.username}: {token}")
            else:
                raise AssertionError(action)
        except ApiError as exc:
            raise SystemExit(f"botgw: {exc.description}") from None
    return 0
