"""Redis hangs (SIGSTOP for STALL_S seconds): every call still gets an answer while
Redis is stopped (503 within BOTGW_REDIS_TIMEOUT, never a hang), readiness says
no, and everything comes back by itself after SIGCONT: writes, reads, readiness
and a gateway consumer's live delivery."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from botgw.local_redis import LocalRedis, free_port
from gateway.client import GatewayClient
from tests.api import client_api, create_bot, create_user
from tests.conftest import Process, make_settings, process_env, rest_process, running, wait_s

pytestmark = pytest.mark.asyncio

STALL_S = 10.0
TIMEOUT = "1"  # BOTGW_REDIS_TIMEOUT of the processes


async def _post(http: httpx.AsyncClient, token: str, method: str, **params: Any) -> int:
    response = await http.post(
        f"/client/{method}", json=params, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code


async def test_a_hung_redis_answers_within_the_timeout_and_recovers(tmp_path: Path) -> None:
    server = LocalRedis(directory=tmp_path / "redis", appendonly=False).start()
    try:
        url = server.url
        settings = make_settings(url)
        rest = rest_process(url, tmp_path, "rest", BOTGW_REDIS_TIMEOUT=TIMEOUT)
        gateway_port = free_port()
        gateway = Process(
            name="gateway",
            args=["gateway", "--host", "127.0.0.1", "--port", str(gateway_port)],
            env=process_env(url, BOTGW_REST_PORT=str(rest.port), BOTGW_REDIS_TIMEOUT=TIMEOUT),
            log_path=tmp_path / "gateway.log",
            port=gateway_port,
        )
        with running(rest), running(gateway):
            owner = await create_user(settings, "stall")
            bot = await create_bot(settings, owner, "stall_bot")
            async with httpx.AsyncClient(base_url=rest.url, timeout=wait_s(30)) as http:
                chat = (await client_api(http, owner)("startBot", username=bot.username))["id"]
                seen: list[str] = []
                arrived = asyncio.Event()
                agent = GatewayClient(gateway.ws_url, bot.token, max_backoff=0.2)

                async def read() -> None:
                    async with agent:
                        async for update in agent:
                            seen.append(update["message"]["text"])
                            arrived.set()

                reader = asyncio.create_task(read())
                assert await _post(http, owner.token, "sendMessage", chat_id=chat, text="a") == 200
                await asyncio.wait_for(arrived.wait(), wait_s(10))
                assert server.process is not None
                pid = server.process.pid

                os.kill(pid, signal.SIGSTOP)
                try:
                    calls = [
                        _post(http, owner.token, "sendMessage", chat_id=chat, text="stalled"),
                        _post(http, owner.token, "getChats"),
                        _post(http, owner.token, "getChatHistory", chat_id=chat),
                    ]
                    probes = [http.get("/readyz"), http.get(f"{gateway.url}/readyz")]
                    # all answered while Redis is still stopped: none waits for it
                    answers = await asyncio.wait_for(asyncio.gather(*calls, *probes), STALL_S - 1.0)
                finally:
                    os.kill(pid, signal.SIGCONT)
                statuses = answers[:3]
                readiness = [r.status_code for r in answers[3:] if isinstance(r, httpx.Response)]
                print(f"\nwhile Redis was stopped: calls {statuses}, readiness {readiness}")
                assert statuses == [503, 503, 503]
                assert readiness == [503, 503]

                # back by itself: writes, readiness and live delivery
                arrived.clear()
                for _ in range(int(wait_s(100))):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.1)
                assert (await http.get("/readyz")).status_code == 200
                assert (await http.get(f"{gateway.url}/readyz")).status_code == 200
                assert await _post(http, owner.token, "sendMessage", chat_id=chat, text="b") == 200
                for _ in range(int(wait_s(100))):
                    if "b" in seen:
                        break
                    await asyncio.sleep(0.1)
                assert "b" in seen
                reader.cancel()
    finally:
        server.stop()
