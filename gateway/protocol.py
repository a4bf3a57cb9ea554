"""Sans-I/O core of the gateway protocol, version 1 (``docs/protocol.md``).

One :class:`ServerConnection` per WebSocket connection. It is a state machine:
client frames go in through :meth:`~ServerConnection.receive_frame`, the side
effects the I/O layer has to perform come out of
:meth:`~ServerConnection.events_received`, and the control frames to send come
out of :meth:`~ServerConnection.data_to_send`. Time is passed in by the caller
(``now``, seconds on any monotonic clock); nothing here reads a clock, touches a
socket or talks to Redis, so every behaviour is testable by feeding frames.

The frames' fields are checked and built in :mod:`gateway.frames`. Update batches
bypass ``data_to_send``: the fan-out encodes them once for every connection and
reports their high-water mark with :meth:`~ServerConnection.updates_sent`.

Bad client input never raises out of this module: it becomes a last ``close``
frame followed by a :class:`CloseConnection` event. Misuse of the API by the
I/O layer is a bug and fails an ``assert``.

States::

    AWAIT_IDENTIFY --identify--> IDENTIFYING --accept()--> ACTIVE --start_drain()--> DRAINING
          |                           |                      |                          |
          +---------------------------+----------------------+--------------------------+
                                 any close --> CLOSED
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, TypeAlias

from gateway import frames
from gateway.frames import (
    CloseCode,
    Encoding,
    GapPolicy,
    GapReason,
    Identify,
    RequestReceived,
    Violation,
)
from gateway.resume import after_gap
from shared.ids import Cursor

# Identify and RequestReceived are events too: the client frames, checked.
__all__ = [
    "PROTOCOL_VERSION",
    "AckReceived",
    "CloseConnection",
    "Event",
    "Identify",
    "Limits",
    "RequestReceived",
    "ServerConnection",
    "State",
]

PROTOCOL_VERSION = 1

# A flooding client gets its connection closed; it may come back after a second
# with a full bucket (the identify rate limit stops a reconnect loop).
_RATE_LIMITED_RETRY_MS = 1000
_BACKEND_RETRY_MS = 1000

# How a connection closes when each of its deadlines passes: code, reason, retry_after_ms.
_Expiry: TypeAlias = tuple[CloseCode, str, int | None]
_SILENT: _Expiry = (
    CloseCode.HEARTBEAT_TIMEOUT,
    "no frame from the client for two heartbeat intervals",
    None,
)
_NO_IDENTIFY: _Expiry = (CloseCode.IDENTIFY_TIMEOUT, "no identify in time", None)
_IDENTIFY_STALLED: _Expiry = (
    CloseCode.BACKEND_UNAVAILABLE,
    "identify could not be completed in time",
    _BACKEND_RETRY_MS,
)
_DRAINED: _Expiry = (CloseCode.SERVICE_RESTART, "service restart", None)


class State(enum.Enum):
    """Lifecycle of one gateway connection."""

    AWAIT_IDENTIFY = enum.auto()  # hello sent, waiting for identify/resume
    IDENTIFYING = enum.auto()  # identify received, waiting for accept() or reject()
    ACTIVE = enum.auto()  # ready sent, delivering updates
    DRAINING = enum.auto()  # reconnect sent, delivering until the deadline
    CLOSED = enum.auto()  # close frame queued, nothing more is sent


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection limits, advertised to the client in ``hello``."""

    heartbeat_interval_s: float = 30.0
    identify_timeout_s: float = 10.0
    max_frame_bytes: int = 65536
    max_frames_per_s: float = 50.0
    frame_burst: int = 100
    max_pending_requests: int = 32
    max_connections_per_bot: int = 100
    identify_per_minute: int = 120
    retention_s: int = 86400

    def __post_init__(self) -> None:
        if self.heartbeat_interval_s <= 0 or self.identify_timeout_s <= 0:
            raise ValueError("heartbeat_interval_s and identify_timeout_s must be positive")
        if self.max_frame_bytes < 1 or self.max_frames_per_s <= 0 or self.frame_burst < 1:
            raise ValueError("frame limits must be positive")
        if self.max_pending_requests < 0:
            raise ValueError("max_pending_requests must not be negative")


# --- events -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AckReceived:
    """A new cumulative ack, strictly above the previous one and not above delivered.

    The I/O layer need not commit each one: :meth:`ServerConnection.take_commit`
    coalesces them.
    """

    update_id: int


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Send what ``data_to_send()`` still holds, then close the WebSocket with ``code``."""

    code: int
    reason: str


Event: TypeAlias = Identify | AckReceived | RequestReceived | CloseConnection


# --- the connection -----------------------------------------------------------------


class ServerConnection:
    """Protocol state of one gateway WebSocket connection, server side.

    The constructor queues ``hello``. Feed every received message to
    :meth:`receive_frame` (``str`` for text, ``bytes`` for binary), call
    :meth:`tick` no later than :meth:`next_deadline`, and after each call drain
    :meth:`events_received` and :meth:`data_to_send`. After a
    :class:`CloseConnection` event, send the remaining frames and close the socket.
    """

    # One of these lives per connection; slots keep idle connections small.
    __slots__ = (
        "_acked",
        "_authenticated",
        "_bucket_time",
        "_close_code",
        "_committed",
        "_connection_id",
        "_consumer",
        "_delivered",
        "_drain_deadline",
        "_encoding",
        "_epoch",
        "_events",
        "_frames",
        "_identified_at",
        "_internal_error",
        "_last_activity",
        "_limits",
        "_on_gap",
        "_opened_at",
        "_pending",
        "_shard",
        "_state",
        "_tokens",
    )

    def __init__(
        self, *, connection_id: str, limits: Limits, authenticated: bool, now: float
    ) -> None:
        self._connection_id = connection_id
        self._limits = limits
        self._authenticated = authenticated
        self._state = State.AWAIT_IDENTIFY
        self._encoding: Encoding = "json"
        self._frames: list[str | bytes] = []
        self._events: list[Event] = []

        self._opened_at = now
        self._identified_at = now
        self._last_activity = now
        self._drain_deadline = now
        self._tokens = float(limits.frame_burst)
        self._bucket_time = now

        self._on_gap: GapPolicy = "fail"
        self._consumer = "default"
        self._shard = (0, 1)
        self._epoch: str | None = None
        self._acked: int | None = None
        self._delivered: int | None = None
        self._committed: int | None = None
        self._pending: set[str] = set()
        self._close_code: int | None = None
        self._internal_error: Exception | None = None

        self._send(self._hello())

    # -- read-only state --

    @property
    def connection_id(self) -> str:
        """The id announced in ``hello``."""
        return self._connection_id

    @property
    def state(self) -> State:
        """Current :class:`State`."""
        return self._state

    @property
    def encoding(self) -> Encoding:
        """Encoding of server frames: ``"json"`` (text) until identify chose msgpack."""
        return self._encoding

    @property
    def on_gap(self) -> GapPolicy:
        """The client's gap policy from identify (``"fail"`` before identify)."""
        return self._on_gap

    @property
    def epoch(self) -> str | None:
        """Epoch of the log being delivered (from accept, or a later epoch gap)."""
        return self._epoch

    @property
    def acked(self) -> int | None:
        """Last cumulative ack (the start cursor right after accept); None before."""
        return self._acked

    @property
    def delivered(self) -> int | None:
        """Highest update id sent on this connection (the start cursor right after accept)."""
        return self._delivered

    @property
    def pending_requests(self) -> int:
        """Requests received and not yet answered with send_result()."""
        return len(self._pending)

    @property
    def close_code(self) -> int | None:
        """The close code once CLOSED."""
        return self._close_code

    @property
    def internal_error(self) -> Exception | None:
        """The exception behind a 4000 close caused by a defect of this module, for logging."""
        return self._internal_error

    # -- I/O layer interface --

    def receive_frame(self, data: str | bytes, now: float) -> None:
        """Process one client message: ``str`` is a JSON text frame, ``bytes`` msgpack.

        Never raises for any input; a protocol violation closes the connection.
        """
        if self._state is State.CLOSED:
            return
        try:
            self._receive(data, now)
        except Violation as exc:
            self._close(exc.code, exc.reason, exc.retry_after_ms)
        except AssertionError:
            raise
        except Exception as exc:
            # A defect here must not crash the worker's reader task: fail this
            # connection the way websockets fails on a parser error, and keep the
            # exception for the I/O layer to log.
            self._internal_error = exc
            self._close(CloseCode.INTERNAL_ERROR, "internal error")

    def receive_control(self, now: float) -> None:
        """Count a WebSocket ping or pong from the client toward the frame budget.

        The WebSocket library answers pings by itself, but a flood of them costs
        the server like a flood of frames: past the budget the connection closes
        4003 exactly as for frames. They are no sign of life (``heartbeat`` is).
        """
        if self._state is State.CLOSED:
            return
        if not self._take_token(now):
            flood = self._flood()
            self._close(flood.code, flood.reason, flood.retry_after_ms)

    def events_received(self) -> list[Event]:
        """Events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str | bytes]:
        """Control frames to send, in order: ``str`` as text, ``bytes`` as binary messages."""
        queued, self._frames = self._frames, []
        return queued

    def tick(self, now: float) -> None:
        """Apply the identify timeout, zombie detection and the drain deadline."""
        due = [deadline for deadline in self._deadlines() if now >= deadline[0]]
        if due:
            _, (code, reason, retry_after_ms) = min(due, key=lambda deadline: deadline[0])
            self._close(code, reason, retry_after_ms)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` must next be called; None once CLOSED."""
        deadlines = self._deadlines()
        return min(deadline[0] for deadline in deadlines) if deadlines else None

    def accept(
        self,
        *,
        bot_id: int,
        bot_username: str,
        epoch: str,
        cursor: Cursor,
        head: int,
        resumed: bool,
    ) -> None:
        """Identify succeeded: queue ``ready`` and start delivering after ``cursor``.

        ``cursor`` is the last consumed position (delivery starts after it) in the
        log's current ``epoch``; ``head`` is the newest update id in the log. A
        no-op if the connection closed meanwhile.
        """
        if self._state is State.CLOSED:
            return
        assert self._state is State.IDENTIFYING, f"accept() in state {self._state.name}"
        assert cursor.epoch == epoch, "accept() cursor must be in the current epoch"
        self._state = State.ACTIVE
        self._epoch = epoch
        self._acked = self._delivered = self._committed = cursor.update_id
        self._send(
            frames.ready_frame(
                bot_id=bot_id,
                bot_username=bot_username,
                consumer=self._consumer,
                shard=self._shard,
                cursor=cursor,
                head=head,
                resumed=resumed,
            )
        )

    def reject(self, code: CloseCode, reason: str, *, retry_after_ms: int | None = None) -> None:
        """Close from any state for a reason found outside the core (auth, limits, backend)."""
        self._close(code, reason, retry_after_ms)

    def close(self, code: CloseCode, reason: str, *, retry_after_ms: int | None = None) -> None:
        """Close the connection (e.g. server shutdown). A no-op once CLOSED."""
        self._close(code, reason, retry_after_ms)

    def updates_sent(self, last_update_id: int) -> None:
        """An ``updates`` frame ending with ``last_update_id`` was handed to the socket."""
        if self._state is State.CLOSED:
            return
        assert self._state in (State.ACTIVE, State.DRAINING), "updates before ready"
        assert self._delivered is not None and last_update_id > self._delivered, (
            f"updates out of order: {last_update_id} after {self._delivered}"
        )
        self._delivered = last_update_id

    def signal_gap(
        self, *, reason: GapReason, oldest: int | None, newest: int | None, epoch: str
    ) -> GapPolicy:
        """Tell the client its position is not in the log; return its ``on_gap`` policy.

        ``oldest``/``newest`` are the retained range of the log in ``epoch`` (None
        if it is empty). With ``"fail"`` the connection closes 4504; otherwise
        delivery goes on where :func:`gateway.resume.after_gap` says. Called before
        accept() (the resolved start goes into accept's cursor) or while delivering
        (the slow reader fell out of retention, the log was replaced, or a lost
        tail was met: nothing to skip then, delivery goes on after the lost ones).
        """
        policy = self._on_gap
        if self._state is State.CLOSED:
            return policy
        assert self._state in (State.IDENTIFYING, State.ACTIVE, State.DRAINING)
        self._send(
            frames.gap_frame(
                reason=reason, oldest=oldest, newest=newest, epoch=epoch, action=policy
            )
        )
        if policy == "fail":
            self._close(CloseCode.CURSOR_GAP, f"cursor is not in the retained log ({reason})")
            return policy
        if self._state is State.IDENTIFYING or reason == "tail_lost":
            return policy
        assert self._delivered is not None
        position = after_gap(policy, oldest=oldest, newest=newest)
        assert position is not None  # the policy is not "fail"
        if epoch != self._epoch:
            # Ids of the old epoch mean nothing in the new log: restart the marks
            # there. Nothing is committed until the client acks in the new epoch.
            self._epoch = epoch
            self._acked = self._delivered = self._committed = position
        else:
            # Same log, the reader skips ahead. Acks stay the client's own: updates
            # sent but not yet acked must still be able to repeat after a crash.
            self._delivered = max(self._delivered, position)
        return policy

    def take_over(self) -> None:
        """A newer connection for the same bot/consumer/shard exists: close 4502."""
        self._close(CloseCode.TAKEN_OVER, "a newer connection took over this consumer and shard")

    def start_drain(self, *, deadline_ms: int, now: float) -> None:
        """The worker is shutting down: send ``reconnect``; close 1012 at the deadline.

        A connection that is not delivering yet has nothing to finish and closes
        1012 at once. A second call keeps the first deadline.
        """
        assert deadline_ms >= 0
        if self._state in (State.AWAIT_IDENTIFY, State.IDENTIFYING):
            self._close(CloseCode.SERVICE_RESTART, "service restart")
            return
        if self._state is not State.ACTIVE:
            return
        self._send({"op": "reconnect", "reason": "draining", "deadline_ms": deadline_ms})
        self._state = State.DRAINING
        self._drain_deadline = now + deadline_ms / 1000

    def send_result(
        self, request_id: str, *, ok: bool, result: Any = None, error: dict[str, Any] | None = None
    ) -> None:
        """Answer a :class:`RequestReceived` (``error`` is the REST error envelope)."""
        if self._state is State.CLOSED:
            return
        assert request_id in self._pending, f"no pending request {request_id!r}"
        self._pending.remove(request_id)
        assert ok or error is not None, "send_result(ok=False) needs an error"
        self._send(frames.result_frame(request_id, ok=ok, result=result, error=error))

    def take_commit(self) -> int | None:
        """The highest ack not yet handed out for committing, or None if nothing is new.

        Call it periodically and once more after the close, and commit the value
        as ``Cursor(epoch, value)`` for the identified consumer and shard.
        """
        if self._acked is None or self._committed is None or self._acked <= self._committed:
            return None
        self._committed = self._acked
        return self._acked

    # -- internals --

    def _hello(self) -> dict[str, Any]:
        limits = self._limits
        return {
            "op": "hello",
            "v": PROTOCOL_VERSION,
            "connection_id": self._connection_id,
            "heartbeat_interval_ms": round(limits.heartbeat_interval_s * 1000),
            "retention_s": limits.retention_s,
            "auth_required": not self._authenticated,
            "limits": {
                "identify_timeout_ms": round(limits.identify_timeout_s * 1000),
                "max_frame_bytes": limits.max_frame_bytes,
                "max_frames_per_s": limits.max_frames_per_s,
                "frame_burst": limits.frame_burst,
                "max_pending_requests": limits.max_pending_requests,
                "max_connections_per_bot": limits.max_connections_per_bot,
                "identify_per_minute": limits.identify_per_minute,
            },
        }

    def _send(self, frame: dict[str, Any]) -> None:
        assert self._state is not State.CLOSED, "frame queued after close"
        self._frames.append(frames.encode_frame(frame, self._encoding))

    def _close(self, code: CloseCode, reason: str, retry_after_ms: int | None = None) -> None:
        if self._state is State.CLOSED:
            return
        assert retry_after_ms is None or retry_after_ms >= 0
        reason = frames.truncate_reason(reason)
        self._send(frames.close_frame(code, reason, retry_after_ms))
        self._state = State.CLOSED
        self._close_code = int(code)
        self._pending.clear()
        self._events.append(CloseConnection(int(code), reason))

    def _deadlines(self) -> list[tuple[float, _Expiry]]:
        state = self._state
        if state is State.CLOSED:
            return []
        limits = self._limits
        deadlines = [(self._last_activity + 2 * limits.heartbeat_interval_s, _SILENT)]
        if state is State.AWAIT_IDENTIFY:
            deadlines.append((self._opened_at + limits.identify_timeout_s, _NO_IDENTIFY))
        elif state is State.IDENTIFYING:
            # The I/O layer is looking up the token and the log; if that hangs the
            # client must not wait forever on a silent connection.
            deadlines.append((self._identified_at + limits.identify_timeout_s, _IDENTIFY_STALLED))
        elif state is State.DRAINING:
            deadlines.append((self._drain_deadline, _DRAINED))
        return deadlines

    def _take_token(self, now: float) -> bool:
        elapsed = now - self._bucket_time
        if elapsed > 0:  # a clock that steps back refills nothing rather than draining
            self._tokens = min(
                float(self._limits.frame_burst),
                self._tokens + elapsed * self._limits.max_frames_per_s,
            )
            self._bucket_time = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def _flood(self) -> Violation:
        reason = f"more than {self._limits.max_frames_per_s:g} frames/s"
        return Violation(CloseCode.RATE_LIMITED, reason, _RATE_LIMITED_RETRY_MS)

    def _receive(self, data: str | bytes, now: float) -> None:
        frames.check_size(data, self._limits.max_frame_bytes)
        if not self._take_token(now):
            raise self._flood()
        self._last_activity = max(self._last_activity, now)

        frame = frames.decode_frame(data)
        op = frame.get("op")
        if op == "heartbeat":
            self._on_heartbeat(frame)
        elif op == "ack":
            self._require_ready("ack")
            self._on_ack(frames.parse_id(frame.get("update_id"), "ack.update_id"))
        elif op in ("identify", "resume"):
            self._on_identify(frame, now)
        elif op == "request":
            self._require_ready("request")
            self._on_request(frame)
        elif isinstance(op, str):
            raise frames.bad_frame(f"unknown op {frames.show_value(op)}")
        else:
            raise frames.bad_frame("frame has no string field 'op'")

    def _require_ready(self, op: str) -> None:
        if self._state not in (State.ACTIVE, State.DRAINING):
            raise frames.bad_frame(f"{op} before ready")

    def _on_heartbeat(self, frame: dict[Any, Any]) -> None:
        ack = frame.get("ack")
        if ack is not None:
            update_id = frames.parse_id(ack, "heartbeat.ack")
            # Before ready there is nothing to ack; a client repeating its last ack
            # on an early heartbeat is harmless.
            if self._state in (State.ACTIVE, State.DRAINING):
                self._on_ack(update_id)
        self._send({"op": "heartbeat_ack", "acked": frames.id_str(self._acked)})

    def _on_ack(self, update_id: int) -> None:
        assert self._acked is not None and self._delivered is not None
        if update_id <= self._acked:
            # Acks may be batched and overtake each other; cumulative means the
            # higher one already covers this one.
            return
        if update_id > self._delivered:
            raise Violation(
                CloseCode.INVALID_ACK,
                f"ack {update_id} is beyond the last delivered update {self._delivered}",
            )
        self._acked = update_id
        self._events.append(AckReceived(update_id))

    def _on_identify(self, frame: dict[Any, Any], now: float) -> None:
        if self._state is not State.AWAIT_IDENTIFY:
            raise frames.bad_frame("identify was already received on this connection")
        identify = frames.parse_identify(frame, authenticated=self._authenticated)
        self._state = State.IDENTIFYING
        self._identified_at = now
        self._encoding = identify.encoding
        self._on_gap = identify.on_gap
        self._consumer = identify.consumer
        self._shard = identify.shard
        self._events.append(identify)

    def _on_request(self, frame: dict[Any, Any]) -> None:
        request = frames.parse_request(frame)
        request_id = request.request_id
        if request_id in self._pending:
            # Two answers with one id would be ambiguous for the client.
            raise frames.bad_frame(f"request.id {frames.show_value(request_id)} is already pending")
        if len(self._pending) >= self._limits.max_pending_requests:
            self._send(frames.too_many_requests(request_id, self._limits.max_pending_requests))
            return
        self._pending.add(request_id)
        self._events.append(request)
