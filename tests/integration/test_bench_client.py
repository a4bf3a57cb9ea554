"""The load generators' minimal WebSocket client against a real websockets server:
what the bench measures is only as right as the client that counts it."""

from __future__ import annotations

import asyncio
from http import HTTPStatus

import aiohttp
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from bench import wsclient

pytestmark = pytest.mark.asyncio


async def test_frames_of_every_size_fragments_pings_and_the_close_code() -> None:
    got: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        got.append(ws.request.headers["Authorization"])
        await ws.send('{"op":"hello"}')
        got.append(str(await ws.recv()))
        await ws.send(b"b" * 200)  # binary, 16-bit length
        await ws.send("x" * 70_000)  # 64-bit length
        await ws.send(["par", "tial"])  # fragmented into continuation frames
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)  # the client answered
        got.append("pong")
        await ws.close(4001, "bye")

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        ws = await wsclient.connect(
            f"ws://127.0.0.1:{port}/bot/ws", headers={"Authorization": "Bot t"}, timeout=5
        )
        hello = await ws.receive()
        assert (hello.type, hello.data) == (aiohttp.WSMsgType.TEXT, b'{"op":"hello"}')
        await ws.send_str('{"op":"identify"}')
        binary = await ws.receive()
        assert (binary.type, binary.data) == (aiohttp.WSMsgType.BINARY, b"b" * 200)
        assert (await ws.receive()).data == b"x" * 70_000
        assert (await ws.receive()).data == b"partial"
        closed = await asyncio.wait_for(ws.receive(), 5)
        assert closed.type is aiohttp.WSMsgType.CLOSED and ws.close_code == 4001
        assert ws.closed
    assert got == ["Bot t", '{"op":"identify"}', "pong"]


async def test_a_refused_upgrade_fails_the_connect() -> None:
    async def handler(ws: ServerConnection) -> None:
        await ws.close()

    def refuse(ws: ServerConnection, request: Request) -> Response:
        return ws.respond(HTTPStatus.UNAUTHORIZED, "no\n")

    async with serve(handler, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        with pytest.raises(ConnectionError, match="401"):
            await wsclient.connect(f"ws://127.0.0.1:{port}/", headers={}, timeout=5)
