"""Every kind of server frame a real gateway sends, in both encodings, checked against
docs/protocol.schema.json: hello, ready, updates of every type, heartbeat_ack,
result (ok and error), gap, reconnect, and close frames of the codes a client can
provoke from outside.

Each frame is validated as it arrives, and so is the WebSocket message kind: hello
and everything before identify is a text message (JSON), everything after it is
in the encoding identify chose. After a close frame the WebSocket close carries
the same code and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from websockets.asyncio.client import ClientConnection

from shared.codecs import pack, unpack
from shared.settings import Settings
from shared.store import Store
from tests.api import Scene, build_scene
from tests.conftest import Stack, running, unique, wait_s
from tests.gwtools import ingest, new_bot

pytestmark = pytest.mark.asyncio

SCHEMA: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "protocol.schema.json").read_text()
)
SERVER_FRAME = Draft202012Validator(
    {"$schema": SCHEMA["$schema"], "$defs": SCHEMA["$defs"], "$ref": "#/$defs/ServerFrame"}
)
ENCODINGS = ["json", "msgpack"]
UPDATE_TYPES = {
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "message_reaction",
    "poll",
    "poll_answer",
}


@dataclass
class Wire:
    """A raw client socket whose every received frame is checked against the schema."""

    ws: ClientConnection
    encoding: str
    identified: bool = False  # an identify the server accepts was sent: frames follow encoding
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        data = await asyncio.wait_for(self.ws.recv(), wait_s(timeout))
        binary = self.identified and self.encoding == "msgpack"
        assert isinstance(data, bytes if binary else str), (self.encoding, data[:80])
        value = unpack(data) if isinstance(data, bytes) else json.loads(data)
        errors = [error.message for error in SERVER_FRAME.iter_errors(value)]
        assert errors == [], (value, errors)
        self.seen.append(value)
        assert isinstance(value, dict)
        return value

    async def until(
        self, found: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        """Frames up to the first one ``found`` accepts (every one of them checked)."""
        deadline = asyncio.get_running_loop().time() + wait_s(timeout)
        while True:
            left = deadline - asyncio.get_running_loop().time()
            assert left > 0, f"no such frame; last ones: {self.seen[-3:]}"
            frame = await self.recv(left)
            if found(frame):
                return frame

    async def send(self, frame: dict[str, Any]) -> None:
        """In the connection's own encoding: a msgpack client sends binary frames."""
        await self.ws.send(pack(frame) if self.encoding == "msgpack" else json.dumps(frame))

    async def identify(self, **fields: Any) -> dict[str, Any]:
        await self.send({"op": "identify", "encoding": self.encoding, **fields})
        self.identified = True
        return await self.recv()

    async def closed_with(self, code: int, frame: dict[str, Any] | None = None) -> dict[str, Any]:
        """The next frames (after ``frame``, if it is not the close already) end with a
        close frame of ``code``; the WebSocket closes alike."""
        if frame is None or frame["op"] != "close":
            frame = await self.until(lambda f: f["op"] == "close")
        assert frame["code"] == code, frame
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(self.ws.recv(), wait_s(10))
        assert self.ws.close_code == code and self.ws.close_reason == frame["reason"]
        return frame


async def connect(url: str, token: str | None, encoding: str) -> Wire:
    headers = {"Authorization": f"Bot {token}"} if token is not None else {}
    ws = await websockets.connect(url, additional_headers=headers, max_size=16 * 1024 * 1024)
    wire = Wire(ws, encoding)
    hello = await wire.recv()
    assert hello["op"] == "hello" and hello["auth_required"] is (token is None)
    return wire


@pytest.fixture
async def scene(stack: Stack, settings: Settings) -> AsyncIterator[Scene]:
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        yield await build_scene(http, settings, "ps", private=True, group="Schema")


async def every_update_type(scene: Scene) -> None:
    """Through the public API: what makes each type of update reach the bot (the
    scene's /start and the group's my_chat_member are in the log already)."""
    said = await scene.as_user("sendMessage", chat_id=scene.private, text="helo")
    await scene.as_user(
        "editMessageText", chat_id=scene.private, message_id=said["message_id"], text="hello"
    )
    keyboard = {"inline_keyboard": [[{"text": "Red", "callback_data": "red"}]]}
    asked = await scene.as_bot(
        "sendMessage", chat_id=scene.bot_chat, text="Pick", reply_markup=keyboard
    )
    await scene.as_user(
        "pressButton", chat_id=scene.private, message_id=asked["message_id"], callback_data="red"
    )
    await scene.as_user(
        "setMessageReaction", chat_id=scene.private, message_id=asked["message_id"], reaction=["👍"]
    )
    poll = await scene.as_bot(
        "sendPoll", chat_id=scene.group, question="Lunch?", options=["a", "b"], is_anonymous=False
    )
    await scene.as_user(
        "answerPoll", chat_id=scene.group, message_id=poll["message_id"], option_ids=[1]
    )


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_a_whole_session(stack: Stack, scene: Scene, encoding: str) -> None:
    wire = await connect(stack.ws_url, scene.bot.token, encoding)
    await wire.send({"op": "heartbeat"})
    assert await wire.recv() == {"op": "heartbeat_ack", "acked": None}  # JSON: not identified
    ready = await wire.identify(consumer=unique("schema"))
    assert ready["op"] == "ready" and ready["resumed"] is False
    await every_update_type(scene)
    kinds: set[str] = set()
    last = "0"
    while kinds != UPDATE_TYPES:
        frame = await wire.until(lambda f: f["op"] == "updates")
        for update in frame["updates"]:
            kinds.update(key for key in update if key != "update_id")
            assert int(update["update_id"]) > int(last)
            last = update["update_id"]
    await wire.send({"op": "heartbeat", "ack": last})
    ack = await wire.until(lambda f: f["op"] == "heartbeat_ack")
    assert ack["acked"] == last

    await wire.send({"op": "request", "id": "me", "method": "getMe"})
    result = await wire.until(lambda f: f["op"] == "result")
    assert result["id"] == "me" and result["ok"] is True
    assert result["result"]["username"] == scene.bot.username
    # errors of REST, and of the gateway itself
    await wire.send(
        {"op": "request", "id": "nowhere", "method": "sendMessage", "params": {"chat_id": "1"}}
    )
    await wire.send({"op": "request", "id": "poll", "method": "getUpdates"})
    errors: dict[str, dict[str, Any]] = {}
    while len(errors) < 2:
        result = await wire.until(lambda f: f["op"] == "result")
        assert result["ok"] is False
        errors[result["id"]] = result["error"]
    assert errors["poll"]["code"] == "METHOD_NOT_ALLOWED_HERE"
    assert 400 <= errors["nowhere"]["error_code"] < 500

    await wire.send({"op": "ack", "update_id": str(int(last) + 1_000_000)})
    close = await wire.closed_with(4506)
    assert close["resumable"] is False
    assert {f["op"] for f in wire.seen} == {
        "hello",
        "heartbeat_ack",
        "ready",
        "updates",
        "result",
        "close",
    }


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_gaps(stack: Stack, settings: Settings, store: Store, encoding: str) -> None:
    bot = await new_bot(settings, "sg")
    head = 0
    for seq in range(1, 4):
        head = await ingest(store, bot.bot_id, seq)
    epoch = await store.log.epoch(bot.bot_id)
    elsewhere = {"epoch": "0" * 16, "update_id": "5"}
    assert epoch != elsewhere["epoch"]

    wire = await connect(stack.ws_url, bot.token, encoding)
    gap = await wire.identify(cursor=elsewhere)
    assert gap["op"] == "gap" and gap["reason"] == "epoch" and gap["action"] == "fail"
    await wire.closed_with(4504)
    for on_gap in ("oldest", "newest"):
        wire = await connect(stack.ws_url, bot.token, encoding)
        gap = await wire.identify(cursor=elsewhere, on_gap=on_gap)
        assert gap["op"] == "gap" and gap["action"] == on_gap and gap["epoch"] == epoch
        ready = await wire.recv()
        assert ready["op"] == "ready"
        if on_gap == "oldest":
            await wire.until(lambda f: f["op"] == "updates")
        await wire.ws.close()
    # a cursor beyond the newest update of the log names updates it does not have
    beyond = {"epoch": epoch, "update_id": str(head + 1_000_000)}
    wire = await connect(stack.ws_url, bot.token, encoding)
    gap = await wire.identify(cursor=beyond, on_gap="newest")
    assert gap["op"] == "gap" and gap["reason"] == "tail_lost"
    assert (await wire.recv())["op"] == "ready"
    await wire.ws.close()


@pytest.mark.parametrize("encoding", ENCODINGS)
async def test_closes(stack: Stack, settings: Settings, encoding: str) -> None:
    bot = await new_bot(settings, "sc")
    # before identify every frame is JSON
    wire = await connect(stack.ws_url, bot.token, encoding)
    await wire.send({"op": "dance"})
    assert (await wire.closed_with(4500))["reason"] == "unknown op 'dance'"
    # a token in identify that is no bot's: the close is in the encoding identify named
    wire = await connect(stack.ws_url, None, encoding)
    await wire.closed_with(4501, await wire.identify(token="bot_1:" + "z" * 43))

    consumer = unique("c")
    first = await connect(stack.ws_url, bot.token, encoding)
    assert (await first.identify(consumer=consumer))["op"] == "ready"
    second = await connect(stack.ws_url, bot.token, encoding)
    assert (await second.identify(consumer=consumer))["op"] == "ready"
    await first.closed_with(4502)
    await second.send({"op": "resume"})
    await second.closed_with(4500)
    # over max_frame_bytes (64 KiB) and within the WebSocket layer's 1 MiB
    wire = await connect(stack.ws_url, bot.token, encoding)
    assert (await wire.identify(consumer=unique("c")))["op"] == "ready"
    await wire.send({"op": "heartbeat", "pad": "x" * 70_000})
    await wire.closed_with(4503)


async def test_limits_timeouts_and_drain_on_a_worker_of_its_own(
    stack: Stack, settings: Settings
) -> None:
    with running(
        stack.new_gateway(
            unique("schema-gw"),
            BOTGW_IDENTIFY_TIMEOUT="0.5",
            BOTGW_HEARTBEAT_INTERVAL="1",
            BOTGW_DRAIN_SECONDS="1",
            BOTGW_WS_MAX_FRAMES_PER_SECOND="5",
            BOTGW_WS_MAX_CONNECTIONS_PER_BOT="2",
            BOTGW_WS_IDENTIFY_PER_MINUTE="4",
        )
    ) as worker:
        url = worker.ws_url
        wire = await connect(url, None, "json")
        await wire.closed_with(4002)
        for encoding in ENCODINGS:
            bot = await new_bot(settings, "sl")
            wire = await connect(url, bot.token, encoding)
            assert (await wire.identify())["op"] == "ready"
            await wire.closed_with(4001)  # two silent heartbeat intervals

            flood = await connect(url, bot.token, encoding)
            assert (await flood.identify(consumer="flood"))["op"] == "ready"
            with contextlib.suppress(websockets.ConnectionClosed):
                for _ in range(20):
                    await flood.send({"op": "heartbeat"})
            assert (await flood.closed_with(4003))["retry_after_ms"] == 1000

            crowd = await new_bot(settings, "sm")
            held = []
            for index in range(2):
                one = await connect(url, crowd.token, encoding)
                assert (await one.identify(consumer=f"c{index}"))["op"] == "ready"
                held.append(one)
            one = await connect(url, crowd.token, encoding)
            refused = await one.closed_with(4004, await one.identify(consumer="c2"))
            assert refused["retry_after_ms"] > 0
            for one in held:
                await one.ws.close()

            eager = await new_bot(settings, "si")
            for _ in range(4):
                one = await connect(url, eager.token, encoding)
                assert (await one.identify())["op"] == "ready"
                await one.ws.close()
            one = await connect(url, eager.token, encoding)
            refused = await one.closed_with(4005, await one.identify())
            assert refused["retry_after_ms"] > 0

        bot = await new_bot(settings, "sd")
        draining = []
        for encoding in ENCODINGS:
            wire = await connect(url, bot.token, encoding)
            assert (await wire.identify(consumer=encoding))["op"] == "ready"
            draining.append(wire)
        worker.signal(signal.SIGTERM)
        for wire in draining:
            assert await wire.recv() == {
                "op": "reconnect",
                "reason": "draining",
                "deadline_ms": 1000,
            }
        for wire in draining:
            assert (await wire.closed_with(1012))["resumable"] is True
