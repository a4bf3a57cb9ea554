"""The backlog of every consumer of every bot, on ``/metrics``, from one worker.

Gateway workers are always there, whatever the bots' readers are (sockets,
getUpdates, webhooks), so one of them measures every consumer from Redis
(``store.backlog``) every ``BOTGW_BACKLOG_INTERVAL_SECONDS`` (10 s) and exports

* ``botgw_consumer_backlog_updates{bot, consumer, reader}``: retained updates
  after the consumer's committed cursor;
* ``botgw_consumer_backlog_age_seconds{bot, consumer, reader}``: how long ago the
  oldest of them was appended (0 when there is none).

A consumer that stops acking, or whose agent is gone, keeps its series and its age
grows: that is what ``deploy/prometheus/botgw-rules.yaml`` alerts on. The worker
that measures holds a lease in Redis (``keys.backlog_leader``) renewed every round;
the others export nothing, so alert on ``max by (bot, consumer)``. If it stops,
another takes over within :data:`LEASE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from prometheus_client import Gauge

from shared import keys
from shared.store import Backlog, Store, StoreError

__all__ = ["INTERVAL_S", "LEASE_S", "BacklogExporter"]

log = logging.getLogger("botgw.gateway.backlog")

INTERVAL_S = 10.0  # between two measurements (the setting's default)
LEASE_S = 30.0  # a measuring worker that stops is replaced within this (at least)

BACKLOG = Gauge(
    "botgw_consumer_backlog_updates",
    "retained updates after the consumer's committed cursor (measured in Redis)",
    ["bot", "consumer", "reader"],
)
BACKLOG_AGE = Gauge(
    "botgw_consumer_backlog_age_seconds",
    "age of the oldest update after the consumer's committed cursor (0: none)",
    ["bot", "consumer", "reader"],
)
MEASURED = Gauge(
    "botgw_consumer_backlog_measured_timestamp_seconds",
    "when this worker last measured the backlogs (0: another worker measures them)",
)


class BacklogExporter:
    """Measures and exports the backlogs while this worker holds the lease."""

    def __init__(self, store: Store, holder: str, *, interval: float = INTERVAL_S) -> None:
        self._store = store
        self._holder = holder
        self._interval = interval
        self._exported: set[tuple[str, str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="backlog")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(StoreError):
            await self._store.scripts["lease"](
                keys=[keys.backlog_leader()], args=["release", self._holder, 0]
            )

    async def _run(self) -> None:
        while True:
            try:
                if await self._lead():
                    self.publish(await self.measure())
                else:
                    self.publish(None)
            except StoreError as exc:
                log.warning("backlogs not measured: %s", exc)
            await asyncio.sleep(self._interval)

    async def _lead(self) -> bool:
        """Take or keep the lease; whether this worker measures."""
        key, ttl = keys.backlog_leader(), int(max(LEASE_S, 3 * self._interval) * 1000)
        redis = self._store.redis
        if await redis.set(key, self._holder, nx=True, px=ttl):
            return True
        renewed = await self._store.scripts["lease"](keys=[key], args=["renew", self._holder, ttl])
        return bool(int(renewed))

    async def measure(self) -> list[Backlog]:
        store = self._store
        bots = await store.entities.all_bot_ids()
        hooks = await store.readers.active_bots()
        return await store.backlog.measure(bots, webhooks=hooks)

    def publish(self, backlogs: list[Backlog] | None) -> None:
        """Export ``backlogs`` (None: another worker measures: export nothing)."""
        seen: set[tuple[str, str, str]] = set()
        for backlog in backlogs or ():
            labels = (str(backlog.bot_id), backlog.consumer, backlog.reader)
            seen.add(labels)
            BACKLOG.labels(*labels).set(backlog.count)
            BACKLOG_AGE.labels(*labels).set(round(backlog.age_s, 3))
        for labels in self._exported - seen:  # consumers gone (or not ours to measure)
            with contextlib.suppress(KeyError):
                BACKLOG.remove(*labels)
                BACKLOG_AGE.remove(*labels)
        self._exported = seen
        MEASURED.set(0 if backlogs is None else time.time())
