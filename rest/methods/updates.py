"""``getUpdates``: the long-poll reader of a bot's update log (docs/design.md,
Readers and cursors).

Telegram's semantics on the shared log and committed cursors:

* ``offset`` is the first update id to return and confirms every earlier one (it
  commits the consumer's cursor to ``offset - 1``; never backwards, never beyond
  the newest update). Absent or 0: from the committed cursor. Negative: the last
  ``-offset`` unconfirmed updates, confirming the ones before them.
* ``allowed_updates`` filters what is returned, not what is stored; it is
  remembered per consumer until a call gives it again (``[]`` means all types).
* One reader per consumer: a newer poll ends a waiting older one with 409
  ``CONFLICT``; a live WebSocket on the consumer, or an active webhook (which reads
  consumer ``default``), makes polling answer 409 with the reason.
* A poll repeating the previous one of its consumer (same offset) within 3 s is
  slowed, as Telegram does: it waits at least 3 s for new updates and is answered
  no sooner than 1 s after the previous one.

Never silent (native dialect): when updates the consumer had not confirmed were
trimmed from the log (its length cap or retention) before it read them, the answer
starts with a *gap marker* in their place, an update of its own::

    {"update_id": "<last lost id>",
     "gap": {"reason": "trimmed", "after_update_id": "<the consumer's position>",
             "last_update_id": "<last lost id>", "count": <how many were lost or null>}}

Confirming it (``offset`` = its ``update_id`` + 1) confirms the lost range, like
any update. ``count`` is null only when it cannot be known (the position was an
update already trimmed when it was confirmed). The Telegram dialect stays silent,
as Telegram is: its answers never carry the marker.

A poll that waited re-authenticates before it answers: if the bot's token was
rotated or the bot revoked meanwhile, it answers 401 ``UNAUTHORIZED`` or 412
``BOT_INACTIVE`` instead of updates (which stay unconfirmed in the log).

A long poll waits on the process's wake-up subscription (one pub/sub connection
per worker), never on a blocking Redis call, so one worker holds thousands of
them with a bounded connection pool.

Draining (``rest.serve``): :func:`end_waiting_polls` answers every poll waiting in
the worker at once, with what it would answer at its timeout (normally ``[]``),
and a poll that starts while the worker drains does not wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from typing import Any

from rest.schema import Method, Param
from rest.services import BotCall, Services
from shared import logs
from shared.codecs import unpack
from shared.control import Control, PollStarted, Takeover, WebhookChanged
from shared.errors import ApiError
from shared.ids import Cursor
from shared.store import StoredUpdate, Wakeup
from shared.store.log import Gap, gap_before
from shared.store.readers import PollStart
from shared.updates import CONSUMER_PATTERN, UPDATE_TYPES

__all__ = [
    "BOT",
    "UPDATE_TYPES",
    "check_update_types",
    "conflict",
    "end_waiting_polls",
    "gap_marker",
    "render_update",
]

READ_BATCH = 100
# Pub/sub is at-most-once (wake-ups re-subscribe after a lost connection and then say
# "look again"): a waiting poll also looks at the log and at who owns its consumer
# this often, as a safety net for anything else that goes missing.
RECHECK_S = 5.0

# the polls of this process that may still wait (a drain ends them)
_WAITING: set[LongPoll] = set()


def end_waiting_polls(services: Services) -> int:
    """Answer every poll waiting on ``services`` now, as at its timeout; how many."""
    polls = [poll for poll in _WAITING if poll.services is services]
    for poll in polls:
        poll.end_now()
    return len(polls)


def gap_marker(gap: Gap) -> dict[str, Any]:
    """The update standing in for the updates a reader lost (integer ids)."""
    return {
        "update_id": gap.through,
        "gap": {
            "reason": gap.reason,
            "after_update_id": gap.after,
            "last_update_id": gap.through,
            "count": gap.count,
        },
    }


def render_update(entry: StoredUpdate) -> dict[str, Any]:
    """The update object (integer ids) of a stored entry."""
    body = unpack(entry.payload)
    assert isinstance(body, dict)
    return {"update_id": entry.update_id, **body}


def conflict(reason: str, consumer: str) -> ApiError:
    """The 409 answered to a poll that another reader displaced or blocks."""
    if reason == "webhook":
        return ApiError(
            409,
            "WEBHOOK_ACTIVE",
            f"a webhook is active and reads consumer '{consumer}': call deleteWebhook "
            "before polling it, or poll another consumer",
        )
    if reason == "reader":
        return ApiError(
            409,
            "CONSUMER_IN_USE",
            f"consumer '{consumer}' is being read by a live WebSocket connection: close it "
            "before polling, or poll another consumer",
        )
    return ApiError(
        409,
        "CONFLICT",
        f"terminated by a newer getUpdates request on consumer '{consumer}': make sure "
        "only one instance of the bot polls it (or give each instance its own consumer)",
    )


def check_update_types(name: str, value: Any) -> Any:
    """Refuse unknown update types in an allowed_updates array."""
    for item in value:
        if item not in UPDATE_TYPES:
            raise ApiError(
                400,
                "INVALID_PARAMETER",
                f"parameter '{name}' has an unknown update type {item!r}; known: "
                + ", ".join(UPDATE_TYPES),
            )
    return value


class LongPoll:
    """One ``getUpdates`` call after it has started: read, wait, answer."""

    def __init__(
        self, call: BotCall, consumer: str, limit: int, start: PollStart, *, max_timeout: float
    ) -> None:
        self.services = call.services
        self.log = call.services.store.log
        self.bot_id = call.bot.id
        self.token_hash = call.bot.token_hash
        self.consumer = consumer
        self.limit = limit
        self.start = start
        self.after = start.after
        self.after_ordinal = start.after_ordinal  # how many updates are at or below after
        self.tell_gaps = call.dialect == "native"
        self.prefetched = start.entries
        self.allowed = start.allowed
        now = time.monotonic()
        # the guard may raise the timeout, but never above the configured maximum
        self.deadline = now + min(start.timeout_s, max_timeout)
        self.not_before = now + start.pace_s
        self.woken = asyncio.Event()
        self.displaced: str | None = None  # who took the consumer: poll, reader, webhook
        self.look_again = False  # wake-ups were re-subscribed: controls may be lost
        self.listening = False

    # -- wake-ups ------------------------------------------------------------------

    def on_wakeup(self, wakeup: Wakeup) -> None:
        control = wakeup.control
        if control is not None:
            reason = self._displaced_by(control)
            if reason is None:
                return
            self.displaced = reason
        elif wakeup.update_id is None:
            self.look_again = True
        self.woken.set()

    def _displaced_by(self, control: Control) -> str | None:
        if isinstance(control, PollStarted):
            if control.consumer == self.consumer and control.generation > self.start.generation:
                return "poll"
        elif isinstance(control, Takeover):
            if control.consumer_key == self.consumer:
                return "reader"
        elif (
            isinstance(control, WebhookChanged)
            and control.version is not None
            and self.consumer == "default"
        ):
            return "webhook"
        return None

    def start_listening(self) -> bool:
        """Register for the bot's wake-ups; True when its channel is already subscribed."""
        wakeups = self.services.wakeups
        wakeups.add(self.bot_id, self.on_wakeup)
        self.listening = True
        return wakeups.is_subscribed(self.bot_id)

    async def listen(self) -> None:
        """Wait for the bot's channel to be subscribed, then check who owns the consumer
        (a newer poll that started before we listened published its control unheard)."""
        # bounded: with the subscription down (Redis restarting) the poll still ends
        # at its deadline, and the periodic re-check stands in for wake-ups
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.services.wakeups.subscribed(self.bot_id),
                timeout=max(0.05, self.deadline - time.monotonic()),
            )
        await self.check_owner()

    async def check_owner(self) -> None:
        if self.displaced is None:
            owner = await self.services.store.readers.poll_current(
                self.bot_id, self.consumer, self.start.generation
            )
            if owner != "ok":
                self.displaced = owner
        if self.displaced is not None:
            raise conflict(self.displaced, self.consumer)

    async def wait(self, until: float) -> bool:
        """Wait for a wake-up until the monotonic time ``until``; True when woken."""
        if not self.listening:
            self.start_listening()
            await self.listen()
        remaining = until - time.monotonic()
        woken = False
        if remaining > 0:
            try:
                await asyncio.wait_for(self.woken.wait(), timeout=min(remaining, RECHECK_S))
                woken = True
            except TimeoutError:
                pass
        self.woken.clear()
        if not woken or self.look_again:
            self.look_again = False
            await self.check_owner()  # a lost control message must not go unnoticed
        elif self.displaced is not None:
            raise conflict(self.displaced, self.consumer)
        return woken

    async def reauthenticate(self) -> None:
        """A poll that waited answers only if its token still holds: a rotation or a
        revocation while it waited is its 401 or 412, not updates."""
        (credentials,) = await self.services.store.entities.bot_credentials([self.bot_id])
        if credentials is None or credentials[0] != self.token_hash:
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "the bot token was rotated or revoked while this poll waited: use the new token",
            )
        if not credentials[1]:
            raise ApiError(412, "BOT_INACTIVE", "this bot was revoked by its owner")

    def end_now(self) -> None:
        """Stop waiting: read once more and answer, as when the timeout passes."""
        self.deadline = self.not_before = time.monotonic()
        self.woken.set()

    def close(self) -> None:
        if self.listening:
            self.services.wakeups.remove(self.bot_id, self.on_wakeup)
            self.listening = False

    # -- reading -------------------------------------------------------------------

    def wants(self, entry: StoredUpdate) -> bool:
        return self.allowed is None or entry.kind in self.allowed

    def _moved_to(self, entry: StoredUpdate) -> None:
        self.after = entry.update_id
        self.after_ordinal = entry.ordinal

    async def _gap(self, entries: list[StoredUpdate]) -> dict[str, Any] | None:
        """The marker for updates lost between ``after`` and ``entries``, if any."""
        if not entries or not self.tell_gaps:
            return None
        gap = gap_before(entries[0], self.after, self.after_ordinal)
        if gap is None:
            return None
        reason = await self.log.gap_reason(self.bot_id, self.after)
        return gap_marker(replace(gap, reason=reason))

    async def read(self) -> list[dict[str, Any]]:
        """Up to ``limit`` wanted updates after ``after``; skips past unwanted ones;
        a gap marker first where updates after ``after`` were trimmed."""
        found: list[dict[str, Any]] = []
        while True:
            entries = self.prefetched
            if entries is not None:  # read by begin_poll already
                self.prefetched = None
            else:
                entries = await self.log.read_after(self.bot_id, self.after, READ_BATCH)
            marker = await self._gap(entries)
            if marker is not None:
                found.append(marker)
                if len(found) >= self.limit:
                    return found
            for entry in entries:
                if self.wants(entry):
                    found.append(render_update(entry))
                    if len(found) >= self.limit:
                        return found
            if found or len(entries) < READ_BATCH:
                if entries and not found:
                    self._moved_to(entries[-1])  # filtered out: do not read again
                return found
            self._moved_to(entries[-1])  # a full batch filtered out: read on

    async def read_last(self, count: int) -> list[dict[str, Any]]:
        """Negative offset: the last ``count`` unconfirmed updates; confirms the ones
        before them (Telegram forgets them)."""
        entries = [
            e for e in await self.log.read_last(self.bot_id, count) if e.update_id > self.after
        ]
        if not entries:
            return []
        if entries[0].prev_id > self.after:
            self.after = entries[0].prev_id
            first = entries[0].ordinal
            self.after_ordinal = None if first is None else first - 1
            await self.log.commit_cursor(
                self.bot_id, self.consumer, Cursor(self.start.epoch, self.after)
            )
        found = [render_update(e) for e in entries if self.wants(e)]
        if not found:
            self._moved_to(entries[-1])
        return found

    async def run(self, offset: int | None) -> list[dict[str, Any]]:
        _WAITING.add(self)
        if self.services.draining:
            self.end_now()  # the drain began while the poll was starting
        try:
            found: list[dict[str, Any]] = []
            if offset is not None and offset < 0:
                found = await self.read_last(min(-offset, self.limit))
            # listen before reading, so an append between the read and the wait wakes us;
            # an append before the channel was subscribed, or before we listened (the
            # read begin_poll made), is found by reading once more before waiting
            heard = (
                not found
                and self.deadline > time.monotonic()
                and self.start_listening()
                and self.prefetched is None
            )
            listened = False
            while not found:
                found = await self.read()
                if found or time.monotonic() >= self.deadline:
                    break
                if not listened:
                    await self.listen()
                    listened = True
                    if not heard:
                        heard = True
                        continue
                await self.wait(self.deadline)
            while time.monotonic() < self.not_before:
                await self.wait(self.not_before)  # the tight-loop guard's pacing
            if listened or self.start.pace_s > 0:
                await self.reauthenticate()
            return found
        finally:
            _WAITING.discard(self)
            self.close()


async def get_updates(call: BotCall, p: dict[str, Any]) -> list[dict[str, Any]]:
    consumer: str = p["consumer"]
    logs.bind(consumer=consumer)
    offset: int | None = p["offset"] or None
    timeout = min(float(p["timeout"]), call.services.settings.long_poll_max_timeout)
    if call.services.draining:
        timeout = 0.0  # answered at once: the worker is going away
    start = await call.services.store.readers.begin_poll(
        call.bot.id,
        consumer,
        offset=offset,
        timeout_s=timeout,
        allowed=p["allowed_updates"],
        # the first read with the start; a negative offset reads the newest instead
        read=0 if offset is not None and offset < 0 else p["limit"],
        read_filtered=READ_BATCH,
    )
    if start.status != "ok":
        raise conflict(start.status, consumer)
    poll = LongPoll(
        call,
        consumer,
        p["limit"],
        start,
        max_timeout=call.services.settings.long_poll_max_timeout,
    )
    return await poll.run(offset)


BOT: tuple[Method, ...] = (
    Method(
        name="getUpdates",
        handler=get_updates,
        getter=True,
        summary="Receive updates by long polling.",
        params=(
            Param(
                "offset",
                "id",
                doc="first update id to return; confirms every earlier one. Absent or 0: "
                "from the committed cursor; negative: the last N unconfirmed updates",
            ),
            Param(
                "limit",
                "int",
                default=100,
                minimum=1,
                maximum=100,
                clamp=True,
                doc="at most this many updates (1-100; out-of-range values are clamped)",
            ),
            Param(
                "timeout",
                "float",
                default=0,
                minimum=0,
                maximum=60,
                clamp=True,
                doc="seconds to wait for an update when there is none (0-60, clamped)",
            ),
            Param(
                "allowed_updates",
                "array",
                items="str",
                check=check_update_types,
                doc="update types to return (others are skipped, not lost); remembered for "
                "the consumer until given again; [] means all types",
            ),
            Param(
                "consumer",
                "str",
                default="default",
                pattern=CONSUMER_PATTERN,
                doc="whose committed cursor to read and confirm (shared with the gateway)",
            ),
        ),
        result={"type": "array", "items": {"$ref": "#/components/schemas/Update"}},
    ),
)
