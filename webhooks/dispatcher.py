"""The webhook dispatcher (``botgw webhooks``): POSTs each bot's updates to its URL.

Any number of dispatchers share the work through Redis. Every bot with an active
webhook is listed in one of a fixed number of sets, by bot id (each scan reads
them all in one round trip); a dispatcher takes a bot by its *lease* (``SET NX
PX``, renewed while it delivers) so one dispatcher at a time delivers a bot, and
a crashed dispatcher's bots are taken over when its leases expire.

A webhook is the reader of consumer ``default``: delivery starts after that
consumer's committed cursor and commits it after every 2xx answer, so a restart,
a takeover or a switch to the gateway or to getUpdates repeats only updates that
were not acknowledged (at least once: receivers de-duplicate by
``X-Botgw-Update-Id``). Each request:

* body: the update as JSON, ids as decimal strings (``id_format`` ``string``) or
  numbers (``number``, for Telegram clients);
* ``X-Botgw-Timestamp`` (unix seconds), ``X-Botgw-Update-Id`` (idempotency key);
* with a ``secret_token``: ``X-Botgw-Signature: sha256=<hex HMAC-SHA256 of
  "<timestamp>.<body>" under the secret>`` and Telegram's
  ``X-Telegram-Bot-Api-Secret-Token``.

Never silent: when updates the webhook had not delivered were trimmed from the
log (its cap or retention), a webhook set in the native dialect first receives a
gap marker in their place (the same object as in native ``getUpdates``, see
:mod:`rest.methods.updates`), delivered and retried like an update; one set through the
Telegram dialect stays silent, as Telegram is.

Order: one chat's updates are delivered one after another in log order; with
``max_connections > 1`` different chats are delivered concurrently. A failed
attempt (non-2xx, a redirect, no answer within ``webhook_timeout``, a broken
connection, a refused address) is retried after each of ``webhook_retry_delays``
with the same idempotency key; after the last the webhook turns inactive with
the reason (getWebhookInfo), the updates stay in the log, and ``setWebhook``
resumes from where delivery stopped. The SSRF guard (:mod:`shared.ssrf`) runs
again before deliveries and the request goes to the vetted address itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket

from shared.settings import Settings
from shared.ssrf import Allowlist
from shared.store import Store, StoreError, Wakeups
from webhooks.delivery import BotDelivery

__all__ = ["Dispatcher", "lease_ttl", "main", "run_dispatcher"]

log = logging.getLogger("botgw.webhooks")

SCAN_INTERVAL_S = 0.5  # how soon a newly set webhook is picked up


def lease_ttl(settings: Settings) -> float:
    """How long a dispatcher's claim on a bot lasts without renewal (renewed every
    third of it): twice the delivery timeout, from 2 to 15 s."""
    return min(15.0, max(2.0, 2 * settings.webhook_timeout))


class Dispatcher:
    """One dispatcher process: finds bots with webhooks, leases them, delivers."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.allow = Allowlist(settings.webhook_allow)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_ttl = lease_ttl(settings)
        self.wakeups: Wakeups = store.wakeups()
        self.deliveries: dict[int, asyncio.Task[None]] = {}
        self._loops: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.wakeups.start()
        self._loops = [
            asyncio.create_task(self._scan_loop(), name="webhook-scan"),
            asyncio.create_task(self._renew_loop(), name="webhook-leases"),
        ]

    async def stop(self) -> None:
        """Stop delivering and give the leases back so another dispatcher goes on."""
        for task in self._loops:
            task.cancel()
        tasks = dict(self.deliveries)
        for task in tasks.values():
            task.cancel()
        await asyncio.gather(*self._loops, *tasks.values(), return_exceptions=True)
        for bot_id in tasks:
            with contextlib.suppress(Exception):
                await self.store.readers.release_lease(bot_id, self.holder)
        await self.wakeups.stop()

    async def _scan_loop(self) -> None:
        failures = 0
        while True:
            try:
                await self.scan()
                failures = 0
            except (StoreError, OSError) as exc:
                failures += 1
                if failures == 1 or failures % 60 == 0:
                    log.warning("cannot read the webhook list (%s); retrying", exc)
            await asyncio.sleep(SCAN_INTERVAL_S if failures == 0 else min(5.0, 0.5 * failures))

    async def scan(self) -> None:
        """Take the free leases of bots with an active webhook and start delivering."""
        bots = await self.store.readers.active_bots()
        candidates = [b for b in bots if b not in self.deliveries]
        for bot_id in await self.store.readers.acquire_leases(
            candidates, self.holder, self.lease_ttl
        ):
            self._start(bot_id)

    def _start(self, bot_id: int) -> None:
        task = asyncio.create_task(self._deliver(bot_id), name=f"webhook-{bot_id}")
        self.deliveries[bot_id] = task

    async def _deliver(self, bot_id: int) -> None:
        try:
            await BotDelivery(self.settings, self.store, self.wakeups, self.allow, bot_id).run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis trouble or a bug: give the bot up, retry later
            log.warning("bot %s: delivery interrupted: %r", bot_id, exc)
            await asyncio.sleep(1.0)
        finally:
            self.deliveries.pop(bot_id, None)
        with contextlib.suppress(Exception):
            await self.store.readers.release_lease(bot_id, self.holder)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ttl / 3)
            bots = list(self.deliveries)
            try:
                lost = await self.store.readers.renew_leases(bots, self.holder, self.lease_ttl)
            except (StoreError, OSError) as exc:
                log.warning("cannot renew webhook leases (%s)", exc)
                continue
            for bot_id in lost:
                task = self.deliveries.get(bot_id)
                if task is not None:
                    log.warning("bot %s: lease lost; another dispatcher delivers it", bot_id)
                    task.cancel()


async def run_dispatcher(settings: Settings, stop: asyncio.Event) -> None:
    """Run one dispatcher until ``stop`` is set."""
    store = Store.connect(settings, role="webhooks")
    dispatcher = Dispatcher(settings, store)
    dispatcher.start()
    log.info("webhook dispatcher %s running", dispatcher.holder)
    try:
        await stop.wait()
    finally:
        await dispatcher.stop()
        await store.close()


async def main(settings: Settings) -> None:
    """``botgw webhooks``: run a dispatcher until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_dispatcher(settings, stop)
