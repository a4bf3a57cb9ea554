"""Accounts: users, bots and their tokens (create, authenticate, rotate, revoke).

A token is ``usr_<id>:<secret>`` or ``bot_<id>:<secret>`` and is shown once, when
it is made; the store keeps only its hash, so a rotated token stops working at
once. Rotations and revocations are announced on the bot's channel
(:mod:`shared.control`), so that the processes holding the bot's connections and
polls let go of them. A revoked bot is kept: its calls get 412 ``BOT_INACTIVE``.
"""

from __future__ import annotations

from typing import Any

from rest.webapps import webapp_key
from shared.control import CredentialsChanged
from shared.control import encode as encode_control
from shared.errors import ApiError
from shared.ids import (
    BOT_USERNAME_RE,
    USER_USERNAME_RE,
    hash_secret,
    new_secret,
    parse_user_token,
    random_id,
    tokens_equal,
)
from shared.models import BotRecord, UserRecord
from shared.store import Store

__all__ = ["Accounts", "checked_user_name"]


def checked_user_name(username: str) -> str:
    """``username`` in lower case, or 400 ``INVALID_USERNAME`` saying what a user
    name may be."""
    username = username.lower()
    if not USER_USERNAME_RE.match(username) or username.endswith("_bot"):
        raise ApiError(
            400,
            "INVALID_USERNAME",
            "a user name is 3-32 characters: a letter, then letters, digits or "
            "underscores, and it must not end in _bot",
        )
    return username


class Accounts:
    """Users and bots, and the tokens that authenticate them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.entities

    async def create_user(
        self, username: str, name: str | None = None, *, public_key: str = ""
    ) -> tuple[UserRecord, str]:
        """A new user and its token; ``public_key``: the Ed25519 key it signs in with."""
        username = checked_user_name(username)
        user_id = random_id()
        token = f"usr_{user_id}:{new_secret()}"
        # the token is handed out only once the user exists (record, then name)
        if not await self.db.create_user(
            user_id=user_id,
            username=username,
            name=name or username,
            token_hash=hash_secret(token),
            public_key=public_key,
        ):
            raise ApiError(409, "USERNAME_TAKEN", f"the username '{username}' is taken")
        user = await self.db.get_user(user_id)
        assert user is not None
        return user, token

    async def new_user_token(self, user: UserRecord) -> str:
        """A new token for ``user``; the one it had stops working at once."""
        token = f"usr_{user.id}:{new_secret()}"
        await self.db.set_user_token(user.id, hash_secret(token))
        return token

    async def sign_in_with_key(
        self, public_key: str, *, username: str, name: str | None = None
    ) -> tuple[UserRecord, str, bool]:
        """(user, a new token, whether the user is new) for a verified ``public_key``.

        A key seen before signs in to its user. A new key registers a user named
        ``username``; if that name is held by a user made for this very key whose
        sign-in stopped before the key named it, that user is taken up.
        """
        challenges = self.store.challenges
        user_id = await challenges.user_of(public_key)
        if user_id is None:
            try:
                new, token = await self.create_user(username, name, public_key=public_key)
            except ApiError as exc:
                if exc.code != "USERNAME_TAKEN":
                    raise
                holder = await self.user_by_username(username)
                if holder is None or await self.db.user_public_key(holder.id) != public_key:
                    raise
                user_id = await challenges.bind(public_key, holder.id)
            else:
                user_id = await challenges.bind(public_key, new.id)
                if user_id == new.id:
                    return new, token, True
                # another first sign-in with this key won: take this user back
                await self.db.forget_new_user(new.id, new.username)
        user = await self.db.get_user(user_id)
        if user is None:
            raise ApiError(503, "BACKEND_UNAVAILABLE", "the key's user cannot be read; retry")
        return user, await self.new_user_token(user), False

    async def user_by_username(self, username: str) -> UserRecord | None:
        owner = await self.db.resolve_username(username.lower().lstrip("@"))
        if owner is None or owner[0] != "u":
            return None
        return await self.db.get_user(int(owner[1:]))

    async def authenticate_user(self, token: str | None) -> UserRecord:
        parsed = parse_user_token(token) if token else None
        user = await self.db.get_user(parsed.user_id) if parsed else None
        if parsed is None or user is None or not tokens_equal(parsed.token, user.token_hash):
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "a valid user token is required: send 'Authorization: Bearer usr_<id>:<secret>'",
            )
        return user

    async def create_bot(
        self, owner: UserRecord, *, username: str, name: str, description: str = ""
    ) -> tuple[BotRecord, str]:
        username = username.lower()
        if not (5 <= len(username) <= 32 and BOT_USERNAME_RE.match(username)):
            raise ApiError(
                400,
                "INVALID_USERNAME",
                "a bot username is 5-32 characters: a lowercase letter, then lowercase "
                "letters, digits or underscores, ending in _bot",
            )
        if not 3 <= len(name) <= 32:
            raise ApiError(400, "INVALID_PARAMETER", "a bot's name is 3-32 characters")
        if len(description) > 256:
            raise ApiError(400, "INVALID_PARAMETER", "a bot's description is at most 256 chars")
        bot_id = random_id()
        token = f"bot_{bot_id}:{new_secret()}"
        # the token is handed out only once the bot exists (record, name, lists)
        if not await self.db.create_bot(
            bot_id=bot_id,
            username=username,
            name=name,
            description=description,
            owner_id=owner.id,
            token_hash=hash_secret(token),
            webapp_key=webapp_key(token),
        ):
            raise ApiError(409, "USERNAME_TAKEN", f"the username '{username}' is taken")
        bot = await self.db.get_bot(bot_id)
        assert bot is not None
        return bot, token

    async def edit_bot(self, bot: BotRecord, fields: dict[str, Any]) -> BotRecord:
        """Change some of name, description, privacy_mode (and other record fields)."""
        if not bot.active:
            raise ApiError(412, "BOT_INACTIVE", f"the bot '{bot.username}' was revoked")
        if fields:
            await self.db.update_bot(bot.id, fields)
        fresh = await self.db.get_bot(bot.id)
        assert fresh is not None
        return fresh

    async def rotate_token(self, bot: BotRecord) -> str:
        """A new token; the old one stops working at once (only its hash was stored)."""
        if not bot.active:
            raise ApiError(412, "BOT_INACTIVE", f"the bot '{bot.username}' was revoked")
        token = f"bot_{bot.id}:{new_secret()}"
        await self.db.update_bot(
            bot.id, {"token_hash": hash_secret(token), "webapp_key": webapp_key(token)}
        )
        await self.store.log.announce(bot.id, encode_control(CredentialsChanged(revoked=False)))
        return token

    async def revoke_bot(self, bot: BotRecord) -> BotRecord:
        """Irreversible: later calls with the bot's token get 412 ``BOT_INACTIVE``."""
        await self.db.update_bot(bot.id, {"active": False})
        await self.store.log.announce(bot.id, encode_control(CredentialsChanged(revoked=True)))
        fresh = await self.db.get_bot(bot.id)
        assert fresh is not None
        return fresh

    async def make_system_bot(self, bot: BotRecord) -> None:
        """Let ``bot`` act for the users who write to it (an operator's decision:
        rest/methods/manage.py says how it may)."""
        await self.db.update_bot(bot.id, {"system": True})

    async def bot_by_username(self, username: str) -> BotRecord | None:
        owner = await self.db.resolve_username(username.lower().lstrip("@"))
        if owner is None or owner[0] != "b":
            return None
        return await self.db.get_bot(int(owner[1:]))

    async def authenticate_bot(self, token: str | None) -> BotRecord:
        """The bot behind a token (native ``bot_<id>:<secret>`` or Telegram form)."""
        found = await self.db.bot_for_token(token)
        if found is None:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "a valid bot token is required: send 'Authorization: Bot bot_<id>:<secret>'",
            )
        bot = found[0]
        if not bot.active:
            raise ApiError(412, "BOT_INACTIVE", "this bot was revoked by its owner")
        return bot
