"""Per-bot send limits, Telegram-like: token buckets in Redis, all or nothing.

Every call that creates a message (send*, forwardMessage, copyMessage) takes one
token from each of three buckets of the bot, or from none of them:

* ``all``: the bot overall, ``rate_global_per_second`` (burst of one second);
* ``p<chat>``: one private chat, ``rate_private_per_second`` with a burst of
  ``rate_private_burst``;
* ``g<chat>``: one group, ``rate_group_per_minute`` (burst of one minute).

Users are bounded too (client API), so that no user can flood the bots' logs
with updates they cannot read in time, nor fill the store:

* every writing client call, refused ones too (``sendMessage``, ``editMessageText``,
  ``pressButton``, ``setMessageReaction``, ``answerPoll``, ``createGroup``, ...)
  takes a token of the user's bucket, ``client_rate_per_second`` with a burst of
  ``client_rate_burst`` (10/s and 20 by default: about 600 a minute);
* every user message or edit into a chat also takes a token of that chat's
  bucket, shared by all its users: ``client_chat_rate_per_second`` with a burst
  of ``client_chat_rate_burst`` (30/s and 60).

The two buckets live in different hash slots (the user's and the chat's), so they
are taken one after the other: a call refused by the chat's bucket has spent its
user token. The chat's is taken by the chat write itself, in the same script that
stores the message, so it costs no round trip of its own.

Ed25519 sign-in (``/client/auth/*``, no token) is bounded per client address
(``auth_peer_per_minute``, both calls) and per key (``auth_key_per_minute``,
challenges), each with a burst of one minute's worth.

A refused call raises 429 ``TOO_MANY_REQUESTS`` with ``parameters.retry_after``
(whole seconds, at least 1; the REST layer adds the ``Retry-After`` header). It is
taken after every check of the call and before anything is written, so a refused
call changes nothing, and a client that waits ``retry_after`` is let through.
"""

from __future__ import annotations

import math

from shared import keys
from shared.errors import ApiError
from shared.models import ChatRecord
from shared.settings import Settings
from shared.store import Store

__all__ = [
    "buckets_for",
    "chat_send_rate",
    "refuse_chat_send",
    "take_send_token",
    "take_sign_in_token",
    "take_user_token",
]


def buckets_for(settings: Settings, chat: ChatRecord) -> list[tuple[str, float, float]]:
    """(scope, tokens per second, capacity) of the buckets a message to ``chat`` takes."""
    overall = settings.rate_global_per_second
    buckets = [("all", overall, max(1.0, overall))]
    if chat.type == "private":
        buckets.append(
            (f"p{chat.id}", settings.rate_private_per_second, float(settings.rate_private_burst))
        )
    else:
        per_minute = settings.rate_group_per_minute
        buckets.append((f"g{chat.id}", per_minute / 60.0, max(1.0, per_minute)))
    return buckets


async def take_send_token(store: Store, settings: Settings, bot_id: int, chat: ChatRecord) -> None:
    """Take the tokens of one message or raise 429 with ``retry_after``."""
    _refuse(await store.take_tokens(bot_id, buckets_for(settings, chat)), "messages")


async def take_user_token(store: Store, settings: Settings, user_id: int) -> None:
    """Take the token of one writing client call of a user, or raise 429."""
    wait_ms = await store.take_token(
        keys.user_rate(user_id), settings.client_rate_per_second, settings.client_rate_burst
    )
    _refuse(wait_ms, "requests")


async def take_sign_in_token(store: Store, key: str, per_minute: int) -> None:
    """Take a token of a sign-in bucket (``per_minute``, a burst of as many; keys
    :func:`shared.keys.auth_key_rate`, :func:`shared.keys.auth_peer_rate`), or raise 429."""
    wait_ms = await store.take_token(key, per_minute / 60.0, float(per_minute))
    _refuse(wait_ms, "sign-in attempts")


def chat_send_rate(settings: Settings) -> tuple[float, float]:
    """(tokens per second, capacity) of a chat's users' send bucket: the chat write
    takes its token in the same step (``shared.store.outbox``)."""
    return settings.client_chat_rate_per_second, float(settings.client_chat_rate_burst)


def refuse_chat_send(wait_ms: int) -> None:
    """429 for a write the chat's send bucket refused (``wait_ms`` > 0)."""
    _refuse(wait_ms, "messages in this chat")


def _refuse(wait_ms: int, what: str) -> None:
    if wait_ms > 0:
        retry_after = max(1, math.ceil(wait_ms / 1000))
        raise ApiError(
            429,
            "TOO_MANY_REQUESTS",
            f"too many {what}: retry after {retry_after} second"
            + ("s" if retry_after != 1 else ""),
            parameters={"retry_after": retry_after},
        )
