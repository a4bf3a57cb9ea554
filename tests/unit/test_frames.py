"""Tests of the gateway protocol's wire format (gateway/frames.py): close codes and
update batches. Client frames are tested through the core (tests/unit/test_protocol.py).
"""

from __future__ import annotations

import pytest

from gateway.frames import (
    FRAME_MAX_BYTES,
    FRAME_MAX_UPDATES,
    CloseCode,
    Encoding,
    encode_updates_frame,
    frames_for,
    is_resumable,
    is_terminal,
)
from shared.codecs import json_dumps, json_loads, pack, unpack


def test_close_code_ranges() -> None:
    for code in CloseCode:
        if 4000 <= code < 4500 or code in (CloseCode.GOING_AWAY, CloseCode.SERVICE_RESTART):
            assert is_resumable(code), code
        else:
            assert not is_resumable(code), code
    assert is_resumable(1006) and is_resumable(4499) and not is_resumable(4999)
    assert not is_resumable(1002) and not is_resumable(3000)
    # terminal: the range 4500-4999 only, which the client never reconnects after
    assert [code for code in CloseCode if is_terminal(code)] == [
        code for code in CloseCode if code >= 4500
    ]
    assert is_terminal(4999) and not is_terminal(5000) and not is_terminal(4499)
    assert not is_terminal(CloseCode.NORMAL) and not is_resumable(CloseCode.NORMAL)


UPDATE = {
    "update_id": "1826000000000001",
    "message": {
        "message_id": "1",
        "from": {"id": "4242", "is_bot": False, "first_name": "Ada"},
        "chat": {"id": "4242", "type": "private"},
        "date": 1700000000,
        "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
    },
}


@pytest.mark.parametrize("count", [0, 1, 3, 20])
def test_encode_updates_frame_json(count: int) -> None:
    updates = [{**UPDATE, "update_id": str(i), "text": "h\u00e9 \u2603"} for i in range(count)]
    frame = encode_updates_frame([json_dumps(update) for update in updates], "json")
    assert isinstance(frame, bytes)  # sent as a text message: it is UTF-8
    assert json_loads(frame.decode()) == {"op": "updates", "updates": updates}


@pytest.mark.parametrize("count", [0, 1, 3, 20, 70_000])
def test_encode_updates_frame_msgpack(count: int) -> None:
    # 70 000 needs the 32-bit array header.
    updates = [{"update_id": str(i)} for i in range(count)]
    frame = encode_updates_frame([pack(update) for update in updates], "msgpack")
    assert isinstance(frame, bytes)
    assert unpack(frame) == {"op": "updates", "updates": updates}


def test_encode_updates_frame_is_deterministic() -> None:
    encoded = [pack(UPDATE)]
    first = encode_updates_frame(encoded, "msgpack")
    assert isinstance(first, bytes) and first == encode_updates_frame(encoded, "msgpack")
    assert unpack(first)["updates"] == [UPDATE]


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
def test_a_batch_is_split_into_frames_bounded_in_count_and_size(encoding: Encoding) -> None:
    encode = json_dumps if encoding == "json" else pack
    decode_frame = json_loads if encoding == "json" else unpack
    # small updates hit the count bound, large ones the size bound, a huge one goes alone
    sizes = [10] * 250 + [20_000] * 30 + [FRAME_MAX_BYTES * 2] + [10] * 5
    updates = [{"update_id": str(i), "text": "x" * size} for i, size in enumerate(sizes, 1)]
    frames = frames_for([encode(update) for update in updates], encoding)
    decoded = [decode_frame(frame) for frame in frames]
    assert all(frame.keys() == {"op", "updates"} and frame["op"] == "updates" for frame in decoded)
    assert [update for frame in decoded for update in frame["updates"]] == updates
    assert all(1 <= len(frame["updates"]) <= FRAME_MAX_UPDATES for frame in decoded)
    for frame, value in zip(frames, decoded, strict=True):
        if len(value["updates"]) > 1:
            assert len(frame) <= FRAME_MAX_BYTES + 64  # the items, commas and the envelope
    assert [len(frame["updates"]) for frame in decoded][:2] == [FRAME_MAX_UPDATES] * 2
    assert any(frame["updates"][0]["text"] == "x" * FRAME_MAX_BYTES * 2 for frame in decoded)
    assert frames_for([], encoding) == []
