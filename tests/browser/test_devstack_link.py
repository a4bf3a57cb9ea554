"""``botgw run`` as a bot author starts it: the playground link it prints opens
the page logged in as the demo user, and the demo bot answers there through
``examples/echo_agent.py``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from botgw.local_redis import free_port
from tests.browser.conftest import ROOT, new_browser, require_chromium
from tests.conftest import wait_s

_LINK = re.compile(r"(http://127\.0\.0\.1:\d+/playground/#login=[A-Za-z0-9_-]+)")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTGW_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """``botgw run`` on free ports: the link it printed and its demo.json."""
    require_chromium()
    log = tmp_path / "run.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "botgw", "run"),
                *("--rest-port", str(free_port()), "--gateway-port", str(free_port())),
                *("--data-dir", str(tmp_path / "data")),
            ],
            cwd=ROOT,
            env=_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + wait_s(60)
        while "Stop with Ctrl-C" not in log.read_text():
            assert proc.poll() is None, f"botgw run exited: {log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"botgw run never ready: {log.read_text()[-3000:]}"
            time.sleep(0.1)
        found = _LINK.search(log.read_text())
        assert found, "botgw run printed no playground link"
        demo = json.loads((tmp_path / "data" / "demo.json").read_text())
        assert demo["user_token"] not in found.group(1)
        yield found.group(1), demo
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=wait_s(30)) == 0


def test_the_printed_link_logs_in_and_the_echo_agent_answers(
    dev_stack: tuple[str, dict[str, Any]], tmp_path: Path
) -> None:
    link, demo = dev_stack
    agent = subprocess.Popen(
        [sys.executable, "examples/echo_agent.py", demo["gateway_url"]],
        cwd=ROOT,
        env={**_env(), "BOTGW_TOKEN": demo["bot_token"]},
    )
    profile = tmp_path / "profile"
    profile.mkdir()
    browser = new_browser(profile)
    try:
        browser.get(link)
        wait = WebDriverWait(browser, wait_s(30), poll_frequency=0.1)
        me = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, ".me"))
        assert me.text == "Demo User @demo"
        # the demo chat is opened first: the composer is the demo bot's
        box = wait.until(
            lambda d: d.find_element(By.CSS_SELECTOR, 'textarea[aria-label="Message"]')
        )
        assert box.get_attribute("placeholder") == "Message Demo Bot"
        box.send_keys("hi from the playground\n")

        def echoed(d: Any) -> bool:
            theirs = d.find_elements(By.CSS_SELECTOR, "ol[role=log] > li.message:not(.mine) .text")
            return any(t.text == "hi from the playground" for t in theirs)

        wait.until(echoed)
        assert "login=" not in browser.current_url
    finally:
        browser.quit()
        agent.terminate()
        agent.wait(timeout=wait_s(10))
