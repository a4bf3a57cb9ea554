"""The playground in a real headless Chromium, against real REST and gateway
processes, with the test bot's agent holding the gateway socket.

The tests run in order, as one person would use the page: log in with a link,
start the bot, talk to it, press its buttons, vote, open its mini app; then a
second person in a second browser sees a group's messages live. The main views
are saved as screenshots (see tests/browser/conftest.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from botgw.admin import messenger_session
from botgw.devstack import playground_link
from shared.store.logins import LoginCodes
from tests.browser.agent import DOCUMENT, GREETING
from tests.browser.conftest import BOT_NAME, Stage, requested_urls
from tests.conftest import wait_s

Driver = Any


def wait_for(driver: Driver, found: Callable[[Driver], Any], timeout: float = 20) -> Any:
    """What ``found`` returns once it is truthy (it is asked again until then); a
    page element that went stale meanwhile is looked up again."""

    def attempt(d: Driver) -> Any:
        try:
            return found(d)
        except (StaleElementReferenceException, WebDriverException):
            return None

    try:
        return WebDriverWait(driver, wait_s(timeout), poll_frequency=0.1).until(attempt)
    except TimeoutException:
        notices = [t.text for t in driver.find_elements(By.CSS_SELECTOR, ".toast")]
        console = [entry["message"] for entry in driver.get_log("browser")][-10:]
        raise AssertionError(f"never happened; notices: {notices}; console: {console}") from None


def click(driver: Driver, find: Callable[[Driver], WebElement]) -> None:
    """Click what ``find`` finds, looking again if the page redrew it meanwhile."""

    def clicked(d: Driver) -> bool:
        find(d).click()
        return True

    wait_for(driver, clicked)


def button(driver: Driver | WebElement, name: str) -> WebElement:
    """The button whose accessible name (aria-label, else its text) is ``name``."""
    xpath = (
        f".//*[(self::button or self::a) and (@aria-label={_literal(name)} or "
        f"(not(@aria-label) and normalize-space(.)={_literal(name)}))]"
    )
    found: WebElement = driver.find_element(By.XPATH, xpath)
    return found


def labelled(driver: Driver, label: str) -> WebElement:
    """The text box named ``label``: by its <label>, else by aria-label."""
    tags = driver.find_elements(By.XPATH, f"//label[normalize-space(.)={_literal(label)}]")
    if tags:
        found: WebElement = driver.find_element(By.ID, tags[0].get_attribute("for"))
        return found
    found = driver.find_element(
        By.CSS_SELECTOR, f'input[aria-label="{label}"], textarea[aria-label="{label}"]'
    )
    return found


def _literal(text: str) -> str:
    return f'"{text}"' if '"' not in text else f"'{text}'"


def message_with(driver: Driver, text: str) -> WebElement | None:
    """The message of the open chat whose text contains ``text``."""
    items: list[WebElement] = driver.find_elements(By.CSS_SELECTOR, "ol[role=log] > li")
    for item in items:
        if text in item.text:
            return item
    return None


def notice(text: str) -> Callable[[Driver], bool]:
    """Whether a notice (a toast) shows ``text``."""
    return lambda d: any(text in t.text for t in d.find_elements(By.CSS_SELECTOR, ".toast"))


def composer(driver: Driver) -> WebElement:
    box: WebElement = driver.find_element(By.CSS_SELECTOR, 'textarea[aria-label="Message"]')
    assert box.get_attribute("id") == "composer"
    return box


def send(driver: Driver, text: str) -> None:
    box = composer(driver)
    box.send_keys(text)
    box.send_keys(Keys.ENTER)
    wait_for(driver, lambda d: composer(d).get_attribute("value") == "")


def screenshot(stage: Stage, driver: Driver, name: str) -> None:
    """Save the view as ``name``, without the notices that are passing."""
    driver.execute_script("document.querySelectorAll('.toast').forEach((t) => t.remove())")
    path = stage.shots / name
    assert driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, f"{name} is nearly empty"


@pytest.fixture(scope="module")
def alice(stage: Stage) -> Iterator[Driver]:
    yield stage.browser("alice")


@pytest.fixture(scope="module")
def bob(stage: Stage) -> Iterator[Driver]:
    yield stage.browser("bob")


def test_the_page_is_served_with_its_security_headers(stage: Stage) -> None:
    base = stage.stack.rest_url
    with httpx.Client(base_url=base) as http:
        moved = http.get("/playground")
        assert moved.status_code == 308 and moved.headers["location"].endswith("/playground/")
        page = http.get("/playground/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "cache-control" in page.headers and "set-cookie" not in page.headers
        script = http.get("/playground/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        for path in ("/playground/..%2Fapp.py", "/playground/nothing.js", "/playground/.env"):
            assert http.get(path).status_code == 404, path


def test_a_login_link_logs_in_once_and_leaves_no_token_in_the_url(
    stage: Stage, alice: Driver
) -> None:
    demo = {"rest_url": stage.stack.rest_url, "user_token": stage.alice.token}
    link = asyncio.run(playground_link(stage.settings, demo))
    code = link.rsplit("=", 1)[1]
    alice.get(link)
    wait_for(alice, lambda d: d.find_element(By.CSS_SELECTOR, "nav[aria-label='Chats and tools']"))
    assert f"Alice @{stage.alice.username}" in alice.find_element(By.CSS_SELECTOR, ".me").text
    assert "login=" not in alice.current_url and "#" not in alice.current_url
    stored = alice.execute_script("return sessionStorage.getItem('botgw.playground.token')")
    assert stored == stage.alice.token
    assert alice.execute_script("return document.cookie") == ""
    # the code is spent
    answer = httpx.post(
        f"{stage.stack.rest_url}/playground/api/redeemLoginCode", json={"code": code}
    )
    assert answer.status_code == 400 and answer.json()["code"] == "LOGIN_CODE_INVALID"


def test_a_spent_or_wrong_login_link_asks_for_a_token(stage: Stage, bob: Driver) -> None:
    bob.get(f"{stage.stack.rest_url}/playground/#login=not-a-code-that-works")
    notice = wait_for(bob, lambda d: d.find_element(By.CSS_SELECTOR, ".login [role=alert]"))
    assert "no longer works" in notice.text
    assert "login=" not in bob.current_url
    assert labelled(bob, "User token").get_attribute("type") == "password"


def test_a_user_starts_the_bot_and_sees_its_reply_without_reload(
    stage: Stage, alice: Driver
) -> None:
    start = labelled(alice, "Start a bot")
    start.send_keys(stage.bot.username, Keys.ENTER)
    wait_for(alice, lambda d: message_with(d, GREETING))
    # the keyboard reaches the composer with Tab, and Enter sends
    alice.find_element(By.CSS_SELECTOR, "button.chat.current").click()
    for _ in range(80):
        active = alice.switch_to.active_element
        if active.get_attribute("aria-label") == "Message":
            break
        ActionChains(alice).send_keys(Keys.TAB).perform()
    else:
        raise AssertionError("Tab never reached the composer")
    ActionChains(alice).send_keys("hello playground", Keys.ENTER).perform()
    reply = wait_for(alice, lambda d: message_with(d, "echo: hello playground"))
    assert reply.find_element(By.TAG_NAME, "strong").text == "echo"
    assert button(alice, "Send").get_attribute("type") == "submit"


def test_a_callback_button_shows_the_bots_answer(stage: Stage, alice: Driver) -> None:
    greeting = message_with(alice, GREETING)
    assert greeting is not None
    button(greeting, "Press me").click()
    toast = wait_for(
        alice,
        lambda d: [
            t
            for t in d.find_elements(By.CSS_SELECTOR, "[role=status].toast")
            if "You pressed it!" in t.text
        ],
    )
    assert toast
    stage.wait_record(lambda e: (e.get("callback_query") or {}).get("data") == "press")
    button(greeting, "Alert me").click()
    dialog = wait_for(alice, lambda d: d.find_element(By.CSS_SELECTOR, "dialog[role=alertdialog]"))
    assert dialog.text.startswith("An alert from the bot")
    ActionChains(alice).send_keys(Keys.ENTER).perform()  # OK has the focus
    wait_for(alice, lambda d: not d.find_elements(By.CSS_SELECTOR, "dialog[role=alertdialog]"))
    docs = button(greeting, "Docs (opens a new tab)")
    assert docs.get_attribute("href") == "https://example.org/docs"
    assert docs.get_attribute("target") == "_blank" and "noopener" in (
        docs.get_attribute("rel") or ""
    )


def test_a_user_votes_in_the_bots_poll(stage: Stage, alice: Driver) -> None:
    send(alice, "poll")
    poll = wait_for(
        alice,
        lambda d: d.find_element(By.CSS_SELECTOR, "fieldset[aria-label='Poll: Tea or coffee?']"),
    )
    vote = poll.find_element(By.CSS_SELECTOR, "button[aria-label^='Vote for Tea']")
    vote.click()
    wait_for(
        alice,
        lambda d: d.find_element(By.CSS_SELECTOR, "button[aria-label='Vote for Tea, 1 vote']"),
    )
    answer = stage.wait_record(lambda e: "poll_answer" in e)
    assert answer["poll_answer"]["option_ids"] == [0]
    alice.execute_script("document.querySelector('ol[role=log]').scrollTop = 1e9")
    screenshot(stage, alice, "chat.png")


def test_the_typing_indicator_shows_while_the_bot_works(stage: Stage, alice: Driver) -> None:
    send(alice, "think")
    typing = alice.find_element(By.CSS_SELECTOR, ".chat-header .typing")
    wait_for(alice, lambda d: typing.text == f"{BOT_NAME} is typing…")
    wait_for(alice, lambda d: message_with(d, "Done thinking."))
    wait_for(alice, lambda d: typing.text == "")


def test_reply_edit_react_and_delete(stage: Stage, alice: Driver) -> None:
    echo = message_with(alice, "echo: hello playground")
    assert echo is not None
    button(echo, f"Reply to {BOT_NAME}").click()
    banner = alice.find_element(By.CSS_SELECTOR, ".composer-box .banner")
    assert f"Reply to {BOT_NAME}" in banner.text
    send(alice, "a reply")
    reply = wait_for(alice, lambda d: message_with(d, "a reply"))
    assert "echo: hello playground" in reply.find_element(By.CSS_SELECTOR, ".reply-quote").text
    wait_for(alice, lambda d: message_with(d, "echo: a reply"))

    mine = message_with(alice, "a reply")
    assert mine is not None
    button(mine, "Edit message").click()
    box = composer(alice)
    assert box.get_attribute("value") == "a reply"
    box.send_keys(" (edited)", Keys.ENTER)
    edited = wait_for(alice, lambda d: message_with(d, "a reply (edited)"))
    assert "edited" in edited.find_element(By.CSS_SELECTOR, ".meta").text

    bot_message = message_with(alice, "echo: a reply")
    assert bot_message is not None
    button(bot_message, "React ❤").click()
    wait_for(alice, lambda d: "❤ 1" in (message_with(d, "echo: a reply") or bot_message).text)
    stage.wait_record(lambda e: "message_reaction" in e)

    doomed = message_with(alice, "a reply (edited)")
    assert doomed is not None
    button(doomed, "Delete message").click()
    wait_for(alice, lambda d: message_with(d, "a reply (edited)") is None)


def test_photos_show_documents_download_and_the_pin_shows(stage: Stage, alice: Driver) -> None:
    send(alice, "files")
    photo = wait_for(alice, lambda d: d.find_element(By.CSS_SELECTOR, "img.photo[alt='A picture']"))
    wait_for(alice, lambda d: d.execute_script("return arguments[0].naturalWidth", photo) == 240)
    assert photo.get_attribute("src").startswith("blob:")
    document = wait_for(alice, lambda d: message_with(d, "notes.txt"))
    pinned = wait_for(alice, lambda d: button(d, "Pinned message: notes.txt"))
    assert pinned.is_displayed()
    button(document, "Download notes.txt").click()
    saved = stage.profile("alice") / "downloads" / "notes.txt"
    wait_for(alice, lambda d: saved.exists() and saved.read_bytes() == DOCUMENT)
    alice.execute_script("document.querySelector('ol[role=log]').scrollTop = 1e9")
    screenshot(stage, alice, "media.png")


def test_a_mini_app_sends_data_the_bot_receives(stage: Stage, alice: Driver) -> None:
    greeting = message_with(alice, GREETING)
    assert greeting is not None
    click(alice, lambda d: button(message_with(d, GREETING), "Open app (mini app)"))
    panel = wait_for(alice, lambda d: d.find_element(By.CSS_SELECTOR, "[role=dialog].miniapp"))
    assert panel.get_attribute("aria-label") == f"Mini app: {BOT_NAME}"
    frame = panel.find_element(By.TAG_NAME, "iframe")
    flags = set((frame.get_attribute("sandbox") or "").split())
    # another origin than the page's: its own storage, never the playground's
    assert flags == {"allow-scripts", "allow-forms", "allow-same-origin"}
    src = frame.get_attribute("src")
    assert src.startswith(stage.mini_app_url + "#") and "tgWebAppData=" in src
    assert stage.alice.token not in src
    main_button = wait_for(alice, lambda d: panel.find_element(By.CSS_SELECTOR, ".main-button"))
    wait_for(alice, lambda d: main_button.text == "Send with the main button")
    alice.switch_to.frame(frame)
    try:
        hello = wait_for(alice, lambda d: d.find_element(By.ID, "hello"))
        wait_for(alice, lambda d: hello.text == "Hello, Alice")
        alice.switch_to.default_content()
        screenshot(stage, alice, "mini-app.png")
        alice.switch_to.frame(frame)
        button(alice, "Send data").click()
    finally:
        alice.switch_to.default_content()
    sent = stage.wait_record(lambda e: "web_app_data" in (e.get("message") or {}))
    assert sent["message"]["web_app_data"]["data"] == "hello from the app"
    wait_for(alice, lambda d: not d.find_elements(By.CSS_SELECTOR, ".miniapp"))
    wait_for(alice, lambda d: message_with(d, "The app sent: hello from the app"))

    # the main button, drawn by the page, is pressed in the app
    click(alice, lambda d: button(message_with(d, GREETING), "Open app (mini app)"))
    pressed = wait_for(alice, lambda d: d.find_element(By.CSS_SELECTOR, ".miniapp .main-button"))
    wait_for(alice, lambda d: pressed.is_displayed() and pressed.text.startswith("Send"))
    pressed.click()
    stage.wait_record(
        lambda e: (e.get("message") or {}).get("web_app_data", {}).get("data") == "main button"
    )


def test_an_app_of_the_pages_own_origin_cannot_reach_its_storage(
    stage: Stage, alice: Driver
) -> None:
    send(alice, "same origin")
    wait_for(alice, lambda d: message_with(d, "An app on the page's own origin"))
    click(alice, lambda d: button(message_with(d, "own origin"), "Own origin (mini app)"))
    frame = wait_for(alice, lambda d: d.find_element(By.CSS_SELECTOR, ".miniapp iframe"))
    assert set(frame.get_attribute("sandbox").split()) == {"allow-scripts", "allow-forms"}
    alice.switch_to.frame(frame)
    try:
        reach = (
            "try { return sessionStorage.length >= 0 ? 'reached' : '' } catch (e) { return e.name }"
        )
        assert wait_for(alice, lambda d: d.execute_script(reach)) == "SecurityError"
        assert wait_for(alice, lambda d: d.execute_script("return window.origin")) == "null"
    finally:
        alice.switch_to.default_content()
    button(alice, "Close mini app").click()
    wait_for(alice, lambda d: not d.find_elements(By.CSS_SELECTOR, ".miniapp"))


def test_a_reply_keyboard_sends_text_and_opens_the_app(stage: Stage, alice: Driver) -> None:
    send(alice, "keyboard")
    keyboard = wait_for(
        alice, lambda d: d.find_element(By.CSS_SELECTOR, "[aria-label='Bot keyboard']")
    )
    wait_for(alice, lambda d: keyboard.is_displayed())
    assert composer(alice).get_attribute("placeholder") == "Tea, or open the app"
    button(keyboard, "Tea please").click()
    wait_for(alice, lambda d: message_with(d, "echo: Tea please"))
    button(keyboard, "Order (mini app)").click()
    frame = wait_for(alice, lambda d: d.find_element(By.CSS_SELECTOR, ".miniapp iframe"))
    alice.switch_to.frame(frame)
    try:
        click(alice, lambda d: button(d, "Send data"))
    finally:
        alice.switch_to.default_content()
    sent = stage.wait_record(
        lambda e: (e.get("message") or {}).get("web_app_data", {}).get("button_text") == "Order"
    )
    assert sent["message"]["web_app_data"]["data"] == "hello from the app"


def test_slash_lists_the_bots_commands(stage: Stage, alice: Driver) -> None:
    box = composer(alice)
    box.send_keys("/")
    listbox = wait_for(alice, lambda d: d.find_element(By.CSS_SELECTOR, "[role=listbox]"))
    wait_for(alice, lambda d: listbox.is_displayed())
    options = [o.text for o in listbox.find_elements(By.CSS_SELECTOR, "[role=option]")]
    assert options == ["/start Say hello", "/poll Ask a question"]
    assert box.get_attribute("aria-expanded") == "true"
    box.send_keys(Keys.ARROW_DOWN)
    chosen = listbox.find_element(By.CSS_SELECTOR, "[aria-selected=true]")
    assert chosen.text.startswith("/poll") and box.get_attribute(
        "aria-activedescendant"
    ) == chosen.get_attribute("id")
    box.send_keys(Keys.ENTER)  # takes the command
    assert box.get_attribute("value") == "/poll" and not listbox.is_displayed()
    box.send_keys(Keys.ENTER)  # sends it
    polls = "fieldset[aria-label='Poll: Tea or coffee?']"
    wait_for(alice, lambda d: len(d.find_elements(By.CSS_SELECTOR, polls)) == 2)


def test_a_second_user_sees_the_groups_messages_live(
    stage: Stage, alice: Driver, bob: Driver
) -> None:
    labelled(alice, "New group").send_keys("Playground group", Keys.ENTER)
    wait_for(
        alice,
        lambda d: "Playground group" in d.find_element(By.CSS_SELECTOR, ".chat-header h2").text,
    )
    for name in (stage.bot.username, stage.bob.username):
        labelled(alice, "Add member").send_keys(name, Keys.ENTER)
        wait_for(alice, notice(f"{name} was added"))

    # Bob's page comes from another REST process: the live events reach him from
    # whichever process he is connected to
    bob.get(f"{stage.second_rest.url}/playground/")
    # the dev stack's sign-up is open (playground_link opened it): one click makes a guest
    wait_for(bob, lambda d: button(d, "Create a guest user"))
    screenshot(stage, bob, "login.png")
    labelled(bob, "User token").send_keys(stage.bob.token, Keys.ENTER)
    click(bob, lambda d: button(d, "Playground group"))
    wait_for(bob, lambda d: "3 members" in d.find_element(By.CSS_SELECTOR, ".subtitle").text)

    send(alice, "hello, group")
    seen = wait_for(bob, lambda d: message_with(d, "hello, group"))
    assert seen.find_element(By.CSS_SELECTOR, ".sender").text == "Alice"
    send(bob, "hi alice")
    wait_for(alice, lambda d: message_with(d, "hi alice"))
    screenshot(stage, alice, "group-alice.png")
    screenshot(stage, bob, "group-bob.png")

    # Bob's process stops (its streams end) and comes back: what was said
    # meanwhile reaches him, resumed from the last event he had
    status = bob.find_element(By.CSS_SELECTOR, ".conn")
    stage.second_rest.stop()
    wait_for(bob, lambda d: status.text == "reconnecting…")
    send(alice, "said while you were away")
    stage.second_rest.start()
    stage.second_rest.wait_healthy()
    wait_for(bob, lambda d: status.text == "live", timeout=40)
    wait_for(bob, lambda d: message_with(d, "said while you were away"))

    for driver, user in ((alice, stage.alice), (bob, stage.bob)):
        urls = requested_urls(driver)
        assert urls, "the network log is empty"
        leaked = [url for url in urls if user.token in url or "usr_" in url]
        assert not leaked, leaked
        assert user.token not in driver.current_url
        for process in (stage.stack.rest, stage.stack.gateway):
            assert user.token not in process.log_path.read_text()
        # the page keeps to its own Content-Security-Policy
        refused = [
            e["message"] for e in driver.get_log("browser") if "Security Policy" in e["message"]
        ]
        assert not refused, refused


def test_a_guest_is_made_in_one_click_while_sign_up_is_open(stage: Stage, bob: Driver) -> None:
    button(bob, "Log out").click()
    wait_for(bob, lambda d: labelled(d, "User token"))
    assert bob.execute_script("return sessionStorage.length") == 0
    button(bob, "Create a guest user").click()
    me = wait_for(bob, lambda d: d.find_element(By.CSS_SELECTOR, ".me"))
    assert me.text.startswith("Guest @guest_")
    token = bob.execute_script("return sessionStorage.getItem('botgw.playground.token')")
    assert token.startswith("usr_") and token != stage.bob.token
    with httpx.Client(base_url=stage.stack.rest_url) as http:
        mine = http.post("/client/getMe", headers={"Authorization": f"Bearer {token}"})
        assert mine.json()["result"]["first_name"] == "Guest"
        # without the dev stack's flag, nobody is made
        asyncio.run(_close_sign_up(stage))
        closed = http.post("/playground/api/createUser", json={})
        assert closed.status_code == 403 and closed.json()["code"] == "SIGNUP_CLOSED"
        options = http.post("/playground/api/getLoginOptions", json={})
        assert options.json()["result"] == {"signup": False}


async def _close_sign_up(stage: Stage) -> None:
    async with messenger_session(stage.settings) as messenger:
        await LoginCodes(wire=messenger.store.wire).set_signup(False)
