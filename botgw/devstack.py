"""``botgw run``: the whole platform on one machine for development.

Starts a local Redis (AOF on, data under the data directory) unless
``BOTGW_REDIS_URL`` is given, then the REST, gateway and webhook processes, makes
the demo user and ``demo_bot`` (idempotently: a second run reuses the same tokens
and chat), prints how to use them and writes ``demo.json``. Ctrl-C or SIGTERM
stops every child.

It also prints a link to the playground (``/playground/``) that logs the demo
user in: a one-time login code in the link's fragment, which browsers do not
send to servers, good once and for ten minutes (:mod:`shared.store.logins`); and
it opens the playground's sign-up, so "Create a guest user" works there.

The ports are settled before any child starts (a port of 0 becomes a free one;
REST's metrics get a free port unless ``BOTGW_REST_METRICS_PORT`` names one) and
every child gets all of them as ``BOTGW_*`` variables, so the gateway forwards
socket requests to this stack's REST and not to a default port. The children log
text lines unless ``BOTGW_LOG_FORMAT`` asks for JSON, and drain for a second.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from botgw.admin import messenger_session
from botgw.local_redis import LocalRedis, free_port
from rest.messenger import Messenger
from shared.errors import ApiError
from shared.ids import hash_secret, new_secret
from shared.settings import Settings
from shared.store.logins import CODE_TTL_SECONDS, LoginCodes

__all__ = ["ensure_demo", "playground_link", "run_dev_stack", "wait_http_ok"]

DEMO_USER = "demo"
DEMO_BOT = "demo_bot"


async def _demo_valid(messenger: Messenger, demo: dict[str, Any]) -> bool:
    try:
        user = await messenger.accounts.authenticate_user(demo.get("user_token"))
        await messenger.accounts.authenticate_bot(demo.get("bot_token"))
        await messenger.chat_for_user(user, int(demo.get("chat_id", 0)))
    except (ApiError, ValueError, TypeError):
        return False
    return True


async def ensure_demo(settings: Settings, demo_file: Path) -> dict[str, Any]:
    """The demo user, ``demo_bot`` and their private chat; reused when still valid."""
    rest_url = settings.public_rest_url or f"http://{settings.rest_host}:{settings.rest_port}"
    gateway_url = (
        settings.public_gateway_url
        or f"ws://{settings.gateway_host}:{settings.gateway_port}/bot/ws"
    )
    async with messenger_session(settings) as messenger:
        if demo_file.exists():
            try:
                demo = json.loads(demo_file.read_text())
            except ValueError:
                demo = {}
            if await _demo_valid(messenger, demo):
                demo.update(rest_url=rest_url, gateway_url=gateway_url)
                demo_file.write_text(json.dumps(demo, indent=2) + "\n")
                return dict(demo)
        user = await messenger.accounts.user_by_username(DEMO_USER)
        if user is None:
            user, user_token = await messenger.accounts.create_user(DEMO_USER, "Demo User")
        else:  # tokens are stored hashed only: issue a new one
            user_token = f"usr_{user.id}:{new_secret()}"
            await messenger.db.set_user_token(user.id, hash_secret(user_token))
        bot = await messenger.accounts.bot_by_username(DEMO_BOT)
        if bot is None:
            bot, bot_token = await messenger.accounts.create_bot(
                user, username=DEMO_BOT, name="Demo Bot", description="The dev stack's demo bot"
            )
        else:
            bot_token = await messenger.accounts.rotate_token(bot)
        chat_id = await messenger.db.private_chat_of(bot.id, messenger.scoped(bot.id, user.id))
        if chat_id is None:
            chat_id = (await messenger.start_bot(user, DEMO_BOT)).id
    demo = {
        "rest_url": rest_url,
        "gateway_url": gateway_url,
        "bot_token": bot_token,
        "bot_username": DEMO_BOT,
        "user_token": user_token,
        "chat_id": str(chat_id),
    }
    demo_file.write_text(json.dumps(demo, indent=2) + "\n")
    return demo


async def playground_link(settings: Settings, demo: dict[str, Any]) -> str:
    """A one-time link that opens the playground logged in as the demo user; and
    sign-up opened, for this stack's playground."""
    async with messenger_session(settings) as messenger:
        codes = LoginCodes(wire=messenger.store.wire)
        await codes.set_signup(True)
        user = await messenger.accounts.authenticate_user(demo["user_token"])
        code = await codes.issue(user.id, demo["user_token"])
    return f"{demo['rest_url']}/playground/#login={code}"


def _python() -> str:
    """The interpreter to run the examples with: this one (it has their packages),
    named relative to the working directory when it lies inside it."""
    try:
        return str(Path(sys.executable).relative_to(Path.cwd()))
    except ValueError:
        return sys.executable


def _banner(demo: dict[str, Any], demo_file: Path, metrics: tuple[str, str], link: str) -> str:
    rest, bot_token, user_token = demo["rest_url"], demo["bot_token"], demo["user_token"]
    return f"""
botgw is running.
  REST     {rest}
  gateway  {demo["gateway_url"]}
  metrics  {metrics[0]} (REST), {metrics[1]} (gateway)
  demo bot @{demo["bot_username"]}   (written to {demo_file})

  bot token   {bot_token}
  user token  {user_token}

Chat with the bot in the playground, logged in as the demo user (the link works
once, within {CODE_TTL_SECONDS // 60} minutes; later, log in there with the user token):
  {link}

Make the demo bot answer there (it echoes every text):
  BOTGW_TOKEN='{bot_token}' {_python()} examples/echo_agent.py {demo["gateway_url"]}

Make and manage bots of your own by chatting with @{demo["system_bot_username"]}
there: /newbot, /mybots, /help.

Ask the Bot API who the bot is:
  curl -s -H 'Authorization: Bot {bot_token}' {rest}/bot/getMe

Hold the gateway socket (Python, with the websockets package):
  python -c "import asyncio,json,websockets
async def main():
    async with websockets.connect('{demo["gateway_url"]}',
            additional_headers={{'Authorization': 'Bot {bot_token}'}}) as ws:
        print(await ws.recv()); await ws.send(json.dumps({{'op': 'identify'}}))
        async for frame in ws: print(frame)
asyncio.run(main())"

Write to the bot as the demo user (watch it arrive on the socket):
  curl -s -H 'Authorization: Bearer {user_token}' -H 'content-type: application/json' \\
    -d '{{"chat_id": "{demo["chat_id"]}", "text": "hello bot"}}' {rest}/client/sendMessage

Stop with Ctrl-C.
"""


def wait_http_ok(
    url: str, timeout: float, alive: Callable[[], bool], interval: float = 0.1
) -> bool:
    """Ask ``url`` every ``interval`` seconds until it answers 200 (True), ``timeout``
    seconds pass or ``alive()``, asked before each try, says to give up (False);
    ``alive`` may raise instead, for a process that died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    return False


def _wait_healthy(
    url: str,
    procs: list[subprocess.Popen[bytes]],
    timeout: float,
    stopping: Callable[[], bool],
) -> None:
    def alive() -> bool:
        if stopping():
            return False
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{' '.join(map(str, proc.args))} exited at start")  # type: ignore[arg-type]
        return True

    if not wait_http_ok(url, timeout, alive) and not stopping():
        raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def _ports(settings: Settings) -> dict[str, str]:
    """Every address the children need, as ``BOTGW_*`` variables: the ports given
    (a port of 0 made a free one) and a free one for REST's metrics if none is."""
    rest_port = settings.rest_port or free_port()
    gateway_port = settings.gateway_port or free_port()
    metrics_port = settings.rest_metrics_port or free_port()
    return {
        "BOTGW_REST_HOST": settings.rest_host,
        "BOTGW_REST_PORT": str(rest_port),
        "BOTGW_GATEWAY_HOST": settings.gateway_host,
        "BOTGW_GATEWAY_PORT": str(gateway_port),
        "BOTGW_REST_METRICS_HOST": settings.rest_metrics_host or settings.rest_host,
        "BOTGW_REST_METRICS_PORT": str(metrics_port),
    }


def run_dev_stack(settings: Settings) -> int:
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    redis: LocalRedis | None = None
    url = settings.redis_url
    if url is None:
        redis = LocalRedis(directory=data_dir / "redis").start()
        url = redis.url
        (data_dir / "redis.url").write_text(url + "\n")
        print(f"local Redis on {url} (AOF on, data in {data_dir / 'redis'})", flush=True)
    allow = ",".join(settings.webhook_allow or ("127.0.0.0/8", "::1/128", "localhost"))
    env = {
        **os.environ,
        "BOTGW_REDIS_URL": url,
        "BOTGW_DATA_DIR": str(data_dir),
        "BOTGW_WEBHOOK_ALLOW": allow,
        # Ctrl-C should not wait out a production-length drain
        "BOTGW_DRAIN_SECONDS": os.environ.get("BOTGW_DRAIN_SECONDS", "1"),
        "BOTGW_REST_DRAIN_SECONDS": os.environ.get("BOTGW_REST_DRAIN_SECONDS", "1"),
        # people read these logs: lines of text, unless JSON is asked for
        "BOTGW_LOG_FORMAT": os.environ.get("BOTGW_LOG_FORMAT") or "text",
        **_ports(settings),
    }
    # what every child reads: one source for the ports (the command line options
    # of `botgw run` included), the banner and demo.json
    settings = Settings.from_env(env)
    exe = [sys.executable, "-m", "botgw"]
    commands = [[*exe, "rest"], [*exe, "gateway"], [*exe, "webhooks"]]
    procs: list[subprocess.Popen[bytes]] = []
    code = 0
    try:
        for command in commands:
            procs.append(subprocess.Popen(command, env=env))
        is_stopping = lambda: stopping  # noqa: E731 - read the flag at call time
        for host, port in (
            (settings.rest_host, settings.rest_port),
            (settings.gateway_host, settings.gateway_port),
        ):
            _wait_healthy(f"http://{host}:{port}/healthz", procs, 60, is_stopping)
        if stopping:
            return 0
        demo = asyncio.run(ensure_demo(settings, data_dir / "demo.json"))
        # the system bot (docs/systembot.md): made or its token renewed, named in
        # demo.json, and started as one more child
        from botgw.systembot import ensure_system_bot

        demo["system_bot_username"], system_token = asyncio.run(ensure_system_bot(settings))
        (data_dir / "demo.json").write_text(json.dumps(demo, indent=2) + "\n")
        system_env = {**env, "BOTGW_SYSTEM_BOT_TOKEN": system_token}
        procs.append(subprocess.Popen([*exe, "systembot"], env=system_env))
        metrics = (
            f"http://{settings.rest_metrics_host}:{settings.rest_metrics_port}/metrics",
            f"http://{settings.gateway_host}:{settings.gateway_port}/metrics",
        )
        link = asyncio.run(playground_link(settings, demo))
        print(_banner(demo, data_dir / "demo.json", metrics, link), flush=True)
        while not stopping:
            for proc in procs:
                if proc.poll() is not None:
                    print(f"botgw: a child exited ({proc.args!r}); stopping", file=sys.stderr)
                    code = 1
                    stopping = True
            time.sleep(0.2)
    except RuntimeError as exc:
        print(f"botgw: {exc}", file=sys.stderr)
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if redis is not None:
            redis.stop()
        print("botgw: stopped", flush=True)
    return code
