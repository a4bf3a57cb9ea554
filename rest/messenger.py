"""The messenger's rules: accounts, chats, who receives which message.

This is the domain layer under every REST surface. It speaks internal ids: a chat
is known by its internal id; a bot sees a private chat under the scoped id of the
user (DESIGN section 3), and a group under the group's id. Updates are rendered as
the receiving bot sees them and appended to that bot's log.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from rest.text import parse_entities
from shared.errors import ApiError
from shared.ids import (
    BOT_USERNAME_RE,
    USER_USERNAME_RE,
    hash_secret,
    new_secret,
    parse_bot_token,
    parse_user_token,
    random_id,
    scoped_user_id,
    tokens_equal,
)
from shared.models import BotRecord, ChatRecord, MessageRecord, UserRecord, member_key
from shared.settings import Settings
from shared.store import Store

__all__ = ["Messenger", "Outgoing"]

log = logging.getLogger("botgw.messenger")


@dataclass(slots=True)
class Outgoing:
    """An update for one bot: type, chat id as the bot sees it, body without update_id."""

    bot_id: int
    kind: str
    chat_id: int
    body: dict[str, Any]


def _now() -> int:
    return int(time.time())


class Messenger:
    """Accounts, chats and messages, and the updates they cause."""

    def __init__(self, store: Store, settings: Settings, secret: bytes) -> None:
        self.store = store
        self.settings = settings
        self.db = store.entities
        self._secret = secret

    # -- ids ------------------------------------------------------------------

    def scoped(self, bot_id: int, user_id: int) -> int:
        """The id under which ``bot_id`` sees ``user_id``."""
        return scoped_user_id(self._secret, bot_id, user_id)

    # -- accounts -------------------------------------------------------------

    async def create_user(self, username: str, name: str | None = None) -> tuple[UserRecord, str]:
        username = username.lower()
        if not USER_USERNAME_RE.match(username) or username.endswith("_bot"):
            raise ApiError(
                400,
                "INVALID_USERNAME",
                "a user name is 3-32 characters: a letter, then letters, digits or "
                "underscores, and it must not end in _bot",
            )
        user_id = random_id()
        if not await self.db.claim_username(username, member_key("u", user_id)):
            raise ApiError(409, "USERNAME_TAKEN", f"the username '{username}' is taken")
        token = f"usr_{user_id}:{new_secret()}"
        await self.db.create_user(
            user_id=user_id, username=username, name=name or username, token_hash=hash_secret(token)
        )
        user = await self.db.get_user(user_id)
        assert user is not None
        return user, token

    async def user_by_username(self, username: str) -> UserRecord | None:
        owner = await self.db.resolve_username(username.lower().lstrip("@"))
        if owner is None or owner[0] != "u":
            return None
        return await self.db.get_user(int(owner[1:]))

    async def authenticate_user(self, token: str | None) -> UserRecord:
        parsed = parse_user_token(token) if token else None
        user = await self.db.get_user(parsed.user_id) if parsed else None
        if parsed is None or user is None or not tokens_equal(parsed.token, user.token_hash):
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "a valid user token is required: send 'Authorization: Bearer usr_<id>:<secret>'",
            )
        return user

    async def create_bot(
        self, owner: UserRecord, *, username: str, name: str, description: str = ""
    ) -> tuple[BotRecord, str]:
        username = username.lower()
        if not (5 <= len(username) <= 32 and BOT_USERNAME_RE.match(username)):
            raise ApiError(
                400,
                "INVALID_USERNAME",
                "a bot username is 5-32 characters: a lowercase letter, then lowercase "
                "letters, digits or underscores, ending in _bot",
            )
        bot_id = random_id()
        if not await self.db.claim_username(username, member_key("b", bot_id)):
            raise ApiError(409, "USERNAME_TAKEN", f"the username '{username}' is taken")
        token = f"bot_{bot_id}:{new_secret()}"
        await self.db.create_bot(
            bot_id=bot_id,
            username=username,
            name=name,
            description=description,
            owner_id=owner.id,
            token_hash=hash_secret(token),
        )
        bot = await self.db.get_bot(bot_id)
        assert bot is not None
        return bot, token

    async def rotate_token(self, bot: BotRecord) -> str:
        token = f"bot_{bot.id}:{new_secret()}"
        await self.db.update_bot(bot.id, {"token_hash": hash_secret(token)})
        return token

    async def bot_by_username(self, username: str) -> BotRecord | None:
        owner = await self.db.resolve_username(username.lower().lstrip("@"))
        if owner is None or owner[0] != "b":
            return None
        return await self.db.get_bot(int(owner[1:]))

    async def authenticate_bot(self, token: str | None) -> BotRecord:
        """The bot behind a token (native ``bot_<id>:<secret>`` or Telegram form)."""
        parsed = parse_bot_token(token) if token else None
        bot = await self.db.get_bot(parsed.bot_id) if parsed else None
        if parsed is None or bot is None or not tokens_equal(parsed.token, bot.token_hash):
            raise ApiError(
                401,
                "UNAUTHORIZED",
                "a valid bot token is required: send 'Authorization: Bot bot_<id>:<secret>'",
            )
        if not bot.active:
            raise ApiError(412, "BOT_INACTIVE", "this bot was revoked by its owner")
        return bot

    # -- chats ----------------------------------------------------------------

    async def start_bot(self, user: UserRecord, username: str) -> ChatRecord:
        """The user opens (or reopens) the private chat and sends ``/start``."""
        bot = await self.bot_by_username(username)
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
                created=_now(),
                user_id=user.id,
                bot_id=bot.id,
            )
            await self.db.create_chat(candidate)
            chat_id = await self.db.link_private_chat(
                bot_id=bot.id, scoped_user=scoped, user_id=user.id, chat_id=candidate.id
            )
        chat = await self.db.get_chat(chat_id)
        assert chat is not None
        await self.user_send_message(user, chat.id, "/start")
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

    # -- messages -------------------------------------------------------------

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
    ) -> MessageRecord:
        if reply_to is not None and await self.db.get_message(chat.id, reply_to) is None:
            raise ApiError(
                400, "MESSAGE_NOT_FOUND", f"the message to reply to ({reply_to}) was not found"
            )
        message = MessageRecord(
            id=await self.db.next_message_id(chat.id),
            chat_id=chat.id,
            sender=sender,
            date=_now(),
            text=text,
            entities=entities,
            reply_to=reply_to,
            reply_markup=reply_markup,
            extra=extra or {},
        )
        await self.db.save_message(message)
        return message

    async def user_send_message(
        self, user: UserRecord, chat_id: int, text: str, *, reply_to: int | None = None
    ) -> MessageRecord:
        chat = await self.chat_for_user(user, chat_id)
        entities = parse_entities(text) or None
        message = await self.new_message(
            chat, member_key("u", user.id), text=text, entities=entities, reply_to=reply_to
        )
        await self.deliver(chat, message, "message")
        return message

    async def recipients(self, chat: ChatRecord, message: MessageRecord) -> list[BotRecord]:
        """The bots that receive a user's message (DESIGN section 7, chat rules)."""
        if message.sender.startswith("b"):
            return []  # bots never receive their own or other bots' messages
        if chat.type == "private":
            bot = await self.db.get_bot(chat.bot_id)
            return [bot] if bot is not None and bot.active else []
        members = await self.db.members(chat.id)
        bot_ids = [int(m[1:]) for m in members if m.startswith("b")]
        bots = await self.db.get_bots(bot_ids)
        replied: MessageRecord | None = None
        if message.reply_to is not None:
            replied = await self.db.get_message(chat.id, message.reply_to)
        out = []
        for bot in bots.values():
            if not bot.active:
                continue
            if not bot.privacy_mode or self._addressed(bot, message, replied):
                out.append(bot)
        return out

    @staticmethod
    def _addressed(bot: BotRecord, message: MessageRecord, replied: MessageRecord | None) -> bool:
        if replied is not None and replied.sender == member_key("b", bot.id):
            return True
        text = message.text or str(message.extra.get("caption") or "")
        handle = "@" + bot.username
        for entity in message.entities or ():
            piece = _utf16_slice(text, entity["offset"], entity["length"]).lower()
            if entity["type"] == "bot_command" and piece.endswith(handle):
                return True
            if entity["type"] == "mention" and piece == handle:
                return True
        return False

    async def deliver(self, chat: ChatRecord, message: MessageRecord, kind: str) -> list[int]:
        """Append ``kind`` (message / edited_message) to every recipient bot's log."""
        bots = await self.recipients(chat, message)
        out: list[Outgoing] = []
        for bot in bots:
            body = await self.render_message(bot.id, chat, message)
            out.append(
                Outgoing(
                    bot_id=bot.id,
                    kind=kind,
                    chat_id=self.bot_chat_id(bot.id, chat),
                    body={kind: body},
                )
            )
            if chat.type == "group" and message.sender.startswith("u"):
                uid = int(message.sender[1:])
                await self.db.note_seen_users(bot.id, {self.scoped(bot.id, uid): uid})
        return await self.publish(out)

    async def publish(self, updates: list[Outgoing]) -> list[int]:
        ids = []
        for update in updates:
            result = await self.store.log.append(
                update.bot_id, kind=update.kind, chat_id=update.chat_id, body=update.body
            )
            ids.append(result.update_id)
        return ids

    # -- rendering ------------------------------------------------------------

    async def render_user(self, viewer_bot: int | None, member: str) -> dict[str, Any]:
        """A Telegram User object for ``u<id>``/``b<id>`` as a bot (or a user) sees it."""
        kind, member_id = member[0], int(member[1:])
        if kind == "b":
            bot = await self.db.get_bot(member_id)
            return {
                "id": member_id,
                "is_bot": True,
                "first_name": bot.name if bot else "Deleted bot",
                "username": bot.username if bot else "",
            }
        user = await self.db.get_user(member_id)
        shown = self.scoped(viewer_bot, member_id) if viewer_bot is not None else member_id
        out: dict[str, Any] = {"id": shown, "is_bot": False, "first_name": "Deleted account"}
        if user is not None:
            out["first_name"] = user.name
            out["username"] = user.username
        return out

    async def render_chat(self, viewer_bot: int | None, chat: ChatRecord) -> dict[str, Any]:
        if chat.type == "group":
            return {"id": chat.id, "type": "group", "title": chat.title}
        if viewer_bot is None:
            # the user's view of a private chat: named after the bot
            bot = await self.db.get_bot(chat.bot_id)
            out: dict[str, Any] = {"id": chat.id, "type": "private"}
            if bot is not None:
                out["first_name"] = bot.name
                out["username"] = bot.username
            return out
        user = await self.db.get_user(chat.user_id)
        out = {"id": self.scoped(viewer_bot, chat.user_id), "type": "private"}
        if user is not None:
            out["first_name"] = user.name
            out["username"] = user.username
        return out

    async def render_message(
        self,
        viewer_bot: int | None,
        chat: ChatRecord,
        message: MessageRecord,
        *,
        with_reply: bool = True,
    ) -> dict[str, Any]:
        """A Telegram Message as ``viewer_bot`` sees it (``None``: the users' view)."""
        out: dict[str, Any] = {
            "message_id": message.id,
            "from": await self.render_user(viewer_bot, message.sender),
            "chat": await self.render_chat(viewer_bot, chat),
            "date": message.date,
        }
        if message.text is not None:
            out["text"] = message.text
        if message.entities:
            out["entities"] = message.entities
        if message.edit_date is not None:
            out["edit_date"] = message.edit_date
        for key, value in message.extra.items():
            out[key] = value
        if message.reply_markup is not None:
            out["reply_markup"] = message.reply_markup
        if with_reply and message.reply_to is not None:
            replied = await self.db.get_message(chat.id, message.reply_to)
            if replied is not None:
                out["reply_to_message"] = await self.render_message(
                    viewer_bot, chat, replied, with_reply=False
                )
        return out


def _utf16_slice(text: str, offset: int, length: int) -> str:
    data = text.encode("utf-16-le")
    return data[offset * 2 : (offset + length) * 2].decode("utf-16-le", errors="replace")
