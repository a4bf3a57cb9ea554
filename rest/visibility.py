"""Which messages and files a bot may see: one rule for every method that names one.

A bot may name a message (reply to it, forward or copy it, pin, unpin, edit,
delete or react to it, read it in getChatHistory, find it embedded as
``reply_to_message`` or ``pinned_message``) only if it could see it:

* in its private chat with a user, every message of that chat;
* in a group it is a member of, the messages after it joined (ids above its
  membership's ``since``) that it sent itself or that reached it under the chat
  rules (:func:`receives`): every user message with privacy mode off; with
  privacy mode on the ones addressed to it (:func:`addressed`);
  never another bot's message;
* nothing of a chat it is not a member of.

A message a bot may not see is answered exactly like one that does not exist:
400 ``MESSAGE_NOT_FOUND``, with the same description.

Files follow the messages that carry them: a bot may use a ``file_id`` (getFile,
downloads, sending it again) if it uploaded the file itself or may see a message
carrying it. Which messages carry a file, and which bot uploaded it, is noted
in the store (:meth:`~shared.store.entities.Entities.note_file_carriers`) when a
bot sends or forwards it (:func:`note_files`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rest.text import utf16_slice
from shared.errors import ApiError
from shared.models import BotRecord, ChatRecord, MessageRecord, member_key
from shared.store.entities import Entities

__all__ = [
    "Sight",
    "addressed",
    "carried_files",
    "find_message",
    "may_use_file",
    "message_not_found",
    "note_files",
    "receives",
    "reply_target",
    "sight",
    "visible",
]


def addressed(bot: BotRecord, message: MessageRecord, replied: MessageRecord | None) -> bool:
    """Whether a group message reaches ``bot`` in privacy mode."""
    if replied is not None and replied.sender == member_key("b", bot.id):
        return True
    text = message.text or str(message.extra.get("caption") or "")
    handle = "@" + bot.username
    for entity in message.entities or ():
        piece = utf16_slice(text, entity["offset"], entity["length"]).lower()
        if entity["type"] == "bot_command" and piece.endswith(handle):
            return True
        if entity["type"] == "mention" and piece == handle:
            return True
    return False


def receives(
    bot: BotRecord, chat: ChatRecord, message: MessageRecord, replied: MessageRecord | None
) -> bool:
    """Whether ``message`` of ``chat`` is delivered to ``bot`` (``replied``: the
    message it replies to, which decides privacy mode for replies)."""
    if message.sent_by_bot:
        return False  # bots never receive their own or other bots' messages
    if chat.type == "private":
        return chat.bot_id == bot.id
    return not bot.privacy_mode or addressed(bot, message, replied)


@dataclass(frozen=True, slots=True)
class Sight:
    """What one bot may see of one chat: messages with ids above ``since`` that it
    sent or receives; ``since`` is None when the bot is not a member (it sees none)."""

    bot: BotRecord
    chat: ChatRecord
    since: int | None

    def may_hold(self, message_id: int) -> bool:
        """Whether a message with this id can be visible at all."""
        return self.since is not None and message_id > self.since

    def needs_replied(self, message: MessageRecord) -> bool:
        """Whether :meth:`sees` depends on the message ``message`` replies to."""
        return (
            message.reply_to is not None
            and self.chat.type == "group"
            and self.bot.privacy_mode
            and not message.sent_by_bot
            and self.may_hold(message.id)
        )

    def sees(self, message: MessageRecord, replied: MessageRecord | None) -> bool:
        if not self.may_hold(message.id):
            return False
        if message.sender == member_key("b", self.bot.id):
            return True
        return receives(self.bot, self.chat, message, replied)


async def sight(db: Entities, bot: BotRecord, chat: ChatRecord) -> Sight:
    """What ``bot`` may see of ``chat`` (from its membership: a private chat's bot
    is a member since its start)."""
    if chat.type == "private":
        return Sight(bot, chat, 0 if chat.bot_id == bot.id else None)
    info = await db.member(chat.id, member_key("b", bot.id))
    return Sight(bot, chat, None if info is None else int(info.get("since") or 0))


async def visible(
    db: Entities,
    seen: Sight,
    messages: Sequence[MessageRecord],
    known: Mapping[int, MessageRecord] | None = None,
) -> list[MessageRecord]:
    """The ones of ``messages`` that ``seen`` sees, in order. The messages they reply
    to are read (in one round trip) only where privacy mode needs them; ``known``
    holds messages of the chat read already."""
    by_id = {m.id: m for m in messages}
    if known:
        by_id.update(known)
    wanted = {m.reply_to for m in messages if seen.needs_replied(m)}
    missing = sorted(i for i in wanted if i is not None and i not in by_id)
    for found in await db.get_messages(seen.chat.id, missing):
        by_id[found.id] = found
    return [
        m for m in messages if seen.sees(m, None if m.reply_to is None else by_id.get(m.reply_to))
    ]


def message_not_found(message_id: int) -> ApiError:
    """The answer for a message that does not exist, or that the bot may not see."""
    return ApiError(400, "MESSAGE_NOT_FOUND", f"message {message_id} was not found in this chat")


def _reply_not_found(message_id: int) -> ApiError:
    return ApiError(
        400, "MESSAGE_NOT_FOUND", f"the message to reply to ({message_id}) was not found"
    )


async def _seen_message(
    db: Entities, bot: BotRecord, chat: ChatRecord, message_id: int
) -> MessageRecord | None:
    seen = await sight(db, bot, chat)
    if not seen.may_hold(message_id):
        return None
    message = await db.get_message(chat.id, message_id)
    if message is None or not await visible(db, seen, [message]):
        return None
    return message


async def find_message(
    db: Entities, bot: BotRecord, chat: ChatRecord, message_id: int
) -> MessageRecord:
    """The message ``message_id`` of ``chat`` if ``bot`` may see it, else 400
    ``MESSAGE_NOT_FOUND`` (the same answer whether it is hidden or does not exist)."""
    message = await _seen_message(db, bot, chat, message_id)
    if message is None:
        raise message_not_found(message_id)
    return message


async def reply_target(
    db: Entities, bot: BotRecord, chat: ChatRecord, message_id: int | None, lenient: bool
) -> MessageRecord | None:
    """The message a bot's new message replies to. One the bot may not see is one
    that does not exist: 400 ``MESSAGE_NOT_FOUND``, or with ``lenient``
    (``allow_sending_without_reply``) no reply at all. Nothing is read without one."""
    if message_id is None:
        return None
    message = await _seen_message(db, bot, chat, message_id)
    if message is None and not lenient:
        raise _reply_not_found(message_id)
    return message


# -- files --------------------------------------------------------------------------


def carried_files(extra: Mapping[str, Any]) -> list[str]:
    """The file ids a message carries (its photo sizes and its document)."""
    found = [str(size["file_id"]) for size in extra.get("photo") or ()]
    if extra.get("document"):
        found.append(str(extra["document"]["file_id"]))
    return found


async def note_files(db: Entities, message: MessageRecord, *, uploaded: bool = False) -> None:
    """Note the files ``message`` carries, and with ``uploaded`` that its sender
    uploaded them. One round trip, none for a message without files."""
    await db.note_file_carriers(
        carried_files(message.extra),
        message.chat_id,
        message.id,
        uploader=message.sender if uploaded else None,
    )


async def may_use_file(db: Entities, bot: BotRecord, file_id: str) -> bool:
    """Whether ``bot`` uploaded the file or may see a message carrying it."""
    uploader, carriers = await db.file_access(file_id)
    if uploader == member_key("b", bot.id):
        return True
    by_chat: dict[int, list[int]] = {}
    for chat_id, message_id in carriers:
        by_chat.setdefault(chat_id, []).append(message_id)
    for carrier_chat, message_ids in sorted(by_chat.items()):
        if await _sees_carrier(db, bot, carrier_chat, message_ids, file_id):
            return True
    return False


async def _sees_carrier(
    db: Entities, bot: BotRecord, chat_id: int, message_ids: list[int], file_id: str
) -> bool:
    chat = await db.get_chat(chat_id)
    if chat is None:
        return False
    seen = await sight(db, bot, chat)
    candidates = [i for i in message_ids if seen.may_hold(i)]
    if not candidates:
        return False
    messages = await db.get_messages(chat.id, candidates)
    return any(file_id in carried_files(m.extra) for m in await visible(db, seen, messages))
