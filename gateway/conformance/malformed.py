"""§3 and §15: frames that do not decode, are not objects, name an unknown op or carry
a field of the wrong type or range end the connection with 4500, a ``close`` frame
first; a text frame that is not UTF-8 ends it with 1007 and no frame."""

from __future__ import annotations

from typing import Any

import msgpack

from gateway.conformance.wire import Conn, Failure
from gateway.conformance.world import Check, Context

__all__ = ["CHECKS"]

# (what, message): frames no state accepts, sent before identify and after ready
_UNDECODABLE: list[tuple[str, str | bytes]] = [
    ("text that is not JSON", '{"op": "heartbeat"'),
    ("a JSON array", '[{"op": "heartbeat"}]'),
    ("a JSON string", '"heartbeat"'),
    ("an object without op", '{"ack": "1"}'),
    ("an op that is not a string", '{"op": 5}'),
    ("an unknown op", '{"op": "subscribe"}'),
    ("binary that is not msgpack", b"\xc1\x00"),
    ("a msgpack array", msgpack.packb(["heartbeat"])),
    ("a heartbeat with ack of the wrong type", '{"op": "heartbeat", "ack": "one"}'),
]

_BAD_IDENTIFY: list[tuple[str, dict[str, Any]]] = [
    ("shard [2, 2]", {"shard": [2, 2]}),
    ("shard [0, 0]", {"shard": [0, 0]}),
    ("shard [0, 1025]", {"shard": [0, 1025]}),
    ("shard '0/1'", {"shard": "0/1"}),
    ("shard [0, 1, 2]", {"shard": [0, 1, 2]}),
    ("consumer ''", {"consumer": ""}),
    ("consumer 'a b'", {"consumer": "a b"}),
    ("consumer of 65 characters", {"consumer": "c" * 65}),
    ("encoding 'xml'", {"encoding": "xml"}),
    ("on_gap 'later'", {"on_gap": "later"}),
    ("allowed_updates 'message'", {"allowed_updates": "message"}),
    ("allowed_updates ['nope']", {"allowed_updates": ["nope"]}),
    ("cursor 'abc'", {"cursor": "abc"}),
    ("cursor without epoch", {"cursor": {"update_id": "1"}}),
    ("cursor with an empty epoch", {"cursor": {"epoch": "", "update_id": "1"}}),
    ("cursor with an epoch of 65 characters", {"cursor": {"epoch": "e" * 65, "update_id": "1"}}),
    ("cursor.update_id '-1'", {"cursor": {"epoch": "e", "update_id": "-1"}}),
    ("cursor.update_id '1e5'", {"cursor": {"epoch": "e", "update_id": "1e5"}}),
    ("cursor.update_id of 17 digits", {"cursor": {"epoch": "e", "update_id": "1" * 17}}),
    ("cursor.update_id 2**53", {"cursor": {"epoch": "e", "update_id": 2**53}}),
    ("cursor.update_id 1.5", {"cursor": {"epoch": "e", "update_id": 1.5}}),
]

_BAD_ACTIVE: list[tuple[str, dict[str, Any]]] = [
    ("ack without update_id", {"op": "ack"}),
    ("ack 'abc'", {"op": "ack", "update_id": "abc"}),
    ("ack -1", {"op": "ack", "update_id": -1}),
    ("ack true", {"op": "ack", "update_id": True}),
    ("ack 2**53", {"op": "ack", "update_id": 2**53}),
    ("request with an empty id", {"op": "request", "id": "", "method": "getMe"}),
    ("request with an id of 65 characters", {"op": "request", "id": "r" * 65, "method": "getMe"}),
    ("request with method 5", {"op": "request", "id": "r", "method": 5}),
    ("request with params [1]", {"op": "request", "id": "r", "method": "getMe", "params": [1]}),
    (
        "request with an idempotency_key with a space",
        {"op": "request", "id": "r", "method": "getMe", "idempotency_key": "a b"},
    ),
]


async def _closes_4500(conn: Conn, what: str) -> None:
    try:
        frame = await conn.expect_close(4500)
    except Failure as exc:
        raise Failure(f"{what}: {exc}") from None
    if frame["resumable"] is not False or not frame["reason"]:
        raise Failure(f"{what}: the 4500 close must be terminal and say why: {frame}")


async def undecodable(ctx: Context) -> None:
    for what, data in _UNDECODABLE:
        conn = await ctx.connect()
        await conn.send_raw(data)
        await _closes_4500(conn, f"{what} before identify")
    for what, data in (_UNDECODABLE[0], _UNDECODABLE[5], _UNDECODABLE[6]):
        conn, _ = await ctx.ready(consumer=ctx.consumer("bad"))
        await conn.send_raw(data)
        await _closes_4500(conn, f"{what} after ready")


async def close_frame_encoding(ctx: Context) -> None:
    conn, _ = await ctx.ready(consumer=ctx.consumer("badmp"), encoding="msgpack")
    await conn.send({"op": "subscribe"})
    await _closes_4500(conn, "an unknown op on a msgpack connection")
    if not conn.binary[-1]:
        raise Failure("the close frame of a msgpack connection must be msgpack (binary)")


async def bad_identify(ctx: Context) -> None:
    for what, fields in _BAD_IDENTIFY:
        conn = await ctx.connect(paced=False)  # refused before the token counts
        await conn.send({"op": "identify", **fields})
        await _closes_4500(conn, f"identify with {what}")


async def bad_fields(ctx: Context) -> None:
    for what, frame in _BAD_ACTIVE:
        conn, _ = await ctx.ready(consumer=ctx.consumer("badf"))
        await conn.send(frame)
        await _closes_4500(conn, f"{what} after ready")


async def not_utf8(ctx: Context) -> None:
    conn = await ctx.connect()
    await conn.send_raw(b'{"op": "heartbeat", "x": "\xff\xfe"}', text=True)
    try:
        await conn.expect_ws_close(1007)
    except Failure as exc:
        raise Failure(f"a text frame that is not UTF-8: {exc}") from None


CHECKS = (
    Check(
        "malformed.undecodable",
        "§3",
        "undecodable frames, non-objects, unknown ops close 4500",
        undecodable,
    ),
    Check(
        "malformed.close_encoding",
        "§3",
        "the close frame comes in the chosen encoding",
        close_frame_encoding,
    ),
    Check(
        "malformed.identify",
        "§5.1",
        "identify fields of the wrong type or range close 4500",
        bad_identify,
    ),
    Check(
        "malformed.fields", "§5", "ack and request fields of the wrong type close 4500", bad_fields
    ),
    Check("malformed.not_utf8", "§15", "a text frame that is not UTF-8 closes 1007", not_utf8),
)
