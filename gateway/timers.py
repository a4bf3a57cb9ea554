"""Deadlines of every session of a worker, on one event-loop timer."""

from __future__ import annotations

import asyncio
import heapq
import math
from typing import Any, Protocol

__all__ = ["Deadlines", "Timed"]


class Timed(Protocol):
    """What :class:`Deadlines` wakes: a session keeping its entry in the heap."""

    #: the entry of its armed deadline, None when none is armed; kept by Deadlines
    deadline_entry: list[Any] | None

    def deadline_reached(self) -> None:
        """The armed deadline passed (it may have moved later since)."""
        ...


class Deadlines:
    """Every session's next deadline in one heap, served by one event-loop timer.

    A session arms its core's next deadline after each change; the timer wakes it
    when the deadline passes, and the session ticks its core and arms the next one.
    A deadline that moves later (a heartbeat came) keeps its entry: it fires early,
    finds nothing due and re-arms. One small entry per session instead of a timer
    handle and a waiting coroutine per connection.
    """

    # a timer may fire up to the clock's resolution early: treat those as due
    SLACK = 0.001

    def __init__(self) -> None:
        # [when, sequence, session]: the session slot is cleared on disarm, so a
        # stale entry does not keep a closed connection alive until it pops
        self._heap: list[list[Any]] = []
        self._sequence = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def arm(self, session: Timed, when: float) -> None:
        """Wake ``session`` at ``when`` at the latest."""
        entry = session.deadline_entry
        if entry is not None:
            if entry[0] <= when:
                return  # the earlier entry fires first; the tick re-arms
            entry[2] = None
        self._sequence += 1
        entry = [when, self._sequence, session]
        session.deadline_entry = entry
        heapq.heappush(self._heap, entry)
        if when < self._timer_at:
            self._schedule(when)

    def disarm(self, session: Timed) -> None:
        entry = session.deadline_entry
        if entry is not None:
            entry[2] = None
            session.deadline_entry = None

    def _schedule(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_at(when, self._fire)
        self._timer_at = when

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        heap = self._heap
        now = asyncio.get_running_loop().time() + self.SLACK
        while heap and heap[0][0] <= now:
            session = heapq.heappop(heap)[2]
            if session is not None:
                session.deadline_entry = None
                session.deadline_reached()
        while heap and heap[0][2] is None:
            heapq.heappop(heap)  # disarmed: no timer for them
        if heap:
            self._schedule(heap[0][0])
