"""One bot's webhook deliveries: batches in log order, signing, retries, gap markers.

:class:`BotDelivery` runs while the dispatcher (:mod:`webhooks.dispatcher`) holds
the bot's lease; the delivery contract (headers, order, retries, giving up) is
described there.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from enum import Enum
from typing import Any

import httpx

from shared.codecs import json_dumps, pack, unpack
from shared.control import WebhookChanged
from shared.dialect import native_ids
from shared.ids import Cursor
from shared.settings import Settings
from shared.ssrf import Allowlist, UrlRefused, WebhookTarget, resolve_target
from shared.store import Store, StoredUpdate, StoreError, Wakeup, Wakeups
from shared.store.log import Gap, gap_before
from shared.store.readers import WEBHOOK_CONSUMER, WebhookConfig

__all__ = ["BotDelivery", "gap_entry", "render_body", "sign"]

log = logging.getLogger("botgw.webhooks")

USER_AGENT = "botgw-webhooks/1"
READ_BATCH = 100
RECHECK_S = 5.0  # idle bots look at their log this often besides wake-ups
PAUSED_RECHECK_S = 1.0  # while a live WebSocket holds consumer default


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def render_body(entry: StoredUpdate, id_format: str) -> bytes:
    """The JSON body of one delivery."""
    body = unpack(entry.payload)
    update: dict[str, Any] = {"update_id": entry.update_id, **body}
    return json_dumps(update if id_format == "number" else native_ids(update))


GAP_KIND = "gap"


def gap_entry(gap: Gap) -> StoredUpdate:
    """A log entry standing for the updates ``gap`` lost, delivered like one."""
    body = {
        "gap": {
            "reason": gap.reason,
            "after_update_id": gap.after,
            "last_update_id": gap.through,
            "count": gap.count,
        }
    }
    return StoredUpdate(
        update_id=gap.through, prev_id=gap.after, kind=GAP_KIND, chat_id=0, payload=pack(body)
    )


class Outcome(Enum):
    DELIVERED = "delivered"
    CHANGED = "changed"  # the webhook was set again or deleted: start over
    GAVE_UP = "gave up"  # the last retry failed: the webhook is now inactive
    STOPPED = "stopped"  # another lane of the batch ended it


class Progress:
    """Which entries of a batch are done; the committable prefix of the log."""

    def __init__(self, entries: Sequence[StoredUpdate], done: set[int]) -> None:
        self.entries = entries
        self.done = done
        self.index = 0

    def advance(self) -> int | None:
        """The last update id of the done prefix if it grew since the last call."""
        start = self.index
        while self.index < len(self.entries) and self.entries[self.index].update_id in self.done:
            self.index += 1
        return self.entries[self.index - 1].update_id if self.index > start else None


class BotDelivery:
    """Delivers one bot's log to its webhook while this dispatcher holds the lease."""

    def __init__(
        self, settings: Settings, store: Store, wakeups: Wakeups, allow: Allowlist, bot_id: int
    ) -> None:
        self.settings = settings
        self.store = store
        self.wakeups = wakeups
        self.allow = allow
        self.bot_id = bot_id
        self.woken = asyncio.Event()
        self.changed = asyncio.Event()
        self.address: str | None = None
        self.client: httpx.AsyncClient | None = None

    def on_wakeup(self, wakeup: Wakeup) -> None:
        if wakeup.control is not None:
            if not isinstance(wakeup.control, WebhookChanged):
                return
            self.changed.set()
        self.woken.set()

    async def wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.woken.wait(), timeout=seconds)
        self.woken.clear()

    async def run(self) -> None:
        wakeups = self.wakeups
        wakeups.add(self.bot_id, self.on_wakeup)
        # one client per bot: connections go to vetted addresses, with the bot's own
        # host name for TLS, so they must never be shared between bots
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(self.settings.webhook_timeout),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=10),
            trust_env=False,
        )
        try:
            await wakeups.subscribed(self.bot_id)
            while await self.step():
                pass
        finally:
            wakeups.remove(self.bot_id, self.on_wakeup)
            await self.client.aclose()

    async def step(self) -> bool:
        """Deliver the next batch (or wait for one); False when there is nothing to do."""
        log_ = self.store.log
        self.changed.clear()
        config = await self.store.readers.get_webhook(self.bot_id)
        if config is None or not config.active:
            return False
        if await log_.reader(self.bot_id, WEBHOOK_CONSUMER) is not None:
            # a live WebSocket reads consumer default: one reader at a time, so wait
            await self.wait(PAUSED_RECHECK_S)
            return True
        epoch = await log_.ensure_epoch(self.bot_id)
        cursor = await log_.get_cursor(self.bot_id, WEBHOOK_CONSUMER)
        after = cursor.update_id if cursor is not None and cursor.epoch == epoch else 0
        entries = await log_.read_after(self.bot_id, after, READ_BATCH)
        if not entries:
            await self.wait(RECHECK_S)
            return True
        if entries[0].prev_id > after and config.id_format != "number":
            ordinal = None
            if cursor is not None and cursor.epoch == epoch:
                ordinal = await log_.cursor_ordinal(self.bot_id, WEBHOOK_CONSUMER, cursor)
            elif after == 0:
                ordinal = 0
            gap = gap_before(entries[0], after, ordinal)
            if gap is not None:
                gap = replace(gap, reason=await log_.gap_reason(self.bot_id, after))
                log.warning(
                    "bot %s: %s updates lost (%s) before delivery",
                    self.bot_id,
                    gap.count,
                    gap.reason,
                )
                entries = [gap_entry(gap)]  # alone: the next batch starts after it
        outcome = await self.deliver_batch(config, epoch, entries)
        return outcome is not Outcome.GAVE_UP

    # -- one batch -------------------------------------------------------------------

    async def deliver_batch(
        self, config: WebhookConfig, epoch: str, entries: list[StoredUpdate]
    ) -> Outcome:
        allowed = config.allowed_updates
        done = {
            e.update_id
            for e in entries
            if allowed is not None and e.kind not in allowed and e.kind != GAP_KIND
        }
        progress = Progress(entries, done)
        wanted = [e for e in entries if e.update_id not in done]
        lanes: dict[int, list[StoredUpdate]] = {}
        for entry in wanted:
            # one lane keeps log order; several keep each chat's order
            lanes.setdefault(entry.chat_id if config.max_connections > 1 else 0, []).append(entry)
        slots = asyncio.Semaphore(config.max_connections)
        stop = asyncio.Event()
        outcomes: list[Outcome] = []
        target: list[WebhookTarget | None] = [None]

        async def commit() -> None:
            last = progress.advance()
            if last is not None:
                await self.store.log.commit_cursor(
                    self.bot_id, WEBHOOK_CONSUMER, Cursor(epoch, last)
                )

        async def lane(items: list[StoredUpdate]) -> None:
            for entry in items:
                if stop.is_set():
                    return
                outcome = await self.deliver(config, entry, slots, stop, target)
                if outcome is not Outcome.DELIVERED:
                    outcomes.append(outcome)
                    stop.set()  # the batch ends; undelivered updates stay after the cursor
                    return
                done.add(entry.update_id)
                await commit()

        await commit()  # a filtered-out head of the batch is confirmed at once
        await asyncio.gather(*(lane(items) for items in lanes.values()))
        if Outcome.CHANGED in outcomes:
            return Outcome.CHANGED
        if Outcome.GAVE_UP in outcomes:
            return Outcome.GAVE_UP
        return Outcome.DELIVERED

    async def deliver(
        self,
        config: WebhookConfig,
        entry: StoredUpdate,
        slots: asyncio.Semaphore,
        stop: asyncio.Event,
        target: list[WebhookTarget | None],
    ) -> Outcome:
        """One update with its retries, the same idempotency key on every attempt."""
        delays = self.settings.webhook_retry_delays
        body = render_body(entry, config.id_format)
        error = ""
        for attempt in range(len(delays) + 1):
            if attempt:
                await self._pause(delays[attempt - 1], stop)
                target[0] = None  # look the name up again before a retry
            if self.changed.is_set():
                return Outcome.CHANGED
            if stop.is_set():
                return Outcome.STOPPED
            async with slots:
                failure = await self.attempt(config, entry, body, target)
            if failure is None:
                return Outcome.DELIVERED
            error = failure
            log.info(
                "bot %s update %s attempt %d failed: %s",
                self.bot_id,
                entry.update_id,
                attempt + 1,
                error,
            )
            if not await self.store.readers.record_error(
                self.bot_id, config.version, int(time.time()), error
            ):
                return Outcome.CHANGED
        attempts = len(delays) + 1
        reason = f"delivery stopped after {attempts} attempts of update {entry.update_id}: {error}"
        if not await self.store.readers.deactivate(
            self.bot_id, config.version, int(time.time()), reason
        ):
            return Outcome.CHANGED
        log.warning("bot %s: webhook inactive: %s", self.bot_id, reason)
        return Outcome.GAVE_UP

    async def _pause(self, seconds: float, stop: asyncio.Event) -> None:
        """Sleep before a retry, cut short when the webhook changes or the batch stops."""
        waiters = [
            asyncio.ensure_future(self.changed.wait()),
            asyncio.ensure_future(stop.wait()),
        ]
        try:
            await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def attempt(
        self,
        config: WebhookConfig,
        entry: StoredUpdate,
        body: bytes,
        target: list[WebhookTarget | None],
    ) -> str | None:
        """POST once; None on a 2xx answer, else what went wrong."""
        resolved = target[0]
        if resolved is None:
            try:
                resolved = await resolve_target(config.url, self.allow)
            except UrlRefused as exc:
                return f"the webhook URL is refused: {exc.reason}"
            target[0] = resolved
        timestamp = str(int(time.time()))
        headers = {
            "Host": resolved.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Botgw-Timestamp": timestamp,
            "X-Botgw-Update-Id": str(entry.update_id),
        }
        if config.secret:
            headers["X-Botgw-Signature"] = "sha256=" + sign(config.secret, timestamp, body)
            headers["X-Telegram-Bot-Api-Secret-Token"] = config.secret
        extensions: dict[str, Any] = {}
        if resolved.scheme == "https":
            extensions["sni_hostname"] = resolved.host
        assert self.client is not None
        failure = "no address to connect to"
        for address in resolved.addresses:
            try:
                async with asyncio.timeout(self.settings.webhook_timeout):
                    request = self.client.build_request(
                        "POST",
                        resolved.url_for(address),
                        content=body,
                        headers=headers,
                        extensions=extensions,
                    )
                    response = await self.client.send(request, stream=True)
                    await response.aclose()  # the answer's body is not used
            except httpx.ConnectError as exc:
                failure = f"could not connect to {address}: {_reason(exc)}"
                continue  # the name may have other addresses
            except (TimeoutError, httpx.TimeoutException):
                return f"no answer within {self.settings.webhook_timeout:g} s"
            except httpx.HTTPError as exc:
                return f"the connection failed: {_reason(exc)}"
            await self._note_address(config, address)
            status = response.status_code
            if 200 <= status < 300:
                return None
            if 300 <= status < 400:
                return f"the receiver answered HTTP {status} (redirects are not followed)"
            return f"the receiver answered HTTP {status}"
        return failure

    async def _note_address(self, config: WebhookConfig, address: str) -> None:
        if address != self.address:
            self.address = address
            with contextlib.suppress(StoreError):
                await self.store.readers.record_address(self.bot_id, config.version, address)


_QUIET_ERRORS = {
    "ReadError": "the connection broke while waiting for the answer (reset by the receiver?)",
    "WriteError": "the connection broke while sending the update",
    "ConnectError": "the connection could not be made",
}


def _reason(exc: BaseException) -> str:
    """Words for a transport error: its message, a cause's, or what the type means."""
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            break
        if str(seen):
            return str(seen)[:300]
        seen = seen.__cause__ or seen.__context__
    return _QUIET_ERRORS.get(type(exc).__name__, type(exc).__name__)
