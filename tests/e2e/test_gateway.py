"""Gateway protocol on a real worker: sharding, takeover, gaps, encodings, the client."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
import websockets
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed

from botgw.local_redis import LocalRedis
from gateway.client import GapError, GatewayClient
from gateway.protocol import ServerConnection
from gateway.server import process_request
from gateway.worker import Worker
from shared import keys
from shared.settings import Settings
from shared.store import Store
from tests.conftest import Stack, make_settings, running, wait_s
from tests.gwtools import collect, http_get, ingest, new_bot, open_raw, recv_frame, seq_of

pytestmark = [pytest.mark.asyncio, pytest.mark.topologies("node", "cluster")]


async def test_four_shards_split_the_log_by_chat_and_keep_chat_order(
    stack: Stack, settings: Settings, store: Store
) -> None:
    bot = await new_bot(settings, "sh")
    sockets = []
    for index in range(4):
        ws, ready = await open_raw(stack.ws_url, bot.token, shard=[index, 4])
        assert ready["op"] == "ready" and ready["shard"] == [index, 4]
        sockets.append(ws)
    chats = [101, 102, 103, 104, 105, 106, 107]
    sent: list[tuple[int, int]] = []
    for seq in range(1, 141):
        chat = chats[seq % len(chats)]
        await ingest(store, bot.bot_id, seq, chat_id=chat)
        sent.append((chat, seq))
    got: dict[int, list[tuple[int, int]]] = {}
    for index, ws in enumerate(sockets):
        expected = sum(1 for chat, _ in sent if chat % 4 == index)
        updates = await collect(ws, expected)
        got[index] = [(int(u["message"]["chat"]["id"]), seq_of(u)) for u in updates]
        assert all(chat % 4 == index for chat, _ in got[index])
        await ws.close()
    union = sorted(item for items in got.values() for item in items)
    assert union == sorted(sent)
    for chat in chats:
        order = [seq for items in got.values() for c, seq in items if c == chat]
        assert order == sorted(order) and order == [s for c, s in sent if c == chat]


async def test_a_second_connection_for_a_shard_takes_over(
    stack: Stack, settings: Settings, store: Store
) -> None:
    bot = await new_bot(settings, "to")
    first, _ = await open_raw(stack.ws_url, bot.token, consumer="workers", shard=[1, 2])
    second, ready = await open_raw(stack.ws_url, bot.token, consumer="workers", shard=[1, 2])
    assert ready["op"] == "ready"
    closing = await recv_frame(first)
    assert closing["op"] == "close" and closing["code"] == 4502
    assert closing["resumable"] is False
    await asyncio.wait_for(first.wait_closed(), wait_s(10))
    assert first.close_code == 4502
    # the other shard of the same consumer is untouched
    other, ready = await open_raw(stack.ws_url, bot.token, consumer="workers", shard=[0, 2])
    assert ready["op"] == "ready"
    await ingest(store, bot.bot_id, 1, chat_id=3)
    assert seq_of((await collect(second, 1))[0]) == 1
    await second.close()
    await other.close()


async def test_takeover_works_across_workers(stack: Stack, settings: Settings) -> None:
    bot = await new_bot(settings, "tx")
    with running(stack.new_gateway("gateway-takeover")) as other:
        first, _ = await open_raw(stack.ws_url, bot.token)
        url = other.ws_url
        second, ready = await open_raw(url, bot.token)
        assert ready["op"] == "ready"
        closing = await recv_frame(first)
        assert closing["op"] == "close" and closing["code"] == 4502
        await second.close()


async def test_cursor_older_than_retention_gets_a_gap(
    stack: Stack, settings: Settings, redis_server: Any
) -> None:
    bot = await new_bot(settings, "gr")
    small = Store.connect(Settings.from_env({}, redis_url=settings.redis_url, log_maxlen=100))
    try:
        first = await ingest(small, bot.bot_id, 1)
        for seq in range(2, 601):
            await ingest(small, bot.bot_id, seq)
        info = await small.log.info(bot.bot_id)
        assert info.oldest is not None and info.oldest > first  # trimmed
        epoch = info.epoch
    finally:
        await small.close()
    cursor = {"epoch": epoch, "update_id": str(first)}
    ws, frame = await open_raw(stack.ws_url, bot.token, cursor=cursor)
    assert frame["op"] == "gap" and frame["reason"] == "retention"
    assert frame["oldest"] == str(info.oldest) and frame["action"] == "fail"
    closing = await recv_frame(ws)
    assert closing["op"] == "close" and closing["code"] == 4504
    # with on_gap "oldest" the stream continues from the oldest retained update
    ws, frame = await open_raw(stack.ws_url, bot.token, cursor=cursor, on_gap="oldest")
    assert frame["op"] == "gap" and frame["action"] == "oldest"
    ready = await recv_frame(ws)
    assert ready["op"] == "ready"
    assert ready["resumed"] is False  # after a gap delivery does not continue (§6.2)
    updates = await collect(ws, info.length)
    assert int(updates[0]["update_id"]) == info.oldest
    assert seq_of(updates[-1]) == 600
    await ws.close()


async def test_a_cursor_beyond_the_head_is_a_gap_not_a_silent_skip(
    stack: Stack, settings: Settings, store: Store
) -> None:
    """A cursor naming updates the log does not have (lost by a failover, or made
    up) is told as ``tail_lost``; delivery goes on after it (docs/protocol.md §8)."""
    bot = await new_bot(settings, "bh")
    head = await ingest(store, bot.bot_id, 1)
    epoch = await store.log.epoch(bot.bot_id)
    assert epoch is not None
    beyond = {"epoch": epoch, "update_id": str(head + 5 * 1024)}  # 5 ms past the head
    ws, frame = await open_raw(stack.ws_url, bot.token, cursor=beyond)
    assert frame["op"] == "gap" and frame["reason"] == "tail_lost"
    assert (await recv_frame(ws))["code"] == 4504
    ws, frame = await open_raw(stack.ws_url, bot.token, cursor=beyond, on_gap="newest")
    assert frame["op"] == "gap" and frame["reason"] == "tail_lost"
    ready = await recv_frame(ws)
    assert ready["op"] == "ready" and ready["resumed"] is False
    assert ready["cursor"]["update_id"] == beyond["update_id"]
    # the next update comes: ids are time-ordered, so a later one is above the cursor
    await asyncio.sleep(0.05)
    later = await ingest(store, bot.bot_id, 2)
    assert later > int(beyond["update_id"])
    got = await collect(ws, 1)
    assert seq_of(got[0]) == 2
    await ws.close()


async def test_cursor_of_an_old_epoch_gets_a_gap(
    stack: Stack, settings: Settings, store: Store
) -> None:
    bot = await new_bot(settings, "ge")
    last = 0
    for seq in range(1, 6):
        last = await ingest(store, bot.bot_id, seq)
    old_epoch = await store.log.epoch(bot.bot_id)
    await store.redis.delete(keys.bot_log(bot.bot_id))  # the log is lost
    await ingest(store, bot.bot_id, 6)
    new_epoch = await store.log.epoch(bot.bot_id)
    assert new_epoch != old_epoch
    cursor = {"epoch": old_epoch, "update_id": str(last)}
    ws, frame = await open_raw(stack.ws_url, bot.token, cursor=cursor, on_gap="newest")
    assert frame["op"] == "gap" and frame["reason"] == "epoch" and frame["epoch"] == new_epoch
    ready = await recv_frame(ws)
    assert ready["op"] == "ready" and ready["epoch"] == new_epoch
    await ingest(store, bot.bot_id, 7)
    assert [seq_of(u) for u in await collect(ws, 1)] == [7]
    await ws.close()
    with pytest.raises(GapError):
        async with GatewayClient(stack.ws_url, bot.token, cursor=(old_epoch or "", last)) as c:
            async for _ in c:
                pass


async def test_msgpack_encoding_and_allowed_updates(
    stack: Stack, settings: Settings, store: Store
) -> None:
    bot = await new_bot(settings, "mp")
    ws, ready = await open_raw(
        stack.ws_url, bot.token, encoding="msgpack", allowed_updates=["message"]
    )
    assert ready["op"] == "ready"
    await store.log.append(bot.bot_id, kind="poll", chat_id=1, body={"poll": {"id": "p"}})
    await ingest(store, bot.bot_id, 1)
    data = await asyncio.wait_for(ws.recv(), wait_s(10))
    assert isinstance(data, bytes)
    frame = msgpack.unpackb(data)
    assert frame["op"] == "updates" and [seq_of(u) for u in frame["updates"]] == [1]
    await ws.send(msgpack.packb({"op": "heartbeat"}))
    data = await asyncio.wait_for(ws.recv(), wait_s(10))
    assert isinstance(data, bytes) and msgpack.unpackb(data)["op"] == "heartbeat_ack"
    await ws.close()


async def test_browser_style_token_in_identify(stack: Stack, settings: Settings) -> None:
    import websockets

    bot = await new_bot(settings, "br")
    async with websockets.connect(stack.ws_url) as ws:
        hello = json.loads(await ws.recv())
        assert hello["auth_required"] is True
        await ws.send(json.dumps({"op": "identify", "token": bot.token}))
        assert json.loads(await ws.recv())["op"] == "ready"
    async with websockets.connect(stack.ws_url) as ws:
        await ws.recv()
        await ws.send(json.dumps({"op": "identify", "token": "bot_1:" + "z" * 43}))
        closing = json.loads(await ws.recv())
        assert closing["op"] == "close" and closing["code"] == 4501


async def test_client_resumes_and_calls_methods_over_the_socket(
    stack: Stack, settings: Settings, store: Store
) -> None:
    import httpx

    from tests.api import client_api, create_user

    owner = await create_user(settings, "cl" + bot_suffix())
    from tests.api import create_bot

    bot = await create_bot(settings, owner, "cl" + bot_suffix() + "_bot")
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=10) as http:
        chat = await client_api(http, owner)("startBot", username=bot.username)
        seen: list[str] = []
        async with GatewayClient(stack.ws_url, bot.token) as agent:
            async for update in agent:
                text = update["message"]["text"]
                seen.append(text)
                if text == "/start":
                    answer = await agent.request(
                        "sendMessage", chat_id=update["message"]["chat"]["id"], text="echo"
                    )
                    assert answer["text"] == "echo" and answer["from"]["is_bot"] is True
                    await client_api(http, owner)("sendMessage", chat_id=chat["id"], text="two")
                if text == "two":
                    agent.ack(int(update["update_id"]))  # break skips the auto-ack
                    break
        assert seen == ["/start", "two"]
        # a new client with no cursor resumes after the committed ack: nothing repeats
        await client_api(http, owner)("sendMessage", chat_id=chat["id"], text="three")
        async with GatewayClient(stack.ws_url, bot.token) as agent:
            async for update in agent:
                assert update["message"]["text"] == "three"
                break


def bot_suffix() -> str:
    import secrets

    return secrets.token_hex(3)


async def test_limits_have_their_own_close_codes(stack: Stack, settings: Settings) -> None:
    import websockets

    with running(
        stack.new_gateway(
            "limits",
            BOTGW_WS_MAX_CONNECTIONS_PER_BOT="2",
            BOTGW_WS_IDENTIFY_PER_MINUTE="4",
            BOTGW_WS_MAX_FRAME_BYTES="2048",
            BOTGW_WS_MAX_FRAMES_PER_SECOND="5",
        )
    ) as worker:
        url = worker.ws_url
        bot = await new_bot(settings, "li")
        first, _ = await open_raw(url, bot.token, consumer="a")
        second, _ = await open_raw(url, bot.token, consumer="b")
        _, frame = await open_raw(url, bot.token, consumer="c")
        assert frame["op"] == "close" and frame["code"] == 4004 and frame["resumable"] is True
        assert frame["retry_after_ms"] > 0
        await first.close()
        await second.close()
        # identify attempts: 4 per minute for this bot on this worker (3 used so far)
        fourth, frame = await open_raw(url, bot.token, consumer="d")
        assert frame["op"] == "ready"
        _, frame = await open_raw(url, bot.token, consumer="e")
        assert frame["op"] == "close" and frame["code"] == 4005 and frame["retry_after_ms"] > 0
        # frame size
        await fourth.send(json.dumps({"op": "heartbeat", "pad": "x" * 4000}))
        frame = await recv_frame(fourth)
        assert frame["op"] == "close" and frame["code"] == 4503 and frame["resumable"] is False

        other = await new_bot(settings, "lr")
        flood, _ = await open_raw(url, other.token)
        with contextlib.suppress(websockets.ConnectionClosed):
            for _ in range(100):
                await flood.send(json.dumps({"op": "heartbeat"}))
        codes = []
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            while True:
                codes.append(await recv_frame(flood, timeout=5))
        assert codes[-1]["op"] == "close" and codes[-1]["code"] == 4003

        metrics = (await http_get(f"http://127.0.0.1:{worker.port}/metrics")).text
        assert 'botgw_gateway_closes_total{code="4004"} 1.0' in metrics
        assert "botgw_gateway_connections" in metrics
        assert (await http_get(f"http://127.0.0.1:{worker.port}/readyz")).status_code == 200
        missing = await http_get(f"http://127.0.0.1:{worker.port}/nowhere")
        assert missing.status_code == 404 and missing.json()["code"] == "NOT_FOUND"


async def test_drain_sends_reconnect_then_closes_1012(
    stack: Stack, settings: Settings, store: Store
) -> None:
    import signal

    with running(stack.new_gateway("drain", BOTGW_DRAIN_SECONDS="1.5")) as worker:
        url = worker.ws_url
        bot = await new_bot(settings, "dr")
        ws, _ = await open_raw(url, bot.token)
        worker.signal(signal.SIGTERM)
        frame = await recv_frame(ws)
        assert frame == {"op": "reconnect", "reason": "draining", "deadline_ms": 1500}
        ready = await http_get(f"http://127.0.0.1:{worker.port}/readyz")
        assert ready.status_code == 503 and ready.json()["code"] == "DRAINING"
        # the drain's progress: the one connection still held
        for _ in range(int(wait_s(100))):
            text = (await http_get(f"http://127.0.0.1:{worker.port}/metrics")).text
            if "botgw_gateway_draining_connections 1.0" in text:
                break
            await asyncio.sleep(0.02)
        assert "botgw_gateway_draining_connections 1.0" in text
        await ingest(store, bot.bot_id, 1)  # still delivered until the deadline
        assert [seq_of(u) for u in await collect(ws, 1)] == [1]
        closing = await recv_frame(ws)
        assert closing["op"] == "close" and closing["code"] == 1012 and closing["resumable"]
        assert worker.proc is not None
        assert await asyncio.to_thread(worker.proc.wait, wait_s(20)) == 0


async def test_a_log_replaced_under_a_live_connection_leads_to_a_gap(
    stack: Stack, settings: Settings, store: Store
) -> None:
    """§8: the client is told on the same connection, and per its on_gap goes on
    in the new epoch there (or closes 4504 with "fail")."""
    bot = await new_bot(settings, "lr")
    last = await ingest(store, bot.bot_id, 1)
    old_epoch = await store.log.epoch(bot.bot_id)
    ws, _ = await open_raw(stack.ws_url, bot.token, on_gap="oldest", consumer="goes-on")
    failing, _ = await open_raw(stack.ws_url, bot.token, consumer="fails")
    assert [seq_of(u) for u in await collect(ws, 1)] == [1]
    assert [seq_of(u) for u in await collect(failing, 1)] == [1]
    await store.redis.delete(keys.bot_log(bot.bot_id))
    await ingest(store, bot.bot_id, 2)
    new_epoch = await store.log.epoch(bot.bot_id)
    assert new_epoch != old_epoch
    frame = await recv_frame(ws)
    assert frame["op"] == "gap" and frame["reason"] == "epoch"
    assert frame["epoch"] == new_epoch and frame["action"] == "oldest"
    assert [seq_of(u) for u in await collect(ws, 1)] == [2]  # the new epoch, same socket
    await ingest(store, bot.bot_id, 3)
    assert [seq_of(u) for u in await collect(ws, 1)] == [3]
    frame = await recv_frame(failing)
    assert frame["op"] == "gap" and frame["action"] == "fail"
    closing = await recv_frame(failing)
    assert closing["op"] == "close" and closing["code"] == 4504
    await ws.close()
    ws, frame = await open_raw(
        stack.ws_url, bot.token, cursor={"epoch": old_epoch, "update_id": str(last)}
    )
    assert frame["op"] == "gap" and frame["reason"] == "epoch"


async def test_rotating_or_revoking_closes_live_sockets(stack: Stack, settings: Settings) -> None:
    import httpx

    from tests.api import create_bot, create_user, manage_api

    owner = await create_user(settings, "rv" + bot_suffix())
    bot = await create_bot(settings, owner, "rv" + bot_suffix() + "_bot")
    ws, ready = await open_raw(stack.ws_url, bot.token)
    assert ready["op"] == "ready"
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=10) as http:
        fresh = await manage_api(http, owner)("rotateToken", bot_id=str(bot.bot_id))
        closing = await recv_frame(ws)
        assert closing["op"] == "close" and closing["code"] == 4501
        ws, ready = await open_raw(stack.ws_url, fresh["token"])
        assert ready["op"] == "ready"
        await manage_api(http, owner)("revokeBot", bot_id=str(bot.bot_id))
        closing = await recv_frame(ws)
        assert closing["op"] == "close" and closing["code"] in (4501, 4505)


async def test_a_vanished_peer_is_dropped_by_the_heartbeat_deadline(
    stack: Stack, settings: Settings
) -> None:
    """No keepalive task per connection: the sessions' deadlines and one ping loop."""
    import websockets
    from websockets.asyncio.client import ClientConnection
    from websockets.frames import Frame, Opcode
    from websockets.protocol import Event

    class CountingPings(ClientConnection):
        pings = 0

        def process_event(self, event: Event) -> None:
            if isinstance(event, Frame) and event.opcode is Opcode.PING:
                self.pings += 1
            super().process_event(event)

    interval = 1.0
    with running(stack.new_gateway("vanish", BOTGW_HEARTBEAT_INTERVAL=str(interval))) as worker:
        url = worker.ws_url
        metrics_url = f"http://127.0.0.1:{worker.port}/metrics"
        bot = await new_bot(settings, "va")
        live = await websockets.connect(
            url,
            additional_headers={"Authorization": f"Bot {bot.token}"},
            create_connection=CountingPings,
            ping_interval=None,
        )
        assert isinstance(live, CountingPings)
        assert (await recv_frame(live))["op"] == "hello"
        await live.send(json.dumps({"op": "identify", "consumer": "live"}))
        assert (await recv_frame(live))["op"] == "ready"
        gone, ready = await open_raw(url, bot.token, consumer="gone")
        assert ready["op"] == "ready"
        # gone without a FIN: reads nothing (no pong, no closing handshake), sends nothing
        assert gone.transport is not None
        gone.transport.pause_reading()
        loop = asyncio.get_running_loop()
        started = loop.time()

        async def connections() -> float:
            text = (await http_get(metrics_url)).text
            line = next(x for x in text.splitlines() if x.startswith("botgw_gateway_connections "))
            return float(line.split()[1])

        assert await connections() == 2
        dropped_after = None
        while loop.time() - started < wait_s(15):
            await live.send(json.dumps({"op": "heartbeat"}))
            assert (await recv_frame(live))["op"] == "heartbeat_ack"
            if dropped_after is None and await connections() == 1:
                dropped_after = loop.time() - started
            if dropped_after is not None and live.pings >= 2:
                break
            await asyncio.sleep(interval / 4)
        # two silent intervals, then the close handshake's 2 s before the socket is cut
        assert dropped_after is not None and dropped_after < 2 * interval + 2 + wait_s(2)
        # the server pings every open connection, from one loop for all of them
        assert live.pings >= 2
        gone.transport.resume_reading()
        closing = await recv_frame(gone)
        assert closing["op"] == "close" and closing["code"] == 4001 and closing["resumable"]
        await live.close()


@contextlib.asynccontextmanager
async def worker_in_this_process(settings: Settings) -> AsyncIterator[tuple[str, Worker]]:
    """A gateway worker served from the test's own event loop: its log records reach
    caplog, and its store can be held up. Yields its URL and the worker."""
    store = Store.connect(settings)
    worker = Worker(settings, store)
    thresholds = gc.get_threshold()  # the worker's collector settings are per process
    await worker.start()
    try:
        async with ws_serve(
            worker.handler,
            "127.0.0.1",
            0,
            process_request=functools.partial(process_request, worker),
            create_connection=worker.connection_class(),
            ping_interval=None,
        ) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            yield f"ws://127.0.0.1:{port}/bot/ws", worker
    finally:
        await worker.stop()
        await store.close()
        gc.set_threshold(*thresholds)


async def test_an_internal_error_of_the_core_closes_4000_and_is_logged_with_its_traceback(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def defect(self: ServerConnection, frame: dict[str, Any]) -> None:
        raise RuntimeError("a defect in the core")

    monkeypatch.setattr(ServerConnection, "_on_heartbeat", defect)
    caplog.set_level(logging.ERROR, logger="botgw.gateway")
    async with worker_in_this_process(settings) as (url, _), websockets.connect(url) as ws:
        hello = await recv_frame(ws)
        await ws.send(json.dumps({"op": "heartbeat"}))
        closing = await recv_frame(ws)
        assert closing["op"] == "close" and closing["code"] == 4000 and closing["resumable"]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), wait_s(10))
        assert ws.close_code == 4000
    [record] = [r for r in caplog.records if r.name.startswith("botgw.gateway")]
    assert record.levelno == logging.ERROR
    assert hello["connection_id"] in record.getMessage()
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "a defect in the core" in caplog.text  # the traceback is in the log


async def test_a_socket_closed_while_identifying_takes_nothing_over(tmp_path: Path) -> None:
    # a second socket's identify is held up in Redis (CLIENT PAUSE on a Redis of the
    # test's own) until the identify deadline has closed it
    redis = LocalRedis(directory=tmp_path / "redis", appendonly=False).start()
    settings = make_settings(redis.url, identify_timeout=0.5)
    pause_ms = int(wait_s(2) * 1000)
    try:
        bot = await new_bot(settings)
        async with worker_in_this_process(settings) as (url, worker):
            first, ready = await open_raw(url, bot.token, consumer="c")
            assert ready["op"] == "ready"
            second = await websockets.connect(
                url, additional_headers={"Authorization": f"Bot {bot.token}"}
            )
            assert (await recv_frame(second))["op"] == "hello"
            [late] = [s for s in worker.all_sessions if s not in worker.sessions]
            loop = asyncio.get_running_loop()
            paused_until = loop.time() + pause_ms / 1000
            await worker.store.wire.call("CLIENT", "PAUSE", pause_ms, "ALL")
            cursor = {"epoch": "another", "update_id": "1"}
            identify = {"op": "identify", "consumer": "c", "cursor": cursor, "on_gap": "newest"}
            await second.send(json.dumps(identify))
            # the client reads nothing more: the server's closing handshake waits for
            # it, so the identify outlives the close of its core
            assert second.transport is not None
            second.transport.pause_reading()
            while not late.closed:
                assert loop.time() < paused_until, "the identify deadline never closed it"
                await asyncio.sleep(0.05)
            # Redis answers again; the identify goes on after its look at the log
            await asyncio.sleep(max(paused_until - loop.time(), 0) + 0.2)

            # the first socket still delivers: no takeover by the closed one
            await first.send(json.dumps({"op": "heartbeat"}))
            assert (await recv_frame(first))["op"] == "heartbeat_ack"
            await ingest(worker.store, bot.bot_id, 1)
            [update] = await collect(first, 1)
            assert seq_of(update) == 1
            second.transport.resume_reading()
            closing = await recv_frame(second)
            assert closing["op"] == "close" and closing["code"] == 4006
            await first.close()
            await second.close()
    finally:
        redis.stop()


async def test_poll_updates_name_no_chat_and_go_to_shard_zero(
    stack: Stack, settings: Settings
) -> None:
    """``poll`` and ``poll_answer`` carry no chat, so a client cannot shard them by
    one: they go to shard 0 whatever the group's id (docs/protocol.md §9), and the
    group's messages to the shard of its id."""
    from tests.api import scene_at

    async with scene_at(stack.rest_url, settings, "ps", users=1, group="Shards") as scene:
        sent = await scene.as_bot(
            "sendPoll", chat_id=scene.group, question="?", options=["a", "b"], is_anonymous=False
        )
        wanted = ["message", "poll", "poll_answer"]
        shards = [
            (
                await open_raw(
                    stack.ws_url,
                    scene.bot.token,
                    consumer="ps",
                    shard=[i, 2],
                    allowed_updates=wanted,
                )
            )[0]
            for i in range(2)
        ]
        await scene.as_user(
            "answerPoll", chat_id=scene.group, message_id=sent["message_id"], option_ids=[1]
        )
        # a command to the bot: it has privacy mode on and gets only those of the group
        command = f"/after@{scene.bot.username}"
        await scene.as_user("sendMessage", chat_id=scene.group, text=command)
        group_shard = int(scene.group) % 2
        if group_shard == 0:
            # every update on shard 0: the message last, after both poll updates
            got = await collect(shards[0], 3)
        else:
            got = await collect(shards[0], 2)
            message = await collect(shards[1], 1)
            assert message[0]["message"]["text"] == command
        kinds = [next(k for k in u if k != "update_id") for u in got]
        assert kinds[:2] == ["poll_answer", "poll"]
        for ws in shards:
            await ws.close()


async def test_a_failed_request_carries_the_envelope_without_ok(
    stack: Stack, settings: Settings
) -> None:
    """docs/protocol.md §6.5: ``error`` is the REST envelope without ``ok``, for the
    REST service's errors and the gateway's own alike."""
    bot = await new_bot(settings, "er")
    ws, ready = await open_raw(stack.ws_url, bot.token)
    assert ready["op"] == "ready"
    await ws.send(
        json.dumps(
            {"op": "request", "id": "r1", "method": "sendMessage", "params": {"chat_id": "1"}}
        )
    )
    await ws.send(json.dumps({"op": "request", "id": "r2", "method": "getUpdates"}))
    results: dict[str, dict[str, Any]] = {}
    while len(results) < 2:
        frame = await recv_frame(ws)
        if frame["op"] == "result":
            results[frame["id"]] = frame
    for frame in results.values():
        assert frame["ok"] is False and "ok" not in frame["error"]
        assert frame["error"]["error_code"] >= 400 and frame["error"]["description"]
    assert results["r2"]["error"]["code"] == "METHOD_NOT_ALLOWED_HERE"
    await ws.close()
