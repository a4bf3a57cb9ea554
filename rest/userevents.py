"""What the users of a chat hear: the events of their logs (``/client/events``).

Every member of a chat who is a user (in a private chat: its user) gets the
chat's events in their own log (:mod:`shared.store.userlog`), rendered as the
client API renders objects (real ids, a chat by its internal id). Events of a
message are queued in the chat's outbox in the same step that stores, edits or
deletes it (:class:`shared.store.outbox.Pending` with ``user``), and those of
the other changes of a chat (reactions, pins, polls, members) in the same step
that makes the change (:mod:`rest.changes`), so that each user's log holds a
chat's events in the order they happened and none is lost in a crash. An event
for one user only (a callback answer) is appended to that user's log.

Event types and their data are in docs/api.md (User events).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from rest.view import View, reaction_summary
from shared.codecs import pack
from shared.models import ChatRecord, MessageRecord, member_key, parse_member
from shared.store import Store, StoreError
from shared.store.outbox import Pending

__all__ = ["UserEvents"]

log = logging.getLogger("botgw.userevents")


class UserEvents:
    """Renders a chat's events for its users and queues them; ``messenger.events``."""

    def __init__(self, store: Store, view: Callable[[], View]) -> None:
        self.store = store
        self.db = store.entities
        self._view = view

    async def members(self, chat: ChatRecord) -> list[int]:
        """The users of a chat, who hear its events."""
        if chat.type == "private":
            return [chat.user_id]
        return sorted(
            parse_member(m)[1] for m in await self.db.members(chat.id) if m.startswith("u")
        )

    def pending(
        self, users: Iterable[int], kind: str, chat: ChatRecord, data: dict[str, Any]
    ) -> list[Pending]:
        """One event of ``chat``, the same ``data`` for each of ``users``."""
        payload = pack(data)
        return [Pending(uid, kind, chat.id, payload, user=True) for uid in users]

    async def message_pending(
        self,
        chat: ChatRecord,
        message: MessageRecord,
        kind: str,
        *,
        users: list[int] | None = None,
    ) -> list[Pending]:
        """A ``message`` or ``edited_message`` event for every user of the chat (a new
        message may still carry the outbox's id placeholder), each with the message's
        reactions as that user sees them."""
        if users is None:
            users = await self.members(chat)
        if not users:
            return []
        rendered = await self._view().message(chat, message)
        raw = {}
        if kind == "edited_message":
            raw = (await self.db.reactions_of(chat.id, [message.id])).get(message.id, {})
        found = []
        for uid in users:
            shown = dict(rendered, reactions=reaction_summary(raw, member_key("u", uid)))
            data = {"chat_id": chat.id, "message": shown}
            found.append(Pending(uid, kind, chat.id, pack(data), user=True))
        return found

    async def drain(self, chat: ChatRecord, written: Any, pending: list[Pending]) -> None:
        """Append what a write queued; if Redis fails now the entry stays in the
        outbox, and a later write or the replay appends it."""
        try:
            await self.store.outbox.drain(chat.id, written, pending)
        except StoreError as exc:
            log.warning("chat %d: outbox drain deferred (%s)", chat.id, exc)

    async def to_user(self, user_id: int, kind: str, chat_id: int, data: dict[str, Any]) -> None:
        """An event for one user only (a callback answer, a web app's answer)."""
        await self.store.userlog.append(user_id, kind=kind, chat_id=chat_id, data=data)

    async def ephemeral(self, chat: ChatRecord, kind: str, data: dict[str, Any]) -> None:
        """An event shown live and never stored (a chat action)."""
        await self.store.userlog.publish_ephemeral(await self.members(chat), kind, data)
