"""The messenger's rules: chats, members, who receives which message.

This is the domain layer under every REST surface (users, bots and their tokens
are :mod:`rest.accounts`). It speaks internal ids: a chat is known by its internal
id; a bot sees a private chat under the scoped id of the user (docs/design.md,
Identifiers), and a group under the group's id. Updates are rendered as the
receiving bot sees them (:class:`rest.view.View`) and appended to that bot's log.
The other changes of a chat (reactions, pins, polls, members), each written with
the updates it causes in one step, are :mod:`rest.changes`.

Chat rules kept here:

* a bot cannot write to a user who has not started it (403 ``CHAT_FORBIDDEN``);
* in groups, privacy mode (on by default) delivers only ``/command@username``,
  mentions of ``@username`` and replies to the bot's own messages;
* bots never receive their own or other bots' messages;
* a bot that left or was removed from a group gets 403 there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from rest import visibility
from rest.accounts import Accounts
from rest.ratelimit import chat_send_rate, refuse_chat_send
from rest.text import parse_entities
from rest.userevents import UserEvents
from rest.view import View
from shared.codecs import pack, pack_open_map
from shared.errors import ApiError
from shared.ids import random_id, scoped_user_id
from shared.models import BotRecord, ChatRecord, MessageRecord, UserRecord, member_key
from shared.settings import Settings
from shared.store import Store, StoreError
from shared.store.outbox import MESSAGE_ID_PLACEHOLDER, Pending, Written

__all__ = ["NO_CHAT", "Messenger", "Outgoing", "now"]

log = logging.getLogger("botgw.messenger")


@dataclass(slots=True)
class Outgoing:
    """An update for one bot: type, chat id as the bot sees it (:data:`NO_CHAT` for
    an update that names none, e.g. ``poll``), body without update_id."""

    bot_id: int
    kind: str
    chat_id: int
    body: dict[str, Any]


NO_CHAT = 0  # the chat of an update that names none: shard 0 (docs/protocol.md §9)


def now() -> int:
    return int(time.time())


SCOPED_IDS_KEPT = 100_000


class Messenger:
    """Chats and messages, and the updates they cause (users and bots: ``accounts``)."""

    def __init__(self, store: Store, settings: Settings, secret: bytes) -> None:
        self.store = store
        self.settings = settings
        self.db = store.entities
        self.accounts = Accounts(store)
        self._secret = secret
        # scoped ids never change: an HMAC per (bot, user) once, not on every request
        self._scoped: dict[tuple[int, int], int] = {}
        # what the users of a chat hear (their /client/events logs)
        self.events = UserEvents(store, lambda: self.view(None))

    # -- ids ------------------------------------------------------------------

    def scoped(self, bot_id: int, user_id: int) -> int:
        """The id under which ``bot_id`` sees ``user_id``."""
        pair = (bot_id, user_id)
        value = self._scoped.get(pair)
        if value is None:
            if len(self._scoped) >= SCOPED_IDS_KEPT:
                self._scoped.clear()
            value = self._scoped[pair] = scoped_user_id(self._secret, bot_id, user_id)
        return value

    def chat_instance(self, bot_id: int, chat: ChatRecord) -> str:
        """An opaque string naming a chat for callback queries (stable per bot)."""
        return str(scoped_user_id(self._secret, bot_id, -chat.id))

    def view(self, viewer_bot: int | None, *, user: int | None = None) -> View:
        """Renders records as ``viewer_bot`` sees them (``None``: the users' view; with
        ``user``, as that user reads them: messages carry their reactions)."""
        return View(self.db, self.scoped, viewer_bot, user=user)

    # -- chats ----------------------------------------------------------------

    async def start_bot(self, user: UserRecord, username: str) -> ChatRecord:
        """The user opens (or reopens) the private chat and sends ``/start``."""
        bot = await self.accounts.bot_by_username(username)
        if bot is None:
            raise ApiError(404, "BOT_NOT_FOUND", f"no bot is called '{username}'")
        if not bot.active:
            raise ApiError(412, "BOT_INACTIVE", f"the bot '{bot.username}' was revoked")
        scoped = self.scoped(bot.id, user.id)
        chat_id = await self.db.private_chat_of(bot.id, scoped)
        if chat_id is None:
            candidate = ChatRecord(
                id=random_id(),
                type="private",
                title="",
                created=now(),
                user_id=user.id,
                bot_id=bot.id,
            )
            await self.db.create_chat(candidate, announce=True)
            chat_id = await self.db.link_private_chat(
                bot_id=bot.id, scoped_user=scoped, user_id=user.id, chat_id=candidate.id
            )
        chat = await self.db.get_chat(chat_id)
        assert chat is not None
        # The link is in the bot's slot, the chat and its event in the chat's: the
        # event is queued with the chat's mark that it was, in one step, once the
        # link is made. A start that failed in between (a crash) left the mark
        # unset, and the user's next start queues the event (chats made before the
        # mark existed have none, and are not announced again).
        entry = self.events.pending(
            [user.id], "chat", chat, {"chat": await self.view(None).chat(chat)}
        )
        written = await self.db.announce_chat(chat.id, [entry])
        if written is not None:
            await self.events.drain(chat, written, entry)
        await self.user_send_message(user, chat, "/start")
        return chat

    async def chat_for_user(self, user: UserRecord, chat_id: int) -> ChatRecord:
        chat = await self.db.get_chat(chat_id)
        if chat is not None:
            if chat.type == "private" and chat.user_id == user.id:
                return chat
            if chat.type == "group" and await self.db.member(chat.id, member_key("u", user.id)):
                return chat
        raise ApiError(
            404, "CHAT_NOT_FOUND", "no such chat, or you are not a member of it (check chat_id)"
        )

    async def chat_for_bot(self, bot: BotRecord, chat_id: int) -> ChatRecord:
        """The chat behind ``chat_id`` as the bot names it, if the bot may write there."""
        chat = await self.db.get_chat(chat_id)
        if chat is not None and chat.type == "group":
            if await self.db.member(chat.id, member_key("b", bot.id)):
                return chat
            raise ApiError(403, "CHAT_FORBIDDEN", "the bot is not a member of this chat")
        private = await self.db.private_chat_of(bot.id, chat_id)
        if private is not None:
            found = await self.db.get_chat(private)
            assert found is not None
            return found
        if await self.db.seen_user(bot.id, chat_id) is not None:
            raise ApiError(
                403,
                "CHAT_FORBIDDEN",
                "the user has not started the bot: a bot cannot write first to a user",
            )
        raise ApiError(400, "CHAT_NOT_FOUND", "chat not found: check chat_id")

    def bot_chat_id(self, bot_id: int, chat: ChatRecord) -> int:
        return self.scoped(bot_id, chat.user_id) if chat.type == "private" else chat.id

    async def member_info(self, chat: ChatRecord, member: str) -> dict[str, Any] | None:
        """Membership of ``u<id>``/``b<id>`` (private chats: the user and the bot)."""
        if chat.type == "private":
            if member in (member_key("u", chat.user_id), member_key("b", chat.bot_id)):
                return {"status": "member", "date": chat.created, "since": 0}
            return None
        return await self.db.member(chat.id, member)

    async def member_count(self, chat: ChatRecord) -> int:
        if chat.type == "private":
            return 2
        return len(await self.db.members(chat.id))

    async def resolve_user_for_bot(self, bot: BotRecord, chat: ChatRecord, user_id: int) -> str:
        """The member key behind an id as ``bot`` names it (a scoped user id or a bot id)."""
        if user_id == bot.id:
            return member_key("b", bot.id)
        if chat.type == "private":
            if user_id == self.scoped(bot.id, chat.user_id):
                return member_key("u", chat.user_id)
        else:
            real = await self.db.seen_user(bot.id, user_id)
            if real is not None:
                return member_key("u", real)
            members = await self.db.members(chat.id)
            for member in members:
                if member[0] == "b" and int(member[1:]) == user_id:
                    return member
                if member[0] == "u" and self.scoped(bot.id, int(member[1:])) == user_id:
                    await self.db.note_seen_users(bot.id, {user_id: int(member[1:])})
                    return member
            if await self.db.get_bot(user_id) is not None:
                return member_key("b", user_id)
        raise ApiError(400, "USER_NOT_FOUND", "no such user in this chat: check user_id")

    # -- messages -------------------------------------------------------------

    async def message_in(self, chat: ChatRecord, message_id: int) -> MessageRecord:
        message = await self.db.get_message(chat.id, message_id)
        if message is None:
            raise ApiError(
                400, "MESSAGE_NOT_FOUND", f"message {message_id} was not found in this chat"
            )
        return message

    async def check_reply(
        self, chat: ChatRecord, reply_to: int | None, lenient: bool = False
    ) -> int | None:
        """The message to reply to, if it exists; ``lenient``: send without the reply."""
        if reply_to is None or await self.db.get_message(chat.id, reply_to) is not None:
            return reply_to
        if lenient:
            return None
        raise ApiError(
            400, "MESSAGE_NOT_FOUND", f"the message to reply to ({reply_to}) was not found"
        )

    async def new_message(
        self,
        chat: ChatRecord,
        sender: str,
        *,
        text: str | None,
        entities: list[dict[str, Any]] | None = None,
        reply_to: int | None = None,
        reply_markup: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> MessageRecord:
        """Store a message (the caller checked the reply target and the rate limit);
        a retry with the call's ``idempotency_key`` gets the message stored the
        first time."""
        message = MessageRecord(
            id=MESSAGE_ID_PLACEHOLDER,  # the store gives it the chat's next id
            chat_id=chat.id,
            sender=sender,
            date=now(),
            text=text,
            entities=entities or None,
            reply_to=reply_to,
            reply_markup=reply_markup,
            extra=extra or {},
        )
        pending = await self.events.message_pending(chat, message, "message")
        fields = message.to_storage()
        del fields["i"]
        written = await self.store.outbox.write(
            chat.id,
            mode="new",
            message=pack_open_map(fields, "i"),
            pending=pending,
            idempotency_key=None if idempotency_key is None else f"{sender}:{idempotency_key}",
        )
        if written.replayed:
            return await self.message_in(chat, written.message_id)
        message.id = written.message_id
        await self._drain(chat, written, pending)
        for file_id in _file_ids(message.extra):
            await self.db.note_file_chat(file_id, chat.id)
        return message

    def new_bot_message(
        self,
        chat: ChatRecord,
        bot_id: int,
        replied: MessageRecord | None,
        extra: dict[str, Any],
        *,
        reply_markup: dict[str, Any] | None,
        idempotency_key: str | None,
    ) -> Coroutine[Any, Any, MessageRecord]:
        """:meth:`new_message` for a bot's message with no text (a photo, a poll: in
        ``extra``), replying to ``replied``."""
        return self.new_message(
            chat,
            member_key("b", bot_id),
            text=None,
            reply_to=None if replied is None else replied.id,
            reply_markup=reply_markup,
            extra=extra,
            idempotency_key=idempotency_key,
        )

    async def user_send_message(
        self,
        user: UserRecord,
        chat: ChatRecord,
        text: str,
        *,
        reply_to: int | None = None,
        idempotency_key: str | None = None,
    ) -> MessageRecord:
        """Store a user's message and append it to every recipient's log, atomically
        (see :mod:`shared.store.outbox`); a retry with the same ``idempotency_key``
        returns the message stored the first time."""
        reply_to = await self.check_reply(chat, reply_to)
        return await self.user_post(
            user,
            chat,
            text=text,
            entities=parse_entities(text) or None,
            reply_to=reply_to,
            idempotency_key=idempotency_key,
        )

    async def user_post(
        self,
        user: UserRecord,
        chat: ChatRecord,
        *,
        text: str | None,
        entities: list[dict[str, Any]] | None,
        reply_to: int | None = None,
        extra: dict[str, Any] | None = None,
        to_bots: list[BotRecord] | None = None,
        idempotency_key: str | None = None,
        limited: bool = True,
    ) -> MessageRecord:
        """Store a user's message (the caller checked ``reply_to``) with its updates in
        one step: to ``to_bots``, or else to the bots the chat rules give, and to the
        chat's users. ``extra``: what a mini app adds (web_app_data, via_bot).
        ``limited``: the chat's users' send bucket applies (not to a bot's answer)."""
        sender = member_key("u", user.id)
        message = MessageRecord(
            id=MESSAGE_ID_PLACEHOLDER,
            chat_id=chat.id,
            sender=sender,
            date=now(),
            text=text,
            entities=entities or None,
            reply_to=reply_to,
            extra=extra or {},
        )
        if to_bots is None:
            pending = await self._pending(chat, message, "message")
        else:
            pending = []
            for bot in to_bots:
                body = {"message": await self.view(bot.id).message(chat, message)}
                pending.append(
                    Pending(bot.id, "message", self.bot_chat_id(bot.id, chat), pack(body))
                )
        pending += await self.events.message_pending(chat, message, "message")
        fields = message.to_storage()
        del fields["i"]
        written = await self.store.outbox.write(
            chat.id,
            mode="new",
            message=pack_open_map(fields, "i"),
            pending=pending,
            idempotency_key=None if idempotency_key is None else f"{sender}:{idempotency_key}",
            send_rate=chat_send_rate(self.settings) if limited else None,
        )
        refuse_chat_send(written.wait_ms)
        if written.replayed:
            return await self.message_in(chat, written.message_id)
        message.id = written.message_id
        await self._drain(chat, written, pending)
        return message

    async def user_edit_message(
        self, user: UserRecord, chat: ChatRecord, message_id: int, text: str
    ) -> MessageRecord:
        message = await self.message_in(chat, message_id)
        if message.sender != member_key("u", user.id) or message.text is None:
            raise ApiError(
                400, "MESSAGE_CANT_BE_EDITED", "only your own text messages can be edited"
            )
        if message.text == text:
            raise ApiError(400, "MESSAGE_NOT_MODIFIED", "the new text is the same as the old")
        message.text = text
        message.entities = parse_entities(text) or None
        message.edit_date = now()
        pending = await self._pending(chat, message, "edited_message")
        pending += await self.events.message_pending(chat, message, "edited_message")
        written = await self.store.outbox.write(
            chat.id,
            mode="save",
            message=pack(message.to_storage()),
            message_id=message.id,
            pending=pending,
            send_rate=chat_send_rate(self.settings),
        )
        refuse_chat_send(written.wait_ms)
        await self._drain(chat, written, pending)
        return message

    async def user_delete_message(
        self, user: UserRecord, chat: ChatRecord, message_id: int
    ) -> None:
        message = await self.message_in(chat, message_id)
        me = member_key("u", user.id)
        if message.sender != me and chat.type != "private":
            mine = await self.db.member(chat.id, me)
            if (mine or {}).get("status") != "creator":
                raise ApiError(
                    403,
                    "MESSAGE_CANT_BE_DELETED",
                    "in groups only the creator may delete other members' messages",
                )
        await self.delete_message(chat, message_id)

    async def delete_message(self, chat: ChatRecord, message_id: int) -> None:
        """Delete a message and tell the chat's users (``deleted_messages``), in one step."""
        data = {"chat_id": chat.id, "message_ids": [message_id]}
        pending = self.events.pending(
            await self.events.members(chat), "deleted_messages", chat, data
        )
        written = await self.store.outbox.write(
            chat.id, mode="delete", message_id=message_id, pending=pending
        )
        await self._drain(chat, written, pending)

    async def save_edit(self, chat: ChatRecord, message: MessageRecord) -> None:
        """Store a bot's edited message and tell the chat's users (``edited_message``),
        in one step (bots never hear of other bots' messages)."""
        pending = await self.events.message_pending(chat, message, "edited_message")
        written = await self.store.outbox.write(
            chat.id,
            mode="save",
            message=pack(message.to_storage()),
            message_id=message.id,
            pending=pending,
        )
        await self._drain(chat, written, pending)

    async def recipients(self, chat: ChatRecord, message: MessageRecord) -> list[BotRecord]:
        """The bots that receive a user's message (the chat rules of this module;
        docs/design.md, REST surfaces)."""
        if message.sent_by_bot:
            return []  # bots never receive their own or other bots' messages
        if chat.type == "private":
            bot = await self.db.get_bot(chat.bot_id)
            return [bot] if bot is not None and bot.active else []
        members = await self.db.members(chat.id)
        bot_ids = [int(m[1:]) for m in members if m.startswith("b")]
        if not bot_ids:
            return []
        bots = await self.db.get_bots(bot_ids)
        replied: MessageRecord | None = None
        if message.reply_to is not None:
            replied = await self.db.get_message(chat.id, message.reply_to)
        return [
            bot
            for bot in bots.values()
            if bot.active and visibility.receives(bot, chat, message, replied)
        ]

    async def _pending(self, chat: ChatRecord, message: MessageRecord, kind: str) -> list[Pending]:
        """``kind`` (message / edited_message) rendered for every recipient bot; in
        groups the bots note the sender as a user they have seen."""
        bots = await self.recipients(chat, message)
        pending: list[Pending] = []
        for bot in bots:
            body = await self.view(bot.id).message(chat, message)
            pending.append(
                Pending(bot.id, kind, self.bot_chat_id(bot.id, chat), pack({kind: body}))
            )
            if chat.type == "group" and message.sender.startswith("u"):
                uid = int(message.sender[1:])
                await self.db.note_seen_users(bot.id, {self.scoped(bot.id, uid): uid})
        return pending

    async def _drain(self, chat: ChatRecord, written: Written, pending: list[Pending]) -> None:
        """Append what a write queued. The write is durable already: if Redis fails
        now, the entry stays in the outbox and a later drain or replay appends it."""
        try:
            await self.store.outbox.drain(chat.id, written, pending)
        except StoreError as exc:
            log.warning("chat %d: outbox drain deferred (%s)", chat.id, exc)

    async def publish(self, updates: list[Outgoing]) -> list[int]:
        ids = []
        for update in updates:
            result = await self.store.log.append(
                update.bot_id, kind=update.kind, chat_id=update.chat_id, body=update.body
            )
            ids.append(result.update_id)
        return ids

    async def bot_in_chat(self, bot_id: int, chat: ChatRecord) -> BotRecord | None:
        """The bot, if it is active and still in the chat (to send it an update)."""
        bot = await self.db.get_bot(bot_id)
        if bot is None or not bot.active:
            return None
        if chat.type == "private":
            return bot if chat.bot_id == bot_id else None
        return bot if await self.db.member(chat.id, member_key("b", bot_id)) else None


def _file_ids(extra: dict[str, Any]) -> list[str]:
    """The files a message carries (its members may download them)."""
    found = [size["file_id"] for size in extra.get("photo") or ()]
    if extra.get("document"):
        found.append(extra["document"]["file_id"])
    return found
