"""An unmodified telegraf bot (Node.js) against the real stack, polling and by webhook.

The bot (``tests/e2e/js_bots/telegraf_bot.js``) is configured only through
telegraf's documented custom-server option, ``telegram: {apiRoot}``; the exact
version is pinned in ``tests/e2e/js_bots/package.json`` and its lock file, and
``npm ci`` installs it once into that directory's (ignored) ``node_modules``. It
logs what it handles as JSON lines, which fill a :class:`Seen` as the in-process
bots do; a user drives it through the client API.

In webhook mode the bot sets its webhook, serves telegraf's ``webhookCallback``
and answers callback queries the way telegraf does by default: as a webhook reply
(``{"method": "answerCallbackQuery", ...}`` in the answer's body), which the
dispatcher carries out (docs/webhooks.md §3.5).

Skipped, saying why, without Node.js 18 or newer (and npm, the first time, for
``npm ci``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from botgw.local_redis import free_port
from shared.settings import Settings
from tests.conftest import Process, Stack, wait_s
from tests.e2e.telegram_bots import PNG, Seen, chatting, conversation, eventually, until
from tests.e2e.test_typescript_client import INSTALL, node_problem
from tests.e2e.test_webhooks_receiver import dispatcher, scrape

pytestmark = pytest.mark.asyncio

BOTS = Path(__file__).resolve().parent / "js_bots"


@pytest.fixture(scope="module")
def installed() -> Path:
    """The pinned libraries installed (``npm ci`` once, from package-lock.json)."""
    problem = node_problem(BOTS)
    if problem is not None:
        pytest.fail(f"JavaScript bots cannot be tested: {problem}; {INSTALL}", pytrace=False)
    if not (BOTS / "node_modules" / "telegraf").is_dir():
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=BOTS,
            capture_output=True,
            text=True,
            timeout=wait_s(600),
            check=False,
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci exited {done.returncode}:\n{(done.stdout + done.stderr)[-6000:]}")
    return BOTS


@dataclass
class NodeBot:
    """A bot program's process and what it logged."""

    proc: asyncio.subprocess.Process
    seen: Seen
    events: list[dict[str, Any]] = field(default_factory=list)
    update_ids: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a library's own output
            if isinstance(event, dict):
                self.note(event)

    def note(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        seen = self.seen
        if "update_id" in event:
            self.update_ids.append(int(event["update_id"]))
        if "text" in event:
            seen.texts.append(event["text"])
        if "callback" in event:
            seen.callbacks.append(event["callback"])
        if "sent" in event:
            seen.sent.append(event["sent"])
        if "photo_file_id" in event:
            seen.photo_file_ids.append(event["photo_file_id"])
        if "downloaded" in event:
            seen.downloaded.append(base64.b64decode(event["downloaded"]))
        if "error" in event:
            seen.errors.append(event["error"])

    def logged(self, key: str) -> list[Any]:
        return [event[key] for event in self.events if key in event]


@contextlib.asynccontextmanager
async def node_bot(
    script: str, seen: Seen, env: dict[str, str], tmp: Path
) -> AsyncIterator[NodeBot]:
    """``node <script>`` with ``env``, once it logged ``ready``; SIGTERM afterwards,
    and the process must then exit by itself."""
    photo = tmp / "photo.png"
    photo.write_bytes(PNG)
    full = {k: v for k, v in os.environ.items() if not k.startswith("BOTGW_")}
    full.update(env, PHOTO=str(photo))
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(BOTS / script),
        cwd=BOTS,
        env=full,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    bot = NodeBot(proc, seen)
    reader = asyncio.create_task(bot.read())
    try:
        await until(
            lambda: bool(bot.logged("ready")) or bool(seen.errors) or reader.done(),
            f"{script} ready",
        )
        assert not seen.errors, bot.lines
        assert bot.logged("ready"), bot.lines
        yield bot
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), wait_s(30))
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise AssertionError(
                    f"{script} did not stop on SIGTERM: {bot.lines[-20:]}"
                ) from None
        await reader
    assert proc.returncode == 0, bot.lines[-20:]
    assert seen.errors == [], seen.errors


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


async def test_telegraf_bot_holds_a_conversation_in_polling_mode(
    installed: Path, stack: Stack, settings: Settings, tmp: Path
) -> None:
    running: list[NodeBot] = []

    @contextlib.asynccontextmanager
    async def started(rest_url: str, token: str, seen: Seen) -> AsyncIterator[NodeBot]:
        async with node_bot(
            "telegraf_bot.js", seen, {"BOT_TOKEN": token, "API_ROOT": rest_url}, tmp
        ) as bot:
            running.append(bot)
            yield bot

    async with chatting(stack.rest_url, settings, "tgf", started) as chat:
        bot = running[0]
        assert bot.logged("me") == [chat.bot.username]  # getMe
        await conversation(chat.as_user, chat.http, chat.chat_id, chat.seen)
        assert chat.seen.texts == ["/start", "hello, bot", "/photo"]
        assert chat.seen.callbacks == ["blue"]
        # every update handled once: /start, the button, the echo, /photo
        await until(lambda: len(bot.update_ids) == 4, "four updates", chat.seen)
        assert bot.update_ids == sorted(set(bot.update_ids))


@pytest.fixture(scope="module")
def hooks(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A webhook dispatcher of this module, its metrics served."""
    process = dispatcher(stack.redis_url, tmp_path_factory.mktemp("tgf-hooks"), "webhooks")
    process.start()
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()


async def replies_done(hooks: Process) -> float:
    metrics = await scrape(hooks)
    return metrics.get(("botgw_webhook_replies_total", (("outcome", "done"),)), 0.0)


async def test_telegraf_bot_in_webhook_mode_answers_callbacks_by_webhook_reply(
    installed: Path, stack: Stack, settings: Settings, tmp: Path, hooks: Process
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/telegraf-hook"
    running: list[NodeBot] = []
    done_before = await replies_done(hooks)

    @contextlib.asynccontextmanager
    async def started(rest_url: str, token: str, seen: Seen) -> AsyncIterator[NodeBot]:
        env = {
            "BOT_TOKEN": token,
            "API_ROOT": rest_url,
            "WEBHOOK_URL": url,
            "WEBHOOK_PORT": str(port),
            "WEBHOOK_SECRET": secrets.token_urlsafe(24),
        }
        async with node_bot("telegraf_bot.js", seen, env, tmp) as bot:
            running.append(bot)
            yield bot

    async with chatting(stack.rest_url, settings, "tgw", started) as chat:
        bot = running[0]
        (info,) = bot.logged("webhook_info")  # getWebhookInfo after setWebhook
        assert info["url"] == url and info["pending_update_count"] >= 0
        await conversation(chat.as_user, chat.http, chat.chat_id, chat.seen)
        assert chat.seen.texts == ["/start", "hello, bot", "/photo"]
        await until(lambda: len(bot.update_ids) == 4, "four updates", chat.seen)
        assert bot.update_ids == sorted(set(bot.update_ids))

        # the callback answer the user saw came in the webhook's answer
        async def counted() -> bool:
            return await replies_done(hooks) == done_before + 1

        await eventually(counted, "the webhook reply counted")
    # deleteWebhook on SIGTERM, then getWebhookInfo
    assert [i["url"] for i in bot.logged("webhook_info")] == [url, ""]
