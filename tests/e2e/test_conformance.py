"""The gateway conformance suite (``gateway.conformance``) against the test stack, and
against a server broken on purpose: a proxy that flips one behaviour must make the
suite fail, naming the spec section."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request, Response

from gateway.conformance import Options, run_suite
from shared.settings import Settings
from tests.api import create_user
from tests.conftest import Process, Stack, running, unique, wait_s

pytestmark = pytest.mark.asyncio

# The one check no deployment lets the suite provoke.
ALWAYS_SKIPPED = {"gap.retention"}


@pytest.fixture(scope="module")
def conformance_gateway(stack: Stack) -> Iterator[Process]:
    """A gateway of the stack with timeouts short enough for every check to run."""
    gateway = stack.new_gateway(
        "conformance", BOTGW_IDENTIFY_TIMEOUT="1.5", BOTGW_HEARTBEAT_INTERVAL="3"
    )
    with running(gateway) as process:
        yield process


@pytest.fixture(scope="module")
async def user_token(settings: Settings) -> str:
    return (await create_user(settings, unique("conf"))).token


async def test_the_suite_passes_against_the_stack(
    stack: Stack, conformance_gateway: Process, user_token: str
) -> None:
    options = Options(
        rest=stack.rest_url,
        # two workers: the second one for the takeover across workers
        gateways=(conformance_gateway.ws_url, stack.ws_url),
        user_token=user_token,
        timeout=wait_s(10),
        max_wait=wait_s(8),
    )
    results = await run_suite(options)
    failed = [r.line() for r in results if r.status == "FAIL"]
    assert not failed, "\n".join(failed)
    skipped = {r.id for r in results if r.status == "SKIP"}
    assert skipped == ALWAYS_SKIPPED, [r.line() for r in results if r.status == "SKIP"]
    assert len(results) > 50


# --- a deliberately broken server ------------------------------------------------

Flip = Callable[[dict[str, Any]], dict[str, Any]]


def _drop_resumed(frame: dict[str, Any]) -> dict[str, Any]:
    if frame.get("op") == "ready":
        frame.pop("resumed", None)
    return frame


def _ack_close_as_bad_frame(frame: dict[str, Any]) -> dict[str, Any]:
    if frame.get("op") == "close" and frame.get("code") == 4506:
        frame["code"] = 4500
    return frame


class BrokenProxy:
    """A WebSocket proxy in front of a gateway that rewrites the server's frames with
    ``flip``; the WebSocket close code follows what ``flip`` makes of a ``close`` frame
    with that code. Upgrade refusals and client frames pass through unchanged."""

    def __init__(self, upstream: str, flip: Flip) -> None:
        self.upstream = upstream
        self.flip = flip
        self.opened: dict[ServerConnection, ClientConnection] = {}
        self.server: Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        port = next(iter(self.server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}/bot/ws"

    async def __aenter__(self) -> BrokenProxy:
        self.server = await serve(
            self.relay,
            "127.0.0.1",
            0,
            process_request=self.upgrade,
            ping_interval=None,
            max_size=None,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def upgrade(self, connection: ServerConnection, request: Request) -> Response | None:
        """Open the upstream socket first: its refusal is the proxy's refusal."""
        headers = {}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        try:
            upstream = await websockets.connect(
                self.upstream, additional_headers=headers, max_size=None, ping_interval=None
            )
        except InvalidStatus as exc:
            refused = exc.response
            return Response(
                refused.status_code, refused.reason_phrase, Headers(refused.headers), refused.body
            )
        self.opened[connection] = upstream
        return None

    def _rewrite(self, message: str | bytes) -> str | bytes:
        if isinstance(message, str):
            return json.dumps(self.flip(json.loads(message)))
        return bytes(msgpack.packb(self.flip(msgpack.unpackb(message))))

    async def relay(self, client: ServerConnection) -> None:
        upstream = self.opened.pop(client)

        async def to_server() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for message in client:
                    await upstream.send(message)
            await upstream.close()

        forward = asyncio.create_task(to_server())
        with contextlib.suppress(ConnectionClosed):
            async for message in upstream:
                await client.send(self._rewrite(message))
        code = upstream.close_code or 1000
        rewritten = self.flip({"op": "close", "code": code}).get("code", code)
        await client.close(1011 if rewritten == 1006 else rewritten, upstream.close_reason or "")
        await forward


@pytest.mark.parametrize(
    ("flip", "line"),
    [
        (_drop_resumed, "FAIL §6.2 ready fields: ready: resumed must be"),
        (
            _ack_close_as_bad_frame,
            "FAIL §5.2 an ack beyond the delivered updates closes 4506: an ack beyond every "
            "delivered update: expected close 4506, got close 4500",
        ),
    ],
    ids=["ready-without-resumed", "4506-rewritten-to-4500"],
)
async def test_a_server_broken_on_purpose_fails_naming_the_section(
    stack: Stack,
    conformance_gateway: Process,
    user_token: str,
    flip: Flip,
    line: str,
) -> None:
    checks = ["hello.fields", "ready.fields", "ack.beyond_delivered"]
    async with BrokenProxy(conformance_gateway.ws_url, flip) as proxy:
        command = [
            sys.executable, "-m", "gateway.conformance",
            "--rest", stack.rest_url, "--gateway", proxy.url, "--user-token", user_token,
            "--only", ",".join(checks), "--timeout", str(wait_s(10)),
        ]  # fmt: skip
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), wait_s(120))
    output = stdout.decode()
    assert process.returncode == 1, output + stderr.decode()
    lines = output.splitlines()
    # only the flipped behaviour fails: the proxy passes everything else through
    [failure] = [text for text in lines if text.startswith("FAIL")]
    assert failure.startswith(line), output
    assert lines[-1] == "2 passed, 1 failed, 0 skipped", output


async def test_the_command_line_reports_json_and_exits_0_when_all_pass(
    stack: Stack, conformance_gateway: Process, user_token: str
) -> None:
    command = [
        sys.executable, "-m", "gateway.conformance",
        "--rest", stack.rest_url, "--gateway", conformance_gateway.ws_url,
        "--user-token", user_token, "--only", "hello,§6.2,gap.retention", "--json",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), wait_s(120))
    assert process.returncode == 0, stdout.decode() + stderr.decode()
    report = json.loads(stdout)
    assert report["counts"] == {"PASS": 2, "FAIL": 0, "SKIP": 1}
    assert [r["id"] for r in report["results"]] == ["hello.fields", "ready.fields", "gap.retention"]
    assert all(r["section"].startswith("§") for r in report["results"])
