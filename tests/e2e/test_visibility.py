"""A bot names only the messages and files it may see, in both dialects.

A group with privacy mode on, two bots (A and B) and two users. The users write
messages some of which reach A (``/cmd@A``, ``@A``, a reply to A), some B, some
neither; each bot sends a text, a photo, a document and a poll of its own; one
message naming A is written before A joins. Each bot then tries every method that
takes a message id on every message id it was not given (and on one that does not
exist), in the native dialect and the Telegram one: every answer must be 400
``MESSAGE_NOT_FOUND``, the same as for the id that does not exist, and no answer
may carry a hidden message's text or render it. The same holds for getChat's
``pinned_message``, getChatHistory, and the other bot's file ids (getFile, sending
them again, downloading them). Positive controls show that what a bot was given
still works, so the audit can fail.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from shared import keys
from shared.settings import Settings
from shared.store import Store
from tests.api import (
    Account,
    BotAccount,
    Caller,
    Inbox,
    bot_api,
    client_api,
    create_bot,
    create_user,
    manage_api,
)
from tests.conftest import Stack, unique
from tests.e2e.test_api_media import png
from tests.e2e.test_walking_skeleton import user_and_bot

pytestmark = pytest.mark.asyncio

DIALECTS = ("native", "telegram")
KEYBOARD = {"inline_keyboard": [[{"text": "Go", "callback_data": "go"}]]}
THUMBS_UP = [{"type": "emoji", "emoji": "👍"}]
UNKNOWN_FILE_ID = "Z" * 32


def telegram_token(native: str) -> str:
    return native.removeprefix("bot_")


def rendered_ids(value: Any) -> Iterator[int]:
    """The ids of the Message-like objects (``message_id`` with a ``date``) in ``value``."""
    if isinstance(value, dict):
        if "message_id" in value and "date" in value:
            yield int(value["message_id"])
        for item in value.values():
            yield from rendered_ids(item)
    elif isinstance(value, list):
        for item in value:
            yield from rendered_ids(item)


def body_of(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def ok(response: httpx.Response) -> Any:
    body = body_of(response)
    assert response.status_code == 200 and body.get("ok") is True, response.text
    return body["result"]


def refused(response: httpx.Response, code: str, status: int = 400) -> None:
    body = body_of(response)
    assert (response.status_code, body.get("code")) == (status, code), response.text


@dataclass
class Agent:
    """One bot: its clients in both dialects, the ids it was given, what it owns."""

    name: str
    account: BotAccount
    http: httpx.AsyncClient
    native: Caller
    inbox: Inbox
    given: set[int] = field(default_factory=set)
    own: dict[str, Any] = field(default_factory=dict)

    async def call(self, dialect: str, method: str, **params: Any) -> httpx.Response:
        if dialect == "native":
            return await self.native.raw(method, **params)
        token = telegram_token(self.account.token)
        return await self.http.post(f"/bot{token}/{method}", json=params)

    async def download(self, dialect: str, file_path: str) -> httpx.Response:
        if dialect == "native":
            headers = {"Authorization": self.native.auth}
            return await self.http.get(f"/bot/file/{file_path}", headers=headers)
        return await self.http.get(f"/file/bot{telegram_token(self.account.token)}/{file_path}")

    async def send(self, method: str, **params: Any) -> int:
        message_id = int((await self.native(method, **params))["message_id"])
        self.given.add(message_id)
        return message_id

    async def upload(self, kind: str, name: str, content: bytes, mime: str, **data: Any) -> str:
        """Send ``content`` as a new photo or document; its file_id."""
        response = await self.http.post(
            f"/bot/send{kind.title()}",
            data={k: str(v) for k, v in data.items()},
            files={kind: (name, content, mime)},
            headers={"Authorization": self.native.auth},
        )
        result = ok(response)
        self.given.add(int(result["message_id"]))
        self.own[kind] = int(result["message_id"])
        file: dict[str, Any] = result["photo"][0] if kind == "photo" else result["document"]
        return str(file["file_id"])

    async def take_updates(self, group: int) -> None:
        """Read the new updates; the group messages among them were given to the bot."""
        for update in await self.inbox.take():
            message = update.get("message")
            if message is not None and int(message["chat"]["id"]) == group:
                self.given.add(int(message["message_id"]))


@dataclass
class Scene:
    http: httpx.AsyncClient
    owner: Account  # the group's creator, who also owns both bots
    group: int
    a: Agent
    b: Agent
    markers: dict[int, str]  # message id -> the secret its text or caption holds
    ids: dict[str, int]  # the users' messages by name

    def hidden(self, agent: Agent) -> set[int]:
        """Every message id of the group the bot was not given (the scene wrote every
        message of the group, each with its marker)."""
        return set(self.markers) - agent.given

    def other(self, agent: Agent) -> Agent:
        return self.b if agent is self.a else self.a


@dataclass
class Audit:
    """Answers that leak a hidden message, and answers other than the expected one."""

    markers: dict[int, str]
    leaks: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    answers: int = 0

    def leaked(self, hidden: set[int], label: str, response: httpx.Response) -> None:
        """Count a leak if the answer holds a hidden message's secret or renders it."""
        self.answers += 1
        found = {i for i in hidden if i in self.markers and self.markers[i] in response.text}
        body = body_of(response)
        if body.get("ok"):
            found |= {i for i in rendered_ids(body.get("result")) if i in hidden}
        if found:
            self.leaks.append(f"{label}: shows {sorted(found)}: {response.text[:300]}")

    def refused(
        self, hidden: set[int], label: str, response: httpx.Response, status: int, code: str
    ) -> str:
        """Check the answer leaks nothing and is the error ``status``/``code``; its
        description."""
        self.leaked(hidden, label, response)
        body = body_of(response)
        got = (response.status_code, body.get("error_code"), body.get("code"), body.get("ok"))
        if got != (status, status, code, False):
            self.wrong.append(f"{label}: {response.status_code} {response.text[:300]}")
        return str(body.get("description"))


def message_probes(
    group: int, message_id: int, own: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    """Every method naming ``message_id``, as its target or as the message to reply to."""
    at = {"chat_id": group, "message_id": message_id}
    source = {"chat_id": group, "from_chat_id": group, "message_id": message_id}
    reply = {"chat_id": group, "reply_to_message_id": message_id}
    reply_parameters = {"chat_id": group, "reply_parameters": {"message_id": message_id}}
    return [
        ("forwardMessage", source),
        ("copyMessage", source),
        ("copyMessage", {**source, "message_id": own["text"], "reply_to_message_id": message_id}),
        ("sendMessage", {**reply, "text": "re"}),
        ("sendMessage", {**reply_parameters, "text": "re"}),
        ("sendPhoto", {**reply, "photo": own["photo_file"]}),
        ("sendDocument", {**reply_parameters, "document": own["document_file"]}),
        ("sendPoll", {**reply, "question": "Q?", "options": ["yes", "no"]}),
        ("pinChatMessage", at),
        ("unpinChatMessage", at),
        ("editMessageText", {**at, "text": "edited"}),
        ("editMessageCaption", {**at, "caption": "edited"}),
        ("editMessageReplyMarkup", {**at, "reply_markup": KEYBOARD}),
        ("deleteMessage", at),
        ("setMessageReaction", {**at, "reaction": THUMBS_UP}),
        ("stopPoll", at),
    ]


def without_id(description: str, message_id: int) -> str:
    return re.sub(rf"\b{message_id}\b", "#", description)


# -- the scene ----------------------------------------------------------------------


async def build_scene(http: httpx.AsyncClient, settings: Settings) -> Scene:
    secret = secrets.token_hex(4)
    markers: dict[int, str] = {}
    alice = await create_user(settings, unique("alice"))
    bob = await create_user(settings, unique("bob"))
    bots = [await create_bot(settings, alice, unique(n) + "_bot") for n in ("a", "b")]
    a, b = (
        Agent(name, account, http, bot_api(http, account), Inbox(bot_api(http, account)))
        for name, account in zip("AB", bots, strict=True)
    )
    as_alice, as_bob = client_api(http, alice), client_api(http, bob)
    group = int((await as_alice("createGroup", title="Visibility"))["id"])
    for username in (bob.username, b.account.username):
        await as_alice("addChatMember", chat_id=group, username=username)

    async def said(user: Caller, name: str, text: str, **extra: Any) -> int:
        mark = f"SECRET{secret}{name}"
        sent = await user("sendMessage", chat_id=group, text=f"{text} {mark}", **extra)
        markers[int(sent["message_id"])] = mark
        return int(sent["message_id"])

    a_name, b_name = a.account.username, b.account.username
    ids = {"before_a": await said(as_alice, "early", f"/cmd@{a_name} before A joined")}
    await as_alice("addChatMember", chat_id=group, username=a_name)

    for agent in (a, b):
        own, mark = agent.own, f"SECRET{secret}{agent.name}"
        own["text"] = await agent.send(
            "sendMessage", chat_id=group, text=f"{mark}t", reply_markup=KEYBOARD
        )
        own["photo_file"] = await agent.upload(
            "photo", "p.png", png(8, 8), "image/png", chat_id=group, caption=f"{mark}p"
        )
        # HTML, so the download must come as an attachment that is never rendered
        own["document_bytes"] = f"<script>alert(1)</script>{mark}d".encode()
        own["document_file"] = await agent.upload(
            "document", "d.html", own["document_bytes"], "text/html", chat_id=group
        )
        own["poll"] = await agent.send(
            "sendPoll", chat_id=group, question=f"{mark}q", options=["x", "y"]
        )
        for kind, suffix in (("text", "t"), ("photo", "p"), ("document", "d"), ("poll", "q")):
            markers[own[kind]] = f"{mark}{suffix}"

    ids["to_a"] = await said(as_alice, "toA1", f"/cmd@{a_name} go")
    ids["mentions_a"] = await said(as_bob, "toA2", f"hello @{a_name}")
    ids["replies_a"] = await said(as_bob, "toA3", "about A", reply_to_message_id=a.own["text"])
    ids["plain"] = await said(as_alice, "plain", "just chatting")
    ids["to_b"] = await said(as_bob, "toB1", f"/cmd@{b_name}")
    ids["mentions_b"] = await said(as_alice, "toB2", f"hi @{b_name}")
    ids["replies_b"] = await said(as_bob, "toB3", "about B", reply_to_message_id=b.own["text"])
    ids["replies_plain"] = await said(as_alice, "re", "quoting", reply_to_message_id=ids["plain"])
    # reaches A, but the message it replies to does not: never shown inside it
    ids["a_reply_to_hidden"] = await said(
        as_alice, "toA4", f"@{a_name} look", reply_to_message_id=ids["plain"]
    )
    for agent in (a, b):
        await agent.take_updates(group)
    return Scene(http, alice, group, a, b, markers, ids)


# -- the audits ---------------------------------------------------------------------


async def audit_messages(audit: Audit, scene: Scene, agent: Agent, dialect: str) -> None:
    """Every message-taking method on every hidden id: the answer for a missing one."""
    hidden = scene.hidden(agent)
    nowhere = max(scene.markers) + 1000
    missing = []
    for index, (method, params) in enumerate(message_probes(scene.group, nowhere, agent.own)):
        label = f"{agent.name} {dialect} {method} #{index} on missing {nowhere}"
        response = await agent.call(dialect, method, **params)
        description = audit.refused(hidden, label, response, 400, "MESSAGE_NOT_FOUND")
        missing.append(without_id(description, nowhere))
    for message_id in sorted(hidden):
        probes = message_probes(scene.group, message_id, agent.own)
        for index, (method, params) in enumerate(probes):
            label = f"{agent.name} {dialect} {method} #{index} on hidden {message_id}"
            response = await agent.call(dialect, method, **params)
            description = audit.refused(hidden, label, response, 400, "MESSAGE_NOT_FOUND")
            if without_id(description, message_id) != missing[index]:
                audit.wrong.append(f"{label}: {description!r}, unlike a missing id's")


async def audit_reads(audit: Audit, scene: Scene, agent: Agent, dialect: str) -> None:
    """getChatHistory in any window, and getChat's pinned_message (B pinned its own)."""
    hidden = scene.hidden(agent)
    windows: list[dict[str, Any]] = [{"limit": 100}, {"since": 0, "limit": 100}]
    windows += [{"since": i - 1, "before": i + 1} for i in sorted(hidden)]
    windows.append({"sender_id": scene.other(agent).account.bot_id})
    for window in windows:
        response = await agent.call(dialect, "getChatHistory", chat_id=scene.group, **window)
        audit.leaked(hidden, f"{agent.name} {dialect} getChatHistory {window}", response)
        if response.status_code != 200:
            audit.wrong.append(f"{agent.name} {dialect} getChatHistory {window}: {response.text}")
    response = await agent.call(dialect, "getChatHistory", chat_id=scene.group, limit=100)
    shown = [int(m["message_id"]) for m in ok(response)]
    if shown != sorted(agent.given):
        audit.wrong.append(f"{agent.name} {dialect} getChatHistory: {shown}")

    response = await agent.call(dialect, "getChat", chat_id=scene.group)
    audit.leaked(hidden, f"{agent.name} {dialect} getChat", response)
    pinned = ok(response).get("pinned_message")
    expected = scene.b.own["text"] if agent is scene.b else None
    if (pinned and int(pinned["message_id"])) != expected:
        audit.wrong.append(f"{agent.name} {dialect} getChat: pinned_message {pinned}")


async def audit_files(audit: Audit, scene: Scene, agent: Agent, dialect: str) -> None:
    """The other bot's file ids: unknown (as an id no file has), not downloadable."""
    hidden, other = scene.hidden(agent), scene.other(agent)
    for kind in ("photo", "document"):
        file_id = other.own[f"{kind}_file"]
        send = "sendPhoto" if kind == "photo" else "sendDocument"
        for method, name in (("getFile", "file_id"), (send, kind)):
            where = {} if method == "getFile" else {"chat_id": scene.group}
            label = f"{agent.name} {dialect} {method} with {other.name}'s {kind}"
            response = await agent.call(dialect, method, **where, **{name: file_id})
            description = audit.refused(hidden, label, response, 400, "FILE_ID_INVALID")
            unknown = await agent.call(dialect, method, **where, **{name: UNKNOWN_FILE_ID})
            if description != body_of(unknown).get("description"):
                audit.wrong.append(f"{label}: {description!r}, unlike an unknown file_id's")
        path = (await other.native("getFile", file_id=file_id))["file_path"]
        label = f"{agent.name} {dialect} download of {other.name}'s {kind}"
        response = await agent.download(dialect, path)
        audit.refused(hidden, label, response, 404, "FILE_NOT_FOUND")


async def positive_controls(scene: Scene) -> None:
    """What A was given still works, so the audit could have failed."""
    a, b, group, ids = scene.a, scene.b, scene.group, scene.ids
    targets = {
        "native": (ids["to_a"], ids["mentions_a"], ids["replies_a"]),
        "telegram": (ids["mentions_a"], ids["replies_a"], ids["a_reply_to_hidden"]),
    }
    for dialect, (forwarded, copied, replied) in targets.items():
        sent = ok(
            await a.call(
                dialect, "forwardMessage", chat_id=group, from_chat_id=group, message_id=forwarded
            )
        )
        assert scene.markers[forwarded] in sent["text"] and "forward_origin" in sent
        ok(
            await a.call(
                dialect, "copyMessage", chat_id=group, from_chat_id=group, message_id=copied
            )
        )
        sent = ok(
            await a.call(
                dialect,
                "sendMessage",
                chat_id=group,
                text="answer",
                reply_parameters={"message_id": replied},
            )
        )
        assert int(sent["reply_to_message"]["message_id"]) == replied
        assert "reply_to_message" not in sent["reply_to_message"]
        # allow_sending_without_reply: a hidden target is one that does not exist
        sent = ok(
            await a.call(
                dialect,
                "sendMessage",
                chat_id=group,
                text="lenient",
                reply_parameters={"message_id": ids["plain"], "allow_sending_without_reply": True},
            )
        )
        assert "reply_to_message" not in sent
        reacted = await a.call(
            dialect, "setMessageReaction", chat_id=group, message_id=ids["to_a"], reaction=THUMBS_UP
        )
        assert ok(reacted) is True
        # someone else's message the bot sees: the usual refusals, not "not found"
        at = {"chat_id": group, "message_id": ids["to_a"]}
        for method, params, code in (
            ("editMessageText", {"text": "x"}, "MESSAGE_CANT_BE_EDITED"),
            ("pinChatMessage", {}, "NOT_ENOUGH_RIGHTS"),
            ("deleteMessage", {}, "MESSAGE_CANT_BE_DELETED"),
            ("stopPoll", {}, "MESSAGE_HAS_NO_POLL"),
            ("unpinChatMessage", {}, "MESSAGE_NOT_PINNED"),
        ):
            refused(await a.call(dialect, method, **at, **params), code)

    # the visible reply to a hidden message comes without it
    reply = ids["a_reply_to_hidden"]
    (shown,) = ok(
        await a.call("native", "getChatHistory", chat_id=group, since=reply - 1, before=reply + 1)
    )
    assert int(shown["message_id"]) == reply and "reply_to_message" not in shown

    # its own messages: edits, a pin getChat shows over B's newer one, unpin, stopPoll
    own = {"chat_id": group, "message_id": a.own["text"]}
    ok(await a.call("native", "editMessageText", **own, text="new"))
    refused(
        await a.call("native", "editMessageCaption", **own, caption="c"), "MESSAGE_CANT_BE_EDITED"
    )
    edited = ok(
        await a.call(
            "telegram", "editMessageCaption", chat_id=group, message_id=a.own["photo"], caption="c2"
        )
    )
    assert edited["caption"] == "c2" and "photo" in edited
    ok(await a.call("native", "pinChatMessage", **own))
    ok(await b.call("native", "pinChatMessage", chat_id=group, message_id=b.own["text"]))
    for dialect in DIALECTS:
        chat = ok(await a.call(dialect, "getChat", chat_id=group))
        assert int(chat["pinned_message"]["message_id"]) == a.own["text"]
    assert ok(await a.call("telegram", "unpinChatMessage", chat_id=group)) is True
    assert "pinned_message" not in ok(await a.call("native", "getChat", chat_id=group))
    refused(await a.call("native", "unpinChatMessage", chat_id=group), "MESSAGE_NOT_PINNED")
    chat = ok(await b.call("native", "getChat", chat_id=group))
    assert int(chat["pinned_message"]["message_id"]) == b.own["text"]  # B's pin stays
    poll = ok(await a.call("native", "stopPoll", chat_id=group, message_id=a.own["poll"]))
    assert poll["is_closed"] is True

    # its own files in both dialects, as attachments a browser never renders
    for dialect in DIALECTS:
        info = ok(await a.call(dialect, "getFile", file_id=a.own["document_file"]))
        response = await a.download(dialect, info["file_path"])
        assert response.status_code == 200 and response.content == a.own["document_bytes"]
        assert response.headers["content-disposition"].startswith("attachment;")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in response.headers["content-security-policy"].split(";")[0]
        ok(await a.call(dialect, "sendDocument", chat_id=group, document=a.own["document_file"]))
    ok(await a.call("native", "deleteMessage", chat_id=group, message_id=a.own["poll"]))


# -- the tests ----------------------------------------------------------------------


async def test_a_bot_names_only_the_messages_and_files_it_may_see(
    stack: Stack, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        scene = await build_scene(http, settings)
        a, b, ids = scene.a, scene.b, scene.ids
        # the scene is what it should be: each bot was given exactly these
        a_given = {ids[k] for k in ("to_a", "mentions_a", "replies_a", "a_reply_to_hidden")}
        b_given = {ids[k] for k in ("to_b", "mentions_b", "replies_b")}
        kinds = ("text", "photo", "document", "poll")
        assert a.given == a_given | {a.own[k] for k in kinds}
        assert b.given == b_given | {b.own[k] for k in kinds}
        users_hidden = {ids[k] for k in ("before_a", "plain", "replies_plain")}
        assert users_hidden | b_given | {b.own[k] for k in kinds} <= scene.hidden(a)
        assert users_hidden | a_given | {a.own[k] for k in kinds} <= scene.hidden(b)
        hidden_from_a = scene.hidden(a)

        # B pins its own message: A must not find it through getChat
        ok(await b.call("native", "pinChatMessage", chat_id=scene.group, message_id=b.own["text"]))

        audit = Audit(scene.markers)
        for agent in (a, b):
            for dialect in DIALECTS:
                await audit_messages(audit, scene, agent, dialect)
                await audit_reads(audit, scene, agent, dialect)
                await audit_files(audit, scene, agent, dialect)
        # both bots, both dialects, 16 probes on each of 10+ hidden ids and a missing one
        assert audit.answers >= 2 * 2 * 16 * 11, audit.answers
        assert audit.leaks == [], f"{len(audit.leaks)} leaks:\n" + "\n".join(audit.leaks)
        assert audit.wrong == [], f"{len(audit.wrong)} wrong answers:\n" + "\n".join(audit.wrong)

        await positive_controls(scene)

        # no update A was ever sent holds a message hidden from it
        for update in await a.native("getUpdates", offset=1, timeout=0, consumer="all"):
            dumped = json.dumps(update, ensure_ascii=False)
            assert not [i for i in hidden_from_a if scene.markers.get(i, "?") in dumped], update
            if int(update.get("message", {}).get("message_id", 0)) == ids["a_reply_to_hidden"]:
                assert "reply_to_message" not in update["message"]

        # with privacy off B sees every user message since it joined, still no bot's
        await manage_api(http, scene.owner)("editBot", bot_id=b.account.bot_id, privacy_mode=False)
        history = ok(await b.call("native", "getChatHistory", chat_id=scene.group, limit=100))
        shown = {int(m["message_id"]) for m in history}
        assert users_hidden <= shown and not shown & {a.own[k] for k in kinds}
        assert all(not m["from"]["is_bot"] for m in history if int(m["message_id"]) not in b.given)
        refused(
            await b.call(
                "telegram",
                "forwardMessage",
                chat_id=scene.group,
                from_chat_id=scene.group,
                message_id=a.own["text"],
            ),
            "MESSAGE_NOT_FOUND",
        )


async def test_a_bot_back_in_a_group_sees_nothing_from_before(
    stack: Stack, settings: Settings
) -> None:
    alice, bot = await user_and_bot(settings, "alice", "r")
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as http:
        as_alice, as_bot = client_api(http, alice), bot_api(http, bot)
        inbox = Inbox(as_bot)
        group = (await as_alice("createGroup", title="Again"))["id"]
        await as_alice("addChatMember", chat_id=group, username=bot.username)
        mine = await as_bot("sendMessage", chat_id=group, text="old words", reply_markup=KEYBOARD)
        told = await as_alice("sendMessage", chat_id=group, text=f"/cmd@{bot.username} old")
        await as_alice("removeChatMember", chat_id=group, username=bot.username)
        await as_alice("addChatMember", chat_id=group, username=bot.username)
        await inbox.take()

        for method, params in (
            ("editMessageText", {"message_id": mine["message_id"], "text": "x"}),
            ("pinChatMessage", {"message_id": mine["message_id"]}),
            ("forwardMessage", {"from_chat_id": group, "message_id": told["message_id"]}),
            ("sendMessage", {"text": "x", "reply_to_message_id": told["message_id"]}),
        ):
            refused(await as_bot.raw(method, chat_id=group, **params), "MESSAGE_NOT_FOUND")
        assert await as_bot("getChatHistory", chat_id=group) == []

        # a button of a message it may no longer see: an InaccessibleMessage
        await as_alice(
            "pressButton", chat_id=group, message_id=mine["message_id"], callback_data="go"
        )
        (update,) = await inbox.take()
        message = update["callback_query"]["message"]
        assert message == {
            "chat": {"id": group, "type": "group", "title": "Again"},
            "message_id": mine["message_id"],
            "date": 0,
        }


async def test_file_carriers_are_kept_beside_each_file(store: Store) -> None:
    file_id, other = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    db = store.entities
    await db.note_file_carriers([file_id, file_id], 5, 7, uploader="b1")
    await db.note_file_carriers([file_id, other], 3, 2, uploader="b2")  # the first one stays
    await db.note_file_carriers([other], 3, 9)
    assert await db.file_access(file_id) == ("b1", [(3, 2), (5, 7)])
    assert await db.file_access(other) == ("b2", [(3, 2), (3, 9)])
    assert await db.file_access(secrets.token_urlsafe(24)) == (None, [])
    await db.note_file_carriers([], 1, 1, uploader="b1")  # nothing to note: no round trip

    # each file's keys share one hash tag (one slot), and files do not share one
    def tag(key: str) -> str:
        return key[key.index("{") : key.index("}") + 1]

    assert tag(keys.file_carriers(file_id)) == tag(keys.file_uploader(file_id))
    assert tag(keys.file_carriers(file_id)) != tag(keys.file_carriers(other))
