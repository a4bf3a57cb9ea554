"""One bot's webhook deliveries: batches in log order, signing, retries, gap markers.

:class:`BotDelivery` runs while the dispatcher (:mod:`webhooks.dispatcher`) holds
the bot's lease; the delivery contract (headers, order, retries, giving up) is
described there.

Handing a bot over never repeats a delivered update: :meth:`BotDelivery.leave`
stops it at a *safe point*, where every update it delivered is committed. A batch
is delivered in lanes (one per chat); once asked to leave, a lane starts no update
that comes after every update started so far, in log order, but still delivers the
ones before it (with their retries). When the lanes end, the done updates form a
prefix of the batch, so the committed cursor covers them all and the next owner
starts exactly after them. An attempt is also never started unless the lease is
sure to outlive it (``lease_ok``): a dispatcher whose renewals fell behind waits
for the next renewal (a lost lease cancels the delivery instead), rather than
deliver beside the next owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

import httpx

from shared import bot_api_v1
from shared.codecs import json_dumps, pack, unpack
from shared.control import WebhookChanged
from shared.dialect import native_ids
from shared.ids import Cursor
from shared.koto import bot_update, signature
from shared.settings import Settings
from shared.ssrf import Allowlist, UrlRefused, WebhookTarget, resolve_target
from shared.store import Store, StoredUpdate, StoreError, Wakeup, Wakeups
from shared.store.log import Gap, gap_before
from shared.store.readers import WEBHOOK_CONSUMER, WebhookConfig
from webhooks import metrics
from webhooks.replies import (
    MAX_REPLY_BYTES,
    Reply,
    ReplyRunner,
    Unreadable,
    carry_out,
    parse_reply,
    wants_body,
)

__all__ = ["BotDelivery", "Delivered", "Failure", "gap_entry", "render_body", "sign", "wait_set"]

log = logging.getLogger("botgw.webhooks")

USER_AGENT = "botgw-webhooks/1"
READ_BATCH = 100
# Idle bots look at their log this often besides wake-ups. Wake-ups are reliable but
# for a subscription that was re-made, which wakes every bot anyway: this is a net
# under that, and an idle bot's main cost in Redis (6 commands each time).
RECHECK_S = 30.0
PAUSED_RECHECK_S = 1.0  # while a live WebSocket holds consumer default


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; whether it was set. (Not ``wait_for``:
    in Python 3.11 it swallows a cancellation that comes as the event is set, and a
    cancelled delivery or loop would go on.)"""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``"<timestamp>.<body>"`` under ``secret``."""
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


KOTO = "koto"  # the id_format of a webhook set through the Koto v1 dialect


def render_body(entry: StoredUpdate, id_format: str) -> bytes:
    """The JSON body of one delivery: native ids (``string``), Telegram's numbers
    (``number``), Koto v1's BotUpdate (``koto``) or the generic Bot API's message
    (``bot-api``)."""
    body = unpack(entry.payload)
    if id_format == KOTO:
        # such a webhook delivers only the types Koto has a shape for (setWebhook)
        koto = bot_update(entry.update_id, body)
        if koto is not None:
            return json_dumps(koto)
    if id_format == bot_api_v1.BOT_API_FORMAT:
        # and this one only messages (setWebhook narrows allowed_updates to them)
        message = bot_api_v1.delivery(body)
        if message is not None:
            return json_dumps(message)
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


@dataclass(frozen=True, slots=True)
class Failure:
    """A failed attempt: its ``outcome`` label (metrics) and what went wrong."""

    outcome: str  # http_error, redirect, timeout, connection or refused
    reason: str


@dataclass(frozen=True, slots=True)
class Delivered:
    """A 2xx answer, and the Bot API call it carried (:mod:`webhooks.replies`)."""

    reply: Reply | Unreadable | None = None


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
        self,
        settings: Settings,
        store: Store,
        wakeups: Wakeups,
        allow: Allowlist,
        bot_id: int,
        *,
        tls: ssl.SSLContext | None = None,
        lease_ok: Callable[[], bool] = lambda: True,
        replies: ReplyRunner | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.wakeups = wakeups
        self.allow = allow
        self.bot_id = bot_id
        # one TLS context for every bot: building one loads the CA bundle (~20 ms)
        self.tls = tls if tls is not None else httpx.create_ssl_context(trust_env=False)
        self.lease_ok = lease_ok  # whether the lease surely outlives an attempt begun now
        self.replies = replies  # runs the Bot API calls receivers answer with
        self.lease_renewed = asyncio.Event()  # set by the dispatcher after each renewal
        self.woken = asyncio.Event()
        self.changed = asyncio.Event()
        self.leaving = asyncio.Event()
        self.finished = False  # nothing to deliver: no active webhook any more
        self.address: str | None = None
        self.client: httpx.AsyncClient | None = None

    def leave(self) -> None:
        """Stop at the next safe point (see the module docstring), then :meth:`run`
        returns; the dispatcher gives the lease back."""
        self.leaving.set()
        self.woken.set()

    def stay(self) -> None:
        """Take back a :meth:`leave` (the bot was assigned here again meanwhile); it
        has no effect once the delivery stopped."""
        self.leaving.clear()

    def on_wakeup(self, wakeup: Wakeup) -> None:
        if wakeup.control is not None:
            if not isinstance(wakeup.control, WebhookChanged):
                return
            self.changed.set()
        self.woken.set()

    async def wait(self, seconds: float) -> None:
        await wait_set(self.woken, seconds)
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
            verify=self.tls,
        )
        try:
            await wakeups.subscribed(self.bot_id)
            while not self.leaving.is_set():
                if not await self.step():
                    self.finished = True
                    break
        finally:
            wakeups.remove(self.bot_id, self.on_wakeup)
            await self.client.aclose()

    async def step(self) -> bool:
        """Deliver the next batch (or wait for one); False when there is nothing to do."""
        log_ = self.store.log
        self.changed.clear()
        if self.leaving.is_set():
            return True  # run() stops; the webhook itself is still there
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
        if entries[0].prev_id > after and config.id_format == "string":
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
        if self.leaving.is_set():
            return True  # before anything of the batch started: a safe point
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
        position = {e.update_id: i for i, e in enumerate(entries)}
        # the last position started, in log order: once leaving, nothing after it
        # starts, so what is done ends up a prefix of the batch (a safe point)
        frontier = -1
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
            nonlocal frontier
            for entry in items:
                if stop.is_set():
                    return
                if self.leaving.is_set() and position[entry.update_id] > frontier:
                    return  # the other lanes end at or before the frontier too
                frontier = max(frontier, position[entry.update_id])
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
                await self._lease_sure()
                began = time.monotonic()
                answer = await self.attempt(config, entry, body, target)
                metrics.ATTEMPT_SECONDS.observe(time.monotonic() - began)
            if isinstance(answer, Delivered):
                metrics.ATTEMPTS.labels("delivered").inc()
                if answer.reply is not None:
                    # before the commit: a crash repeats the delivery, and the reply's
                    # key makes the repeated reply a replay
                    dialect = "telegram" if config.id_format == "number" else "native"
                    await carry_out(
                        self.replies, self.bot_id, dialect, entry.update_id, answer.reply
                    )
                return Outcome.DELIVERED
            metrics.ATTEMPTS.labels(answer.outcome).inc()
            error = answer.reason
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
        metrics.GAVE_UP.inc()
        log.warning("bot %s: webhook inactive: %s", self.bot_id, reason)
        return Outcome.GAVE_UP

    async def _lease_sure(self) -> None:
        """Return once the lease surely outlasts an attempt begun now: at once, unless
        the renewals fell behind (a stalled process, a slow Redis); then another
        dispatcher might take the bot during the attempt, so wait for the next
        renewal. A lost lease cancels this delivery instead."""
        while not self.lease_ok():
            log.warning("bot %s: lease renewals fell behind; waiting for one", self.bot_id)
            self.lease_renewed.clear()
            await self.lease_renewed.wait()

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
    ) -> Failure | Delivered:
        """POST once; what went wrong, or the 2xx answer with its reply if any."""
        resolved = target[0]
        if resolved is None:
            try:
                resolved = await resolve_target(config.url, self.allow)
            except UrlRefused as exc:
                return Failure("refused", f"the webhook URL is refused: {exc.reason}")
            target[0] = resolved
        timestamp = str(int(time.time()))
        headers = {
            "Host": resolved.host_header,
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Botgw-Timestamp": timestamp,
            "X-Botgw-Update-Id": str(entry.update_id),
        }
        if config.secret and config.id_format == KOTO:
            headers["X-Koto-Signature"] = signature(config.secret, body)
        elif config.secret:
            headers["X-Botgw-Signature"] = "sha256=" + sign(config.secret, timestamp, body)
            headers["X-Telegram-Bot-Api-Secret-Token"] = config.secret
        extensions: dict[str, Any] = {}
        if resolved.scheme == "https":
            extensions["sni_hostname"] = resolved.host
        assert self.client is not None
        failure = Failure("connection", "no address to connect to")
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
                    try:
                        reply = await _read_reply(response)
                    finally:
                        await response.aclose()
            except httpx.ConnectError as exc:
                failure = Failure("connection", f"could not connect to {address}: {_reason(exc)}")
                continue  # the name may have other addresses
            except (TimeoutError, httpx.TimeoutException):
                return Failure("timeout", f"no answer within {self.settings.webhook_timeout:g} s")
            except httpx.HTTPError as exc:
                return Failure("connection", f"the connection failed: {_reason(exc)}")
            await self._note_address(config, address)
            status = response.status_code
            if 200 <= status < 300:
                return Delivered(reply)
            if 300 <= status < 400:
                return Failure(
                    "redirect", f"the receiver answered HTTP {status} (redirects are not followed)"
                )
            return Failure("http_error", f"the receiver answered HTTP {status}")
        return failure

    async def _note_address(self, config: WebhookConfig, address: str) -> None:
        if address != self.address:
            self.address = address
            with contextlib.suppress(StoreError):
                await self.store.readers.record_address(self.bot_id, config.version, address)


async def _read_reply(response: httpx.Response) -> Reply | Unreadable | None:
    """The Bot API call in a 2xx answer, if any; no other answer's body is read."""
    content_type = response.headers.get("content-type")
    if not 200 <= response.status_code < 300 or not wants_body(content_type):
        return None
    body = bytearray()
    try:
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_REPLY_BYTES:
                return parse_reply(content_type, None)
    except httpx.HTTPError as exc:
        return Unreadable("malformed", f"the answer's body broke off: {_reason(exc)}")
    return parse_reply(content_type, bytes(body))


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
