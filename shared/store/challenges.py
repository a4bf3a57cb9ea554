"""Ed25519 sign-in: challenges and the users that keys belong to.

Every key of one public key shares the hash tag ``{k<public key>}``, so each
operation here touches one slot. A challenge is a string with a TTL (the audience
it was issued for) and is consumed with GETDEL: of two verifications racing with
the same challenge, exactly one reads it. A key may have several outstanding
challenges (one per sign-in attempt), so nobody can void another's challenge by
asking for one of their own.

A key's user is a string holding its id, set with NX once that user's record and
username exist (:meth:`KeyUsers.bind`): a key names a user only once the user is
complete, and of two first sign-ins racing with one key, one user wins and the
other is taken back by its caller.
"""

from __future__ import annotations

from shared import keys
from shared.store.fields import as_text
from shared.store.wire import Wire

__all__ = ["Challenges"]


class Challenges:
    """Sign-in challenges and key bindings; reached as ``store.challenges``."""

    def __init__(self, *, wire: Wire) -> None:
        self._wire = wire

    async def issue(self, public_key: str, challenge: str, audience: str, ttl_ms: int) -> None:
        """Keep ``challenge`` for ``public_key`` for ``ttl_ms``."""
        await self._wire.call(
            "SET", keys.auth_challenge(public_key, challenge), audience, "PX", ttl_ms
        )

    async def consume(self, public_key: str, challenge: str) -> str | None:
        """The audience of an outstanding challenge, which is gone from now on; None
        if it is unknown, used already or expired."""
        value = await self._wire.call("GETDEL", keys.auth_challenge(public_key, challenge))
        return None if value is None else as_text(value)

    async def user_of(self, public_key: str) -> int | None:
        """The id of the user ``public_key`` belongs to, if any."""
        value = await self._wire.call("GET", keys.auth_key_user(public_key))
        return None if value is None else int(as_text(value))

    async def bind(self, public_key: str, user_id: int) -> int:
        """Let ``public_key`` belong to ``user_id`` unless it belongs to a user
        already; the user it belongs to now."""
        name = keys.auth_key_user(public_key)
        _, held = await self._wire.calls([("SET", name, user_id, "NX"), ("GET", name)])
        return int(as_text(held))
