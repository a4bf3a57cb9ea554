"""The per-user event log: what ``/client/events`` streams to a user.

One Redis stream per user, in the user's slot, laid out as a bot's update log
(:mod:`shared.store.log`) and appended by the same script, ``append_update.lua``:
entry fields ``d`` (msgpack of the event's data), ``t`` (its type), ``c`` (the
chat's internal id, 0 for none), ``p`` (the previous entry's id) and ``n`` (its
ordinal). An event's id is its entry's id as an integer (``ms * 1024 + seq``),
strictly increasing per user, so a reader resumes after the last id it got; the
``p`` field makes a trimmed gap exact to detect. The log is bounded as bots' logs
are (settings ``retention_seconds`` and ``log_maxlen``).

Events of a chat are written through the chat's outbox (:mod:`shared.store.outbox`,
:class:`~shared.store.outbox.Pending` with ``user``), in the same step that stores
the message, so a crash loses none; events that belong to one user only (a
callback answer, a web app's answer) are appended here directly. The append
publishes ``"<id> <prev>"`` on the user's channel; an ephemeral event (a chat
action: never stored) is published there as ``!<type> <json>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared import keys
from shared.codecs import json_dumps, pack
from shared.ids import new_epoch, stream_id_from_update_id, update_id_from_stream_id
from shared.settings import Settings
from shared.store.client import Client
from shared.store.fields import as_text
from shared.store.log import StoredUpdate, raw_entries
from shared.store.scripts import Script
from shared.store.wire import Wire

__all__ = [
    "EPHEMERAL_MARK",
    "UserLog",
    "UserLogState",
    "user_append_args",
    "user_append_keys",
]

EPHEMERAL_MARK = "!"  # a channel message starting with it is an ephemeral event


def user_append_keys(
    user_id: int, idempotency_key: str | None, *, outbox: bool = False
) -> list[str]:
    """The keys of one ``append_update.lua`` call on a user's log."""
    found = [
        keys.user_log(user_id),
        keys.user_epoch(user_id),
        keys.user_last_event(user_id),
        keys.user_appended(user_id),
        keys.user_log_idempotency(user_id, idempotency_key or "-"),
    ]
    if outbox:
        found.append(keys.user_outbox_held(user_id))
    return found


def user_append_args(
    settings: Settings,
    user_id: int,
    kind: str,
    chat_id: int,
    payload: bytes,
    *,
    outbox: tuple[int, int] | None = None,
) -> list[Any]:
    """The arguments of that call (``outbox``: the chat's id and the entry's seq)."""
    args: list[Any] = [
        new_epoch(),
        settings.retention_seconds * 1000,
        settings.log_maxlen,
        payload,
        kind,
        chat_id,
        keys.user_events_channel(user_id),
        "0",
        0,
    ]
    if outbox is not None:
        args += [outbox[0], outbox[1]]
    return args


@dataclass(frozen=True, slots=True)
class UserLogState:
    """Where a user's log stands: its newest id handed out (0: none yet) and its
    oldest retained entry (None: it holds none)."""

    head: int
    oldest: int | None


class UserLog:
    """Appends to and reads of the users' event logs; ``store.userlog``."""

    def __init__(
        self, *, redis: Client, wire: Wire, scripts: dict[str, Script], settings: Settings
    ) -> None:
        self._redis = redis
        self._wire = wire
        self._append = scripts["append_update"]
        self._settings = settings

    async def append(self, user_id: int, *, kind: str, chat_id: int, data: dict[str, Any]) -> int:
        """Append one event for one user; returns its id."""
        reply = await self._append(
            keys=user_append_keys(user_id, None),
            args=user_append_args(self._settings, user_id, kind, chat_id, pack(data)),
        )
        return update_id_from_stream_id(as_text(reply[0]))

    async def state(self, user_id: int) -> UserLogState:
        last, first = await self._wire.calls(
            [
                ("GET", keys.user_last_event(user_id)),
                ("XRANGE", keys.user_log(user_id), "-", "+", "COUNT", 1),
            ],
            retry=True,
        )
        return UserLogState(
            head=0 if last is None else update_id_from_stream_id(as_text(last)),
            oldest=update_id_from_stream_id(as_text(first[0][0])) if first else None,
        )

    async def read_after(self, user_id: int, after: int, count: int) -> list[StoredUpdate]:
        """Up to ``count`` events with an id greater than ``after``, oldest first."""
        start = "-" if after <= 0 else "(" + stream_id_from_update_id(after)
        reply = await self._wire.call(
            "XRANGE", keys.user_log(user_id), start, "+", "COUNT", count, retry=True
        )
        return raw_entries(reply)

    async def publish_ephemeral(self, user_ids: list[int], kind: str, data: dict[str, Any]) -> None:
        """Send an event that is not stored to the users' live streams (at most once)."""
        text = f"{EPHEMERAL_MARK}{kind} {json_dumps(data).decode()}"
        commands = [
            (self._redis.publish_command, keys.user_events_channel(uid), text) for uid in user_ids
        ]
        if commands:
            await self._wire.calls(commands)
