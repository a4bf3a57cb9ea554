"""Per-process copies of bot, user and chat records, dropped when anyone changes them.

Every REST call authenticates a token and resolves a chat, and most render the bot
and the user in their answer: without a cache each of those is a Redis round trip.
A process keeps the records it read and forgets one as soon as any process changes
it: every write of a cached record publishes ``"<kind> <id>"`` on
:func:`shared.keys.entities_channel` in the same round trip as the write, and every
process with a cache listens on its wake-up connection (:class:`Wakeups`).

Correctness rests on three rules:

* the cache is used only while the invalidation channel is subscribed; when the
  subscription drops (or is re-made) everything is forgotten;
* a record read from Redis is kept only if no invalidation arrived while it was
  being read (a global generation counter), so a reply that raced a write is
  never kept;
* the writing process forgets the record before its call returns, so its next
  request already reads the new one; other processes forget it when the pub/sub
  message arrives (well under a millisecond on a healthy connection).

Entries also expire after :data:`TTL_S`, and the cache is bounded.
"""

from __future__ import annotations

import time
from typing import Any, Final

__all__ = ["ABSENT", "RecordCache"]

TTL_S = 30.0
MAX_ENTRIES = 200_000


class _Absent:
    """A record known not to exist (kept for chats: callers probe ids that are not chats)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()

Key = tuple[str, int]


class RecordCache:
    def __init__(self, *, ttl_s: float = TTL_S, max_entries: int = MAX_ENTRIES) -> None:
        self._entries: dict[Key, tuple[float, Any]] = {}
        self._ttl = ttl_s
        self._max = max_entries
        self.generation = 0
        self.live = False
        self.hits = 0
        self.misses = 0

    def get(self, key: Key) -> Any:
        """The cached value (or :data:`ABSENT`), ``None`` when not cached."""
        if not self.live:
            return None
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            self.misses += 1
            return None
        self.hits += 1
        return entry[1]

    def put(self, key: Key, value: Any, generation: int) -> None:
        """Keep ``value`` read since ``generation`` unless something changed meanwhile."""
        if not self.live or generation != self.generation:
            return
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self._ttl, value)

    def forget(self, kind: str, ident: int) -> None:
        self.generation += 1
        self._entries.pop((kind, ident), None)

    def on_message(self, data: bytes) -> None:
        """``"<kind> <id>"`` from the invalidation channel (anything else: forget all)."""
        kind, _, ident = data.decode(errors="replace").partition(" ")
        try:
            self.forget(kind, int(ident))
        except ValueError:
            self.clear()

    def on_state(self, live: bool) -> None:
        """The invalidation channel was (re)subscribed, or the subscription was lost."""
        self.clear()
        self.live = live

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
