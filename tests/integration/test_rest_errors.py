"""The REST app's error envelopes on both of its paths: API calls taken straight to
their endpoint and everything Starlette routes (here with Redis out of reach)."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from rest.app import create_app
from shared.settings import Settings

pytestmark = pytest.mark.asyncio


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens there once the socket is closed


async def _calls(app: Any) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://rest") as http,
    ):
        token = "1234567:" + "a" * 35
        return [
            # the direct API path
            await http.post("/bot/getMe", headers={"Authorization": f"Bot {token}"}),
            await http.post("/client/getMe", headers={"Authorization": f"Bearer usr_{token}"}),
            # through Starlette: the Telegram dialect's route
            await http.post(f"/bot{token}/getMe"),
        ]


async def test_an_unreachable_store_is_503_on_every_path() -> None:
    settings = Settings.from_env(
        {
            "BOTGW_REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0",
            "BOTGW_SECRET": "s" * 32,
        }
    )
    responses = await _calls(create_app(settings))
    assert [r.status_code for r in responses] == [503, 503, 503]
    for response in responses:
        body = response.json()
        assert body["ok"] is False and body["error_code"] == 503
        assert "retry" in body["description"]
    # the native dialect names the error; the Telegram one has no such field
    assert responses[0].json()["code"] == "BACKEND_UNAVAILABLE"


async def test_api_paths_the_direct_path_leaves_to_starlette(settings: Settings) -> None:
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://rest") as http,
    ):
        # another HTTP method: Starlette's 405, in the envelope
        put = await http.put("/bot/getMe")
        assert put.status_code == 405 and put.json()["code"] == "METHOD_NOT_ALLOWED"
        # no method name, or a deeper path: not an API call
        for path in ("/bot/", "/client/x/y", "/nowhere/getMe"):
            missing = await http.post(path)
            assert missing.status_code == 404 and missing.json()["ok"] is False, path
        # an unknown method on the direct path: 401 first (no token), then 404
        unknown = await http.post("/manage/noSuchMethod", headers={"Authorization": "Bearer x"})
        assert unknown.status_code in (401, 404) and unknown.json()["ok"] is False
