"""Tests of the sans-I/O gateway protocol core (gateway/protocol.py).

Frames go in, frames and events come out, time is a number: no sockets, no sleeps.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.frames import MAX_SHARDS, UPDATE_TYPES, CloseCode, encode_updates_frame, is_resumable
from gateway.protocol import (
    AckReceived,
    CloseConnection,
    Event,
    Identify,
    Limits,
    RequestReceived,
    ServerConnection,
    State,
)
from shared.codecs import json_dumps, json_loads, pack, unpack
from shared.ids import MAX_ID, Cursor

# Every timeout below is a multiple of this one interval.
HB = 30.0
LIMITS = Limits(heartbeat_interval_s=HB, identify_timeout_s=HB / 3)
T0 = 1_000.0
TOKEN = "bot_123:" + "s" * 43
EPOCH = "e1f2"
SERVER_OPS = {"hello", "ready", "updates", "heartbeat_ack", "result", "gap", "reconnect", "close"}


# --- helpers ------------------------------------------------------------------------


def decode(frame: str | bytes) -> dict[str, Any]:
    """Text frames are JSON, binary frames msgpack; every server frame is an object."""
    value = json_loads(frame) if isinstance(frame, str) else unpack(frame)
    assert isinstance(value, dict)
    return value


def state(conn: ServerConnection) -> State:
    """The state, read through a call so that mypy does not narrow it across steps."""
    return conn.state


def sent(conn: ServerConnection) -> list[dict[str, Any]]:
    return [decode(frame) for frame in conn.data_to_send()]


def send(
    conn: ServerConnection, frame: Any, now: float = T0, *, binary: bool = False
) -> list[Event]:
    conn.receive_frame(pack(frame) if binary else json_dumps(frame).decode(), now)
    return conn.events_received()


def new_conn(
    *, authenticated: bool = True, limits: Limits = LIMITS, now: float = T0
) -> ServerConnection:
    conn = ServerConnection(
        connection_id="conn-1", limits=limits, authenticated=authenticated, now=now
    )
    assert [frame["op"] for frame in sent(conn)] == ["hello"]
    return conn


def identified(*, limits: Limits = LIMITS, **fields: Any) -> ServerConnection:
    conn = new_conn(limits=limits)
    events = send(conn, {"op": "identify", **fields})
    assert len(events) == 1 and isinstance(events[0], Identify)
    assert state(conn) is State.IDENTIFYING
    return conn


def active(
    *, cursor: int = 100, head: int = 110, limits: Limits = LIMITS, **fields: Any
) -> ServerConnection:
    conn = identified(limits=limits, **fields)
    conn.accept(
        bot_id=123,
        bot_username="demo_bot",
        epoch=EPOCH,
        cursor=Cursor(EPOCH, cursor),
        head=head,
        resumed=False,
    )
    assert [frame["op"] for frame in sent(conn)] == ["ready"]
    return conn


def assert_closed(
    conn: ServerConnection, code: CloseCode, events: list[Event] | None = None
) -> dict[str, Any]:
    """The last frame is ``close`` with ``code`` and the last event closes with it too."""
    if events is None:
        events = conn.events_received()
    frames = sent(conn)
    assert frames, "no close frame"
    close = frames[-1]
    assert close["op"] == "close" and close["code"] == code, close
    assert close["resumable"] is is_resumable(code)
    assert events and events[-1] == CloseConnection(int(code), close["reason"])
    assert state(conn) is State.CLOSED and conn.close_code == code
    assert conn.data_to_send() == [] and conn.events_received() == []
    return close


# --- the annotated happy path -------------------------------------------------------


def test_happy_path() -> None:
    # The constructor queues hello; the upgrade carried no token, so the client
    # must put one into identify.
    conn = ServerConnection(connection_id="c-42", limits=LIMITS, authenticated=False, now=T0)
    [hello] = sent(conn)
    assert hello["op"] == "hello" and hello["v"] == 1 and hello["connection_id"] == "c-42"
    assert hello["heartbeat_interval_ms"] == 30_000 and hello["auth_required"] is True
    assert state(conn) is State.AWAIT_IDENTIFY

    # identify with a cursor written the native way (id as a string).
    events = send(
        conn,
        {
            "op": "identify",
            "token": TOKEN,
            "cursor": {"epoch": EPOCH, "update_id": "1000"},
            "consumer": "workers",
            "shard": [1, 4],
            "allowed_updates": ["message", "callback_query"],
            "on_gap": "oldest",
        },
        T0 + 1,
    )
    assert events == [
        Identify(
            token=TOKEN,
            cursor=Cursor(EPOCH, 1000),
            consumer="workers",
            shard=(1, 4),
            encoding="json",
            allowed_updates=frozenset({"message", "callback_query"}),
            on_gap="oldest",
        )
    ]
    assert state(conn) is State.IDENTIFYING and sent(conn) == []

    # The I/O layer checked the token and found the cursor in the log: ready.
    conn.accept(
        bot_id=77,
        bot_username="demo_bot",
        epoch=EPOCH,
        cursor=Cursor(EPOCH, 1000),
        head=1003,
        resumed=True,
    )
    assert sent(conn) == [
        {
            "op": "ready",
            "bot": {"id": "77", "username": "demo_bot"},
            "consumer": "workers",
            "shard": [1, 4],
            "epoch": EPOCH,
            "cursor": {"epoch": EPOCH, "update_id": "1000"},
            "head": "1003",
            "resumed": True,
        }
    ]
    assert state(conn) is State.ACTIVE
    assert conn.acked == conn.delivered == 1000 and conn.epoch == EPOCH
    assert conn.take_commit() is None  # the start cursor is not a new commit

    # The fan-out sends a batch (outside data_to_send) and reports the high-water mark.
    frame = encode_updates_frame([json_dumps({"update_id": str(i)}) for i in (1001, 1002)], "json")
    assert json_loads(frame)["updates"] == [{"update_id": "1001"}, {"update_id": "1002"}]
    conn.updates_sent(1002)
    assert conn.delivered == 1002

    # Cumulative acks; the stale one that overtook the newer one is ignored.
    assert send(conn, {"op": "ack", "update_id": "1001"}, T0 + 2) == [AckReceived(1001)]
    assert send(conn, {"op": "ack", "update_id": 1002}, T0 + 2) == [AckReceived(1002)]
    assert send(conn, {"op": "ack", "update_id": 1001}, T0 + 2) == []
    # Two acks, one commit: the I/O layer commits only the highest.
    assert conn.take_commit() == 1002
    assert conn.take_commit() is None

    # Heartbeat, with an ack riding on it (nothing new here).
    assert send(conn, {"op": "heartbeat", "ack": "1002"}, T0 + 20) == []
    assert sent(conn) == [{"op": "heartbeat_ack", "acked": "1002"}]

    # Deploy: drain with a 5 s deadline; delivery and acks go on meanwhile.
    conn.start_drain(deadline_ms=5_000, now=T0 + 21)
    assert sent(conn) == [{"op": "reconnect", "reason": "draining", "deadline_ms": 5_000}]
    assert state(conn) is State.DRAINING and conn.next_deadline() == T0 + 26
    conn.updates_sent(1003)
    assert send(conn, {"op": "ack", "update_id": 1003}, T0 + 22) == [AckReceived(1003)]
    conn.tick(T0 + 25.9)
    assert state(conn) is State.DRAINING

    # The deadline passes: 1012, resumable; the last ack is still handed out.
    conn.tick(T0 + 26)
    close = assert_closed(conn, CloseCode.SERVICE_RESTART)
    assert close == {
        "op": "close",
        "code": 1012,
        "reason": "service restart",
        "resumable": True,
        "retry_after_ms": None,
    }
    assert conn.take_commit() == 1003
    assert conn.next_deadline() is None


# --- hello and identify -------------------------------------------------------------


def test_hello_advertises_limits() -> None:
    limits = Limits(max_frame_bytes=1000, max_frames_per_s=5.0, retention_s=3600)
    conn = ServerConnection(connection_id="x", limits=limits, authenticated=True, now=T0)
    [frame] = conn.data_to_send()
    assert isinstance(frame, str)  # hello is always JSON
    hello = decode(frame)
    assert hello["auth_required"] is False and hello["retention_s"] == 3600
    assert hello["limits"] == {
        "identify_timeout_ms": 10_000,
        "max_frame_bytes": 1000,
        "max_frames_per_s": 5.0,
        "frame_burst": 100,
        "max_pending_requests": 32,
        "max_connections_per_bot": 100,
        "identify_per_minute": 120,
    }


def test_identify_defaults() -> None:
    conn = new_conn()
    assert send(conn, {"op": "identify"}) == [
        Identify(
            token=None,
            cursor=None,
            consumer="default",
            shard=(0, 1),
            encoding="json",
            allowed_updates=None,
            on_gap="fail",
        )
    ]


@pytest.mark.parametrize("op", ["identify", "resume"])
def test_resume_is_an_alias_and_null_means_default(op: str) -> None:
    conn = new_conn()
    [event] = send(
        conn,
        {"op": op, "cursor": None, "shard": None, "allowed_updates": [], "extra": {"x": 1}},
    )
    assert isinstance(event, Identify)
    assert event.cursor is None and event.shard == (0, 1) and event.allowed_updates is None


def test_identify_token_ignored_when_upgrade_was_authenticated() -> None:
    conn = new_conn(authenticated=True)
    [event] = send(conn, {"op": "identify", "token": 12345})
    assert isinstance(event, Identify) and event.token is None


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, CloseCode.AUTH_FAILED),
        ("", CloseCode.AUTH_FAILED),
        ("t" * 513, CloseCode.AUTH_FAILED),
        (42, CloseCode.BAD_FRAME),
    ],
)
def test_identify_token_required_without_upgrade_auth(token: Any, code: CloseCode) -> None:
    conn = new_conn(authenticated=False)
    frame: dict[str, Any] = {"op": "identify"}
    if token is not None:
        frame["token"] = token
    close = assert_closed(conn, code, send(conn, frame))
    assert "token" in close["reason"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"cursor": "123"}, "cursor"),
        ({"cursor": {"update_id": 1}}, "cursor.epoch"),
        ({"cursor": {"epoch": "", "update_id": 1}}, "cursor.epoch"),
        ({"cursor": {"epoch": "e" * 65, "update_id": 1}}, "cursor.epoch"),
        ({"cursor": {"epoch": EPOCH}}, "cursor.update_id"),
        ({"cursor": {"epoch": EPOCH, "update_id": -1}}, "cursor.update_id"),
        ({"cursor": {"epoch": EPOCH, "update_id": MAX_ID}}, "cursor.update_id"),
        ({"cursor": {"epoch": EPOCH, "update_id": str(MAX_ID)}}, "cursor.update_id"),
        ({"cursor": {"epoch": EPOCH, "update_id": 1.5}}, "cursor.update_id"),
        ({"cursor": {"epoch": EPOCH, "update_id": True}}, "cursor.update_id"),
        ({"cursor": {"epoch": EPOCH, "update_id": "+1"}}, "cursor.update_id"),
        ({"cursor": {"epoch": EPOCH, "update_id": " 1"}}, "cursor.update_id"),
        ({"cursor": {"epoch": EPOCH, "update_id": "1e3"}}, "cursor.update_id"),
        ({"cursor": {"epoch": EPOCH, "update_id": ""}}, "cursor.update_id"),
        ({"consumer": ""}, "consumer"),
        ({"consumer": "c" * 65}, "consumer"),
        ({"consumer": "a b"}, "consumer"),
        ({"consumer": "caf\u00e9"}, "consumer"),
        ({"consumer": 7}, "consumer"),
        ({"shard": [1, 1]}, "shard"),
        ({"shard": [-1, 2]}, "shard"),
        ({"shard": [0, MAX_SHARDS + 1]}, "shard"),
        ({"shard": [0, 2, 3]}, "shard"),
        ({"shard": [False, True]}, "shard"),
        ({"shard": "0/1"}, "shard"),
        ({"encoding": "cbor"}, "encoding"),
        ({"encoding": ["json"]}, "encoding"),
        ({"allowed_updates": "message"}, "allowed_updates"),
        ({"allowed_updates": ["message", "inline_query"]}, "allowed_updates"),
        ({"allowed_updates": [1]}, "allowed_updates"),
        ({"on_gap": "skip"}, "on_gap"),
        ({"on_gap": {}}, "on_gap"),
    ],
)
def test_identify_bad_fields(fields: dict[str, Any], field: str) -> None:
    conn = new_conn()
    close = assert_closed(conn, CloseCode.BAD_FRAME, send(conn, {"op": "identify", **fields}))
    assert field in close["reason"]


def test_identify_accepts_edge_values() -> None:
    conn = new_conn()
    [event] = send(
        conn,
        {
            "op": "identify",
            "cursor": {"epoch": "e" * 64, "update_id": str(MAX_ID - 1)},
            "consumer": "A-z_0.9" + "x" * 57,
            "shard": [MAX_SHARDS - 1, MAX_SHARDS],
            "allowed_updates": sorted(UPDATE_TYPES),
            "on_gap": "newest",
        },
    )
    assert isinstance(event, Identify)
    assert event.cursor == Cursor("e" * 64, MAX_ID - 1)
    assert event.shard == (MAX_SHARDS - 1, MAX_SHARDS)
    assert event.allowed_updates == UPDATE_TYPES


@pytest.mark.parametrize("ready", [False, True])
def test_second_identify_is_a_bad_frame(ready: bool) -> None:
    conn = active() if ready else identified()
    close = assert_closed(conn, CloseCode.BAD_FRAME, send(conn, {"op": "resume"}))
    assert "already" in close["reason"]


def test_msgpack_encoding() -> None:
    conn = new_conn()
    # A client may send binary (msgpack) frames at any time.
    [event] = send(conn, {"op": "identify", "encoding": "msgpack"}, binary=True)
    assert isinstance(event, Identify) and event.encoding == "msgpack"
    assert conn.encoding == "msgpack"
    conn.accept(
        bot_id=1, bot_username="a_bot", epoch=EPOCH, cursor=Cursor(EPOCH, 5), head=5, resumed=False
    )
    [ready] = conn.data_to_send()
    assert isinstance(ready, bytes) and decode(ready)["cursor"] == {
        "epoch": EPOCH,
        "update_id": "5",
    }
    # ... and text (JSON) frames too; answers stay msgpack.
    send(conn, {"op": "heartbeat"})
    [ack] = conn.data_to_send()
    assert isinstance(ack, bytes) and decode(ack) == {"op": "heartbeat_ack", "acked": "5"}
    send(conn, {"op": "ack", "update_id": 9}, binary=True)
    close = conn.data_to_send()[-1]
    assert isinstance(close, bytes) and decode(close)["code"] == CloseCode.INVALID_ACK


# --- bad frames, size and rate ------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("{", "invalid JSON"),
        ("\udcff", "invalid JSON"),
        (b"\xc1", "invalid msgpack"),
        (b"\x92\x01", "invalid msgpack"),
        ("[1,2]", "must be an object"),
        ('"op"', "must be an object"),
        (pack([{"op": "heartbeat"}]), "must be an object"),
        ("{}", "'op'"),
        ('{"op":1}', "'op'"),
        ('{"op":"dance"}', "unknown op 'dance'"),
        ('{"op":"HEARTBEAT"}', "unknown op"),
        ('{"op":"hello"}', "unknown op"),
    ],
)
def test_bad_frame(data: str | bytes, reason: str) -> None:
    conn = new_conn()
    conn.receive_frame(data, T0)
    close = assert_closed(conn, CloseCode.BAD_FRAME)
    assert reason in close["reason"]
    assert close["resumable"] is False and close["retry_after_ms"] is None


def test_close_reason_fits_a_websocket_close_frame() -> None:
    conn = new_conn()
    conn.receive_frame('{"op":"' + "\u00e9" * 1000 + '"}', T0)
    close = assert_closed(conn, CloseCode.BAD_FRAME)
    assert len(close["reason"].encode()) <= 123 and close["reason"].startswith("unknown op")


def test_long_server_reason_is_cut_at_a_character_boundary() -> None:
    conn = identified(on_gap="newest")
    assert conn.connection_id == "conn-1" and conn.on_gap == "newest"
    conn.reject(CloseCode.BOT_INACTIVE, "\u2603" * 100)
    close = assert_closed(conn, CloseCode.BOT_INACTIVE)
    assert close["reason"] == "\u2603" * 41  # 123 bytes of 3-byte characters


@pytest.mark.parametrize("binary", [False, True])
def test_frame_too_large(binary: bool) -> None:
    limits = Limits(max_frame_bytes=64)
    conn = new_conn(limits=limits)
    padding = "x" * (64 - len(json_dumps({"op": "heartbeat", "p": ""})))
    send(conn, {"op": "heartbeat", "p": padding}, binary=binary)  # exactly at the limit
    assert state(conn) is State.AWAIT_IDENTIFY
    close = assert_closed(
        conn, CloseCode.FRAME_TOO_LARGE, send(conn, {"op": "heartbeat", "p": padding + "x"})
    )
    assert "65 bytes" in close["reason"] and close["resumable"] is False


def test_frame_size_counts_utf8_bytes() -> None:
    conn = new_conn(limits=Limits(max_frame_bytes=64))
    # 30 characters, but 60 bytes of UTF-8 in the string plus the frame around it.
    conn.receive_frame(json_dumps({"op": "heartbeat", "p": "\u00e9" * 30}).decode(), T0)
    assert_closed(conn, CloseCode.FRAME_TOO_LARGE)


def test_rate_limit_token_bucket() -> None:
    conn = new_conn(limits=Limits(max_frames_per_s=10.0, frame_burst=5))
    for _ in range(5):  # the burst
        send(conn, {"op": "heartbeat"}, T0)
    assert len(sent(conn)) == 5
    send(conn, {"op": "heartbeat"}, T0 + 0.1)  # 0.1 s refilled one frame
    assert state(conn) is State.AWAIT_IDENTIFY
    close = assert_closed(conn, CloseCode.RATE_LIMITED, send(conn, {"op": "heartbeat"}, T0 + 0.1))
    assert close["resumable"] is True and close["retry_after_ms"] == 1000


def test_rate_limit_refill_is_capped_at_the_burst() -> None:
    conn = new_conn(limits=Limits(max_frames_per_s=10.0, frame_burst=3))
    later = T0 + 50  # long idle: the bucket holds 3, not 500
    for _ in range(3):
        send(conn, {"op": "heartbeat"}, later)
    assert_closed(conn, CloseCode.RATE_LIMITED, send(conn, {"op": "heartbeat"}, later))


def test_pings_and_pongs_count_toward_the_frame_rate() -> None:
    conn = new_conn(limits=Limits(max_frames_per_s=10.0, frame_burst=5))
    for _ in range(5):  # the burst, spent on WebSocket pings and pongs
        conn.receive_control(T0)
    assert state(conn) is State.AWAIT_IDENTIFY and sent(conn) == []
    conn.receive_control(T0 + 0.1)  # 0.1 s refilled one frame
    assert state(conn) is State.AWAIT_IDENTIFY
    conn.receive_control(T0 + 0.1)
    close = assert_closed(conn, CloseCode.RATE_LIMITED)
    assert close["resumable"] is True and close["retry_after_ms"] == 1000
    assert close["reason"] == "more than 10 frames/s"  # as for a flood of frames


def test_pings_and_frames_share_one_bucket() -> None:
    conn = active(limits=Limits(max_frames_per_s=10.0, frame_burst=5))  # identify took one
    conn.receive_control(T0)
    conn.receive_control(T0)
    send(conn, {"op": "heartbeat"}, T0)
    conn.receive_control(T0)
    assert state(conn) is State.ACTIVE
    assert_closed(conn, CloseCode.RATE_LIMITED, send(conn, {"op": "heartbeat"}, T0))


def test_a_ping_flood_ends_every_state() -> None:
    for conn in (new_conn(), identified(), active()):
        conn.events_received()
        for _ in range(LIMITS.frame_burst + 1):
            conn.receive_control(T0 + 1)
        assert_closed(conn, CloseCode.RATE_LIMITED)
        conn.receive_control(T0 + 2)  # nothing after the close
        assert conn.data_to_send() == [] and conn.events_received() == []


def test_pings_are_no_sign_of_life() -> None:
    conn = active()
    conn.receive_control(T0 + HB)
    assert conn.next_deadline() == T0 + 2 * HB  # only client frames move it
    conn.tick(T0 + 2 * HB)
    assert_closed(conn, CloseCode.HEARTBEAT_TIMEOUT)


def test_clock_stepping_back_is_harmless() -> None:
    conn = active()
    send(conn, {"op": "heartbeat"}, T0 + 10)
    send(conn, {"op": "heartbeat"}, T0 - 100)
    conn.tick(T0 - 200)
    assert state(conn) is State.ACTIVE and len(sent(conn)) == 2


# --- timers -------------------------------------------------------------------------


def test_identify_timeout() -> None:
    conn = new_conn()
    assert conn.next_deadline() == T0 + HB / 3
    send(conn, {"op": "heartbeat"}, T0 + 5)  # heartbeats do not replace identify
    sent(conn)
    conn.tick(T0 + HB / 3 - 0.001)
    assert state(conn) is State.AWAIT_IDENTIFY
    conn.tick(T0 + HB / 3)
    close = assert_closed(conn, CloseCode.IDENTIFY_TIMEOUT)
    assert close["resumable"] is True


def test_identifying_that_never_completes_closes_as_backend_unavailable() -> None:
    conn = identified()
    assert conn.next_deadline() == T0 + HB / 3
    conn.tick(T0 + HB / 3)
    close = assert_closed(conn, CloseCode.BACKEND_UNAVAILABLE)
    assert close["resumable"] is True and close["retry_after_ms"] == 1000
    # The lookup finishing afterwards changes nothing.
    conn.accept(
        bot_id=1, bot_username="a_bot", epoch=EPOCH, cursor=Cursor(EPOCH, 1), head=1, resumed=False
    )
    assert state(conn) is State.CLOSED and conn.data_to_send() == []


def test_zombie_after_two_heartbeat_intervals() -> None:
    conn = active()
    assert conn.next_deadline() == T0 + 2 * HB
    send(conn, {"op": "heartbeat"}, T0 + HB)  # any client frame counts as alive
    assert conn.next_deadline() == T0 + 3 * HB
    conn.tick(T0 + 3 * HB - 0.001)
    assert state(conn) is State.ACTIVE
    conn.tick(T0 + 3 * HB)
    close = assert_closed(conn, CloseCode.HEARTBEAT_TIMEOUT)
    assert close["resumable"] is True


def test_acks_keep_the_connection_alive() -> None:
    conn = active()
    conn.updates_sent(120)
    for step in range(1, 6):
        send(conn, {"op": "ack", "update_id": 100 + step}, T0 + step * HB * 1.5)
        conn.tick(T0 + step * HB * 1.5)
    assert state(conn) is State.ACTIVE


# --- acks and commits ---------------------------------------------------------------


@pytest.mark.parametrize("ready", [False, True])
def test_ack_before_ready_is_a_bad_frame(ready: bool) -> None:
    conn = identified() if ready else new_conn()
    close = assert_closed(conn, CloseCode.BAD_FRAME, send(conn, {"op": "ack", "update_id": 1}))
    assert close["reason"] == "ack before ready"


def test_ack_beyond_delivered_is_invalid() -> None:
    conn = active(cursor=100)
    conn.updates_sent(105)
    assert send(conn, {"op": "ack", "update_id": 105}) == [AckReceived(105)]
    close = assert_closed(conn, CloseCode.INVALID_ACK, send(conn, {"op": "ack", "update_id": 106}))
    assert "106" in close["reason"] and close["resumable"] is False


def test_ack_before_any_delivery_is_invalid_above_the_cursor() -> None:
    conn = active(cursor=100)
    assert send(conn, {"op": "ack", "update_id": 100}) == []  # the start cursor itself
    assert send(conn, {"op": "ack", "update_id": 7}) == []
    assert_closed(conn, CloseCode.INVALID_ACK, send(conn, {"op": "ack", "update_id": 101}))


@pytest.mark.parametrize("value", [None, -5, "abc", 1.0, [1], {"id": 1}, True, str(MAX_ID)])
def test_ack_bad_update_id(value: Any) -> None:
    conn = active()
    frame: dict[str, Any] = {"op": "ack"}
    if value is not None:
        frame["update_id"] = value
    close = assert_closed(conn, CloseCode.BAD_FRAME, send(conn, frame))
    assert "ack.update_id" in close["reason"]


def test_take_commit_coalesces() -> None:
    conn = active(cursor=10)
    assert conn.take_commit() is None
    conn.updates_sent(20)
    for update_id in (11, 12, 15):
        send(conn, {"op": "ack", "update_id": update_id})
    assert conn.take_commit() == 15
    assert conn.take_commit() is None
    send(conn, {"op": "heartbeat", "ack": 20})
    assert conn.take_commit() == 20
    assert conn.acked == 20


def test_take_commit_before_ready_is_none() -> None:
    assert new_conn().take_commit() is None
    assert identified().take_commit() is None


# --- heartbeats ---------------------------------------------------------------------


def test_heartbeat_before_identify() -> None:
    conn = new_conn()
    assert send(conn, {"op": "heartbeat"}) == []
    assert sent(conn) == [{"op": "heartbeat_ack", "acked": None}]


def test_heartbeat_ack_before_ready_is_ignored_but_checked() -> None:
    conn = new_conn()
    assert send(conn, {"op": "heartbeat", "ack": "999"}) == []
    assert sent(conn) == [{"op": "heartbeat_ack", "acked": None}]
    close = assert_closed(conn, CloseCode.BAD_FRAME, send(conn, {"op": "heartbeat", "ack": "x"}))
    assert "heartbeat.ack" in close["reason"]


def test_heartbeat_carries_an_ack() -> None:
    conn = active(cursor=100)
    conn.updates_sent(103)
    assert send(conn, {"op": "heartbeat", "ack": 102}) == [AckReceived(102)]
    assert sent(conn) == [{"op": "heartbeat_ack", "acked": "102"}]
    assert_closed(conn, CloseCode.INVALID_ACK, send(conn, {"op": "heartbeat", "ack": 104}))


# --- requests over the socket -------------------------------------------------------


def test_request_and_results() -> None:
    conn = active()
    params = {"chat_id": "42", "text": "hi", "reply_markup": {"inline_keyboard": [[]]}}
    events = send(conn, {"op": "request", "id": "r1", "method": "sendMessage", "params": params})
    assert events == [RequestReceived("r1", "sendMessage", params)]
    assert send(conn, {"op": "request", "id": "r2", "method": "getMe"}) == [
        RequestReceived("r2", "getMe", {})
    ]
    assert conn.pending_requests == 2
    conn.send_result("r2", ok=True, result={"id": "123", "username": "demo_bot"})
    error = {"error_code": 403, "code": "CHAT_FORBIDDEN", "description": "not started"}
    conn.send_result("r1", ok=False, error=error)
    assert sent(conn) == [
        {"op": "result", "id": "r2", "ok": True, "result": {"id": "123", "username": "demo_bot"}},
        {"op": "result", "id": "r1", "ok": False, "error": error},
    ]
    assert conn.pending_requests == 0
    # An answered id may be used again.
    assert len(send(conn, {"op": "request", "id": "r1", "method": "getMe"})) == 1
    # The call's Idempotency-Key travels with it.
    frame = {"op": "request", "id": "r3", "method": "sendMessage", "idempotency_key": "k:1~"}
    assert send(conn, frame) == [RequestReceived("r3", "sendMessage", {}, "k:1~")]


def test_too_many_pending_requests_is_an_error_result_not_a_close() -> None:
    conn = active(limits=Limits(max_pending_requests=2))
    for request_id in ("a", "b"):
        send(conn, {"op": "request", "id": request_id, "method": "getMe"})
    assert send(conn, {"op": "request", "id": "c", "method": "getMe"}) == []
    [result] = sent(conn)
    assert result["op"] == "result" and result["id"] == "c" and result["ok"] is False
    assert result["error"]["code"] == "TOO_MANY_REQUESTS" and result["error"]["error_code"] == 429
    assert state(conn) is State.ACTIVE
    conn.send_result("a", ok=True, result=True)
    assert len(send(conn, {"op": "request", "id": "c", "method": "getMe"})) == 1


def test_duplicate_pending_request_id() -> None:
    conn = active()
    send(conn, {"op": "request", "id": "same", "method": "getMe"})
    close = assert_closed(
        conn, CloseCode.BAD_FRAME, send(conn, {"op": "request", "id": "same", "method": "getMe"})
    )
    assert "already pending" in close["reason"]
    conn.send_result("same", ok=True, result=None)  # the late answer is dropped
    assert conn.data_to_send() == []


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"method": "getMe"}, "request.id"),
        ({"id": "", "method": "getMe"}, "request.id"),
        ({"id": "i" * 65, "method": "getMe"}, "request.id"),
        ({"id": 7, "method": "getMe"}, "request.id"),
        ({"id": "r"}, "request.method"),
        ({"id": "r", "method": ""}, "request.method"),
        ({"id": "r", "method": ["getMe"]}, "request.method"),
        ({"id": "r", "method": "getMe", "params": [1]}, "request.params"),
        ({"id": "r", "method": "getMe", "params": "{}"}, "request.params"),
        ({"id": "r", "method": "getMe", "params": {"a": b"bytes"}}, "request.params"),
        ({"id": "r", "method": "getMe", "params": {1: "int key"}}, "request.params"),
        ({"id": "r", "method": "getMe", "idempotency_key": ""}, "request.idempotency_key"),
        ({"id": "r", "method": "getMe", "idempotency_key": "a b"}, "request.idempotency_key"),
        ({"id": "r", "method": "getMe", "idempotency_key": "k" * 256}, "request.idempotency_key"),
        ({"id": "r", "method": "getMe", "idempotency_key": 7}, "request.idempotency_key"),
    ],
)
def test_request_bad_fields(fields: dict[Any, Any], field: str) -> None:
    conn = active()
    close = assert_closed(
        conn, CloseCode.BAD_FRAME, send(conn, {"op": "request", **fields}, binary=True)
    )
    assert field in close["reason"]


def test_request_params_nesting_is_bounded() -> None:
    conn = active()
    params: Any = {}
    for _ in range(40):
        params = {"x": params}
    assert_closed(
        conn,
        CloseCode.BAD_FRAME,
        send(conn, {"op": "request", "id": "r", "method": "m", "params": params}),
    )


@pytest.mark.parametrize("ready", [False, True])
def test_request_before_ready_is_a_bad_frame(ready: bool) -> None:
    conn = identified() if ready else new_conn()
    close = assert_closed(
        conn, CloseCode.BAD_FRAME, send(conn, {"op": "request", "id": "r", "method": "getMe"})
    )
    assert close["reason"] == "request before ready"


# --- gaps ---------------------------------------------------------------------------


def test_gap_with_fail_closes_terminally() -> None:
    conn = identified(cursor={"epoch": EPOCH, "update_id": 5})
    assert conn.signal_gap(reason="retention", oldest=50, newest=90, epoch=EPOCH) == "fail"
    frames = sent(conn)
    assert frames[0] == {
        "op": "gap",
        "reason": "retention",
        "oldest": "50",
        "newest": "90",
        "epoch": EPOCH,
        "action": "fail",
    }
    assert frames[1]["op"] == "close" and frames[1]["code"] == CloseCode.CURSOR_GAP
    assert frames[1]["resumable"] is False
    assert conn.events_received() == [CloseConnection(4504, frames[1]["reason"])]
    assert state(conn) is State.CLOSED


def test_gap_before_ready_then_accept_from_oldest() -> None:
    conn = identified(cursor={"epoch": "old", "update_id": 5}, on_gap="oldest")
    assert conn.signal_gap(reason="epoch", oldest=None, newest=None, epoch=EPOCH) == "oldest"
    assert sent(conn) == [
        {
            "op": "gap",
            "reason": "epoch",
            "oldest": None,
            "newest": None,
            "epoch": EPOCH,
            "action": "oldest",
        }
    ]
    assert state(conn) is State.IDENTIFYING
    conn.accept(
        bot_id=1, bot_username="a_bot", epoch=EPOCH, cursor=Cursor(EPOCH, 0), head=0, resumed=False
    )
    [ready] = sent(conn)
    assert ready["cursor"] == {"epoch": EPOCH, "update_id": "0"} and conn.epoch == EPOCH


def test_gap_mid_stream_same_epoch_keeps_unacked_updates_unacked() -> None:
    conn = active(cursor=100, on_gap="oldest")
    conn.updates_sent(110)
    send(conn, {"op": "ack", "update_id": 105})
    # The reader fell behind retention: the log now starts at 500.
    assert conn.signal_gap(reason="retention", oldest=500, newest=900, epoch=EPOCH) == "oldest"
    assert [frame["op"] for frame in sent(conn)] == ["gap"]
    assert conn.delivered == 499 and conn.acked == 105 and state(conn) is State.ACTIVE
    conn.updates_sent(500)
    assert send(conn, {"op": "ack", "update_id": 500}) == [AckReceived(500)]
    assert conn.take_commit() == 500


def test_gap_mid_stream_to_newest() -> None:
    conn = active(cursor=100, on_gap="newest")
    assert conn.signal_gap(reason="retention", oldest=500, newest=900, epoch=EPOCH) == "newest"
    assert conn.delivered == 900
    assert send(conn, {"op": "ack", "update_id": 900}) == [AckReceived(900)]


def test_gap_mid_stream_new_epoch_restarts_the_marks() -> None:
    conn = active(cursor=100, on_gap="oldest")
    conn.updates_sent(110)
    send(conn, {"op": "ack", "update_id": 110})
    assert conn.signal_gap(reason="epoch", oldest=7000, newest=7010, epoch="e2") == "oldest"
    assert conn.epoch == "e2" and conn.acked == conn.delivered == 6999
    assert conn.take_commit() is None  # nothing consumed in the new log yet
    conn.updates_sent(7000)
    send(conn, {"op": "ack", "update_id": 7000})
    assert conn.take_commit() == 7000


def test_gap_mid_stream_new_empty_epoch_with_newest() -> None:
    conn = active(cursor=100, on_gap="newest")
    assert conn.signal_gap(reason="epoch", oldest=None, newest=None, epoch="e2") == "newest"
    assert conn.acked == conn.delivered == 0


# --- drain, takeover, reject, close -------------------------------------------------


def test_drain_keeps_acks_heartbeats_and_requests_working() -> None:
    conn = active(cursor=1)
    conn.start_drain(deadline_ms=30_000, now=T0)
    conn.start_drain(deadline_ms=1, now=T0)  # the first deadline stands
    assert [frame["op"] for frame in sent(conn)] == ["reconnect"]
    assert conn.next_deadline() == T0 + 30
    conn.updates_sent(2)
    assert send(conn, {"op": "ack", "update_id": 2}) == [AckReceived(2)]
    assert send(conn, {"op": "request", "id": "r", "method": "getMe"}) == [
        RequestReceived("r", "getMe", {})
    ]
    conn.send_result("r", ok=True, result={})
    send(conn, {"op": "heartbeat"})
    assert [frame["op"] for frame in sent(conn)] == ["result", "heartbeat_ack"]
    conn.tick(T0 + 30)
    assert_closed(conn, CloseCode.SERVICE_RESTART)


def test_drain_before_ready_closes_at_once() -> None:
    for conn in (new_conn(), identified()):
        conn.start_drain(deadline_ms=10_000, now=T0)
        close = assert_closed(conn, CloseCode.SERVICE_RESTART)
        assert close["resumable"] is True


def test_drain_deadline_zero_closes_on_the_next_tick() -> None:
    conn = active()
    conn.start_drain(deadline_ms=0, now=T0)
    assert conn.next_deadline() == T0
    conn.tick(T0)
    assert state(conn) is State.CLOSED


def test_take_over() -> None:
    conn = active()
    conn.take_over()
    close = assert_closed(conn, CloseCode.TAKEN_OVER)
    assert close["resumable"] is False


@pytest.mark.parametrize(
    ("code", "retry_after_ms"),
    [
        (CloseCode.AUTH_FAILED, None),
        (CloseCode.TOO_MANY_CONNECTIONS, 5_000),
        (CloseCode.IDENTIFY_RATE_LIMITED, 1_000),
        (CloseCode.BACKEND_UNAVAILABLE, 2_000),
        (CloseCode.BOT_INACTIVE, None),
        (CloseCode.INTERNAL_ERROR, None),
    ],
)
def test_reject_while_identifying(code: CloseCode, retry_after_ms: int | None) -> None:
    conn = identified(encoding="msgpack")
    conn.reject(code, "because", retry_after_ms=retry_after_ms)
    [frame] = conn.data_to_send()
    assert isinstance(frame, bytes)  # the client asked for msgpack
    assert decode(frame) == {
        "op": "close",
        "code": int(code),
        "reason": "because",
        "resumable": is_resumable(code),
        "retry_after_ms": retry_after_ms,
    }
    assert conn.events_received() == [CloseConnection(int(code), "because")]


def test_close_normal_from_any_state() -> None:
    for conn in (new_conn(), identified(), active()):
        conn.close(CloseCode.NORMAL, "bye")
        close = assert_closed(conn, CloseCode.NORMAL)
        assert close["resumable"] is False


def test_nothing_happens_after_close() -> None:
    conn = active(cursor=10, on_gap="oldest")
    conn.updates_sent(12)
    send(conn, {"op": "ack", "update_id": 12})
    send(conn, {"op": "request", "id": "r", "method": "getMe"})
    conn.take_over()
    assert_closed(conn, CloseCode.TAKEN_OVER)
    send(conn, {"op": "heartbeat"})
    send(conn, {"op": "nonsense"})
    conn.receive_frame(b"\xc1", T0)
    conn.tick(T0 + 1_000)
    conn.updates_sent(13)
    conn.send_result("r", ok=True, result=1)
    assert conn.signal_gap(reason="retention", oldest=1, newest=2, epoch=EPOCH) == "oldest"
    conn.start_drain(deadline_ms=1, now=T0)
    conn.take_over()
    conn.close(CloseCode.NORMAL, "again")
    conn.reject(CloseCode.AUTH_FAILED, "again")
    assert conn.data_to_send() == [] and conn.events_received() == []
    assert conn.close_code == CloseCode.TAKEN_OVER and conn.next_deadline() is None
    # The final ack is still there to be committed.
    assert conn.take_commit() == 12


def test_a_defect_becomes_an_internal_error_close(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: ServerConnection, frame: dict[Any, Any]) -> None:
        raise KeyError("defect")

    monkeypatch.setattr(ServerConnection, "_on_heartbeat", broken)
    conn = new_conn()
    assert_closed(conn, CloseCode.INTERNAL_ERROR, send(conn, {"op": "heartbeat"}))
    assert isinstance(conn.internal_error, KeyError)


def test_api_misuse_is_an_assertion() -> None:
    conn = new_conn()
    with pytest.raises(AssertionError):
        conn.accept(
            bot_id=1, bot_username="a", epoch=EPOCH, cursor=Cursor(EPOCH, 1), head=1, resumed=False
        )
    with pytest.raises(AssertionError):
        conn.updates_sent(1)
    conn = active(cursor=10)
    conn.updates_sent(11)
    with pytest.raises(AssertionError):
        conn.updates_sent(11)  # out of order
    with pytest.raises(AssertionError):
        conn.send_result("unknown", ok=True)


# --- limits -------------------------------------------------------------------------


def test_limits_validation() -> None:
    with pytest.raises(ValueError):
        Limits(heartbeat_interval_s=0)
    with pytest.raises(ValueError):
        Limits(frame_burst=0)
    with pytest.raises(ValueError):
        Limits(max_pending_requests=-1)


# --- property-based: the core never raises and always closes cleanly ---------------

CLIENT_OPS = ["identify", "resume", "ack", "heartbeat", "request"]
FIELDS = [
    "op",
    "token",
    "cursor",
    "consumer",
    "shard",
    "encoding",
    "allowed_updates",
    "on_gap",
    "update_id",
    "ack",
    "id",
    "method",
    "params",
    "epoch",
]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(
        ["json", "msgpack", "oldest", "newest", "fail", "message", "0", "7", str(MAX_ID), EPOCH]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
field_values = st.one_of(
    json_values,
    st.builds(lambda i, n: [i, n], st.integers(-2, 5), st.integers(-2, 5)),
    st.builds(
        lambda epoch, update_id: {"epoch": epoch, "update_id": update_id},
        st.sampled_from([EPOCH, "", "other"]),
        st.one_of(st.integers(-1, 300), st.text(max_size=5)),
    ),
    st.lists(st.sampled_from([*sorted(UPDATE_TYPES), "bogus"]), max_size=3),
)
fuzzed_objects = st.builds(
    lambda op, fields: {"op": op, **fields},
    st.one_of(st.sampled_from([*CLIENT_OPS, "hello", "", "ACK"]), json_values),
    st.dictionaries(st.sampled_from(FIELDS[1:]), field_values, max_size=5),
)
identify_frames = st.builds(
    lambda encoding, on_gap, shard, token: {
        "op": "identify",
        "encoding": encoding,
        "on_gap": on_gap,
        "shard": shard,
        "token": token,
    },
    st.sampled_from(["json", "msgpack"]),
    st.sampled_from(["fail", "oldest", "newest"]),
    st.sampled_from([[0, 1], [1, 2]]),
    st.sampled_from([TOKEN, TOKEN, 5]),
)
plausible_frames = st.one_of(
    st.just({"op": "heartbeat"}),
    st.builds(lambda rid: {"op": "request", "id": rid, "method": "getMe"}, st.sampled_from("abc")),
)


def _as_frame(value: Any, binary: bool) -> str | bytes:
    return pack(value) if binary else json_dumps(value).decode()


frames = st.one_of(
    st.binary(max_size=64),
    st.text(max_size=64),
    st.builds(_as_frame, json_values, st.booleans()),
    st.builds(_as_frame, fuzzed_objects, st.booleans()),
    st.builds(_as_frame, plausible_frames, st.booleans()),
    st.builds(_as_frame, identify_frames, st.booleans()),
    st.sampled_from([b"\x00" * 70_000, "x" * 70_000, '{"op":"heartbeat","p":"' + "y" * 70_000]),
)
# Most steps are things a working client and I/O layer do, so that sessions get
# deep into ACTIVE and DRAINING; garbage is rarer because most of it is fatal.
server_actions = st.tuples(
    st.sampled_from(["accept", "send", "send", "result", "drain", "commit", "take_over", "reject"]),
    st.integers(0, 5),
)
gap_actions = st.tuples(st.just("gap"), st.sampled_from(["retention", "epoch"]), st.integers(0, 50))
client_actions = st.one_of(
    st.tuples(st.just("frame"), st.builds(_as_frame, plausible_frames, st.booleans())),
    st.tuples(st.just("identify"), st.builds(_as_frame, identify_frames, st.booleans())),
    st.tuples(st.just("ack_near"), st.integers(-3, 2), st.booleans()),
    st.tuples(st.just("tick"), st.floats(min_value=-1.0, max_value=HB / 6)),
    st.tuples(st.just("control"), st.integers(1, 120)),
)
garbage_actions = st.one_of(
    st.tuples(st.just("frame"), frames),
    st.tuples(st.just("tick"), st.floats(min_value=0.0, max_value=4 * HB)),
)
actions = st.one_of(
    server_actions,
    server_actions,
    client_actions,
    client_actions,
    client_actions,
    client_actions,
    gap_actions,
    garbage_actions,
)
OPENINGS: dict[str, list[tuple[Any, ...]]] = {
    "fresh": [],
    "identified": [("frame", json_dumps({"op": "identify", "token": TOKEN}).decode())],
    "active": [
        (
            "frame",
            pack({"op": "identify", "token": TOKEN, "encoding": "msgpack", "on_gap": "oldest"}),
        ),
        ("accept", 3),
        ("send", 2),
    ],
}


class Driver:
    """Plays the I/O layer: applies actions and checks every output."""

    def __init__(self, authenticated: bool) -> None:
        self.now = T0
        self.conn = ServerConnection(
            connection_id="prop", limits=LIMITS, authenticated=authenticated, now=self.now
        )
        self.closed: CloseConnection | None = None
        self.last_frame: dict[str, Any] | None = None
        self.pending: list[str] = []
        self.last_ack = -1
        self.last_commit = -1
        self.commit_epoch: str | None = None
        self.first = True

    def apply(self, action: tuple[Any, ...]) -> None:
        conn, kind = self.conn, action[0]
        live = conn.state in (State.ACTIVE, State.DRAINING)
        if kind == "frame" or (kind == "identify" and conn.state is State.AWAIT_IDENTIFY):
            conn.receive_frame(action[1], self.now)
        elif kind == "tick":
            self.now += action[1]
            conn.tick(self.now)
        elif kind == "control":
            for _ in range(action[1]):  # a run of WebSocket pings or pongs
                conn.receive_control(self.now)
        elif kind == "ack_near" and live:
            assert conn.delivered is not None
            update_id = max(conn.delivered + action[1], 0)
            conn.receive_frame(
                _as_frame({"op": "ack", "update_id": update_id}, action[2]), self.now
            )
        elif kind == "accept" and state(conn) is State.IDENTIFYING:
            conn.accept(
                bot_id=9,
                bot_username="p_bot",
                epoch=EPOCH,
                cursor=Cursor(EPOCH, action[1] * 10),
                head=action[1] * 10 + 5,
                resumed=bool(action[1] % 2),
            )
        elif kind == "send" and live:
            assert conn.delivered is not None
            conn.updates_sent(conn.delivered + action[1] + 1)
        elif kind == "result" and self.pending:
            request_id = self.pending.pop(0)
            if action[1] % 2:
                conn.send_result(request_id, ok=True, result={"n": action[1]})
            else:
                conn.send_result(request_id, ok=False, error={"error_code": 400, "code": "X"})
        elif kind == "drain":
            conn.start_drain(deadline_ms=action[1] * 1000, now=self.now)
        elif kind == "commit":
            self.check_commit()
        elif kind == "take_over" and action[1] == 0:
            conn.take_over()
        elif kind == "reject" and action[1] == 0:
            conn.reject(CloseCode.TOO_MANY_CONNECTIONS, "full", retry_after_ms=100)
        elif kind == "gap" and conn.state in (State.IDENTIFYING, State.ACTIVE, State.DRAINING):
            base = conn.delivered or 0
            epoch = "e-new" if action[1] == "epoch" else (conn.epoch or EPOCH)
            conn.signal_gap(
                reason=action[1], oldest=base + action[2], newest=base + 2 * action[2], epoch=epoch
            )
        self.check()

    def check_commit(self) -> None:
        commit = self.conn.take_commit()
        if commit is not None:
            # Commits only grow within one epoch; an epoch gap restarts them.
            if self.commit_epoch == self.conn.epoch:
                assert commit > self.last_commit
            assert commit == self.conn.acked
            self.last_commit, self.commit_epoch = commit, self.conn.epoch

    def check(self) -> None:
        conn = self.conn
        assert conn.internal_error is None
        frames = [(frame, decode(frame)) for frame in conn.data_to_send()]
        events = conn.events_received()
        if self.closed is not None:
            assert frames == [] and events == [], "output after close"
            return
        for raw, frame in frames:
            assert frame.get("op") in SERVER_OPS, frame
            if self.first:
                assert frame["op"] == "hello" and isinstance(raw, str)
                self.first = False
            self.last_frame = frame
        for event in events:
            assert self.closed is None, "event after CloseConnection"
            if isinstance(event, CloseConnection):
                self.closed = event
            elif isinstance(event, AckReceived):
                assert conn.delivered is not None and event.update_id <= conn.delivered
                self.last_ack = event.update_id
            elif isinstance(event, RequestReceived):
                assert event.request_id not in self.pending
                self.pending.append(event.request_id)
                assert len(self.pending) <= LIMITS.max_pending_requests
        if self.closed is not None:
            assert self.closed.code in set(CloseCode)
            assert self.last_frame is not None and self.last_frame["op"] == "close"
            assert self.last_frame["code"] == self.closed.code
            assert self.last_frame["resumable"] is is_resumable(self.closed.code)
            assert len(self.closed.reason.encode()) <= 123
            assert state(conn) is State.CLOSED and conn.next_deadline() is None
        else:
            assert state(conn) is not State.CLOSED
            deadline = conn.next_deadline()
            assert deadline is not None and deadline > self.now - 1_000
        if conn.acked is not None:
            assert conn.delivered is not None and conn.acked <= conn.delivered


@settings(max_examples=500, deadline=None)
@given(
    authenticated=st.booleans(),
    opening=st.sampled_from(sorted(OPENINGS)),
    steps=st.lists(actions, max_size=50),
)
def test_random_sessions_never_raise_and_close_cleanly(
    authenticated: bool, opening: str, steps: list[tuple[Any, ...]]
) -> None:
    driver = Driver(authenticated)
    driver.check()
    for step in [*OPENINGS[opening], *steps]:
        driver.apply(step)
    # Whatever happened, a tick far in the future ends every session.
    driver.apply(("tick", 10 * HB))
    assert driver.closed is not None


@settings(max_examples=300, deadline=None)
@given(data=frames)
def test_any_single_frame_on_any_state(data: str | bytes) -> None:
    for stage in ("new", "identified", "active"):
        conn = {"new": new_conn, "identified": identified, "active": active}[stage]()
        conn.events_received()
        conn.receive_frame(data, T0 + 1)
        assert conn.internal_error is None
        for frame in conn.data_to_send():
            assert decode(frame).get("op") in SERVER_OPS
        events = conn.events_received()
        closes = [event for event in events if isinstance(event, CloseConnection)]
        assert len(closes) <= 1 and (not closes or events[-1] is closes[0])
        if closes:
            assert closes[0].code in set(CloseCode) and state(conn) is State.CLOSED
