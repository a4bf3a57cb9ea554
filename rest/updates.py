"""``getUpdates``: the long-poll reader of a bot's update log (DESIGN section 6).

``offset`` is the first update id to return and confirms every earlier one
(commits the consumer's cursor); none (or 0) reads after the committed cursor;
a negative offset returns the last N and forgets the ones before. A long-poll
waits on the process's wake-up subscription, never on a blocking Redis call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rest.schema import Method, Param
from rest.services import BotCall
from shared.codecs import unpack
from shared.ids import Cursor
from shared.store import StoredUpdate, Wakeup

__all__ = ["GET_UPDATES", "UPDATE_TYPES", "render_update"]

UPDATE_TYPES = (
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "message_reaction",
    "poll",
    "poll_answer",
)
CONSUMER_PATTERN = r"[A-Za-z0-9_.\-]{1,64}"
READ_BATCH = 100


def render_update(entry: StoredUpdate) -> dict[str, Any]:
    """The update object (integer ids) of a stored entry."""
    body = unpack(entry.payload)
    assert isinstance(body, dict)
    return {"update_id": entry.update_id, **body}


def _check_types(name: str, value: Any) -> Any:
    from shared.errors import ApiError

    for item in value:
        if item not in UPDATE_TYPES:
            raise ApiError(
                400,
                "INVALID_PARAMETER",
                f"parameter '{name}' has an unknown update type {item!r}; known: "
                + ", ".join(UPDATE_TYPES),
            )
    return value


async def get_updates(call: BotCall, p: dict[str, Any]) -> list[dict[str, Any]]:
    services = call.services
    log = services.store.log
    bot_id = call.bot.id
    consumer: str = p["consumer"]
    limit: int = p["limit"]
    timeout: float = min(float(p["timeout"]), services.settings.long_poll_max_timeout)
    allowed: frozenset[str] | None = (
        frozenset(p["allowed_updates"]) if p["allowed_updates"] else None
    )
    offset: int | None = p["offset"]

    epoch = await log.epoch(bot_id)
    if offset is not None and offset < 0:
        entries = await log.read_last(bot_id, min(-offset, limit))
        if entries and epoch is not None:
            await log.commit_cursor(bot_id, consumer, Cursor(epoch, entries[0].prev_id))
        return [render_update(e) for e in entries if allowed is None or e.kind in allowed]

    if offset:
        after = offset - 1
        if epoch is not None:
            await log.commit_cursor(bot_id, consumer, Cursor(epoch, after))
    else:
        cursor = await log.get_cursor(bot_id, consumer)
        after = cursor.update_id if cursor is not None and cursor.epoch == epoch else 0

    deadline = time.monotonic() + timeout
    woken = asyncio.Event()

    def on_wakeup(_: Wakeup) -> None:
        woken.set()

    listening = False
    try:
        while True:
            found: list[dict[str, Any]] = []
            while True:
                entries = await log.read_after(bot_id, after, READ_BATCH)
                for entry in entries:
                    if allowed is None or entry.kind in allowed:
                        found.append(render_update(entry))
                        if len(found) >= limit:
                            break
                if found or len(entries) < READ_BATCH:
                    break
                after = entries[-1].update_id  # a full batch filtered out: read on
            if found:
                return found
            if entries:
                after = entries[-1].update_id
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            if not listening:
                # subscribe, then read once more: an append between the read and the
                # subscription would otherwise be missed until the timeout
                services.wakeups.add(bot_id, on_wakeup)
                listening = True
                await services.wakeups.subscribed(bot_id)
                woken.clear()
                continue
            try:
                await asyncio.wait_for(woken.wait(), timeout=min(remaining, 1.0))
            except TimeoutError:
                pass
            woken.clear()
    finally:
        if listening:
            services.wakeups.remove(bot_id, on_wakeup)


GET_UPDATES = Method(
    name="getUpdates",
    handler=get_updates,
    getter=True,
    summary="Receive updates by long polling.",
    params=(
        Param("offset", "id", doc="first update id to return; confirms all earlier ones"),
        Param("limit", "int", default=100, minimum=1, maximum=100, clamp=True),
        Param("timeout", "float", default=0, minimum=0, maximum=60, clamp=True),
        Param(
            "allowed_updates",
            "array",
            items="str",
            check=_check_types,
            doc="update types to return (others are skipped, not lost)",
        ),
        Param("consumer", "str", default="default", pattern=CONSUMER_PATTERN),
    ),
    result={"type": "array", "items": {"$ref": "#/components/schemas/Update"}},
)
