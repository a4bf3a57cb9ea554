"""The protocol's published vectors (docs/protocol-vectors/) and schema
(docs/protocol.schema.json) against the reference implementation.

* Every scripted session (``sessions/*.jsonl``) is played against the sans-I/O
  core, :class:`gateway.protocol.ServerConnection`: every frame and event it
  produces must be the one the transcript expects, and nothing else.
* Every example frame (``frames/*.json``) is checked both ways: its JSON text and
  its msgpack bytes decode to the same value, the value is valid by the schema,
  server frames are exactly what the server's encoders write, and client frames
  are accepted by the core with the event the example states.
* Every refused client frame (``frames/invalid-client.json``) closes the core's
  connection with the close it states, and the schema refuses it too unless the
  example says why it cannot.
"""

from __future__ import annotations

import json
import typing
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from gateway.frames import (
    MAX_SHARDS,
    UPDATE_TYPES,
    CloseCode,
    Encoding,
    GapPolicy,
    GapReason,
    encode_frame,
    encode_updates_frame,
    frames_for,
    is_resumable,
    parse_id,
)
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

DOCS = Path(__file__).resolve().parents[2] / "docs"
VECTORS = DOCS / "protocol-vectors"
SCHEMA: dict[str, Any] = json.loads((DOCS / "protocol.schema.json").read_text())
SESSIONS = sorted((VECTORS / "sessions").glob("*.jsonl"))
FRAME_FILES = sorted(p for p in (VECTORS / "frames").glob("*.json") if p.stem != "invalid-client")
SERVER_OPS = {"hello", "ready", "updates", "heartbeat_ack", "result", "gap", "reconnect", "close"}
CLIENT_OPS = {"identify", "ack", "heartbeat", "request"}

# Sessions that describe behaviour the reference core does not have yet, with the
# reason; strict, so that each is noticed the moment the core does it.


def validator(definition: str) -> Any:
    """A validator of one of the schema's definitions, e.g. ``ServerFrame``."""
    schema = {
        "$schema": SCHEMA["$schema"],
        "$defs": SCHEMA["$defs"],
        "$ref": f"#/$defs/{definition}",
    }
    return Draft202012Validator(schema)


WHOLE = Draft202012Validator(SCHEMA)
CLIENT = validator("ClientFrame")
SERVER = validator("ServerFrame")


def schema_errors(check: Any, value: Any) -> list[str]:
    return [error.message for error in check.iter_errors(value)]


def decode(data: str | bytes) -> Any:
    return json_loads(data) if isinstance(data, str) else unpack(data)


def limits_of(header: dict[str, Any]) -> Limits:
    """The core's limits from a transcript's header (named as in ``hello``)."""
    given = header["limits"]
    return Limits(
        heartbeat_interval_s=given["heartbeat_interval_ms"] / 1000,
        identify_timeout_s=given["identify_timeout_ms"] / 1000,
        max_frame_bytes=given["max_frame_bytes"],
        max_frames_per_s=given["max_frames_per_s"],
        frame_burst=given["frame_burst"],
        max_pending_requests=given["max_pending_requests"],
        max_connections_per_bot=given["max_connections_per_bot"],
        identify_per_minute=given["identify_per_minute"],
        retention_s=given["retention_s"],
    )


def event_value(event: Event) -> dict[str, Any]:
    """An event of the core as a transcript writes it."""
    if isinstance(event, Identify):
        cursor = event.cursor
        allowed = event.allowed_updates
        return {
            "type": "identify",
            "token": event.token,
            "cursor": None
            if cursor is None
            else {"epoch": cursor.epoch, "update_id": cursor.update_id},
            "consumer": event.consumer,
            "shard": list(event.shard),
            "encoding": event.encoding,
            "allowed_updates": None if allowed is None else sorted(allowed),
            "on_gap": event.on_gap,
        }
    if isinstance(event, AckReceived):
        return {"type": "ack", "update_id": event.update_id}
    if isinstance(event, RequestReceived):
        return {
            "type": "request",
            "id": event.request_id,
            "method": event.method,
            "params": event.params,
            "idempotency_key": event.idempotency_key,
        }
    assert isinstance(event, CloseConnection)
    return {"type": "close", "code": event.code, "reason": event.reason}


def message_kind(encoding: str) -> type[str] | type[bytes]:
    """JSON frames are text messages (``str``), msgpack frames binary (``bytes``)."""
    assert encoding in ("json", "msgpack"), encoding
    return str if encoding == "json" else bytes


# --- the transcript player ----------------------------------------------------------


@dataclass
class Peer:
    """One connection of a transcript: its core and what it produced, not yet expected."""

    core: ServerConnection
    sent: deque[tuple[type[str] | type[bytes], Any]] = field(default_factory=deque)
    events: deque[dict[str, Any]] = field(default_factory=deque)

    def collect(self) -> None:
        for data in self.core.data_to_send():
            self.sent.append((type(data), decode(data)))
        self.events.extend(event_value(event) for event in self.core.events_received())


class Player:
    """Plays one transcript: the client's frames and the I/O layer's calls go in, and
    every frame and event that comes out must be expected by a later step."""

    def __init__(self, header: dict[str, Any]) -> None:
        self.limits = limits_of(header)
        self.now = 0.0
        self.peers: dict[str, Peer] = {}

    def step(self, line: int, step: dict[str, Any]) -> None:
        where = f"line {line}: {json.dumps(step)[:200]}"
        name = step.get("conn", "A")
        if "note" in step:
            return
        if "expect" in step or "expect_event" in step or "expect_state" in step:
            self.check(self.peers[name], step, where)
            return
        # an input: whatever came out before must have been expected already
        for peer_name, peer in self.peers.items():
            assert not peer.sent, f"{where}: unexpected frame on {peer_name}: {peer.sent[0]}"
            assert not peer.events, f"{where}: unexpected event on {peer_name}: {peer.events[0]}"
        if "at" in step:
            assert step["at"] >= self.now, f"{where}: time goes back"
            self.now = float(step["at"])
            for peer in self.peers.values():
                peer.core.tick(self.now)
        elif "server" in step:
            self.server(name, step, where)
        else:
            self.client(self.peers[name], step, where)
        for peer in self.peers.values():
            peer.collect()

    def client(self, peer: Peer, step: dict[str, Any], where: str) -> None:
        core = peer.core
        if "client" in step:
            frame = step["client"]
            encoding = step.get("as", "json")
            core.receive_frame(
                json_dumps(frame).decode() if encoding == "json" else pack(frame), self.now
            )
        elif "client_text" in step:
            core.receive_frame(step["client_text"], self.now)
        elif "client_binary" in step:
            core.receive_frame(bytes.fromhex(step["client_binary"]), self.now)
        elif "client_pings" in step:
            for _ in range(step["client_pings"]):
                core.receive_control(self.now)
        else:
            raise AssertionError(f"{where}: unknown step")

    def server(self, name: str, step: dict[str, Any], where: str) -> None:
        args = {
            key: value for key, value in step.items() if key not in ("conn", "server", "returns")
        }
        action = step["server"]
        if action == "open":
            assert name not in self.peers, f"{where}: {name} is open already"
            self.peers[name] = Peer(ServerConnection(limits=self.limits, now=self.now, **args))
            self.peers[name].collect()
            return
        core = self.peers[name].core
        returned: Any = None
        if action == "accept":
            cursor = Cursor(args["cursor"]["epoch"], args["cursor"]["update_id"])
            core.accept(**{**args, "cursor": cursor})
        elif action == "reject":
            core.reject(
                CloseCode(args["code"]), args["reason"], retry_after_ms=args["retry_after_ms"]
            )
        elif action == "close":
            core.close(
                CloseCode(args["code"]), args["reason"], retry_after_ms=args["retry_after_ms"]
            )
        elif action == "gap":
            returned = core.signal_gap(**args)
        elif action == "updates":
            self.deliver(self.peers[name], args["updates"])
        elif action == "result":
            core.send_result(args.pop("id"), **args)
        elif action == "take_over":
            core.take_over()
        elif action == "drain":
            core.start_drain(deadline_ms=args["deadline_ms"], now=self.now)
        elif action == "commit":
            returned = core.take_commit()
        else:
            raise AssertionError(f"{where}: unknown server action {action!r}")
        if "returns" in step:
            assert returned == step["returns"], f"{where}: returned {returned!r}"

    @staticmethod
    def deliver(peer: Peer, updates: list[dict[str, Any]]) -> None:
        """What the fan-out does: encode each update once, send the frames (only while
        the connection delivers), then report the high-water mark."""
        core = peer.core
        if core.state not in (State.ACTIVE, State.DRAINING):
            return
        encoding = core.encoding
        encode = json_dumps if encoding == "json" else pack
        for frame in frames_for([encode(update) for update in updates], encoding):
            data: str | bytes = frame.decode() if encoding == "json" else frame
            peer.sent.append((type(data), decode(data)))
        core.updates_sent(int(updates[-1]["update_id"]))

    def check(self, peer: Peer, step: dict[str, Any], where: str) -> None:
        if "expect" in step:
            assert peer.sent, f"{where}: nothing was sent"
            kind, frame = peer.sent.popleft()
            assert frame == step["expect"], f"{where}: sent {frame}"
            assert kind is message_kind(step.get("as", "json")), f"{where}: sent as {kind.__name__}"
        elif "expect_event" in step:
            assert peer.events, f"{where}: no event"
            event = peer.events.popleft()
            assert event == step["expect_event"], f"{where}: event {event}"
        else:
            assert peer.core.state.name == step["expect_state"], f"{where}: {peer.core.state}"

    def finish(self) -> None:
        for name, peer in self.peers.items():
            assert not peer.sent, f"end: unexpected frame on {name}: {peer.sent[0]}"
            assert not peer.events, f"end: unexpected event on {name}: {peer.events[0]}"


def read_session(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    header, steps = lines[0], lines[1:]
    assert header["transcript"] == path.stem
    return header, steps


@pytest.mark.parametrize("path", SESSIONS, ids=[path.stem for path in SESSIONS])
def test_session(path: Path) -> None:
    header, steps = read_session(path)
    player = Player(header)
    for line, step in enumerate(steps, 2):
        player.step(line, step)
    player.finish()


@pytest.mark.parametrize("path", SESSIONS, ids=[p.stem for p in SESSIONS])
def test_session_frames_follow_the_schema(path: Path) -> None:
    _, steps = read_session(path)
    for step in steps:
        if "expect" in step:
            assert schema_errors(SERVER, step["expect"]) == [], step
        elif "client" in step and not step.get("invalid"):
            # "invalid" marks a frame sent to be refused for its content (frames/
            # invalid-client.json pairs each of those with the schema's verdict)
            assert schema_errors(CLIENT, step["client"]) == [], step


def test_sessions_cover_every_server_frame_and_close_code_the_core_makes() -> None:
    ops: set[str] = set()
    codes: set[int] = set()
    for path in SESSIONS:
        for step in read_session(path)[1]:
            if "expect" in step:
                ops.add(step["expect"]["op"])
                if step["expect"]["op"] == "close":
                    codes.add(step["expect"]["code"])
    assert ops == SERVER_OPS
    # 1001 and 4000 are decided by the worker for reasons no transcript can script
    assert {int(code) for code in CloseCode} - codes == {1001, 4000}


# --- example frames -----------------------------------------------------------------


def frame_examples() -> Iterator[Any]:
    for path in FRAME_FILES:
        doc = json.loads(path.read_text())
        for example in doc["examples"]:
            yield pytest.param(doc, example, id=f"{path.stem}-{example['name']}")


def examples_of(op: str) -> list[dict[str, Any]]:
    doc: dict[str, Any] = json.loads((VECTORS / "frames" / f"{op}.json").read_text())
    examples: list[dict[str, Any]] = doc["examples"]
    return examples


@pytest.mark.parametrize(("doc", "example"), list(frame_examples()))
def test_frame_example(doc: dict[str, Any], example: dict[str, Any]) -> None:
    value = json_loads(example["json"])
    assert value["op"] == doc["op"] or (doc["op"] == "identify" and value["op"] == "resume")
    if example["msgpack"] is not None:
        data = bytes.fromhex(example["msgpack"])
        # the same map, keys and values; strings are msgpack str, never bin
        assert unpack(data) == value
    assert schema_errors(WHOLE, value) == []
    if doc["direction"] == "server":
        assert schema_errors(SERVER, value) == []
        assert schema_errors(CLIENT, value) != []
        check_server_encoding(value, example)
    else:
        assert schema_errors(CLIENT, value) == []
        check_client_frame(value, example)


def check_server_encoding(value: dict[str, Any], example: dict[str, Any]) -> None:
    """The committed bytes are exactly what the server's encoders write for the value."""

    def encoded(encoding: Encoding) -> str | bytes:
        if value["op"] == "updates":
            encode = json_dumps if encoding == "json" else pack
            frame = encode_updates_frame([encode(update) for update in value["updates"]], encoding)
            return frame.decode() if encoding == "json" else frame
        return encode_frame(value, encoding)

    assert encoded("json") == example["json"]
    if example["msgpack"] is not None:
        assert encoded("msgpack") == bytes.fromhex(example["msgpack"])


def check_client_frame(value: dict[str, Any], example: dict[str, Any]) -> None:
    """The core takes the frame, in both encodings, without closing: it makes the event
    the example states."""
    assert json_dumps(value).decode() == example["json"]
    assert pack(value) == bytes.fromhex(example["msgpack"])
    for data in (example["json"], bytes.fromhex(example["msgpack"])):
        identify = value["op"] in ("identify", "resume")
        conn = ServerConnection(
            connection_id="v", limits=Limits(), authenticated="token" not in value, now=0.0
        )
        if not identify:
            conn.receive_frame('{"op":"identify"}', 0.0)
            conn.accept(
                bot_id=1,
                bot_username="a_bot",
                epoch="e",
                cursor=Cursor("e", 0),
                head=0,
                resumed=False,
            )
            conn.updates_sent(MAX_ID - 1)  # everything may be acked
            conn.events_received()
        conn.receive_frame(data, 1.0)
        events = [event_value(event) for event in conn.events_received()]
        assert conn.state is not State.CLOSED, conn.data_to_send()
        assert events == ([] if example["event"] is None else [example["event"]])


def test_every_op_has_examples_and_every_close_code_one() -> None:
    ops = {
        json_loads(example["json"])["op"]
        for path in FRAME_FILES
        for example in examples_of(path.stem)
    }
    assert ops == SERVER_OPS | CLIENT_OPS | {"resume"}
    codes = [json_loads(example["json"])["code"] for example in examples_of("close")]
    assert sorted(codes) == sorted(int(code) for code in CloseCode)
    reasons = {json_loads(example["json"])["reason"] for example in examples_of("gap")}
    assert reasons == set(typing.get_args(GapReason))
    kinds = {
        kind
        for example in examples_of("updates")
        for update in json_loads(example["json"])["updates"]
        for kind in update
        if kind != "update_id"
    }
    assert kinds == UPDATE_TYPES


def test_hello_has_no_field_the_schema_does_not_name() -> None:
    # hello and its limits are open by the spec (clients accept more); the reference
    # server sends exactly what the schema names
    hello = SCHEMA["$defs"]["Hello"]
    limits = SCHEMA["$defs"]["HelloLimits"]
    for example in examples_of("hello"):
        value = json_loads(example["json"])
        assert set(value) == set(hello["properties"])
        assert set(value["limits"]) == set(limits["properties"])


# --- refused client frames ----------------------------------------------------------

INVALID: dict[str, Any] = json.loads((VECTORS / "frames" / "invalid-client.json").read_text())


def refused_core(example: dict[str, Any]) -> ServerConnection:
    conn = ServerConnection(
        connection_id="v", limits=Limits(), authenticated=example["authenticated"], now=0.0
    )
    if example["state"] == "ACTIVE":
        conn.receive_frame('{"op":"identify"}', 0.0)
        conn.accept(
            bot_id=1, bot_username="a_bot", epoch="e", cursor=Cursor("e", 0), head=0, resumed=False
        )
        conn.updates_sent(1825792000000001)
        conn.receive_frame('{"op":"request","id":"pending","method":"getMe"}', 0.0)
    else:
        assert example["state"] == "AWAIT_IDENTIFY"
    conn.data_to_send()
    conn.events_received()
    return conn


@pytest.mark.parametrize(
    "example", INVALID["examples"], ids=[e["name"] for e in INVALID["examples"]]
)
def test_refused_client_frame(example: dict[str, Any]) -> None:
    conn = refused_core(example)
    if "json" in example:
        data: str | bytes = example["json"]
    elif "text" in example:
        data = example["text"]
    else:
        data = bytes.fromhex(example["msgpack"])
    conn.receive_frame(data, 1.0)
    close = example["close"]
    frame = decode(conn.data_to_send()[-1])
    assert frame["op"] == "close" and frame["code"] == close["code"], frame
    assert frame["resumable"] is False and not is_resumable(close["code"])
    if "reason" in close:
        assert frame["reason"] == close["reason"]
    else:
        assert frame["reason"].startswith(close["reason_prefix"])
    assert schema_errors(SERVER, frame) == []
    if "schema_rejects" not in example:
        # not JSON, or msgpack that does not decode: nothing for the schema to judge
        assert "text" in example or "msgpack" in example
        return
    value = decode(data)
    refused = bool(schema_errors(CLIENT, value)) if isinstance(value, dict) else True
    assert refused is example["schema_rejects"], schema_errors(CLIENT, value)
    assert example["schema_rejects"] or example["why"]


# --- the schema itself --------------------------------------------------------------


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for name in ("ClientFrame", "ServerFrame"):
        assert [option["$ref"] for option in SCHEMA["$defs"][name]["oneOf"]]


ID_SAMPLES = [
    "0",
    "1",
    "7",
    "10",
    "999999999999999",
    "1000000000000000",
    "1825792000000001",
    "8999999999999999",
    "9000000000000000",
    "9007199254740989",
    "9007199254740990",
    str(MAX_ID - 1),
    str(MAX_ID),
    str(MAX_ID + 1),
    "9007199254740999",
    "9007199254741000",
    "9007199254750991",
    "9007199264740991",
    "9099999999999999",
    "9999999999999999",
    "10000000000000000",
    "00",
    "01",
    "0000000000000001",
    "0009007199254740",
    "00000000000000001",
    "",
    "-1",
    "+1",
    " 1",
    "1 ",
    "1e3",
    "1.0",
    "0x1",
    "\u0661",  # ARABIC-INDIC DIGIT ONE: a digit, but not ASCII
]


@pytest.mark.parametrize("text", ID_SAMPLES)
def test_id_patterns_agree_with_the_server(text: str) -> None:
    try:
        accepted = parse_id(text, "id") >= 0
    except Exception:
        accepted = False
    client_ok = not schema_errors(validator("ClientId"), text)
    assert client_ok is accepted, text
    # what the server writes: the canonical form of the same numbers
    server_ok = not schema_errors(validator("Id"), text)
    assert server_ok is (accepted and str(int(text)) == text), text


@pytest.mark.parametrize("number", [0, 1, MAX_ID - 1, MAX_ID, -1, 2**64])
def test_integer_ids_agree_with_the_server(number: int) -> None:
    assert (not schema_errors(validator("ClientId"), number)) is (0 <= number < MAX_ID)
    # the server never writes an id as a number, in either encoding
    assert schema_errors(validator("Id"), number)


def test_schema_enums_are_the_servers() -> None:
    defs = SCHEMA["$defs"]
    assert set(defs["GapReason"]["enum"]) == set(typing.get_args(GapReason))
    assert set(defs["GapPolicy"]["enum"]) == set(typing.get_args(GapPolicy))
    assert set(defs["Encoding"]["enum"]) == set(typing.get_args(Encoding))
    assert set(defs["UpdateType"]["enum"]) == UPDATE_TYPES
    assert {(c["const"], c["title"]) for c in defs["CloseCode"]["oneOf"]} == {
        (int(code), code.name) for code in CloseCode
    }
    shard = defs["Shard"]["prefixItems"]
    assert shard[0]["maximum"] == MAX_SHARDS - 1 and shard[1]["maximum"] == MAX_SHARDS


@pytest.mark.parametrize("code", [int(code) for code in CloseCode])
def test_close_resumable_is_fixed_by_the_code(code: int) -> None:
    retry = 1000 if code in (4003, 4004, 4005) else None
    frame = {
        "op": "close",
        "code": code,
        "reason": "r",
        "resumable": is_resumable(code),
        "retry_after_ms": retry,
    }
    assert schema_errors(SERVER, frame) == []
    assert schema_errors(SERVER, {**frame, "resumable": not is_resumable(code)})
    if retry is not None:
        assert schema_errors(SERVER, {**frame, "retry_after_ms": None})


@pytest.mark.parametrize(
    "frame",
    [
        {"op": "close", "code": 1006, "reason": "", "resumable": True, "retry_after_ms": None},
        {
            "op": "close",
            "code": 4500,
            "reason": "x" * 124,
            "resumable": False,
            "retry_after_ms": None,
        },
        {"op": "heartbeat_ack", "acked": 5},
        {"op": "heartbeat_ack"},
        {"op": "updates", "updates": []},
        {"op": "updates", "updates": [{"update_id": "1"}]},
        {"op": "updates", "updates": [{"update_id": "1", "message": {}, "poll": {}}]},
        {"op": "updates", "updates": [{"update_id": "1", "inline_query": {}}]},
        {
            "op": "result",
            "id": "r",
            "ok": False,
            "error": {"ok": False, "error_code": 400, "code": "X", "description": ""},
        },
        {"op": "result", "id": "r", "ok": True},
        {
            "op": "gap",
            "reason": "trimmed",
            "oldest": None,
            "newest": None,
            "epoch": "e",
            "action": "fail",
        },
        {"op": "reconnect", "reason": "draining", "deadline_ms": 1, "extra": 1},
        {
            "op": "ready",
            "bot": {"id": 1, "username": "a_bot"},
            "consumer": "default",
            "shard": [0, 1],
            "epoch": "e",
            "cursor": {"epoch": "e", "update_id": "0"},
            "head": "0",
            "resumed": False,
        },
        {
            "op": "hello",
            "v": 2,
            "connection_id": "c",
            "heartbeat_interval_ms": 1,
            "retention_s": 1,
            "auth_required": False,
            "limits": {},
        },
    ],
)
def test_the_schema_refuses_what_the_server_never_sends(frame: dict[str, Any]) -> None:
    assert schema_errors(SERVER, frame), frame


def test_core_frames_with_every_encoding_follow_the_schema() -> None:
    # one connection's whole life in each encoding, every frame checked
    for encoding in ("json", "msgpack"):
        conn = ServerConnection(connection_id="c", limits=Limits(), authenticated=False, now=0.0)
        conn.receive_frame(json_dumps({"op": "heartbeat"}).decode(), 0.0)
        conn.receive_frame(
            json_dumps(
                {"op": "identify", "token": "t", "encoding": encoding, "on_gap": "oldest"}
            ).decode(),
            0.0,
        )
        conn.signal_gap(reason="retention", oldest=5, newest=9, epoch="e")
        conn.accept(
            bot_id=3, bot_username="b_bot", epoch="e", cursor=Cursor("e", 4), head=9, resumed=False
        )
        conn.updates_sent(5)
        conn.receive_frame(pack({"op": "heartbeat", "ack": 5}), 0.0)
        conn.receive_frame(pack({"op": "request", "id": "r", "method": "getMe"}), 0.0)
        conn.send_result("r", ok=True, result={"id": "3"})
        conn.start_drain(deadline_ms=100, now=0.0)
        conn.tick(1.0)
        frames = conn.data_to_send()
        ops = [decode(frame)["op"] for frame in frames]
        assert ops == [
            "hello",
            "heartbeat_ack",
            "gap",
            "ready",
            "heartbeat_ack",
            "result",
            "reconnect",
            "close",
        ]
        for frame in frames:
            assert schema_errors(SERVER, decode(frame)) == []
