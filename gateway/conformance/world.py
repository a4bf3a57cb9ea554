"""What the checks run against: the deployment, its bots and one recorded scenario.

The suite brings everything it needs through the public APIs with one user's
token: bots (``/manage/createBot``; a given bot token is used instead for the
main bot), a private chat and groups (``/client``), and one **scenario**, a
sequence of updates of every type of §6.3 recorded by a reference connection
from a marked position. Checks replay that slice of the log on other consumers
and compare what they get with the recording, so they hold on a bot with other
traffic too: only updates up to the scenario's last one are compared.

Every consumer name is fresh (``cf-<run>-<label>-<n>``), so the suite never
takes over or commits for a consumer of anyone else.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.conformance.wire import (
    UPDATE_TYPES,
    Bot,
    Conn,
    Failure,
    Frame,
    Rest,
    connect,
    describe,
)

__all__ = ["Check", "Context", "Options", "Scenario", "chat_of"]


@dataclass(frozen=True, slots=True)
class Options:
    """How the suite was asked to run (``python -m gateway.conformance --help``)."""

    rest: str
    gateways: tuple[str, ...]
    user_token: str
    bot_token: str | None = None
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    json: bool = False
    timeout: float = 10.0  # the longest a single expected frame may take
    max_wait: float = 8.0  # the longest a check may idle to provoke a timeout


@dataclass(slots=True)
class Scenario:
    """Updates of every type after ``mark``, as the reference connection got them."""

    epoch: str
    mark: int  # update_id of the log's head before the scenario
    updates: list[Frame]
    bot_chat: str  # the private chat as the bot sees it
    groups: list[str]
    shards: int  # a shard count under which the poll's group is not on shard 0
    poll_group: str

    @property
    def ids(self) -> list[int]:
        return [int(u["update_id"]) for u in self.updates]

    @property
    def last(self) -> int:
        return self.ids[-1]

    def cursor(self, update_id: int | None = None) -> Frame:
        """A cursor in the log's epoch at ``update_id`` (the mark by default)."""
        return {
            "epoch": self.epoch,
            "update_id": str(self.mark if update_id is None else update_id),
        }

    def upto_last(self, updates: list[Frame]) -> list[Frame]:
        """``updates`` up to the scenario's last one (later traffic is not compared)."""
        return [u for u in updates if int(u["update_id"]) <= self.last]


@dataclass(frozen=True, slots=True)
class Check:
    """One expectation of ``docs/protocol.md``, provoked from outside."""

    id: str  # e.g. "ack.commit"
    section: str  # e.g. "§7.2"
    title: str  # e.g. "ack commits the consumer's cursor"
    run: Callable[[Context], Awaitable[None]]


def chat_of(update: Frame) -> str | None:
    """The chat id of an update (§9), None for the types without one."""
    for kind in ("message", "edited_message", "my_chat_member", "message_reaction"):
        if kind in update:
            chat = update[kind].get("chat") or {}
            return str(chat.get("id"))
    if "callback_query" in update:
        message = update["callback_query"].get("message") or {}
        return str((message.get("chat") or {}).get("id"))
    return None


class _Pacer:
    """Identifies of one bot kept under ``hello.limits.identify_per_minute``: the
    suite must never provoke a 4005 it does not ask for."""

    def __init__(self) -> None:
        self.tokens: float | None = None
        self.capacity = 0.0
        self.rate = 0.0
        self.stamp = 0.0

    async def take(self, per_minute: int) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.tokens is None:
            # a margin for identifies made just before the suite started
            self.capacity = max(1.0, per_minute - 4.0)
            self.rate = per_minute / 60.0
            self.tokens, self.stamp = self.capacity, now
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            await asyncio.sleep((1 - self.tokens) / self.rate)
            self.tokens, self.stamp = 1.0, loop.time()
        self.tokens -= 1


@dataclass
class Context:
    """The deployment and what the suite created there, shared by all checks."""

    options: Options
    rest: Rest
    run: str = field(default_factory=lambda: secrets.token_hex(3))
    _main: Bot | None = None
    _scenario: Scenario | Failure | None = None
    _pacers: dict[str, _Pacer] = field(default_factory=dict)
    _serial: int = 0
    cache: dict[str, Any] = field(default_factory=dict)  # fixtures shared by checks
    _sockets: list[Conn] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.options.gateways[0]

    @property
    def timeout(self) -> float:
        return self.options.timeout

    def consumer(self, label: str) -> str:
        self._serial += 1
        return f"cf-{self.run}-{label}-{self._serial}"

    # -- bots --

    async def main(self) -> Bot:
        """The bot most checks use: the given one, or one created for the run."""
        if self._main is None:
            if self.options.bot_token:
                me = await self.rest.bot(self.options.bot_token, "getMe")
                self._main = Bot(str(me["id"]), me["username"], self.options.bot_token)
            else:
                self._main = await self.new_bot("main")
        return self._main

    async def new_bot(self, label: str) -> Bot:
        """A bot of the user's own for one check (revoked, rotated, rate limited)."""
        self._serial += 1
        username = f"cf{self.run}{label[:6]}{self._serial}_bot".lower()
        made = await self.rest.manage(
            "createBot", username=username, name="Conformance", description="gateway checks"
        )
        return Bot(str(made["id"]), made["username"], made["token"])

    # -- sockets --

    async def connect(
        self,
        bot: Bot | None = None,
        *,
        url: str | None = None,
        header: bool = True,
        scheme: str = "Bot",
        paced: bool = True,
    ) -> Conn:
        """A socket after ``hello``: as ``bot`` (the main one by default), its token in
        the upgrade's header unless ``header`` is false; its identifies paced to the
        bot's identify limit unless ``paced`` is false."""
        bot = bot or await self.main()
        pacer = self._pacers.setdefault(bot.id, _Pacer())

        async def pace(conn: Conn) -> None:
            per_minute = conn.limits.get("identify_per_minute")
            await pacer.take(per_minute if isinstance(per_minute, int) and per_minute > 0 else 60)

        conn = await connect(
            url or self.url,
            token=bot.token if header else None,
            scheme=scheme,
            timeout=self.timeout,
            pace=pace if paced else None,
        )
        self._sockets.append(conn)
        return conn

    async def release(self) -> None:
        """Close every socket a check left open: limits per bot must not add up."""
        sockets, self._sockets = self._sockets, []
        await asyncio.gather(*(conn.close() for conn in sockets), return_exceptions=True)

    async def close(self) -> None:
        await self.release()

    async def open(
        self, bot: Bot | None = None, *, url: str | None = None, **identify: Any
    ) -> tuple[Conn, Frame]:
        """A socket identified with ``identify``; returns it and the frame after."""
        conn = await self.connect(bot, url=url)
        await conn.identify(**identify)
        return conn, await conn.next("ready")

    async def ready(
        self, bot: Bot | None = None, *, url: str | None = None, **identify: Any
    ) -> tuple[Conn, Frame]:
        """Like :meth:`open`, the frame after identify being ``ready``."""
        conn, frame = await self.open(bot, url=url, **identify)
        if frame["op"] != "ready":
            await conn.close()
            raise Failure(f"expected ready after identify {identify}, got {describe(frame)}")
        return conn, frame

    # -- the scenario --

    async def say(self, text: str) -> Frame:
        """A user message in the private chat with the main bot (after the scenario)."""
        await self.scenario()
        result: Frame = await self.rest.client(
            "sendMessage", chat_id=self.cache["user_private"], text=text
        )
        return result

    async def scenario(self) -> Scenario:
        """The recorded scenario, made once (a setup failure is kept and repeated)."""
        if self._scenario is None:
            try:
                self._scenario = await self._record()
            except Failure as exc:
                text = str(exc)
                if not text.startswith("setup: "):
                    text = f"setup: recording the scenario: {text}"
                self._scenario = Failure(text)
        if isinstance(self._scenario, Failure):
            raise Failure(str(self._scenario))
        return self._scenario

    async def _record(self) -> Scenario:
        bot = await self.main()
        rest = self.rest
        mark_conn, ready = await self.ready(bot, consumer=self.consumer("mark"))
        await mark_conn.close()
        epoch, mark = ready["epoch"], int(ready["head"])
        cursor = {"epoch": epoch, "update_id": str(mark)}
        ref, _ = await self.ready(bot, consumer=self.consumer("reference"), cursor=cursor)
        seen: list[Frame] = []

        async def until(test: Callable[[Frame], bool], what: str) -> Frame:
            got = await ref.updates(lambda us: any(test(u) for u in us), expecting=what)
            seen.extend(got)
            return next(u for u in got if test(u))

        try:
            me = await rest.client("getMe")
            private = await rest.client("startBot", username=bot.username)
            self.cache["user_private"] = private["id"]
            # the bot may have other users: this user's /start names the private chat
            start = await until(
                lambda u: (
                    _text(u) == "/start"
                    and _chat_type(u) == "private"
                    and (u["message"].get("from") or {}).get("username") == me.get("username")
                ),
                "the /start message update",
            )
            bot_chat = str(start["message"]["chat"]["id"])
            tag = secrets.token_hex(3)
            first_message = await rest.client(
                "sendMessage", chat_id=private["id"], text=f"m1 {tag}"
            )
            await rest.client(
                "editMessageText",
                chat_id=private["id"],
                message_id=first_message["message_id"],
                text=f"m1 {tag} edited",
            )
            keyboard = {"inline_keyboard": [[{"text": "A", "callback_data": "pick:a"}]]}
            asked = await rest.bot(
                bot.token, "sendMessage", chat_id=bot_chat, text="pick", reply_markup=keyboard
            )
            await rest.client(
                "pressButton",
                chat_id=private["id"],
                message_id=asked["message_id"],
                callback_data="pick:a",
            )
            await rest.client(
                "setMessageReaction",
                chat_id=private["id"],
                message_id=first_message["message_id"],
                reaction=[{"type": "emoji", "emoji": "👍"}],
            )
            groups: list[str] = []
            for index in range(3):
                group = await rest.client("createGroup", title=f"conformance {tag} {index}")
                groups.append(str(group["id"]))
                await rest.client("addChatMember", chat_id=group["id"], username=bot.username)
                await rest.client(
                    "sendMessage", chat_id=group["id"], text=f"@{bot.username} g{index} {tag}"
                )
            shards, poll_group = _shard_count(groups)
            poll = await rest.bot(
                bot.token,
                "sendPoll",
                chat_id=poll_group,
                question="conformance?",
                options=["yes", "no"],
                is_anonymous=False,
            )
            await rest.client(
                "answerPoll", chat_id=poll_group, message_id=poll["message_id"], option_ids=[0]
            )
            await rest.client("sendMessage", chat_id=private["id"], text=f"end {tag}")
            await until(lambda u: _text(u) == f"end {tag}", "the scenario's last message")
        finally:
            await ref.close()
        kinds = {kind for update in seen for kind in update if kind != "update_id"}
        missing = [kind for kind in UPDATE_TYPES if kind not in kinds]
        if missing:
            raise Failure(f"setup: the scenario brought no update of type {missing}")
        return Scenario(epoch, mark, seen, bot_chat, groups, shards, poll_group)


def _text(update: Frame) -> str | None:
    message = update.get("message")
    return message.get("text") if isinstance(message, dict) else None


def _chat_type(update: Frame) -> str | None:
    message = update.get("message")
    return (message.get("chat") or {}).get("type") if isinstance(message, dict) else None


def _shard_count(groups: list[str]) -> tuple[int, str]:
    """The smallest shard count under which a group is not on shard 0, and that group
    (where the poll goes: updates without a chat must still reach shard 0, §9)."""
    for count in range(2, 9):
        for group in groups:
            if int(group) % count:
                return count, group
    return 2, groups[0]
