"""The websockets server connection, lighter while idle: the shim of the gateway.

Thousands of idle connections per worker make every empty container count; the
shim replaces two deques per connection by lists, and keeps beside the socket
what the worker needs of it before and outside its session. It reaches into
attributes websockets does not document, hence the pinned range of websockets.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable
from typing import Any, ClassVar, Protocol

from websockets.asyncio.server import ServerConnection as WebSocket
from websockets.frames import Frame, Opcode
from websockets.protocol import Event

from shared.models import BotRecord

__all__ = ["Admission", "Connection", "FrameBudget", "FrameQueue"]


class Admission(Protocol):
    """What a connection needs of its worker: to stop counting it as unidentified."""

    def release_unidentified(self, connection: WebSocket) -> None: ...


class FrameBudget(Protocol):
    """What a connection needs of its session: to charge it a ping or a pong."""

    def control_frame(self) -> None: ...


class FrameQueue:
    """The part of a deque that websockets' queue of received frames uses, on a list.

    An empty deque takes 760 bytes, an empty list 56, and an idle connection's
    queue is empty. Popped slots are dropped in bulk, so a burst of frames costs
    amortized O(1) per frame as with a deque.

    A ``recv()`` cancelled halfway through a fragmented message puts the frames
    it took back: with ``extend`` into the emptied queue (``SimpleQueue.reset``,
    websockets 14.1 to 17.0), with ``extendleft`` at its front
    (``SimpleQueue.put_back``, later 17.x). The pinned range of websockets in
    pyproject.toml is the one these methods are checked against.
    """

    __slots__ = ("_head", "_items")

    def __init__(self) -> None:
        self._items: list[Any] = []
        self._head = 0  # index of the first frame in _items

    def __len__(self) -> int:
        return len(self._items) - self._head

    def append(self, item: Any) -> None:
        self._items.append(item)

    def extend(self, items: Iterable[Any]) -> None:
        """Like ``deque.extend``: the items go to the back, in order."""
        self._items.extend(items)

    def popleft(self) -> Any:
        items = self._items
        head = self._head
        if head >= len(items):
            raise IndexError("pop from an empty queue")
        item = items[head]
        head += 1
        if head == len(items):
            items.clear()  # frees the list's storage too
            head = 0
        elif head >= 32 and 2 * head >= len(items):
            del items[:head]
            head = 0
        else:
            items[head - 1] = None  # the frame is not kept until the next compaction
        self._head = head
        return item

    def extendleft(self, items: Iterable[Any]) -> None:
        """Like ``deque.extendleft``: each item goes to the front in turn."""
        front = list(items)
        front.reverse()
        self._items[: self._head] = front
        self._head = 0


class Connection(WebSocket):
    """websockets' server connection, lighter while idle, and what the worker keeps
    per socket outside its session.

    Two deques per connection become lists (760 bytes each when empty against
    56), on every one of thousands of idle connections: the drain waiters (one
    per send blocked on a full buffer; only appended, removed and iterated) and
    the queue of received frames (:class:`FrameQueue`). Where a websockets
    version lays these out differently they are left alone.

    Besides: the bot and token the upgrade authenticated, the address under
    which the socket counts as unidentified, and its session, which is charged
    for every ping and pong the client sends (websockets answers pings by
    itself, so they never reach the session's reads).
    """

    #: the worker of this process; set on the class by ``Worker.connection_class``
    worker: ClassVar[Admission | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.drain_waiters, collections.deque):
            self.drain_waiters = []  # type: ignore[assignment]
        self.upgrade: tuple[BotRecord, str] | None = None
        self.peer: str | None = None  # counted as unidentified under this address
        self.session: FrameBudget | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        frames = getattr(self.recv_messages, "frames", None)
        if isinstance(getattr(frames, "queue", None), collections.deque):
            frames.queue = FrameQueue()  # type: ignore[union-attr]

    def process_event(self, event: Event) -> None:
        super().process_event(event)
        session = self.session
        if (
            session is not None
            and isinstance(event, Frame)
            and (event.opcode is Opcode.PING or event.opcode is Opcode.PONG)
        ):
            session.control_frame()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        # no cycle with the session outlives the socket: full collections are rare
        self.session = None
        self.upgrade = None
        if self.peer is not None and self.worker is not None:
            self.worker.release_unidentified(self)
