"""What a failover may take away, made visible: the newest entry this process
appended to each bot's log.

Redis replicates asynchronously, so a primary that fails over (or restarts
without its newest writes) can take the last entries of a log with it while the
readers, the senders and this process have seen them. The new primary would then
hand out the lost place again: the next entry would follow the last one it kept,
and a reader that had not yet read the lost ones would never know they existed.

So this process remembers, per bot (at most :data:`LIMIT` bots, the most recent),
the epoch, stream id and ordinal of the newest entry it appended. When the wire
finds a new server behind a connection (its ``run_id`` changed: a Sentinel
failover, a restart), every remembered log on it is checked on that connection
before anything else is sent on it (``tail_check.lua``): a log that lost its tail has its
head and count moved up to the remembered entry, so the next entry names it as its
predecessor and counts on from it. Every reader behind it then meets a gap (reason
``tail_lost``) with the number lost, and a reader that had read the lost entries
goes on after them. With ``BOTGW_REDIS_WAIT_REPLICAS`` ≥ 1 nothing acknowledged is
lost and the check finds nothing.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from redis.exceptions import RedisError

from shared import keys
from shared.store.connection import Connection, Node
from shared.store.scripts import Script
from shared.store.wire import Wire

__all__ = ["LIMIT", "Tails"]

log = logging.getLogger("botgw.redis")

LIMIT = 20_000  # bots remembered (checked within a connection's opening)
BATCH = 500  # checks sent together


class Tails:
    """The newest entry appended per bot, and the check after a server change."""

    def __init__(self, wire: Wire, script: Script) -> None:
        self._wire = wire
        self._script = script
        self._newest: OrderedDict[int, tuple[str, str, int]] = OrderedDict()
        self.lost = 0  # logs found to have lost their tail, since start
        wire.server_listeners.append(self.check)

    def note(self, bot_id: int, epoch: str, stream_id: str, ordinal: int) -> None:
        """Remember an entry this process just appended."""
        if ordinal <= 0:
            return
        newest = self._newest
        newest[bot_id] = (epoch, stream_id, ordinal)
        newest.move_to_end(bot_id)
        if len(newest) > LIMIT:
            newest.popitem(last=False)

    async def check(self, node: Node, conn: Connection) -> None:
        """Check the remembered logs that live on ``node`` on its new connection,
        before anything else is sent on it (so no append of ours comes first)."""
        remembered = [
            (bot, entry)
            for bot, entry in self._newest.items()
            if self._wire.serves(node, keys.bot_log(bot))
        ]
        if not remembered:
            return
        try:
            await conn.run([("SCRIPT", "LOAD", self._script.source)])
            for start in range(0, len(remembered), BATCH):
                await self._check_batch(conn, remembered[start : start + BATCH])
        except RedisError as exc:
            log.warning("checking the logs' tails on a new Redis server failed (%s)", exc)

    async def _check_batch(
        self, conn: Connection, batch: list[tuple[int, tuple[str, str, int]]]
    ) -> None:
        commands: list[Any] = [
            self._script.command(
                keys=[keys.bot_epoch(bot), keys.bot_last_id(bot), keys.bot_appended(bot)],
                args=[epoch, stream_id, ordinal],
            )
            for bot, (epoch, stream_id, ordinal) in batch
        ]
        replies = await conn.run(commands)
        lost = [bot for (bot, _), reply in zip(batch, replies, strict=True) if int(reply)]
        if lost:
            self.lost += len(lost)
            log.warning(
                "Redis lost the newest updates of %d bot logs (a failover or a restart "
                "without them); their readers are told by a gap",
                len(lost),
            )
