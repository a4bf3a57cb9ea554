"""The bridge, /webapp.js, in a real headless Chromium: a mini app on an origin of
its own, framed sandboxed by a parent page on another, reads its init data and
theme from the fragment and speaks Telegram's web events both ways."""

from __future__ import annotations

import http.server
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from botgw.local_redis import free_port
from tests.browser.conftest import CHROMEDRIVER, CHROMIUM, require_chromium
from tests.conftest import Stack, wait_s

APP = """<!doctype html><html><head><meta charset="utf-8">
<script src="{rest}/webapp.js"></script></head><body><script>
const app = window.Telegram.WebApp;
app.MainButton.setText("Pay").show();
app.MainButton.onClick(() => app.sendData("paid " + app.initDataUnsafe.user.first_name));
app.onEvent("themeChanged", () => app.sendData("theme " + app.colorScheme));
app.expand();
app.ready();
window.parent.postMessage(JSON.stringify({{eventType: "probe", eventData: {{
  same: window.Botgw.WebApp === app, initData: app.initData, user: app.initDataUnsafe.user,
  auth: app.initDataUnsafe.auth_date, theme: app.themeParams, scheme: app.colorScheme,
  platform: app.platform}}}}), "*");
</script></body></html>"""

PARENT = """<!doctype html><html><head><meta charset="utf-8"></head><body>
<iframe id="app" sandbox="allow-scripts" src="{src}"></iframe><script>
window.received = [];
window.addEventListener("message", (event) => {{
  if (event.source === document.getElementById("app").contentWindow) {{
    window.received.push(JSON.parse(event.data));
  }}
}});
window.tell = (message) =>
  document.getElementById("app").contentWindow.postMessage(JSON.stringify(message), "*");
</script></body></html>"""


class _Pages(http.server.BaseHTTPRequestHandler):
    pages: dict[str, bytes] = {}

    def do_GET(self) -> None:
        page = self.pages.get(self.path.split("?")[0])
        if page is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def pages() -> Iterator[tuple[int, dict[str, bytes]]]:
    port = free_port()
    _Pages.pages = {}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield port, _Pages.pages
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def browser() -> Iterator[Any]:
    require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="botgw-bridge-")
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(wait_s(30))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _received(driver: Any, count: int) -> list[dict[str, Any]]:
    """The first ``count`` messages the parent got from the app."""
    deadline = time.monotonic() + wait_s(20)
    while True:
        found: list[dict[str, Any]] = driver.execute_script("return window.received")
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_the_bridge_in_a_sandboxed_frame(
    stack: Stack, pages: tuple[int, dict[str, bytes]], browser: Any
) -> None:
    port, served = pages
    served["/app.html"] = APP.format(rest=stack.rest_url).encode()
    init_data = (
        "query_id=AAQ1&user=" + quote('{"id":7,"first_name":"Ann"}') + "&auth_date=5&hash=ab"
    )
    theme = {"bg_color": "#101010", "text_color": "#ffffff"}
    # the app on another origin than the parent (localhost vs 127.0.0.1)
    src = (
        f"http://localhost:{port}/app.html#tgWebAppData={quote(init_data)}"
        f"&tgWebAppThemeParams={quote(json.dumps(theme))}"
    )
    served["/parent.html"] = PARENT.format(src=src).encode()
    browser.get(f"http://127.0.0.1:{port}/parent.html")

    first = _received(browser, 5)
    assert [m["eventType"] for m in first[:5]] == [
        "web_app_setup_main_button",  # setText
        "web_app_setup_main_button",  # show
        "web_app_expand",
        "web_app_ready",
        "probe",
    ]
    assert first[0]["eventData"] == {"is_visible": False, "text": "Pay"}
    assert first[1]["eventData"] == {"is_visible": True, "text": "Pay"}
    probe = first[4]["eventData"]
    assert probe["same"] is True and probe["platform"] == "botgw"
    assert probe["initData"] == init_data
    assert probe["user"] == {"id": 7, "first_name": "Ann"} and probe["auth"] == 5
    assert probe["theme"] == theme and probe["scheme"] == "dark"

    browser.execute_script("window.tell({eventType: 'main_button_pressed'})")
    paid = _received(browser, 6)[5]
    assert paid == {"eventType": "web_app_data_send", "eventData": {"data": "paid Ann"}}
    change = {"eventType": "theme_changed", "eventData": {"theme_params": {"bg_color": "#ffffff"}}}
    browser.execute_script(f"window.tell({json.dumps(change)})")
    light = _received(browser, 7)[6]
    assert light == {"eventType": "web_app_data_send", "eventData": {"data": "theme light"}}
