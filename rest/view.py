"""The Telegram objects the APIs return, from the records they are made of.

:class:`View` renders stored records as one viewer sees them: a bot (users appear
under ids scoped to that bot, a private chat under the user's scoped id) or the
users (``viewer_bot=None``: real ids, a private chat under its internal id).
Objects are built with integer ids; the dialects decide how ids are written.

A bot's view shows only the messages it may see (:mod:`rest.visibility`): a reply
to a message hidden from it comes without ``reply_to_message``, and getChat's
``pinned_message`` is the latest pin it may see. Users see every message of their
chats. Their JSON schemas are in :mod:`rest.object_schemas`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from rest import visibility
from rest.object_schemas import GIFT_TYPES
from shared.models import BotRecord, ChatRecord, MessageRecord, UserRecord, parse_member
from shared.store.entities import Entities

__all__ = ["MAX_REACTIONS", "Scoping", "View", "reaction_summary"]

# (bot id, user id) -> the id under which that bot sees that user
Scoping = Callable[[int, int], int]

# How many reactions one user may put on one message (a bot: one, as in Telegram).
MAX_REACTIONS = 3

_GIFTS_NONE = dict.fromkeys(GIFT_TYPES, False)


def reaction_summary(
    reactions: dict[str, list[dict[str, Any]]], viewer: str | None
) -> list[dict[str, Any]]:
    """``{"emoji", "count", "chosen"}`` per reaction to a message (an emoji, or a
    custom emoji's id), most chosen first, from every member's reactions;
    ``chosen``: ``viewer`` (``u<id>``) is one of those who chose it."""
    counts: dict[str, int] = {}
    chosen: set[str] = set()
    for member, chosen_by_member in reactions.items():
        for reaction in chosen_by_member:
            name = str(reaction.get("emoji") or reaction.get("custom_emoji_id") or "")
            if not name:
                continue
            counts[name] = counts.get(name, 0) + 1
            if member == viewer:
                chosen.add(name)
    order = sorted(counts, key=lambda name: (-counts[name], name))
    return [{"emoji": name, "count": counts[name], "chosen": name in chosen} for name in order]


class View:
    """Renders records as ``viewer_bot`` sees them; caches the people it looked up,
    what the viewer may see of each chat, and the replied-to messages it read."""

    def __init__(
        self, db: Entities, scoped: Scoping, viewer_bot: int | None, *, user: int | None = None
    ) -> None:
        self.db = db
        self.scoped = scoped
        self.viewer = viewer_bot
        # in the users' view, the user who reads: messages then carry "reactions"
        # (chosen: whether this user chose it)
        self.reader = user if viewer_bot is None else None
        self._reactions: dict[tuple[int, int], dict[str, list[dict[str, Any]]]] = {}
        self._users: dict[int, UserRecord | None] = {}
        self._bots: dict[int, BotRecord | None] = {}
        self._sights: dict[int, visibility.Sight | None] = {}
        # (chat id, message id) -> the message, None if it is gone or hidden from the viewer
        self._replied: dict[tuple[int, int], MessageRecord | None] = {}

    def user_id(self, member: str) -> int:
        """The id of ``u<id>``/``b<id>`` as the viewer knows it."""
        kind, member_id = parse_member(member)
        if kind == "u" and self.viewer is not None:
            return self.scoped(self.viewer, member_id)
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
                None if bot is None else await visibility.sight(self.db, bot, chat)
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
            elif key == "_via_bot":
                out["via_bot"] = await self.user(f"b{value}")
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
        if self.reader is not None:
            out["reactions"] = await self.reactions(chat, message)
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
        if self.reader is not None:
            wanted = [m.id for m in messages if (chat.id, m.id) not in self._reactions]
            found = await self.db.reactions_of(chat.id, wanted)
            for message_id in wanted:
                self._reactions[(chat.id, message_id)] = found.get(message_id, {})
        return [await self.message(chat, m) for m in messages]

    async def reactions(self, chat: ChatRecord, message: MessageRecord) -> list[dict[str, Any]]:
        """``{"emoji", "count", "chosen"}`` per reaction to ``message`` (the users' view)."""
        key = (chat.id, message.id)
        if key not in self._reactions:
            found = await self.db.reactions_of(chat.id, [message.id])
            self._reactions[key] = found.get(message.id, {})
        me = None if self.reader is None else f"u{self.reader}"
        return reaction_summary(self._reactions[key], me)

    async def poll(
        self,
        chat: ChatRecord,
        message: MessageRecord,
        *,
        state: tuple[dict[str, list[int]], bool] | None = None,
    ) -> dict[str, Any]:
        """The Poll object of a poll message, with its current votes (or ``state``:
        member -> option ids, closed)."""
        spec: dict[str, Any] = message.extra["poll"]
        if state is None:
            state = await self.db.poll_votes(chat.id, message.id)
        votes, closed = state
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
