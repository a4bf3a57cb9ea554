"""The backlog of every consumer on /metrics, measured in Redis: a consumer that
stops acking and one whose agent disconnected both keep their series, and both
grow (count, then age) from one measurement to the next; a consumer that keeps
up shows none. The alert on them is tested by tests/unit/test_alert_rules.py.
Beside them, the delivery latency and Redis command histograms have samples."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from botgw.local_redis import LocalRedis, free_port
from tests.api import client_api, create_bot, create_user
from tests.conftest import Process, make_settings, process_env, rest_process, running, wait_s
from tests.gwtools import http_get, open_raw, recv_frame

pytestmark = pytest.mark.asyncio

INTERVAL = "0.3"  # BOTGW_BACKLOG_INTERVAL_SECONDS of the gateway


async def _series(url: str, bot_id: int) -> dict[tuple[str, str], float]:
    """(metric, consumer) -> value of the bot's backlog series on ``url``/metrics."""
    text = (await http_get(f"{url}/metrics")).text
    found = {}
    pattern = rf'^(botgw_consumer_backlog_\w+)\{{bot="{bot_id}",consumer="([^"]+)",[^}}]*\}} (\S+)$'
    for name, consumer, value in re.findall(pattern, text, re.MULTILINE):
        found[(name, consumer)] = float(value)
    return found


async def _measured(url: str) -> float:
    text = (await http_get(f"{url}/metrics")).text
    value = re.search(r"^botgw_consumer_backlog_measured_timestamp_seconds (\S+)$", text, re.M)
    return float(value.group(1)) if value else 0.0


async def _next_measurement(url: str) -> None:
    """Wait until the gateway has measured once more than now."""
    before = await _measured(url)
    for _ in range(int(wait_s(200))):
        if await _measured(url) > before:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the backlogs were not measured again")


async def test_a_stuck_and_a_gone_consumer_both_show_a_growing_backlog(tmp_path: Path) -> None:
    server = LocalRedis(directory=tmp_path / "redis", appendonly=False).start()
    try:
        url = server.url
        settings = make_settings(url)
        rest = rest_process(url, tmp_path, "rest")
        port = free_port()
        gateway = Process(
            name="gateway",
            args=["gateway", "--host", "127.0.0.1", "--port", str(port)],
            env=process_env(
                url, BOTGW_REST_PORT=str(rest.port), BOTGW_BACKLOG_INTERVAL_SECONDS=INTERVAL
            ),
            log_path=tmp_path / "gateway.log",
            port=port,
        )
        with running(rest), running(gateway):
            owner = await create_user(settings, "lag")
            bot = await create_bot(settings, owner, "lag_bot")
            async with httpx.AsyncClient(base_url=rest.url, timeout=wait_s(10)) as http:
                user = client_api(http, owner)
                chat = (await user("startBot", username=bot.username))["id"]
                # three consumers read the /start: one keeps acking, one stops
                # acking, one disconnects after acking it
                sockets = {}
                for consumer in ("keeps_up", "stuck", "gone"):
                    ws, ready = await open_raw(gateway.ws_url, bot.token, consumer=consumer)
                    assert ready["op"] == "ready"
                    frame = await recv_frame(ws)
                    assert frame["op"] == "updates"
                    if consumer != "stuck":
                        last = frame["updates"][-1]["update_id"]
                        await ws.send(f'{{"op": "ack", "update_id": "{last}"}}')
                    sockets[consumer] = ws
                await asyncio.sleep(0.1)  # let the acks be committed (every 50 ms)
                await sockets["gone"].close()

                async def send(n: int) -> None:
                    await user("sendMessage", chat_id=chat, text=f"m{n}")

                for n in range(3):
                    await send(n)
                # keeps_up acks what it gets
                got = 0
                while got < 3:
                    frame = await recv_frame(sockets["keeps_up"])
                    if frame["op"] == "updates":
                        got += len(frame["updates"])
                        last = frame["updates"][-1]["update_id"]
                        await sockets["keeps_up"].send(f'{{"op": "ack", "update_id": "{last}"}}')
                await asyncio.sleep(0.1)
                await _next_measurement(gateway.url)
                await _next_measurement(gateway.url)
                first = await _series(gateway.url, bot.bot_id)
                for n in range(3, 5):
                    await send(n)
                await _next_measurement(gateway.url)
                await _next_measurement(gateway.url)
                second = await _series(gateway.url, bot.bot_id)
                print(f"\nfirst measurement {first}\nsecond measurement {second}")
                updates, age = (
                    "botgw_consumer_backlog_updates",
                    "botgw_consumer_backlog_age_seconds",
                )
                # the stuck consumer never acked the /start: 4 then 6 waiting
                assert first[(updates, "stuck")] == 4 and second[(updates, "stuck")] == 6
                # the gone one acked the /start before leaving: 3 then 5, series kept
                assert first[(updates, "gone")] == 3 and second[(updates, "gone")] == 5
                for consumer in ("stuck", "gone"):
                    assert second[(age, consumer)] > first[(age, consumer)] > 0
                # keeping up is no backlog: 0 (at most the two just sent, if its
                # acks were not committed yet at the second measurement)
                assert first[(updates, "keeps_up")] == 0
                assert second[(updates, "keeps_up")] <= 2
                # the histograms beside them: live delivery latency, Redis commands
                text = (await http_get(f"{gateway.url}/metrics")).text
                for name in (
                    "botgw_gateway_delivery_latency_seconds",
                    "botgw_redis_command_seconds",
                ):
                    count = re.search(rf"^{name}_count (\S+)$", text, re.MULTILINE)
                    assert count is not None and float(count.group(1)) > 0, name
                for ws in sockets.values():
                    await ws.close()
    finally:
        server.stop()
