"""How far behind every consumer of every bot is, from Redis alone.

``store.backlog.measure(bot_ids)`` reads, per bot, its log's head and count, its
committed cursors and (for a bot with a webhook) the webhook consumer, and
returns one :class:`Backlog` per consumer: how many retained updates follow the
committed cursor and how old the oldest of them is. Nothing here depends on a
live connection: a consumer whose agent is stuck (acking nothing) or gone
(disconnected) keeps its backlog and its age grows, which is what an alert needs.
Two pipelined round trips per batch of bots.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.exceptions import NoScriptError

from shared import keys
from shared.ids import SEQ_PER_MS, stream_id_from_update_id, update_id_from_stream_id
from shared.store.fields import as_text
from shared.store.scripts import Script
from shared.store.wire import Command, Wire

__all__ = ["Backlog", "BacklogReader"]

BATCH = 200  # bots per pipelined round trip
COUNT_LIMIT = 1_000_000  # a backlog counted entry by entry stops here
WEBHOOK = "default"  # the consumer a webhook reads (readers.WEBHOOK_CONSUMER)


@dataclass(frozen=True, slots=True)
class Backlog:
    """One consumer of one bot: ``count`` retained updates after its committed
    cursor, the oldest of them appended ``age_s`` seconds ago (0 when none);
    ``reader`` is ``webhook``, ``gateway`` (a live socket reads it) or ``poll``."""

    bot_id: int
    consumer: str
    count: int
    age_s: float
    reader: str


def _ordinal(raw: Any) -> int | None:
    return None if raw is None else int(raw)


class BacklogReader:
    """Reached as ``store.backlog``."""

    def __init__(self, *, wire: Wire, count_after: Script, live_reader: Script) -> None:
        self._wire = wire
        self._count_after = count_after  # for a cursor kept without its ordinal
        self._live_reader = live_reader  # is a socket reading the consumer now

    async def measure(
        self, bot_ids: Sequence[int], *, webhooks: Sequence[int] = ()
    ) -> list[Backlog]:
        """The backlog of every consumer of ``bot_ids`` with a committed cursor, and
        of the webhook consumer of the bots in ``webhooks`` (committed or not)."""
        hooked = set(webhooks)
        out: list[Backlog] = []
        for start in range(0, len(bot_ids), BATCH):
            out.extend(await self._batch(bot_ids[start : start + BATCH], hooked))
        return out

    async def _batch(self, bots: Sequence[int], hooked: set[int]) -> list[Backlog]:
        first: list[Command] = []
        for bot in bots:
            log = keys.bot_log(bot)
            first += [
                ("HGETALL", keys.bot_cursors(bot)),
                ("GET", keys.bot_epoch(bot)),
                ("GET", keys.bot_appended(bot)),
                ("XLEN", log),
            ]
        replies = await self._wire.calls(first, retry=True)
        pending: list[tuple[int, str, int | None]] = []  # bot, consumer, count
        second: list[Command] = []
        for index, bot in enumerate(bots):
            flat, epoch, appended, length = replies[index * 4 : index * 4 + 4]
            fields = {as_text(k): as_text(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}
            cursors = {name: value for name, value in fields.items() if not name.endswith("#n")}
            if bot in hooked and WEBHOOK not in cursors:
                cursors[WEBHOOK] = ""  # a webhook that confirmed nothing yet
            for consumer, value in cursors.items():
                cursor_epoch, _, text = value.partition(":")
                after = int(text) if text.isdigit() else 0
                count: int | None = int(length)  # another epoch's cursor: all of it
                if epoch is not None and cursor_epoch == as_text(epoch) and after > 0:
                    ordinal = _ordinal(fields.get(consumer + "#n"))
                    if ordinal is not None and appended is not None:
                        count = min(int(length), max(int(appended) - ordinal, 0))
                    else:
                        count = None  # counted by the script below
                else:
                    after = 0
                pending.append((bot, consumer, count))
                start = "-" if after <= 0 else "(" + stream_id_from_update_id(after)
                log = keys.bot_log(bot)
                second.append(("XRANGE", log, start, "+", "COUNT", 1))
                second.append(
                    self._live_reader.command(keys=[keys.bot_reader(bot, consumer)], args=[])
                )
                second.append(
                    self._count_after.command(keys=[log], args=[start, COUNT_LIMIT])
                    if count is None
                    else ("PING",)
                )
        if not second:
            return []
        try:
            found = await self._wire.calls(second, retry=True)
        except NoScriptError:
            await self._count_after.load()
            await self._live_reader.load()
            found = await self._wire.calls(second, retry=True)
        now_ms = time.time() * 1000
        out = []
        for index, (bot, consumer, known) in enumerate(pending):
            next_entry, live, counted = found[index * 3 : index * 3 + 3]
            count = known if known is not None else int(counted)
            age = 0.0
            if next_entry and count > 0:
                ms = update_id_from_stream_id(next_entry[0][0]) // SEQ_PER_MS
                age = max(now_ms - ms, 0.0) / 1000
            elif not next_entry:
                count = 0
            reader = "webhook" if consumer == WEBHOOK and bot in hooked else "poll"
            if live is not None:
                reader = "gateway"
            out.append(Backlog(bot, consumer, count, age, reader))
        return out
