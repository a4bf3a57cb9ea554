"""Gateway hardening on real processes: tokens stay revoked, floods and idle sockets.

* a token rotated while the worker's pub/sub connection was down (the announcement
  lost) still closes the live socket: the sweep after the re-subscription finds
  it, and a token changed without any announcement is found by the slow periodic
  one (every ``BOTGW_WS_CREDENTIALS_RECHECK_SECONDS``, made 2 s here);
* a revoked bot's sockets close 4505 and its upgrades are refused with HTTP 412;
* a flood of WebSocket pings spends the frame budget (close 4003) without slowing
  another connection on the same worker;
* sockets that have not identified are capped per peer address (HTTP 429) and
  per worker (HTTP 503); identifying or closing frees the slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from shared import keys
from shared.ids import hash_secret
from shared.settings import Settings
from shared.store import Store
from tests.api import Account, BotAccount, create_bot, create_user, manage_api
from tests.conftest import Process, Stack, unique, wait_s
from tests.gwtools import collect, http_get, ingest, new_bot, open_raw, recv_frame, seq_of

pytestmark = pytest.mark.asyncio


@contextlib.asynccontextmanager
async def worker(stack: Stack, name: str, **env: str) -> AsyncIterator[Process]:
    """A gateway process of its own, with ``BOTGW_*`` settings of its own."""
    process = stack.new_gateway(unique(name), **env).start()
    try:
        await asyncio.to_thread(process.wait_healthy)
        yield process
    finally:
        process.stop()


def url_of(process: Process) -> str:
    return f"ws://127.0.0.1:{process.port}/bot/ws"


async def owned_bot(settings: Settings, prefix: str) -> tuple[Account, BotAccount]:
    owner = await create_user(settings, unique("own"))
    return owner, await create_bot(settings, owner, unique(prefix) + "_bot")


async def refusal(url: str, token: str | None = None, **connect: Any) -> InvalidStatus:
    """The HTTP refusal of an upgrade that must not open a WebSocket."""
    headers = {"Authorization": f"Bot {token}"} if token is not None else {}
    with pytest.raises(InvalidStatus) as refused:
        ws = await websockets.connect(url, additional_headers=headers, **connect)
        await ws.close()
    return refused.value


def envelope(refused: InvalidStatus) -> dict[str, Any]:
    response = refused.response
    assert response.headers["Content-Type"] == "application/json"
    body = json.loads(response.body)
    assert isinstance(body, dict) and body["ok"] is False
    assert body["error_code"] == response.status_code
    return body


async def closing_frame(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """Frames up to the server's ``close``, then the WebSocket close itself."""
    while True:
        frame = await recv_frame(ws, timeout)
        if frame["op"] == "close":
            await asyncio.wait_for(ws.wait_closed(), wait_s(timeout))
            assert ws.close_code == frame["code"]
            return frame


async def closed_within(ws: ClientConnection, timeout: float) -> tuple[dict[str, Any], float]:
    loop = asyncio.get_running_loop()
    started = loop.time()
    frame = await closing_frame(ws, timeout)
    return frame, loop.time() - started


async def metric(process: Process, name: str) -> float:
    text = (await http_get(f"http://127.0.0.1:{process.port}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    """Poll an async check until it holds (the server sees a close after the client)."""
    deadline = asyncio.get_running_loop().time() + wait_s(timeout)
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


# -- tokens stay revoked ---------------------------------------------------------


async def test_a_rotation_announced_while_pubsub_was_down_closes_the_socket(
    stack: Stack, settings: Settings, store: Store
) -> None:
    """The announcement is certainly lost: the worker is stopped while Redis drops
    its pub/sub connection and the token is rotated. The periodic sweep is an hour
    away on this worker, so only the sweep after the re-subscription can close."""
    owner, bot = await owned_bot(settings, "rs")
    async with (
        worker(stack, "resub", BOTGW_WS_CREDENTIALS_RECHECK_SECONDS="3600") as gateway,
        httpx.AsyncClient(base_url=stack.rest_url, timeout=wait_s(10)) as http,
    ):
        ws, ready = await open_raw(url_of(gateway), bot.token)
        assert ready["op"] == "ready"
        sweeps = await metric(gateway, "botgw_gateway_credential_checks_total")
        gateway.signal(signal.SIGSTOP)
        try:
            killed = await store.wire.call("CLIENT", "KILL", "TYPE", "pubsub")
            assert int(killed) >= 1  # this worker's, and the other processes'
            fresh = await manage_api(http, owner)("rotateToken", bot_id=str(bot.bot_id))
        finally:
            gateway.signal(signal.SIGCONT)
        # waited for up to 6 s; how soon it came is printed, not asserted
        frame, elapsed = await closed_within(ws, 6)
        print(f"closed {elapsed * 1000:.0f} ms after the worker resumed")
        assert frame["code"] == 4501 and frame["resumable"] is False
        assert await metric(gateway, "botgw_gateway_credential_checks_total") > sweeps
        # the old token is refused at the upgrade; the new one works
        refused = await refusal(url_of(gateway), bot.token)
        assert refused.response.status_code == 401
        assert envelope(refused)["code"] == "UNAUTHORIZED"
        ws, ready = await open_raw(url_of(gateway), fresh["token"])
        assert ready["op"] == "ready"
        await ws.close()


async def test_a_token_changed_without_any_announcement_is_found_within_the_interval(
    stack: Stack, settings: Settings, store: Store
) -> None:
    """Nothing is published at all: only the periodic sweep can see it (every 60 s by
    default, a safety net; every 2 s on this worker)."""
    bot = await new_bot(settings, "pe")
    async with worker(stack, "periodic", BOTGW_WS_CREDENTIALS_RECHECK_SECONDS="2") as gateway:
        header, ready = await open_raw(url_of(gateway), bot.token)
        assert ready["op"] == "ready"
        browser = await websockets.connect(url_of(gateway))  # the token comes in identify
        assert (await recv_frame(browser))["op"] == "hello"
        await browser.send(json.dumps({"op": "identify", "token": bot.token, "consumer": "b"}))
        assert (await recv_frame(browser))["op"] == "ready"
        loop = asyncio.get_running_loop()
        started = loop.time()
        await store.redis.hset(
            keys.bot_info(bot.bot_id), "token_hash", hash_secret(f"bot_{bot.bot_id}:elsewhere")
        )
        for ws in (header, browser):  # waited for up to 6 s each: the sweep runs every 2 s
            frame = await closing_frame(ws, 6)
            assert frame["code"] == 4501
        elapsed = loop.time() - started
        print(f"both sockets closed {elapsed * 1000:.0f} ms after the unannounced change")


async def test_an_unannounced_revocation_is_refused_at_the_upgrade(
    stack: Stack, settings: Settings, store: Store
) -> None:
    """The worker holds the bot's record (a socket of it is open) and hears of no
    change: the upgrade still checks the stored credentials, so a revoked bot gets
    412 there, not a socket that closes 4505 after identify (docs/protocol.md §2)."""
    bot = await new_bot(settings, "ur")
    header, ready = await open_raw(stack.ws_url, bot.token)
    assert ready["op"] == "ready"
    await store.redis.hset(keys.bot_info(bot.bot_id), "active", "0")  # not announced
    refused = await refusal(stack.ws_url, bot.token)
    assert refused.response.status_code == 412
    assert envelope(refused)["code"] == "BOT_INACTIVE"
    await header.close()


async def test_revoking_a_bot_closes_its_sockets_and_refuses_its_upgrades(
    stack: Stack, settings: Settings
) -> None:
    owner, bot = await owned_bot(settings, "rv")
    header, ready = await open_raw(stack.ws_url, bot.token)
    assert ready["op"] == "ready"
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=wait_s(10)) as http:
        await manage_api(http, owner)("revokeBot", bot_id=str(bot.bot_id))
    frame = await closing_frame(header)
    assert frame["code"] == 4505 and frame["resumable"] is False
    # the token is still right, the bot is gone: 412 as on the REST API
    refused = await refusal(stack.ws_url, bot.token)
    assert refused.response.status_code == 412
    body = envelope(refused)
    assert body["code"] == "BOT_INACTIVE" and "revoked" in body["description"]
    # a browser, which cannot be refused by its token at the upgrade: 4505 at identify
    browser = await websockets.connect(stack.ws_url)
    hello = await recv_frame(browser)
    assert hello["op"] == "hello" and hello["auth_required"] is True
    await browser.send(json.dumps({"op": "identify", "token": bot.token}))
    frame = await closing_frame(browser)
    assert frame["code"] == 4505
    assert await metric(stack.gateway, "botgw_gateway_upgrades_refused_total") >= 1


# -- floods and idle sockets ----------------------------------------------------------


async def test_a_ping_flood_is_rate_limited_without_slowing_a_neighbour(
    stack: Stack, settings: Settings, store: Store
) -> None:
    bot = await new_bot(settings, "pf")
    neighbour, ready = await open_raw(stack.ws_url, bot.token, consumer="neighbour")
    assert ready["op"] == "ready"
    flooder, ready = await open_raw(stack.ws_url, bot.token, consumer="flooder")
    assert ready["op"] == "ready"

    async def flood() -> int:
        """Up to 5000 pings in bursts of 250; the pongs are not awaited."""
        sent = 0
        with contextlib.suppress(ConnectionClosed):
            while sent < 5000:
                for _ in range(250):
                    await flooder.ping()
                    sent += 1
                await asyncio.sleep(0.005)  # lets the close in, if it came
        return sent

    loop = asyncio.get_running_loop()
    started = loop.time()
    flooding = asyncio.create_task(flood())
    for seq in range(1, 21):
        await ingest(store, bot.bot_id, seq)
    sent = await flooding
    frame = await closing_frame(flooder)
    elapsed = loop.time() - started
    print(f"flooder closed after {sent} pings sent, {elapsed * 1000:.0f} ms")
    assert frame["code"] == 4003 and frame["resumable"] is True
    assert frame["retry_after_ms"] == 1000
    assert sent < 5000  # closed long before the flood was over
    # the neighbour got everything, during the flood and after it
    for seq in range(21, 41):
        await ingest(store, bot.bot_id, seq)
    assert [seq_of(u) for u in await collect(neighbour, 40)] == list(range(1, 41))
    await neighbour.send(json.dumps({"op": "heartbeat"}))
    assert (await recv_frame(neighbour))["op"] == "heartbeat_ack"
    await neighbour.close()


async def test_unidentified_sockets_are_capped_per_peer_and_per_worker(
    stack: Stack, settings: Settings
) -> None:
    bot = await new_bot(settings, "ui")
    async with worker(
        stack,
        "caps",
        BOTGW_WS_MAX_UNIDENTIFIED_PER_PEER="3",
        BOTGW_WS_MAX_UNIDENTIFIED="5",
        BOTGW_IDENTIFY_TIMEOUT="120",
    ) as gateway:
        url = url_of(gateway)
        second_peer: dict[str, Any] = {"local_addr": ("127.0.0.2", 0)}

        async def hold(token: str | None = None, **connect: Any) -> ClientConnection:
            headers = {"Authorization": f"Bot {token}"} if token is not None else {}
            ws = await websockets.connect(url, additional_headers=headers, **connect)
            assert (await recv_frame(ws))["op"] == "hello"
            return ws

        async def unidentified() -> float:
            return await metric(gateway, "botgw_gateway_unidentified")

        # a bad token is refused 401 and holds no slot
        for _ in range(5):
            refused = await refusal(url, f"bot_{bot.bot_id}:wrongsecret")
            assert refused.response.status_code == 401
        # three per address, whether the token came with the upgrade or not
        mine = [await hold(bot.token), await hold(), await hold()]
        refused = await refusal(url, bot.token)
        assert refused.response.status_code == 429
        assert refused.response.headers["Retry-After"] == "1"
        body = envelope(refused)
        assert body["code"] == "TOO_MANY_UNIDENTIFIED"
        assert body["parameters"] == {"retry_after": 1}
        # another address has its own three, but the worker holds five in all
        theirs = [await hold(**second_peer), await hold(bot.token, **second_peer)]
        refused = await refusal(url, bot.token, **second_peer)
        assert refused.response.status_code == 503
        assert envelope(refused)["code"] == "WORKER_BUSY"
        assert refused.response.headers["Retry-After"] == "1"
        assert await unidentified() == 5
        # identified sockets do not count: the slot is free at once
        await mine[0].send(json.dumps({"op": "identify", "consumer": "c0"}))
        assert (await recv_frame(mine[0]))["op"] == "ready"
        await mine[1].send(json.dumps({"op": "identify", "token": bot.token, "consumer": "c1"}))
        assert (await recv_frame(mine[1]))["op"] == "ready"
        assert await unidentified() == 3
        mine += [await hold(), await hold(bot.token)]
        refused = await refusal(url)
        assert refused.response.status_code == 429
        # closing frees the slot (once the worker has seen the close)
        await theirs.pop().close()

        async def admitted() -> bool:
            try:
                theirs.append(await hold(**second_peer))
            except InvalidStatus as exc:
                assert exc.response.status_code == 503
                return False
            return True

        await until(admitted)
        for ws in mine + theirs:
            await ws.close()

        async def none_left() -> bool:
            return await unidentified() == 0

        await until(none_left)
