"""The browser tests' stage: a real headless Chromium (Debian's ``chromium`` and
``chromium-driver``), the suite's REST and gateway processes, the test bot's agent
(:mod:`tests.browser.agent`) and a mini app served from an origin of its own.

Screenshots go to a temporary directory, or to ``BOTGW_PLAYGROUND_SCREENSHOTS``
when it is set (``docs/playground`` makes the documentation's images).
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from botgw.admin import messenger_session
from botgw.local_redis import free_port
from shared.settings import Settings
from tests.api import Account, BotAccount
from tests.conftest import Process, Stack, process_env, rest_process, unique, wait_s

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = (
    "the browser tests need Debian's Chromium and its driver at /usr/bin/chromium and "
    "/usr/bin/chromedriver: apt-get install chromium chromium-driver (.ci/run does)"
)
ROOT = Path(__file__).resolve().parents[2]

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
except ImportError:  # pragma: no cover - selenium is in the dev extra
    webdriver = None  # type: ignore[assignment]

MINI_APP = """<!doctype html>
<html><head><meta charset="utf-8"><title>Test mini app</title>
<script src="{rest}/webapp.js"></script></head>
<body style="font-family: sans-serif; padding: 16px">
<h1>Test mini app</h1><p id="hello">…</p>
<button id="send" type="button">Send data</button>
<script>
const app = window.Telegram.WebApp;
const user = (app.initDataUnsafe && app.initDataUnsafe.user) || {{}};
document.getElementById("hello").textContent = "Hello, " + (user.first_name || "nobody");
document.getElementById("send").addEventListener("click", () => app.sendData("hello from the app"));
app.MainButton.setText("Send with the main button");
app.MainButton.onClick(() => app.sendData("main button"));
app.MainButton.show();
app.ready();
</script></body></html>
"""


def require_chromium() -> None:
    """Fail, saying what to install, unless selenium, Chromium and its driver are
    here (`.ci/run` installs them): a browser test that cannot run is not passed."""
    missing = chromium_missing()
    if missing:
        pytest.fail(f"{missing} (.ci/run installs what the suite needs)", pytrace=False)


def chromium_missing() -> str | None:
    if webdriver is None:
        return "the browser tests need selenium: pip install selenium"
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        return INSTALL
    return None


def new_browser(profile: Path, *, width: int = 1200, height: int = 800) -> Any:
    """A headless Chromium with a new empty profile in ``profile``, its network
    log kept and its downloads in ``profile / "downloads"``."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    downloads = profile / "downloads"
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.set_page_load_timeout(wait_s(30))
    return driver


def requested_urls(driver: Any) -> list[str]:
    """Every URL the browser asked for since the last call (its network log)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


class _MiniAppHandler(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/app.html":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Stage:
    """What the browser tests play on."""

    stack: Stack
    settings: Settings
    bot: BotAccount
    alice: Account
    bob: Account
    mini_app_url: str
    record: Path
    shots: Path
    tmp: Path
    # a REST process of the module's own (same Redis) that a test may restart
    second_rest: Process
    browsers: list[Any] = field(default_factory=list)

    def profile(self, name: str) -> Path:
        """The profile directory of the browser called ``name``."""
        return self.tmp / f"profile-{name}"

    def records(self) -> list[dict[str, Any]]:
        """What the agent has written: each update it handled, its errors."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines() if line]

    def wait_record(
        self, found: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        deadline = time.monotonic() + wait_s(timeout)
        while time.monotonic() < deadline:
            for entry in self.records():
                if found(entry):
                    return entry
            time.sleep(0.1)
        raise AssertionError(f"the agent never recorded it; it has: {self.records()[-5:]}")

    def browser(self, name: str) -> Any:
        """A new browser with a profile of its own, ``self.profile(name)`` (closed
        at the module's end)."""
        profile = self.profile(name)
        profile.mkdir()
        driver = new_browser(profile)
        self.browsers.append(driver)
        return driver


BOT_NAME = "Playground Bot"


async def _accounts(settings: Settings) -> tuple[Account, Account, BotAccount]:
    """Alice, Bob (display names as people have them) and Alice's bot."""
    async with messenger_session(settings) as messenger:
        accounts = messenger.accounts
        made = [await accounts.create_user(unique(name.lower()), name) for name in ("Alice", "Bob")]
        (alice, alice_token), (bob, bob_token) = made
        bot, bot_token = await accounts.create_bot(
            alice, username=unique("pg") + "_bot", name=BOT_NAME
        )
    return (
        Account(alice.id, alice.username, alice_token),
        Account(bob.id, bob.username, bob_token),
        BotAccount(bot.id, bot.username, bot_token),
    )


@pytest.fixture(scope="module")
def stage(
    stack: Stack, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stage]:
    require_chromium()
    tmp = tmp_path_factory.mktemp("browser")
    alice, bob, bot = asyncio.run(_accounts(settings))

    _MiniAppHandler.page = MINI_APP.format(rest=stack.rest_url).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _MiniAppHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    mini_app_url = f"http://127.0.0.1:{server.server_address[1]}/app.html"

    record = tmp / "agent.jsonl"
    log = (tmp / "agent.log").open("ab")
    env = process_env(stack.redis_url, BOTGW_TOKEN=bot.token)
    agent = subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.browser.agent"),
            *(stack.ws_url, mini_app_url, str(record), stack.rest_url),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    shots = Path(os.environ.get("BOTGW_PLAYGROUND_SCREENSHOTS") or tmp / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    second_rest = rest_process(stack.redis_url, tmp, "rest-second")
    second_rest.start()
    stage = Stage(stack, settings, bot, alice, bob, mini_app_url, record, shots, tmp, second_rest)
    try:
        second_rest.wait_healthy()
        stage.wait_record(lambda entry: entry.get("ready") is True, timeout=30)
        yield stage
    finally:
        for driver in stage.browsers:
            driver.quit()
        second_rest.stop()
        agent.terminate()
        try:
            agent.wait(timeout=wait_s(10))
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        server.shutdown()
        server.server_close()
