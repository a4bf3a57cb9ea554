"""The wire format of the gateway protocol, version 1 (``docs/protocol.md``).

Close codes and whether a client should resume after one; client frames decoded
and checked field by field (bad input raises :class:`Violation`, which the core
turns into a close); server frames built; and update batches encoded once and
split into ``updates`` frames. What is accepted or sent when is the core's
(:mod:`gateway.protocol`); nothing here keeps state.

Update batches bypass the core's ``data_to_send``: the fan-out encodes one batch
once with :func:`encode_updates_frame` (through :func:`frames_for`), sends the
same bytes to every connection that wants it and reports the high-water mark
with ``ServerConnection.updates_sent``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import msgpack

from shared.codecs import CodecError, json_dumps, json_loads, pack, unpack
from shared.ids import MAX_ID, Cursor
from shared.updates import UPDATE_TYPES as ALL_UPDATE_TYPES
from shared.updates import is_consumer_name

__all__ = [
    "FRAME_MAX_BYTES",
    "FRAME_MAX_UPDATES",
    "MAX_SHARDS",
    "UPDATE_TYPES",
    "CloseCode",
    "Encoding",
    "GapPolicy",
    "GapReason",
    "Identify",
    "RequestReceived",
    "Violation",
    "encode_updates_frame",
    "frames_for",
    "is_resumable",
    "is_terminal",
]

#: Update types a client may name in ``identify.allowed_updates``.
UPDATE_TYPES: frozenset[str] = frozenset(ALL_UPDATE_TYPES)

#: Upper bound of ``n`` in ``shard: [i, n]``.
MAX_SHARDS = 1024

Encoding: TypeAlias = Literal["json", "msgpack"]
GapPolicy: TypeAlias = Literal["fail", "oldest", "newest"]
GapReason: TypeAlias = Literal["retention", "epoch", "tail_lost"]

_ENCODINGS: dict[str, Encoding] = {"json": "json", "msgpack": "msgpack"}
_GAP_POLICIES: dict[str, GapPolicy] = {"fail": "fail", "oldest": "oldest", "newest": "newest"}

# Ids below 2**53 have at most 16 digits; the range is checked after parsing.
_DECIMAL_RE = re.compile(r"[0-9]{1,16}")
_MAX_TOKEN_CHARS = 512
_MAX_EPOCH_CHARS = 64
_MAX_REQUEST_ID_CHARS = 64
_MAX_METHOD_CHARS = 64
_MAX_IDEMPOTENCY_KEY_CHARS = 255
_MAX_PARAMS_DEPTH = 32
# RFC 6455 leaves 123 bytes for the reason in a close frame.
_MAX_REASON_BYTES = 123


class CloseCode(enum.IntEnum):
    """WebSocket close codes used by the gateway.

    4000-4499: the client should reconnect (with backoff) and resume from its
    cursor. 4500-4999: terminal, reconnecting with the same parameters would fail
    again. Every close is preceded by a ``close`` frame that repeats the code and
    says whether it is resumable.

    ====  =====================  =========  ===============================================
    code  name                   resumable  meaning
    ====  =====================  =========  ===============================================
    1000  NORMAL                 no         the server ended the session deliberately
    1001  GOING_AWAY             yes        the server is shutting down without a drain
    1012  SERVICE_RESTART        yes        drain deadline reached (after ``reconnect``)
    4000  INTERNAL_ERROR         yes        a server-side problem
    4001  HEARTBEAT_TIMEOUT      yes        no frame for two heartbeat intervals
    4002  IDENTIFY_TIMEOUT       yes        no ``identify`` within the identify timeout
    4003  RATE_LIMITED           yes        client frame rate exceeded (``retry_after_ms``)
    4004  TOO_MANY_CONNECTIONS   yes        connections per bot exceeded (``retry_after_ms``)
    4005  IDENTIFY_RATE_LIMITED  yes        identifies per minute exceeded (``retry_after_ms``)
    4006  BACKEND_UNAVAILABLE    yes        the update log could not be reached
    4500  BAD_FRAME              no         undecodable frame, unknown op, bad field
    4501  AUTH_FAILED            no         missing, malformed, unknown or revoked token
    4502  TAKEN_OVER             no         a newer connection for the same bot/consumer/shard
    4503  FRAME_TOO_LARGE        no         a client frame exceeded ``max_frame_bytes``
    4504  CURSOR_GAP             no         the cursor fell out of the log and ``on_gap`` is fail
    4505  BOT_INACTIVE           no         the bot was revoked
    4506  INVALID_ACK            no         an ack beyond the last delivered update
    ====  =====================  =========  ===============================================
    """

    NORMAL = 1000
    GOING_AWAY = 1001
    SERVICE_RESTART = 1012
    INTERNAL_ERROR = 4000
    HEARTBEAT_TIMEOUT = 4001
    IDENTIFY_TIMEOUT = 4002
    RATE_LIMITED = 4003
    TOO_MANY_CONNECTIONS = 4004
    IDENTIFY_RATE_LIMITED = 4005
    BACKEND_UNAVAILABLE = 4006
    BAD_FRAME = 4500
    AUTH_FAILED = 4501
    TAKEN_OVER = 4502
    FRAME_TOO_LARGE = 4503
    CURSOR_GAP = 4504
    BOT_INACTIVE = 4505
    INVALID_ACK = 4506


# Standard codes after which a resume is the right reaction (1006 is never sent,
# a client observes it when the connection drops without a close frame).
_RESUMABLE_STANDARD_CODES = frozenset({1001, 1006, 1011, 1012, 1013})


def is_resumable(code: int) -> bool:
    """Whether a client should reconnect and resume after a close with ``code``."""
    if 4000 <= code < 4500:
        return True
    if is_terminal(code):
        return False
    return code in _RESUMABLE_STANDARD_CODES


def is_terminal(code: int) -> bool:
    """Whether ``code`` is in the terminal range 4500-4999: reconnecting with the same
    parameters would fail again (a standard code such as 1000 may be worth a new try)."""
    return 4500 <= code < 5000


# --- client frames ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identify:
    """The client identified: authenticate, look up the log, then accept() or reject().

    ``token`` is None when the upgrade request was already authenticated.
    ``cursor`` None means the consumer's committed cursor. ``allowed_updates``
    None means every update type.
    """

    token: str | None
    cursor: Cursor | None
    consumer: str
    shard: tuple[int, int]
    encoding: Encoding
    allowed_updates: frozenset[str] | None
    on_gap: GapPolicy


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A Bot API call over the socket; answer with ``ServerConnection.send_result``."""

    request_id: str
    method: str
    params: dict[str, Any]
    idempotency_key: str | None = None  # the call's Idempotency-Key, if it has one


class Violation(Exception):
    """Client input that ends the connection, with the close code and reason it ends it
    with; raised by the parsers here and by the core, caught by its ``receive_frame``."""

    def __init__(self, code: CloseCode, reason: str, retry_after_ms: int | None = None) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.retry_after_ms = retry_after_ms


def bad_frame(reason: str) -> Violation:
    """The violation of a frame that is malformed or not allowed now (4500)."""
    return Violation(CloseCode.BAD_FRAME, reason)


def show_value(value: object) -> str:
    """A short ASCII rendering of client-supplied data for a close reason."""
    text = ascii(value)
    return text if len(text) <= 40 else text[:37] + "..."


def truncate_reason(reason: str) -> str:
    """``reason`` cut to what a WebSocket close frame holds, at a character boundary."""
    data = reason.encode()
    if len(data) <= _MAX_REASON_BYTES:
        return reason
    return data[:_MAX_REASON_BYTES].decode(errors="ignore")


def _utf8_len(text: str) -> int:
    if text.isascii():
        return len(text)
    # surrogatepass: a lone surrogate must be measured, not raise; decoding rejects it.
    return len(text.encode("utf-8", "surrogatepass"))


def id_str(value: int | None) -> str | None:
    """An update id as the protocol sends it: a decimal string (None stays None)."""
    return None if value is None else str(value)


def parse_id(value: object, field: str) -> int:
    """An update id as int or decimal string, 0 <= id < 2**53."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and _DECIMAL_RE.fullmatch(value):
        number = int(value)
    else:
        raise bad_frame(f"{field} must be an integer or a decimal string, got {show_value(value)}")
    if not 0 <= number < MAX_ID:
        raise bad_frame(f"{field} must be in [0, 2**53), got {show_value(value)}")
    return number


def _parse_cursor(value: object) -> Cursor | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_frame("identify.cursor must be an object {epoch, update_id} or null")
    epoch = value.get("epoch")
    if not isinstance(epoch, str) or not 1 <= len(epoch) <= _MAX_EPOCH_CHARS:
        raise bad_frame(
            f"identify.cursor.epoch must be a string of 1-{_MAX_EPOCH_CHARS} characters"
        )
    return Cursor(epoch=epoch, update_id=parse_id(value.get("update_id"), "cursor.update_id"))


def _parse_shard(value: object) -> tuple[int, int]:
    if value is None:
        return (0, 1)
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(part, int) and not isinstance(part, bool) for part in value)
        and 0 <= value[0] < value[1] <= MAX_SHARDS
    ):
        return (value[0], value[1])
    raise bad_frame(f"identify.shard must be [i, n] with 0 <= i < n <= {MAX_SHARDS}")


def _parse_allowed_updates(value: object) -> frozenset[str] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise bad_frame("identify.allowed_updates must be a list of update types")
    for item in value:
        if not isinstance(item, str) or item not in UPDATE_TYPES:
            raise bad_frame(
                f"identify.allowed_updates has an unknown update type {show_value(item)}"
            )
    # An empty list means "all", as in Telegram's getUpdates.
    return frozenset(value) or None


def _is_json_value(value: object, depth: int = 0) -> bool:
    """Whether msgpack- or JSON-decoded ``value`` is plain JSON data (no bytes, ext types)."""
    if depth > _MAX_PARAMS_DEPTH:
        return False
    if value is None or isinstance(value, bool | int | float | str):
        return True
    if isinstance(value, list):
        return all(_is_json_value(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(
            isinstance(key, str) and _is_json_value(item, depth + 1) for key, item in value.items()
        )
    return False


def encode_frame(frame: dict[str, Any], encoding: Encoding) -> str | bytes:
    """A server frame: ``str`` for JSON (a text message), ``bytes`` for msgpack."""
    if encoding == "json":
        return json_dumps(frame).decode()
    return pack(frame)


def parse_identify(frame: dict[Any, Any], *, authenticated: bool) -> Identify:
    """The fields of an ``identify`` (or ``resume``) frame, checked.

    ``authenticated``: the upgrade request carried a valid token, so the frame
    needs none.
    """
    token: str | None = None
    if not authenticated:
        raw_token = frame.get("token")
        if raw_token is None:
            raise Violation(
                CloseCode.AUTH_FAILED, "identify.token is required (no token on the upgrade)"
            )
        if not isinstance(raw_token, str):
            raise bad_frame("identify.token must be a string")
        if not 1 <= len(raw_token) <= _MAX_TOKEN_CHARS:
            raise Violation(CloseCode.AUTH_FAILED, "identify.token is malformed")
        token = raw_token
    cursor = _parse_cursor(frame.get("cursor"))
    consumer = frame.get("consumer", "default")
    if not is_consumer_name(consumer):
        raise bad_frame("identify.consumer must be 1-64 characters of [A-Za-z0-9_.-]")
    shard = _parse_shard(frame.get("shard"))
    raw_encoding = frame.get("encoding", "json")
    encoding = _ENCODINGS.get(raw_encoding) if isinstance(raw_encoding, str) else None
    if encoding is None:
        raise bad_frame('identify.encoding must be "json" or "msgpack"')
    allowed_updates = _parse_allowed_updates(frame.get("allowed_updates"))
    raw_on_gap = frame.get("on_gap", "fail")
    on_gap = _GAP_POLICIES.get(raw_on_gap) if isinstance(raw_on_gap, str) else None
    if on_gap is None:
        raise bad_frame('identify.on_gap must be "fail", "oldest" or "newest"')
    return Identify(
        token=token,
        cursor=cursor,
        consumer=consumer,
        shard=shard,
        encoding=encoding,
        allowed_updates=allowed_updates,
        on_gap=on_gap,
    )


def parse_request(frame: dict[Any, Any]) -> RequestReceived:
    """The fields of a ``request`` frame, checked (not yet against the pending ones)."""
    request_id = frame.get("id")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= _MAX_REQUEST_ID_CHARS:
        raise bad_frame(f"request.id must be a string of 1-{_MAX_REQUEST_ID_CHARS} characters")
    method = frame.get("method")
    if not isinstance(method, str) or not 1 <= len(method) <= _MAX_METHOD_CHARS:
        raise bad_frame(f"request.method must be a string of 1-{_MAX_METHOD_CHARS} characters")
    params = frame.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict) or not _is_json_value(params):
        raise bad_frame("request.params must be a JSON object")
    key = frame.get("idempotency_key")
    if key is not None and not (
        isinstance(key, str)
        and 1 <= len(key) <= _MAX_IDEMPOTENCY_KEY_CHARS
        and all("!" <= ch <= "~" for ch in key)
    ):
        raise bad_frame(
            f"request.idempotency_key must be 1-{_MAX_IDEMPOTENCY_KEY_CHARS} visible "
            "ASCII characters"
        )
    return RequestReceived(request_id, method, params, key)


def check_size(data: str | bytes, max_frame_bytes: int) -> None:
    """A client message must not exceed ``max_frame_bytes`` (text counts its UTF-8)."""
    size = _utf8_len(data) if isinstance(data, str) else len(data)
    if size > max_frame_bytes:
        raise Violation(
            CloseCode.FRAME_TOO_LARGE,
            f"frame of {size} bytes exceeds max_frame_bytes {max_frame_bytes}",
        )


def decode_frame(data: str | bytes) -> dict[Any, Any]:
    """A client message as an object: a text message is JSON, a binary one msgpack."""
    try:
        frame = json_loads(data) if isinstance(data, str) else unpack(data)
    except CodecError as exc:
        raise bad_frame(
            f"invalid {'JSON' if isinstance(data, str) else 'msgpack'}: {exc}"
        ) from None
    if not isinstance(frame, dict):
        raise bad_frame(f"frame must be an object, got {type(frame).__name__}")
    return frame


def ready_frame(
    *,
    bot_id: int,
    bot_username: str,
    consumer: str,
    shard: tuple[int, int],
    cursor: Cursor,
    head: int,
    resumed: bool,
) -> dict[str, Any]:
    """``ready``: delivery starts after ``cursor``, in the log's epoch (the cursor's)."""
    return {
        "op": "ready",
        "bot": {"id": str(bot_id), "username": bot_username},
        "consumer": consumer,
        "shard": list(shard),
        "epoch": cursor.epoch,
        "cursor": {"epoch": cursor.epoch, "update_id": str(cursor.update_id)},
        "head": str(head),
        "resumed": resumed,
    }


def result_frame(
    request_id: str, *, ok: bool, result: Any = None, error: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``result``: the answer to a ``request``, its result or the REST error envelope
    without its ``ok`` (docs/protocol.md §6.5): the frame's ``ok`` says it."""
    if ok:
        return {"op": "result", "id": request_id, "ok": True, "result": result}
    envelope = {key: value for key, value in (error or {}).items() if key != "ok"}
    return {"op": "result", "id": request_id, "ok": False, "error": envelope}


def too_many_requests(request_id: str, max_pending_requests: int) -> dict[str, Any]:
    """The ``result`` of a request over the limit of pending ones: an error, not a close."""
    description = f"more than {max_pending_requests} requests pending on this connection"
    return result_frame(
        request_id,
        ok=False,
        error={"error_code": 429, "code": "TOO_MANY_REQUESTS", "description": description},
    )


def gap_frame(
    *, reason: GapReason, oldest: int | None, newest: int | None, epoch: str, action: GapPolicy
) -> dict[str, Any]:
    """``gap``: the position is not in the log; what is, and what happens next."""
    return {
        "op": "gap",
        "reason": reason,
        "oldest": id_str(oldest),
        "newest": id_str(newest),
        "epoch": epoch,
        "action": action,
    }


def close_frame(code: CloseCode, reason: str, retry_after_ms: int | None) -> dict[str, Any]:
    """``close``: the code, whether to resume, and when (``reason`` fits a close frame)."""
    return {
        "op": "close",
        "code": int(code),
        "reason": reason,
        "resumable": is_resumable(code),
        "retry_after_ms": retry_after_ms,
    }


# --- update batches -----------------------------------------------------------------

_JSON_UPDATES_HEAD = b'{"op":"updates","updates":['
_JSON_UPDATES_TAIL = b"]}"
_MSGPACK_UPDATES_HEAD = b"".join(
    [bytes(msgpack.Packer().pack_map_header(2)), pack("op"), pack("updates"), pack("updates")]
)
_msgpack_packer = msgpack.Packer()  # for array headers: returns them as bytes and resets


def encode_updates_frame(encoded_updates: Sequence[bytes], encoding: Encoding) -> bytes:
    """Build ``{"op": "updates", "updates": [...]}`` from updates encoded one by one.

    Each element is one update already encoded in ``encoding`` (the JSON bytes of
    an object, or the msgpack bytes of a map), so the fan-out encodes an update
    once and splices the same bytes into the frame for every connection. The
    frame is bytes in both encodings: send a JSON frame as a text message and a
    msgpack frame as a binary one.
    """
    if encoding == "json":
        return b"".join((_JSON_UPDATES_HEAD, b",".join(encoded_updates), _JSON_UPDATES_TAIL))
    array_header: bytes = _msgpack_packer.pack_array_header(len(encoded_updates))
    return b"".join([_MSGPACK_UPDATES_HEAD, array_header, *encoded_updates])


FRAME_MAX_UPDATES = 100
FRAME_MAX_BYTES = 256 * 1024


def frames_for(items: list[bytes], encoding: Encoding) -> list[bytes]:
    """``updates`` frames of at most FRAME_MAX_UPDATES / FRAME_MAX_BYTES each."""
    frames: list[bytes] = []
    start = 0
    size = 0
    for i, item in enumerate(items):
        if i > start and (i - start >= FRAME_MAX_UPDATES or size + len(item) > FRAME_MAX_BYTES):
            frames.append(encode_updates_frame(items[start:i], encoding))
            start, size = i, 0
        size += len(item) + 1
    if start < len(items):
        frames.append(encode_updates_frame(items[start:] if start else items, encoding))
    return frames
