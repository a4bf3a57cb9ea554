"""What a session needs of the worker that hosts it (``gateway.worker.Worker``),
generic in the session type so that neither module imports the other."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from gateway.frames import CloseCode
from gateway.hub import Hub, Subscriber
from gateway.protocol import Limits
from gateway.timers import Deadlines
from shared.ids import Cursor
from shared.store import Store

__all__ = ["Host"]

S = TypeVar("S", bound=Subscriber)


class Host(Protocol[S]):
    """What a session needs of its worker (``gateway.worker.Worker``): limits, store,
    hub, timers; the open, the delivering and the committing sessions, which a session
    joins and leaves itself; the limits per bot, acks, rechecks and Bot API calls."""

    @property
    def limits(self) -> Limits: ...
    @property
    def store(self) -> Store: ...
    @property
    def hub(self) -> Hub[S]: ...
    @property
    def deadlines(self) -> Deadlines: ...
    @property
    def reader_ttl(self) -> float: ...
    @property
    def reader_lease(self) -> str: ...
    @property
    def all_sessions(self) -> set[S]: ...
    @property
    def sessions(self) -> set[S]: ...
    @property
    def commits_pending(self) -> set[S]: ...
    def admit(self, session: S) -> tuple[CloseCode, str, int] | None: ...
    def release(self, session: S) -> None: ...
    def note_ack(self, session: S, update_id: int) -> None: ...
    def newest_ack(
        self, bot_id: int, consumer_key: str, committed: Cursor | None
    ) -> Cursor | None: ...
    def request_recheck(self, bot_id: int | None = None) -> None: ...
    async def call_bot_api(
        self, token: str | None, method: str, params: dict[str, Any], *, idempotency_key: str | None
    ) -> tuple[bool, Any]: ...
