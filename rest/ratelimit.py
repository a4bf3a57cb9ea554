"""Per-bot send limits, Telegram-like: token buckets in Redis, all or nothing.

Every call that creates a message (send*, forwardMessage, copyMessage) takes one
token from each of three buckets of the bot, or from none of them:

* ``all``: the bot overall, ``rate_global_per_second`` (burst of one second);
* ``p<chat>``: one private chat, ``rate_private_per_second`` with a burst of
  ``rate_private_burst``;
* ``g<chat>``: one group, ``rate_group_per_minute`` (burst of one minute).

A refused call raises 429 ``TOO_MANY_REQUESTS`` with ``parameters.retry_after``
(whole seconds, at least 1; the REST layer adds the ``Retry-After`` header). It is
taken after every check of the call and before anything is written, so a refused
call changes nothing, and a client that waits ``retry_after`` is let through.
"""

from __future__ import annotations

import math

from shared.errors import ApiError
from shared.models import ChatRecord
from shared.settings import Settings
from shared.store import Store

__all__ = ["buckets_for", "take_send_token"]


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
    wait_ms = await store.take_tokens(bot_id, buckets_for(settings, chat))
    if wait_ms > 0:
        retry_after = max(1, math.ceil(wait_ms / 1000))
        raise ApiError(
            429,
            "TOO_MANY_REQUESTS",
            f"too many messages: retry after {retry_after} second"
            + ("s" if retry_after != 1 else ""),
            parameters={"retry_after": retry_after},
        )
