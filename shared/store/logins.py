"""One-time login codes, and whether anyone may make a user by themselves.

A code stands for a user's token for :data:`CODE_TTL_SECONDS`: whoever redeems it
first gets the token, and the code is gone (``GETDEL``). Only the code's hash
names its key, in a slot of its own, so neither a key listing nor a slow log
shows a code that works. The dev stack makes them, for a link that logs its demo
user into the playground; the token never has to be in a URL or a log.

Sign-up (a user made by a tokenless call) is closed unless the dev stack opens
it: a flag in the store, so that every REST process of the stack sees it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from shared import keys
from shared.codecs import pack, unpack
from shared.store.wire import Wire

__all__ = ["CODE_TTL_SECONDS", "LoginCodes", "Redeemed"]

CODE_TTL_SECONDS = 600


def _code_key(code: str) -> str:
    digest = hashlib.sha256(code.encode()).hexdigest()
    return f"{keys.PREFIX}{{login:{digest}}}"


def _signup_key() -> str:
    return f"{keys.PREFIX}{{playground}}:signup"


@dataclass(frozen=True, slots=True)
class Redeemed:
    """What a redeemed code stood for."""

    user_id: int
    token: str


class LoginCodes:
    """Domain operations on login codes and the sign-up flag."""

    def __init__(self, *, wire: Wire) -> None:
        self._wire = wire

    async def issue(self, user_id: int, token: str, *, ttl: int = CODE_TTL_SECONDS) -> str:
        """A new code that logs in as ``user_id`` with ``token``, once, within ``ttl`` s."""
        code = secrets.token_urlsafe(24)
        await self._wire.call(
            "SET", _code_key(code), pack([user_id, token]), "EX", ttl, "NX", retry=True
        )
        return code

    async def redeem(self, code: str) -> Redeemed | None:
        """What ``code`` stood for, if it is still good; it is good no more."""
        held = await self._wire.call("GETDEL", _code_key(code))
        if held is None:
            return None
        user_id, token = unpack(bytes(held))
        return Redeemed(int(user_id), str(token))

    async def set_signup(self, open_: bool) -> None:
        """Open or close sign-up."""
        if open_:
            await self._wire.call("SET", _signup_key(), b"1", retry=True)
        else:
            await self._wire.call("DEL", _signup_key(), retry=True)

    async def signup_open(self) -> bool:
        """Whether a user may be made by a tokenless call."""
        return await self._wire.call("GET", _signup_key()) is not None
