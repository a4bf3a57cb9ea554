"""The Telegram objects the APIs return: how records become them, and their schemas.

:class:`View` renders stored records as one viewer sees them: a bot (users appear
under ids scoped to that bot, a private chat under the user's scoped id) or the
users (``viewer_bot=None``: real ids, a private chat under its internal id).
Objects are built with integer ids; the dialects decide how ids are written.

A bot's view shows only the messages it may see (:mod:`rest.visibility`): a reply
to a message hidden from it comes without ``reply_to_message``, and getChat's
``pinned_message`` is the latest pin it may see. Users see every message of their
chats.

The JSON schemas below describe the native form (ids as decimal strings) for
``/openapi.json``; the Telegram dialect writes the same fields as numbers.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from rest import visibility
from shared.models import BotRecord, ChatRecord, MessageRecord, UserRecord, parse_member

if TYPE_CHECKING:
    from rest.messenger import Messenger

__all__ = ["ID", "MAX_REACTIONS", "SCHEMAS", "View", "ref"]

# How many reactions one user may put on one message (a bot: one, as in Telegram).
MAX_REACTIONS = 3

_GIFTS_NONE = {
    "unlimited_gifts": False,
    "limited_gifts": False,
    "unique_gifts": False,
    "premium_subscription": False,
    "gifts_from_channels": False,
}


class View:
    """Renders records as ``viewer_bot`` sees them; caches the people it looked up,
    what the viewer may see of each chat, and the replied-to messages it read."""

    def __init__(self, messenger: Messenger, viewer_bot: int | None) -> None:
        self.messenger = messenger
        self.db = messenger.db
        self.viewer = viewer_bot
        self._users: dict[int, UserRecord | None] = {}
        self._bots: dict[int, BotRecord | None] = {}
        self._sights: dict[int, visibility.Sight | None] = {}
        # (chat id, message id) -> the message, None if it is gone or hidden from the viewer
        self._replied: dict[tuple[int, int], MessageRecord | None] = {}

    def user_id(self, member: str) -> int:
        """The id of ``u<id>``/``b<id>`` as the viewer knows it."""
        kind, member_id = parse_member(member)
        if kind == "u" and self.viewer is not None:
            return self.messenger.scoped(self.viewer, member_id)
        return member_id

    async def load(self, members: Iterable[str]) -> None:
        """Fetch the records of several members at once (one round trip each kind)."""
        users, bots = set(), set()
        for member in members:
            kind, member_id = parse_member(member)
            if kind == "u" and member_id not in self._users:
                users.add(member_id)
            elif kind == "b" and member_id not in self._bots:
                bots.add(member_id)
        if users:
            found_users = await self.db.get_users(users)
            for uid in users:
                self._users[uid] = found_users.get(uid)
        if bots:
            found_bots = await self.db.get_bots(bots)
            for bid in bots:
                self._bots[bid] = found_bots.get(bid)

    async def _sight(self, chat: ChatRecord) -> visibility.Sight | None:
        """What the viewer bot may see of ``chat`` (None: a bot that no longer exists)."""
        assert self.viewer is not None
        if chat.id not in self._sights:
            await self.load((f"b{self.viewer}",))
            bot = self._bots.get(self.viewer)
            self._sights[chat.id] = (
                None if bot is None else await visibility.sight(self.messenger, bot, chat)
            )
        return self._sights[chat.id]

    async def visible(self, chat: ChatRecord, messages: list[MessageRecord]) -> list[MessageRecord]:
        """The ones of ``messages`` the viewer may see (users: all of them)."""
        if self.viewer is None:
            return messages
        seen = await self._sight(chat)
        return [] if seen is None else await visibility.visible(self.db, seen, messages)

    def remember(self, message: MessageRecord | None) -> None:
        """Note a message the viewer is known to see (a reply target it was just
        allowed), so rendering a reply to it reads nothing again."""
        if message is not None:
            self._replied[(message.chat_id, message.id)] = message

    async def _load_replied(self, chat: ChatRecord, messages: list[MessageRecord]) -> None:
        """Read the messages ``messages`` reply to, and keep the visible ones."""
        wanted = {m.reply_to for m in messages if m.reply_to is not None}
        missing = sorted(i for i in wanted if (chat.id, i) not in self._replied)
        if not missing:
            return
        found = await self.visible(chat, await self.db.get_messages(chat.id, missing))
        shown = {m.id: m for m in found}
        for message_id in missing:
            self._replied[(chat.id, message_id)] = shown.get(message_id)

    async def pinned(self, chat: ChatRecord) -> MessageRecord | None:
        """The most recently pinned message of ``chat`` that exists and the viewer sees."""
        newest_first = await self.db.get_messages(chat.id, list(reversed(chat.pinned)))
        shown = await self.visible(chat, newest_first)
        return shown[0] if shown else None

    async def user(self, member: str) -> dict[str, Any]:
        """A User object."""
        await self.load((member,))
        kind, member_id = parse_member(member)
        if kind == "b":
            bot = self._bots.get(member_id)
            return {
                "id": member_id,
                "is_bot": True,
                "first_name": bot.name if bot else "Deleted bot",
                "username": bot.username if bot else "deleted_bot",
            }
        out: dict[str, Any] = {
            "id": self.user_id(member),
            "is_bot": False,
            "first_name": "Deleted account",
        }
        user = self._users.get(member_id)
        if user is not None:
            out["first_name"] = user.name
            out["username"] = user.username
        return out

    async def chat(self, chat: ChatRecord) -> dict[str, Any]:
        """A Chat object: a group by its title, a private chat by the other party."""
        if chat.type == "group":
            return {"id": chat.id, "type": "group", "title": chat.title}
        if self.viewer is None:
            other = await self.user(f"b{chat.bot_id}")
            out: dict[str, Any] = {"id": chat.id, "type": "private"}
        else:
            other = await self.user(f"u{chat.user_id}")
            out = {"id": other["id"], "type": "private"}
        out["first_name"] = other["first_name"]
        if "username" in other:
            out["username"] = other["username"]
        return out

    async def chat_full(self, chat: ChatRecord) -> dict[str, Any]:
        """A ChatFullInfo object (getChat)."""
        out = await self.chat(chat)
        out.update(
            accent_color_id=0,
            max_reaction_count=MAX_REACTIONS,
            accepted_gift_types=dict(_GIFTS_NONE),
        )
        if chat.type == "private" and self.viewer is not None:
            out["active_usernames"] = [out["username"]] if "username" in out else []
        pinned = await self.pinned(chat)
        if pinned is not None:
            out["pinned_message"] = await self.message(chat, pinned, with_reply=False)
        return out

    async def chat_member(self, member: str, info: dict[str, Any] | None) -> dict[str, Any]:
        """A ChatMember object (owner, member or left)."""
        status = (info or {}).get("status", "left")
        out: dict[str, Any] = {"status": status, "user": await self.user(member)}
        if status == "creator":
            out["is_anonymous"] = False
        return out

    async def message(
        self, chat: ChatRecord, message: MessageRecord, *, with_reply: bool = True
    ) -> dict[str, Any]:
        """A Message object; ``reply_to_message`` only if the viewer sees that message."""
        out: dict[str, Any] = {
            "message_id": message.id,
            "from": await self.user(message.sender),
            "chat": await self.chat(chat),
            "date": message.date,
        }
        if message.edit_date is not None:
            out["edit_date"] = message.edit_date
        if message.text is not None:
            out["text"] = message.text
        if message.entities:
            out["entities"] = message.entities
        for key, value in message.extra.items():
            if key == "poll":
                out["poll"] = await self.poll(chat, message)
            elif key == "_forward":
                out["forward_origin"] = {
                    "type": "user",
                    "sender_user": await self.user(value["sender"]),
                    "date": value["date"],
                }
            elif not key.startswith("_"):
                out[key] = value
        if message.reply_markup is not None:
            out["reply_markup"] = message.reply_markup
        if with_reply and message.reply_to is not None:
            await self._load_replied(chat, [message])
            replied = self._replied[(chat.id, message.reply_to)]
            if replied is not None:
                out["reply_to_message"] = await self.message(chat, replied, with_reply=False)
        return out

    async def message_or_inaccessible(
        self, chat: ChatRecord, message: MessageRecord
    ) -> dict[str, Any]:
        """A Message object, or Telegram's InaccessibleMessage (chat, id, date 0)
        for one the viewer may not see."""
        if await self.visible(chat, [message]):
            return await self.message(chat, message)
        return {"chat": await self.chat(chat), "message_id": message.id, "date": 0}

    async def messages(
        self, chat: ChatRecord, messages: list[MessageRecord]
    ) -> list[dict[str, Any]]:
        """Several messages of one chat, with their senders and the messages they
        reply to fetched together."""
        await self.load(m.sender for m in messages)
        await self._load_replied(chat, messages)
        return [await self.message(chat, m) for m in messages]

    async def poll(self, chat: ChatRecord, message: MessageRecord) -> dict[str, Any]:
        """The Poll object of a poll message, with its current votes."""
        spec: dict[str, Any] = message.extra["poll"]
        votes, closed = await self.db.poll_votes(chat.id, message.id)
        options: list[str] = spec["options"]
        counts = [0] * len(options)
        for chosen in votes.values():
            for index in chosen:
                if 0 <= index < len(counts):
                    counts[index] += 1
        close_date = spec.get("close_date")
        is_closed = closed or bool(close_date and time.time() >= close_date)
        out: dict[str, Any] = {
            "id": spec["id"],
            "question": spec["question"],
            "options": [
                {"persistent_id": str(i), "text": text, "voter_count": counts[i]}
                for i, text in enumerate(options)
            ],
            "total_voter_count": sum(1 for chosen in votes.values() if chosen),
            "is_closed": is_closed,
            "is_anonymous": spec["is_anonymous"],
            "type": spec["type"],
            "allows_multiple_answers": spec["allows_multiple_answers"],
            "allows_revoting": spec["type"] != "quiz",
            "members_only": False,
        }
        # a quiz's answer is shown to the bot that sent it, and to everyone once closed
        revealed = is_closed or (self.viewer is not None and message.sender == f"b{self.viewer}")
        if spec["type"] == "quiz" and revealed:
            out["correct_option_id"] = spec["correct_option_id"]
            if spec.get("explanation"):
                out["explanation"] = spec["explanation"]
        if close_date:
            out["close_date"] = close_date
        if spec.get("open_period"):
            out["open_period"] = spec["open_period"]
        return out


# -- JSON schemas (native form) -----------------------------------------------------

ID: dict[str, Any] = {"type": "string", "pattern": "^-?[0-9]+$"}
_INT: dict[str, Any] = {"type": "integer"}
_STR: dict[str, Any] = {"type": "string"}
_BOOL: dict[str, Any] = {"type": "boolean"}


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(required: list[str], **properties: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties}


def _array(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


USER = _object(
    ["id", "is_bot", "first_name"],
    id=ID,
    is_bot=_BOOL,
    first_name=_STR,
    username=_STR,
    can_join_groups=_BOOL,
    can_read_all_group_messages=_BOOL,
    supports_inline_queries=_BOOL,
)
CHAT = _object(
    ["id", "type"],
    id=ID,
    type={"type": "string", "enum": ["private", "group"]},
    title=_STR,
    first_name=_STR,
    username=_STR,
)
CHAT_FULL_INFO = _object(
    ["id", "type", "accent_color_id", "max_reaction_count", "accepted_gift_types"],
    id=ID,
    type={"type": "string", "enum": ["private", "group"]},
    title=_STR,
    first_name=_STR,
    username=_STR,
    accent_color_id=ID,
    max_reaction_count=_INT,
    accepted_gift_types=_object(list(_GIFTS_NONE), **{k: _BOOL for k in _GIFTS_NONE}),
    active_usernames=_array(_STR),
    pinned_message=ref("Message"),
)
ENTITY = _object(
    ["type", "offset", "length"],
    type=_STR,
    offset=_INT,
    length=_INT,
    url=_STR,
    language=_STR,
    custom_emoji_id=_STR,
)
BUTTON = _object(["text"], text=_STR, callback_data=_STR, url=_STR)
KEYBOARD = _object(["inline_keyboard"], inline_keyboard=_array(_array(ref("InlineKeyboardButton"))))
PHOTO_SIZE = _object(
    ["file_id", "file_unique_id", "width", "height"],
    file_id=_STR,
    file_unique_id=_STR,
    width=_INT,
    height=_INT,
    file_size=_INT,
)
DOCUMENT = _object(
    ["file_id", "file_unique_id"],
    file_id=_STR,
    file_unique_id=_STR,
    file_name=_STR,
    mime_type=_STR,
    file_size=_INT,
)
FILE = _object(
    ["file_id", "file_unique_id"], file_id=_STR, file_unique_id=_STR, file_size=_INT, file_path=_STR
)
POLL_OPTION = _object(["text", "voter_count"], persistent_id=_STR, text=_STR, voter_count=_INT)
POLL = _object(
    [
        "id",
        "question",
        "options",
        "total_voter_count",
        "is_closed",
        "is_anonymous",
        "type",
        "allows_multiple_answers",
    ],
    id=_STR,
    question=_STR,
    options=_array(ref("PollOption")),
    total_voter_count=_INT,
    is_closed=_BOOL,
    is_anonymous=_BOOL,
    type={"type": "string", "enum": ["regular", "quiz"]},
    allows_multiple_answers=_BOOL,
    allows_revoting=_BOOL,
    members_only=_BOOL,
    correct_option_id={"oneOf": [ID, _INT]},
    explanation=_STR,
    open_period=_INT,
    close_date=_INT,
)
MESSAGE = _object(
    ["message_id", "chat", "date"],
    message_id=ID,
    **{"from": ref("User")},
    chat=ref("Chat"),
    date=_INT,
    edit_date=_INT,
    text=_STR,
    entities=_array(ref("MessageEntity")),
    caption=_STR,
    caption_entities=_array(ref("MessageEntity")),
    photo=_array(ref("PhotoSize")),
    document=ref("Document"),
    poll=ref("Poll"),
    forward_origin=_object(
        ["type", "date", "sender_user"], type=_STR, date=_INT, sender_user=ref("User")
    ),
    reply_markup=ref("InlineKeyboardMarkup"),
    reply_to_message={"type": "object"},
)
MESSAGE_ID = _object(["message_id"], message_id=ID)
REACTION = _object(["type", "emoji"], type={"type": "string", "enum": ["emoji"]}, emoji=_STR)
CHAT_MEMBER = _object(
    ["status", "user"],
    status={"type": "string", "enum": ["creator", "member", "left"]},
    user=ref("User"),
    is_anonymous=_BOOL,
)
CALLBACK_QUERY = _object(
    ["id", "from", "chat_instance"],
    id=_STR,
    **{"from": ref("User")},
    message=ref("Message"),
    chat_instance=_STR,
    data=_STR,
)
CALLBACK_ANSWER = _object(
    ["id", "answered"], id=_STR, answered=_BOOL, text=_STR, show_alert=_BOOL, url=_STR
)
CHAT_MEMBER_UPDATED = _object(
    ["chat", "from", "date", "old_chat_member", "new_chat_member"],
    chat=ref("Chat"),
    **{"from": ref("User")},
    date=_INT,
    old_chat_member=ref("ChatMember"),
    new_chat_member=ref("ChatMember"),
)
MESSAGE_REACTION = _object(
    ["chat", "message_id", "date", "old_reaction", "new_reaction"],
    chat=ref("Chat"),
    message_id=ID,
    user=ref("User"),
    date=_INT,
    old_reaction=_array(ref("ReactionType")),
    new_reaction=_array(ref("ReactionType")),
)
POLL_ANSWER = _object(
    ["poll_id", "option_ids"],
    poll_id=_STR,
    user=ref("User"),
    option_ids=_array(_INT),
    option_persistent_ids=_array(_STR),
)
BOT_COMMAND = _object(["command", "description"], command=_STR, description=_STR)
UPDATE = _object(
    ["update_id"],
    update_id=ID,
    message=ref("Message"),
    edited_message=ref("Message"),
    callback_query=ref("CallbackQuery"),
    my_chat_member=ref("ChatMemberUpdated"),
    message_reaction=ref("MessageReactionUpdated"),
    poll=ref("Poll"),
    poll_answer=ref("PollAnswer"),
)
BOT = _object(
    ["id", "username", "name", "privacy_mode", "active"],
    id=ID,
    username=_STR,
    name=_STR,
    description=_STR,
    owner_id=ID,
    privacy_mode=_BOOL,
    active=_BOOL,
    created=_INT,
    token=_STR,
)

SCHEMAS: dict[str, Any] = {
    "User": USER,
    "Chat": CHAT,
    "ChatFullInfo": CHAT_FULL_INFO,
    "MessageEntity": ENTITY,
    "InlineKeyboardButton": BUTTON,
    "InlineKeyboardMarkup": KEYBOARD,
    "PhotoSize": PHOTO_SIZE,
    "Document": DOCUMENT,
    "File": FILE,
    "PollOption": POLL_OPTION,
    "Poll": POLL,
    "Message": MESSAGE,
    "MessageId": MESSAGE_ID,
    "ReactionType": REACTION,
    "ChatMember": CHAT_MEMBER,
    "CallbackQuery": CALLBACK_QUERY,
    "CallbackAnswer": CALLBACK_ANSWER,
    "ChatMemberUpdated": CHAT_MEMBER_UPDATED,
    "MessageReactionUpdated": MESSAGE_REACTION,
    "PollAnswer": POLL_ANSWER,
    "BotCommand": BOT_COMMAND,
    "Update": UPDATE,
    "Bot": BOT,
}
