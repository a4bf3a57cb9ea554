"""What the checks speak: raw gateway sockets, upgrade refusals and REST calls.

Nothing here knows the server's code: frames are decoded with ``json`` and
``msgpack`` exactly as ``docs/protocol.md`` §3 describes them (by message kind),
and every expectation a helper enforces names the section it comes from, so that
a failure says which part of the spec the server broke.

Exceptions: :class:`Failure` (an expectation not met; its message says what was
expected and what was seen) and :class:`Skip` (the check cannot be provoked on
this deployment), both raised by checks and by these helpers.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgpack
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

__all__ = [
    "DECIMAL",
    "UPDATE_TYPES",
    "Bot",
    "Conn",
    "Failure",
    "Frame",
    "Refusal",
    "Rest",
    "Skip",
    "check_close_frame",
    "connect",
    "describe",
    "refusal",
]

Frame = dict[str, Any]

#: A decimal id as the server writes it (§3): 1-16 ASCII digits.
DECIMAL = re.compile(r"[0-9]{1,16}")

#: The update types of §5.1 / §6.3, one of which each update carries.
UPDATE_TYPES = (
    "message",
    "edited_message",
    "callback_query",
    "my_chat_member",
    "message_reaction",
    "poll",
    "poll_answer",
)

# Server batches can be large while catching up (§14): accept a few MiB.
_MAX_INCOMING = 16 * 1024 * 1024
_MAX_REASON_BYTES = 123


class Failure(Exception):
    """The server did not do what the spec says; the message: expected vs seen."""


class Skip(Exception):
    """The check cannot be provoked from outside on this deployment; the reason why."""


@dataclass(frozen=True, slots=True)
class Bot:
    """A bot the suite connects as."""

    id: str
    username: str
    token: str


def describe(frame: Frame) -> str:
    """A short rendering of a received frame for a failure message."""
    if frame.get("op") == "close":
        return f"close {frame.get('code')} {frame.get('reason')!r}"
    text = json.dumps(frame, default=repr, ensure_ascii=False)
    return text if len(text) <= 240 else text[:237] + "..."


def _decode(data: str | bytes) -> Frame:
    """A server message as a frame: text is JSON, binary is msgpack (§3)."""
    try:
        value = json.loads(data) if isinstance(data, str) else msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        kind = "text frame is not JSON" if isinstance(data, str) else "binary frame is not msgpack"
        raise Failure(f"§3: a {kind}: {exc}") from None
    if not isinstance(value, dict) or not isinstance(value.get("op"), str):
        raise Failure(f"§3: a server frame must be an object with a string op, got {value!r:.200}")
    return value


def check_close_frame(frame: Frame) -> None:
    """The fields of a ``close`` frame (§6.8) and its resumable flag (§15)."""
    code, reason = frame.get("code"), frame.get("reason")
    resumable, retry = frame.get("resumable"), frame.get("retry_after_ms")
    if not isinstance(code, int) or isinstance(code, bool):
        raise Failure(f"§6.8: close.code must be an integer, got {code!r}")
    if not isinstance(reason, str) or len(reason.encode()) > _MAX_REASON_BYTES:
        raise Failure(f"§6.8: close.reason must be a string of at most 123 bytes, got {reason!r}")
    if not isinstance(resumable, bool):
        raise Failure(f"§6.8: close.resumable must be a boolean, got {resumable!r}")
    if retry is not None and (not isinstance(retry, int) or isinstance(retry, bool) or retry < 0):
        raise Failure(
            f"§6.8: close.retry_after_ms must be a non-negative integer or null: {retry!r}"
        )
    if 4000 <= code < 4500 and not resumable:
        raise Failure(f"§15: close code {code} is in the resumable range but resumable is false")
    if 4500 <= code < 5000 and resumable:
        raise Failure(f"§15: close code {code} is terminal but resumable is true")


class Conn:
    """One raw gateway socket after ``hello``: frames in and out, expectations."""

    def __init__(
        self,
        ws: ClientConnection,
        hello: Frame,
        *,
        timeout: float,
        pace: Callable[[Conn], Awaitable[None]] | None = None,
    ) -> None:
        self.ws = ws
        self.hello = hello
        self.timeout = timeout
        self._pace = pace
        self.binary: list[bool] = []  # kind of every frame received after hello
        # updates frames passed over by expect(), for the next updates() call
        self._held: list[Frame] = []

    @property
    def heartbeat_s(self) -> float:
        return float(self.hello.get("heartbeat_interval_ms", 30000)) / 1000

    @property
    def limits(self) -> dict[str, Any]:
        limits = self.hello.get("limits")
        return limits if isinstance(limits, dict) else {}

    # -- sending --

    async def send(self, frame: Frame, *, binary: bool = False) -> None:
        """A client frame, as JSON text or (``binary``) as a msgpack map."""
        await self.send_raw(msgpack.packb(frame) if binary else json.dumps(frame))

    async def send_raw(self, data: str | bytes, *, text: bool | None = None) -> None:
        await self.ws.send(data, text=text)

    async def identify(self, *, binary: bool = False, op: str = "identify", **fields: Any) -> None:
        """``identify`` with ``fields``, paced to the bot's identify limit when known."""
        if self._pace is not None:
            await self._pace(self)
        await self.send({"op": op, **fields}, binary=binary)

    # -- receiving --

    async def next(self, expecting: str, timeout: float | None = None) -> Frame:
        """The next frame; a Failure naming ``expecting`` on a timeout or a close."""
        wait = self.timeout if timeout is None else timeout
        try:
            data = await asyncio.wait_for(self.ws.recv(), wait)
        except TimeoutError:
            raise Failure(f"expected {expecting}, got nothing within {wait:g} s") from None
        except ConnectionClosed as exc:
            raise Failure(
                f"expected {expecting}, but the socket closed with {_ws_close(exc)} "
                "without a close frame before it"
            ) from None
        self.binary.append(isinstance(data, bytes))
        return _decode(data)

    async def expect(
        self, op: str, *, timeout: float | None = None, skip: Sequence[str] = ()
    ) -> Frame:
        """The next frame that is not one of ``skip``; it must be ``op``."""
        while True:
            frame = await self.next(op, timeout)
            if frame["op"] in skip:
                if frame["op"] == "updates":
                    self._held.append(frame)
                continue
            if frame["op"] != op:
                raise Failure(f"expected {op}, got {describe(frame)}")
            return frame

    async def expect_close(
        self,
        code: int,
        *,
        timeout: float | None = None,
        skip: Sequence[str] = ("updates", "heartbeat_ack"),
    ) -> Frame:
        """A ``close`` frame with ``code`` (after frames of ``skip``), then the WebSocket
        close with the same code and reason, and nothing in between (§6.8)."""
        frame = await self.expect("close", timeout=timeout, skip=skip)
        if frame.get("code") != code:
            raise Failure(f"expected close {code}, got {describe(frame)}")
        check_close_frame(frame)
        closed = await self.wait_closed()
        if closed != (code, frame["reason"]):
            raise Failure(
                f"§6.8: the close frame said {code} {frame['reason']!r}, the WebSocket closed "
                f"with {closed[0]} {closed[1]!r}"
            )
        return frame

    async def wait_closed(self, timeout: float | None = None) -> tuple[int | None, str]:
        """(code, reason) of the WebSocket close; a frame before it is a Failure."""
        wait = self.timeout if timeout is None else timeout
        try:
            data = await asyncio.wait_for(self.ws.recv(), wait)
        except TimeoutError:
            raise Failure(f"§6.8: the socket did not close within {wait:g} s") from None
        except ConnectionClosed as exc:
            received = exc.rcvd
            return (received.code, received.reason) if received is not None else (None, "")
        raise Failure(f"§6.8: a frame after the close frame: {describe(_decode(data))}")

    async def expect_ws_close(self, code: int, *, timeout: float | None = None) -> None:
        """The WebSocket closes with ``code`` and no frame before it."""
        wait = self.timeout if timeout is None else timeout
        try:
            data = await asyncio.wait_for(self.ws.recv(), wait)
        except TimeoutError:
            raise Failure(f"expected a WebSocket close {code}, nothing within {wait:g} s") from None
        except ConnectionClosed as exc:
            if exc.rcvd is None or exc.rcvd.code != code:
                raise Failure(f"expected a WebSocket close {code}, got {_ws_close(exc)}") from None
            return
        frame = _decode(data)
        raise Failure(f"expected a WebSocket close {code} without a frame, got {describe(frame)}")

    async def updates(
        self,
        until: Callable[[list[Frame]], bool],
        *,
        expecting: str = "updates",
        timeout: float | None = None,
        frames: list[Frame] | None = None,
    ) -> list[Frame]:
        """Updates from ``updates`` frames until ``until(updates so far)``; other frames
        than ``updates`` and ``heartbeat_ack`` are a Failure. Whole frames go to
        ``frames`` when given."""
        got: list[Frame] = []
        loop = asyncio.get_running_loop()
        wait = self.timeout if timeout is None else timeout
        deadline = loop.time() + wait
        while not until(got):
            left = deadline - loop.time()
            if left <= 0:
                raise Failure(f"expected {expecting}, got {_ids(got)} within {wait:g} s")
            if self._held:
                frame = self._held.pop(0)
            else:
                frame = await self.next(f"{expecting} (so far {_ids(got)})", left)
            if frame["op"] == "heartbeat_ack":
                continue
            if frame["op"] != "updates":
                raise Failure(f"expected {expecting} (so far {_ids(got)}), got {describe(frame)}")
            if frames is not None:
                frames.append(frame)
            batch = frame.get("updates")
            if not isinstance(batch, list):
                raise Failure(f"§6.3: updates.updates must be a list, got {describe(frame)}")
            got.extend(batch)
        return got

    async def quiet(self, period: float) -> list[Frame]:
        """Every frame that arrives within ``period`` seconds (the socket stays open),
        after the updates frames held back by :meth:`expect`."""
        got, self._held = self._held, []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + period
        while (left := deadline - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(self.ws.recv(), left)
            except TimeoutError:
                break
            except ConnectionClosed as exc:
                raise Failure(f"the socket closed with {_ws_close(exc)} unexpectedly") from None
            self.binary.append(isinstance(data, bytes))
            got.append(_decode(data))
        return got

    async def alive(self) -> None:
        """A heartbeat is answered: the connection is still open and served (§5.3)."""
        await self.send({"op": "heartbeat"})
        await self.expect("heartbeat_ack", skip=("updates",))

    async def close(self) -> None:
        await self.ws.close()


def _ids(updates: list[Frame]) -> str:
    ids = [str(u.get("update_id")) for u in updates]
    if len(ids) > 6:
        ids = [*ids[:3], f"... ({len(ids)} in all)", *ids[-2:]]
    return "[" + ", ".join(ids) + "]"


def _ws_close(exc: ConnectionClosed) -> str:
    received = exc.rcvd
    if received is None:
        return "no close frame (1006)"
    return f"{received.code} {received.reason!r}"


def _auth_headers(token: str | None, scheme: str) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"{scheme} {token}".strip()}


async def connect(
    url: str,
    *,
    token: str | None = None,
    scheme: str = "Bot",
    timeout: float,
    pace: Callable[[Conn], Awaitable[None]] | None = None,
) -> Conn:
    """A raw socket, upgraded with ``Authorization: <scheme> <token>`` (none without a
    token), and its ``hello``, which must come first and as text (§6.1)."""
    try:
        ws = await websockets.connect(
            url,
            additional_headers=_auth_headers(token, scheme),
            max_size=_MAX_INCOMING,
            open_timeout=timeout,
            close_timeout=timeout,
            ping_interval=None,  # no frames of the library's own: the checks count them
        )
    except InvalidStatus as exc:
        response = exc.response
        raise Failure(
            f"the upgrade was refused: HTTP {response.status_code} {response.body[:200]!r}"
        ) from None
    try:
        data = await asyncio.wait_for(ws.recv(), timeout)
    except (TimeoutError, ConnectionClosed) as exc:
        await ws.close()
        raise Failure(f"§6.1: expected hello right after the upgrade, got {exc!r}") from None
    if not isinstance(data, str):
        await ws.close()
        raise Failure("§6.1: hello must be sent as JSON text, it came as a binary frame")
    return Conn(ws, _decode(data), timeout=timeout, pace=pace)


@dataclass(frozen=True, slots=True)
class Refusal:
    """An upgrade answered with an HTTP status instead of 101 (§2)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def envelope(self) -> Frame:
        """The JSON error envelope of the refusal (§2), checked."""
        content_type = self.headers.get("content-type", "")
        if not content_type.startswith("application/json"):
            raise Failure(f"§2: a refusal must be application/json, got {content_type!r}")
        try:
            body = json.loads(self.body)
        except ValueError:
            raise Failure(f"§2: the refusal's body is not JSON: {self.body[:200]!r}") from None
        expected = {"ok": False, "error_code": self.status}
        if not isinstance(body, dict) or any(body.get(k) != v for k, v in expected.items()):
            raise Failure(f"§2: expected an envelope with {expected}, got {body!r:.200}")
        if not isinstance(body.get("code"), str) or not isinstance(body.get("description"), str):
            raise Failure(f"§2: the envelope needs a string code and description: {body!r:.200}")
        return body


async def refusal(
    url: str, *, token: str | None = None, scheme: str = "Bot", timeout: float
) -> Refusal:
    """The HTTP refusal of an upgrade that must be refused; a Failure if it opens."""
    try:
        ws = await websockets.connect(
            url,
            additional_headers=_auth_headers(token, scheme),
            open_timeout=timeout,
            ping_interval=None,
        )
    except InvalidStatus as exc:
        response = exc.response
        headers = {k.lower(): v for k, v in response.headers.raw_items()}
        return Refusal(response.status_code, headers, bytes(response.body))
    await ws.close()
    raise Failure("expected the upgrade to be refused over HTTP, it was accepted (101)")


@dataclass
class Rest:
    """The REST surfaces the suite sets itself up with (docs/api.md), as one user."""

    base_url: str
    user_token: str
    timeout: float
    http: httpx.AsyncClient = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.AsyncClient(base_url=self.base_url.rstrip("/"), timeout=self.timeout)

    async def raw(self, path: str, auth: str, params: Frame) -> tuple[int, Frame]:
        """(status, body) of ``POST path``, waiting out 429s (their ``retry_after``)."""
        for _ in range(8):
            response = await self.http.post(path, json=params, headers={"Authorization": auth})
            try:
                body = response.json()
            except ValueError:
                body = {"ok": False, "description": response.text[:200]}
            if response.status_code != 429:
                return response.status_code, body
            retry = (body.get("parameters") or {}).get("retry_after", 1)
            await asyncio.sleep(min(float(retry), 10.0))
        return response.status_code, body

    async def _call(self, path: str, auth: str, params: Frame) -> Any:
        status, body = await self.raw(path, auth, params)
        if status != 200 or body.get("ok") is not True:
            raise Failure(f"setup: POST {path} answered {status} {body!r:.300}")
        return body["result"]

    async def client(self, method: str, **params: Any) -> Any:
        return await self._call(f"/client/{method}", f"Bearer {self.user_token}", params)

    async def manage(self, method: str, **params: Any) -> Any:
        return await self._call(f"/manage/{method}", f"Bearer {self.user_token}", params)

    async def bot(self, token: str, method: str, **params: Any) -> Any:
        return await self._call(f"/bot/{method}", f"Bot {token}", params)

    async def close(self) -> None:
        await self.http.aclose()
