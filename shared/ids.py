"""Random ids, update ids, tokens and scoped user ids (docs/design.md, Identifiers).

An update id is derived from the bot's stream entry id ``<ms>-<seq>`` (``seq < 1024``)
as ``ms * 1024 + seq``: strictly increasing per bot, time-ordered, never reused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = [
    "MAX_ID",
    "SEQ_PER_MS",
    "BotToken",
    "Cursor",
    "UserToken",
    "hash_secret",
    "new_epoch",
    "new_secret",
    "parse_bot_token",
    "parse_user_token",
    "random_id",
    "scoped_user_id",
    "stream_id_from_update_id",
    "tokens_equal",
    "update_id_from_stream_id",
]

MAX_ID = 1 << 53
SEQ_PER_MS = 1024
_ID_BITS = 52

BOT_USERNAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,27}_bot$")
USER_USERNAME_RE = re.compile(r"^[a-z][a-z0-9_]{2,31}$")
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


def random_id() -> int:
    """A random positive 52-bit integer (bot ids, group chat ids, user ids)."""
    while True:
        value = secrets.randbits(_ID_BITS)
        if value:
            return value


def new_secret() -> str:
    """A url-safe random secret of 43 characters (256 bits)."""
    return secrets.token_urlsafe(32)


def new_epoch() -> str:
    """A random epoch tag for a freshly created update log."""
    return secrets.token_hex(8)


def update_id_from_stream_id(stream_id: str | bytes) -> int:
    """``"<ms>-<seq>"`` to ``ms * 1024 + seq``; ValueError on anything else."""
    if isinstance(stream_id, bytes):
        stream_id = stream_id.decode()
    ms_text, sep, seq_text = stream_id.partition("-")
    if not sep or not ms_text.isdigit() or not seq_text.isdigit():
        raise ValueError(f"not a stream id: {stream_id!r}")
    ms, seq = int(ms_text), int(seq_text)
    if seq >= SEQ_PER_MS:
        raise ValueError(f"stream id sequence {seq} is not below {SEQ_PER_MS}")
    return ms * SEQ_PER_MS + seq


def stream_id_from_update_id(update_id: int) -> str:
    """Inverse of :func:`update_id_from_stream_id`."""
    if update_id < 0:
        raise ValueError("update id must not be negative")
    ms, seq = divmod(update_id, SEQ_PER_MS)
    return f"{ms}-{seq}"


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in one bot's update log: the epoch of the log and an update id.

    ``update_id`` is the last update consumed; reading resumes after it.
    """

    epoch: str
    update_id: int


def hash_secret(token: str) -> str:
    """SHA-256 hex digest under which a token is stored (never the token itself)."""
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_equal(token: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented token with its stored hash."""
    return hmac.compare_digest(hash_secret(token), stored_hash)


@dataclass(frozen=True, slots=True)
class BotToken:
    bot_id: int
    token: str  # the full native form ``bot_<id>:<secret>``


@dataclass(frozen=True, slots=True)
class UserToken:
    user_id: int
    token: str  # ``usr_<id>:<secret>``


def parse_bot_token(text: str) -> BotToken | None:
    """Parse ``bot_<id>:<secret>`` (or the Telegram form ``<id>:<secret>``)."""
    body = text[4:] if text.startswith("bot_") else text
    id_text, sep, secret = body.partition(":")
    if not sep or not id_text.isdigit() or len(id_text) > 16 or not _SECRET_RE.match(secret):
        return None
    bot_id = int(id_text)
    if not 0 < bot_id < MAX_ID:
        return None
    return BotToken(bot_id=bot_id, token=f"bot_{bot_id}:{secret}")


def parse_user_token(text: str) -> UserToken | None:
    """Parse ``usr_<id>:<secret>``."""
    if not text.startswith("usr_"):
        return None
    id_text, sep, secret = text[4:].partition(":")
    if not sep or not id_text.isdigit() or len(id_text) > 16 or not _SECRET_RE.match(secret):
        return None
    user_id = int(id_text)
    if not 0 < user_id < MAX_ID:
        return None
    return UserToken(user_id=user_id, token=text)


def scoped_user_id(server_secret: bytes, bot_id: int, user_id: int) -> int:
    """The id under which ``bot_id`` sees ``user_id``: 52 bits of an HMAC, never 0."""
    digest = hmac.new(server_secret, f"{bot_id}:{user_id}".encode(), hashlib.sha256).digest()
    value = int.from_bytes(digest[:8], "big") >> (64 - _ID_BITS)
    return value or 1
