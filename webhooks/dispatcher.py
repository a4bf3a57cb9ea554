"""The webhook dispatcher (``botgw webhooks``): POSTs each bot's updates to its URL.

Any number of dispatchers share the work through Redis:

* **Membership.** Each dispatcher heartbeats its entry in one small sorted set of
  live dispatchers (``store.readers.heartbeat``, a third of the lease time apart;
  an entry not renewed for the lease time is dropped by the next beat of anyone).
  Joining and leaving are announced on the dispatchers' channel, so the others
  beat at once instead of waiting for their next beat.
* **Ownership.** Every bot with an active webhook is listed in one of a fixed number
  of sets, by bot id. From the list and the live members, each dispatcher computes
  the same assignment (:mod:`webhooks.assignment`: rendezvous hashing with bounded
  loads) and works only on the bots it owns: it asks only for their leases and never
  looks at anyone else's. The list is read again when it changes (setWebhook,
  deleteWebhook and giving up announce it on the same channel), at most every
  :data:`RESCAN_MIN_S`, and every :data:`INDEX_REFRESH_S` in any case.
* **Leases.** A dispatcher delivers a bot only while it holds the bot's lease (``SET
  NX PX``, renewed with the heartbeat), so two never deliver one bot at once, also
  while their views of the members differ for a moment. When the assignment moves a
  bot away, its delivery stops at a safe point (:mod:`webhooks.delivery`: every
  update delivered is committed) and the lease is given back; the new owner, which
  has been asking for it every :data:`PENDING_RETRY_S`, takes it and resumes after
  the committed cursor. A crashed dispatcher's leases and membership expire; the
  others then own its bots and take them.

An idle dispatcher thus costs Redis a heartbeat and one lease renewal per *owned*
bot per third of the lease time, a look at each owned bot's log every ``RECHECK_S``
(6 commands), and a read of the 64 index sets every :data:`INDEX_REFRESH_S`;
nothing for the bots it does not own (docs/webhooks.md §7).

A webhook is the reader of consumer ``default``: delivery starts after that
consumer's committed cursor and commits it after every 2xx answer, so a restart,
a takeover or a switch to the gateway or to getUpdates repeats only updates that
were not acknowledged (at least once: receivers de-duplicate by
``X-Botgw-Update-Id``). Each request:

* body: the update as JSON, ids as decimal strings (``id_format`` ``string``) or
  numbers (``number``, for Telegram clients), Koto v1's BotUpdate (``koto``,
  :mod:`shared.koto`) or the generic Bot API's message (``bot-api``,
  :mod:`shared.bot_api_v1`);
* ``X-Botgw-Timestamp`` (unix seconds), ``X-Botgw-Update-Id`` (idempotency key);
* a 2xx answer may carry a Bot API call (``{"method": ...}``), which is carried
  out once per update before the update is committed (:mod:`webhooks.replies`);
* with a ``secret_token``: ``X-Botgw-Signature: sha256=<hex HMAC-SHA256 of
  "<timestamp>.<body>" under the secret>`` and Telegram's
  ``X-Telegram-Bot-Api-Secret-Token``; for ``koto`` instead only
  ``X-Koto-Signature: <hex HMAC-SHA256 of the body under the secret>``.

Never silent: when updates the webhook had not delivered were trimmed from the
log (its cap or retention), a webhook set in the native dialect first receives a
gap marker in their place (the same object as in native ``getUpdates``, see
:mod:`rest.methods.updates`), delivered and retried like an update; one set through the
Telegram, Koto or generic Bot API dialect stays silent, as those APIs are.

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
import time
from dataclasses import dataclass

import httpx

from shared import keys
from shared.settings import Settings
from shared.ssrf import Allowlist
from shared.store import Store, StoreError, Wakeups
from shared.store.readers import DISPATCHERS_BOTS, DISPATCHERS_MEMBERS, Membership
from webhooks import metrics
from webhooks.assignment import owned_by
from webhooks.delivery import BotDelivery, wait_set
from webhooks.health import HealthServer
from webhooks.replies import ReplyRunner, ReplyRunnerFactory

__all__ = ["Dispatcher", "lease_ttl", "main", "run_dispatcher"]

log = logging.getLogger("botgw.webhooks")

BEATS_PER_TTL = 3  # heartbeats and lease renewals per lease time
RESCAN_MIN_S = 0.5  # the index is read at most this often, however many webhooks are set
INDEX_REFRESH_S = 30.0  # ... and this often with no news (a net under lost announcements)
PENDING_RETRY_S = 0.5  # an owned bot whose lease another still holds is asked for again


def lease_ttl(settings: Settings) -> float:
    """How long a dispatcher's claim on a bot (and its membership) lasts without
    renewal (renewed every third of it): twice the delivery timeout, from 2 to 15 s."""
    return min(15.0, max(2.0, 2 * settings.webhook_timeout))


@dataclass
class Running:
    """A bot this dispatcher holds the lease of, and its delivery."""

    delivery: BotDelivery
    task: asyncio.Task[None]
    valid_until: float  # monotonic time the lease surely lasts until, as last renewed


class Dispatcher:
    """One dispatcher process: membership, the bots it owns, their leases, delivery."""

    def __init__(
        self, settings: Settings, store: Store, *, replies: ReplyRunnerFactory | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.allow = Allowlist(settings.webhook_allow)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_ttl = lease_ttl(settings)
        # an attempt starts only while the lease outlives it by this much
        self.lease_margin = min(settings.webhook_timeout, self.lease_ttl / BEATS_PER_TTL)
        self.wakeups: Wakeups = store.wakeups()
        # without one, replies are counted as unsupported (webhooks.replies)
        self.replies: ReplyRunner | None = (
            replies(settings, store, self.wakeups) if replies is not None else None
        )
        self.tls = httpx.create_ssl_context(trust_env=False)
        self.members: tuple[str, ...] = ()  # as the last heartbeat saw them
        self.bots: set[int] = set()  # with an active webhook, as last read
        self.owned: set[int] = set()
        self.pending: set[int] = set()  # owned, but the lease is someone else's still
        # delivered until there was no active webhook: not asked for again before the
        # index is read again (they stay in the assignment, which every dispatcher
        # must compute from the same list)
        self.finished: set[int] = set()
        self.running: dict[int, Running] = {}
        self.stopping = False
        self._index_stale = True
        self._index_read_at = -INDEX_REFRESH_S
        self._owned_stale = True  # the bots or the members changed since computed
        self._wake = asyncio.Event()  # look at the assignment again
        self._beat_now = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        self.wakeups.watch(keys.webhook_dispatchers_channel(), self._on_message, self._on_state)
        self.wakeups.start()
        self._loops = [
            asyncio.create_task(self._beat_loop(), name="webhook-heartbeat"),
            asyncio.create_task(self._assign_loop(), name="webhook-assignment"),
        ]

    async def stop(self, grace_s: float | None = None) -> None:
        """Leave: the others own this dispatcher's bots at once; each delivery stops at
        a safe point within ``grace_s`` (the lease time) and its lease is given back."""
        self.stopping = True
        beat, assign = self._loops or (None, None)
        if assign is not None:
            # not cancelled: a lease it is asking for might be granted unseen, and
            # then held by nobody until it expires
            self._wake.set()
            await asyncio.wait([assign], timeout=self.lease_ttl)
            assign.cancel()
            await asyncio.gather(assign, return_exceptions=True)
        try:
            await self.store.readers.leave(self.holder)
            await self.store.readers.announce_dispatchers(DISPATCHERS_MEMBERS)
        except (StoreError, OSError) as exc:
            log.warning("could not leave the dispatchers (%s); the membership expires", exc)
        running = dict(self.running)
        for entry in running.values():
            entry.delivery.leave()  # the heartbeat loop keeps renewing their leases
        tasks = [entry.task for entry in running.values()]
        if tasks:
            grace = self.lease_ttl if grace_s is None else grace_s
            await asyncio.wait(tasks, timeout=grace)
        late = [bot for bot, entry in running.items() if not entry.task.done()]
        for bot_id in late:
            running[bot_id].task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for bot_id in late:
            with contextlib.suppress(StoreError, OSError):
                if await self.store.readers.release_lease(bot_id, self.holder):
                    metrics.LEASE_CHANGES.labels("released").inc()
        if late:
            log.warning("%d deliveries did not reach a safe point in time", len(late))
        if beat is not None:
            beat.cancel()
            await asyncio.gather(beat, return_exceptions=True)
        await self.wakeups.stop()

    async def readiness(self) -> tuple[str, str] | None:
        """None when ready; else the error code and why not (``/readyz``)."""
        if self.stopping:
            return "DRAINING", "this dispatcher is stopping"
        problem = await self.store.unready()
        if problem is not None:
            return "BACKEND_UNAVAILABLE", f"the store cannot take writes: {problem}"
        return None

    # -- announcements -----------------------------------------------------------------

    def _on_message(self, data: bytes) -> None:
        if data == DISPATCHERS_MEMBERS.encode():
            self._beat_now.set()
        elif data == DISPATCHERS_BOTS.encode():
            self._index_stale = True
            self._wake.set()

    def _on_state(self, subscribed: bool) -> None:
        if subscribed:  # (re)subscribed: whatever was announced meanwhile is unknown
            self._index_stale = True
            self._beat_now.set()
            self._wake.set()

    # -- membership and renewals -------------------------------------------------------

    async def _beat_loop(self) -> None:
        interval = self.lease_ttl / BEATS_PER_TTL
        while True:
            await self.beat()
            self._beat_now.clear()
            await wait_set(self._beat_now, interval)

    async def beat(self) -> None:
        """Heartbeat and renew every held lease, in one round trip."""
        began = time.monotonic()
        held = list(self.running)
        readers = self.store.readers
        membership, renewal = await asyncio.gather(
            readers.heartbeat(self.holder, self.lease_ttl) if not self.stopping else _none(),
            readers.renew_leases(held, self.holder, self.lease_ttl),
            return_exceptions=True,
        )
        if isinstance(renewal, BaseException):
            log.warning("cannot renew webhook leases (%s)", renewal)
        else:
            lost = set(renewal)
            for bot_id in held:
                entry = self.running.get(bot_id)
                if entry is None:
                    continue
                if bot_id in lost:
                    log.warning("bot %s: lease lost; another dispatcher delivers it", bot_id)
                    metrics.LEASE_CHANGES.labels("lost").inc()
                    entry.task.cancel()
                else:
                    entry.valid_until = began + self.lease_ttl
                    entry.delivery.lease_renewed.set()
        if isinstance(membership, BaseException):
            log.warning("cannot heartbeat (%s)", membership)
        elif isinstance(membership, Membership):
            await self._members_seen(membership)

    async def _members_seen(self, membership: Membership) -> None:
        if membership.joined:
            with contextlib.suppress(StoreError, OSError):
                await self.store.readers.announce_dispatchers(DISPATCHERS_MEMBERS)
        if membership.members != self.members:
            log.info("dispatchers: %d live %s", len(membership.members), membership.members)
            self.members = membership.members
            metrics.DISPATCHERS.set(len(self.members))
            self._owned_stale = True
            self._wake.set()

    # -- ownership -----------------------------------------------------------------------

    async def _assign_loop(self) -> None:
        failures = 0
        while not self.stopping:
            try:
                await self.reconcile()
                failures = 0
            except (StoreError, OSError) as exc:
                failures += 1
                if failures == 1 or failures % 60 == 0:
                    log.warning("cannot read the webhook list or take leases (%s)", exc)
                await wait_set(self._wake, min(5.0, 0.5 * failures))
                self._wake.clear()
                continue
            await self._wait_for_news()

    async def _wait_for_news(self) -> None:
        now = time.monotonic()
        until_refresh = self._index_read_at + INDEX_REFRESH_S - now
        timeout = min(until_refresh, PENDING_RETRY_S) if self.pending else until_refresh
        if self._index_stale:  # announced while reconciling: read again soon
            timeout = min(timeout, self._index_read_at + RESCAN_MIN_S - now)
        if timeout > 0:
            await wait_set(self._wake, timeout)
        self._wake.clear()
        if time.monotonic() >= self._index_read_at + INDEX_REFRESH_S:
            self._index_stale = True
        if self._index_stale and not self.stopping:  # one read per RESCAN_MIN_S at most
            await asyncio.sleep(max(0.0, self._index_read_at + RESCAN_MIN_S - time.monotonic()))

    async def reconcile(self) -> None:
        """Read the index if needed, recompute the bots owned here, hand over the ones
        that moved away and ask for the leases of the ones that came."""
        if self._index_stale:
            self._index_stale = False
            self._index_read_at = time.monotonic()
            try:
                bots = set(await self.store.readers.active_bots())
            except BaseException:
                self._index_stale = True
                raise
            metrics.INDEX_READS.inc()
            self.finished.clear()
            if bots != self.bots:
                self.bots = bots
                self._owned_stale = True
        if not self.members or self.stopping:
            return  # no heartbeat yet: nothing is owned here
        if self._owned_stale:  # (a few ms for thousands of bots: not on every wake-up)
            self._owned_stale = False
            self.owned = owned_by(self.holder, self.bots, self.members)
            metrics.OWNED.set(len(self.owned))
        for bot_id, entry in self.running.items():
            if bot_id in self.owned:
                entry.delivery.stay()
            elif not entry.delivery.leaving.is_set():
                entry.delivery.leave()
        wanted = sorted(b for b in self.owned if b not in self.running and b not in self.finished)
        self.pending = set(wanted)
        if not wanted:
            return
        metrics.LEASE_ATTEMPTS.inc(len(wanted))
        began = time.monotonic()
        taken = await self.store.readers.acquire_leases(wanted, self.holder, self.lease_ttl)
        for bot_id in taken:
            metrics.LEASE_CHANGES.labels("acquired").inc()
            self._start(bot_id, valid_until=began + self.lease_ttl)
        self.pending.difference_update(taken)

    # -- one bot -------------------------------------------------------------------------

    def _start(self, bot_id: int, *, valid_until: float) -> None:
        delivery = BotDelivery(
            self.settings,
            self.store,
            self.wakeups,
            self.allow,
            bot_id,
            tls=self.tls,
            lease_ok=lambda: self._lease_ok(bot_id),
            replies=self.replies,
        )
        task = asyncio.create_task(self._deliver(bot_id, delivery), name=f"webhook-{bot_id}")
        self.running[bot_id] = Running(delivery, task, valid_until)
        metrics.LEASED.set(len(self.running))

    def _lease_ok(self, bot_id: int) -> bool:
        entry = self.running.get(bot_id)
        return entry is not None and time.monotonic() + self.lease_margin < entry.valid_until

    async def _deliver(self, bot_id: int, delivery: BotDelivery) -> None:
        try:
            try:
                await delivery.run()
            except Exception as exc:  # Redis trouble or a bug: give the bot up, retry later
                log.warning("bot %s: delivery interrupted: %r", bot_id, exc)
                await asyncio.sleep(1.0)
            if delivery.finished:  # no active webhook
                self.finished.add(bot_id)
            # every update delivered is committed: the next owner starts after them
            with contextlib.suppress(StoreError, OSError):
                if await self.store.readers.release_lease(bot_id, self.holder):
                    metrics.LEASE_CHANGES.labels("released").inc()
        finally:
            self.running.pop(bot_id, None)
            metrics.LEASED.set(len(self.running))
            self._wake.set()


async def _none() -> None:
    return None


async def run_dispatcher(
    settings: Settings,
    stop: asyncio.Event,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    replies: ReplyRunnerFactory | None = None,
) -> None:
    """Run one dispatcher until ``stop`` is set; with ``port``, serve ``/healthz``,
    ``/readyz`` and ``/metrics`` on ``host:port``; ``replies`` builds what runs the
    Bot API calls receivers answer deliveries with (:mod:`webhooks.replies`)."""
    store = Store.connect(settings, role="webhooks")
    dispatcher = Dispatcher(settings, store, replies=replies)
    health = HealthServer(dispatcher.readiness)
    if port is not None:
        bound = await health.start(host, port)
        log.info("webhook dispatcher health and metrics on http://%s:%d", host, bound)
    dispatcher.start()
    log.info("webhook dispatcher %s running", dispatcher.holder)
    try:
        await stop.wait()
    finally:
        await dispatcher.stop()
        await health.close()
        await store.close()


async def main(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    replies: ReplyRunnerFactory | None = None,
) -> None:
    """``botgw webhooks``: run a dispatcher until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await run_dispatcher(settings, stop, host=host, port=port, replies=replies)
