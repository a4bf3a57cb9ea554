"""A minimal WebSocket client for the load generators (RFC 6455, no extensions).

The agents hold thousands of connections on one CPU while the server under test
has the other: the client's cost per handshake and per frame decides whether the
bench measures the server or itself. aiohttp's client spends about as much CPU on
a handshake as the gateway does; this one writes a fixed upgrade request, checks
the ``101`` answer and its accept key, and parses frames straight from
``data_received``. It offers the part of aiohttp's ``ClientWebSocketResponse``
the agents use (``receive``, ``send_str``, ``close``, ``closed``, ``close_code``,
``get_extra_info``), so both clients run the same agent code; aiohttp stays in use
where compression is wanted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import socket
import struct
from collections import deque
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import aiohttp

__all__ = ["RawWebSocket", "connect"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA
_MAX_HEAD = 16 * 1024
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # Linux


class Message(NamedTuple):
    type: aiohttp.WSMsgType
    data: Any


_CLOSED = Message(aiohttp.WSMsgType.CLOSED, None)


def _mask(data: bytes, key: bytes) -> bytes:
    if not data:
        return data
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def _frame(opcode: int, payload: bytes) -> bytes:
    key = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + key + _mask(payload, key)


class RawWebSocket(asyncio.Protocol):
    """One client connection: the handshake, then frames in, masked frames out."""

    def __init__(self, loop: asyncio.AbstractEventLoop, request: bytes, accept: bytes) -> None:
        self.loop = loop
        self._request = request
        self._accept = accept
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = loop.create_future()
        self._buffer = bytearray()
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._fragment_opcode = 0
        self._messages: deque[Message] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.close_code: int | None = None

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.write(self._request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._upgraded:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_HEAD:
                    self._fail("the upgrade answer is too long")
                return
            head = bytes(self._buffer[:end]).decode("latin-1")
            del self._buffer[: end + 4]
            error = self._check_answer(head)
            if error is not None:
                self._fail(error)
                return
            self._upgraded = True
            if not self.handshake.done():
                self.handshake.set_result(None)
        self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.close_code is None:
            self.close_code = 1006
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(f"connection lost ({exc})"))
        self._wake()

    # -- the handshake and frames -------------------------------------------------

    def _check_answer(self, head: str) -> str | None:
        lines = head.split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or status[1] != "101":
            return f"the server answered {lines[0]!r}, not 101"
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept", "").encode() != self._accept:
            return "wrong Sec-WebSocket-Accept"
        return None

    def _fail(self, reason: str) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(ConnectionError(reason))
        self.close_code = 1002
        if self.transport is not None:
            self.transport.abort()

    def _parse(self) -> None:
        buf = self._buffer
        pos = 0
        while True:
            if len(buf) - pos < 2:
                break
            first, second = buf[pos], buf[pos + 1]
            if second & 0x80:
                self._fail("the server masked a frame")
                return
            length = second & 0x7F
            offset = pos + 2
            if length == 126:
                if len(buf) - offset < 2:
                    break
                (length,) = struct.unpack_from("!H", buf, offset)
                offset += 2
            elif length == 127:
                if len(buf) - offset < 8:
                    break
                (length,) = struct.unpack_from("!Q", buf, offset)
                offset += 8
            if len(buf) - offset < length:
                break
            payload = bytes(buf[offset : offset + length])
            pos = offset + length
            self._frame_in(first & 0x80 != 0, first & 0x0F, payload)
            if self.transport is None or self.transport.is_closing():
                break
        if pos:
            del buf[:pos]

    def _frame_in(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode == _PING:
            self._write(_frame(_PONG, payload))
            return
        if opcode == _PONG:
            return
        if opcode == _CLOSE:
            self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self._write(_frame(_CLOSE, payload[:2]))
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            self._wake()
            return
        if opcode == 0:  # continuation
            self._fragments.append(payload)
            if not fin:
                return
            payload = b"".join(self._fragments)
            opcode, self._fragments = self._fragment_opcode, []
        elif not fin:
            self._fragment_opcode, self._fragments = opcode, [payload]
            return
        kind = aiohttp.WSMsgType.TEXT if opcode == _TEXT else aiohttp.WSMsgType.BINARY
        self._messages.append(Message(kind, payload))
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    # -- what the agents call -----------------------------------------------------

    async def receive(self) -> Message:
        while not self._messages:
            if self.closed:
                return _CLOSED
            self._waiter = self.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._messages.popleft()

    async def send_str(self, text: str) -> None:
        if self.closed:
            raise ConnectionError("the connection is closed")
        self._write(_frame(_TEXT, text.encode()))

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._write(_frame(_CLOSE, struct.pack("!H", 1000)))
            if self.close_code is None:
                self.close_code = 1000
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def get_extra_info(self, name: str) -> Any:
        return None if self.transport is None else self.transport.get_extra_info(name)


async def connect(
    url: str,
    *,
    headers: dict[str, str],
    local_addr: tuple[str, int] | None = None,
    timeout: float = 60.0,
) -> RawWebSocket:
    """Open ``ws://host:port/path`` and complete the upgrade."""
    parts = urlsplit(url)
    if parts.scheme != "ws" or parts.hostname is None:
        raise ValueError(f"only ws:// URLs are supported: {url}")
    host, port = parts.hostname, parts.port or 80
    key = base64.b64encode(os.urandom(16))
    accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
    lines = [
        f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key.decode()}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if local_addr is not None:
                # the port is chosen at connect(), per destination: a plain bind to
                # port 0 searches the whole range for a port free for every
                # destination, which grows costly with thousands of TIME_WAIT sockets
                sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind(local_addr)
            await loop.sock_connect(sock, (host, port))
        except BaseException:
            sock.close()
            raise
        _, ws = await loop.create_connection(lambda: RawWebSocket(loop, request, accept), sock=sock)
        try:
            await ws.handshake
        except BaseException:
            if ws.transport is not None:
                ws.transport.abort()
            raise
    return ws
