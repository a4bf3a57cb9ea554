"""Plain records the store hands out: users, bots, chats, messages, files, callbacks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BotRecord",
    "CallbackRecord",
    "ChatRecord",
    "FileRecord",
    "MessageRecord",
    "UserRecord",
    "member_key",
    "parse_member",
]


def member_key(kind: str, member_id: int) -> str:
    """Chat member key: ``u<id>`` for a user, ``b<id>`` for a bot."""
    assert kind in ("u", "b")
    return f"{kind}{member_id}"


def parse_member(member: str) -> tuple[str, int]:
    """``u<id>``/``b<id>`` back into (kind, id)."""
    return member[0], int(member[1:])


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    username: str
    name: str
    token_hash: str
    created: int


@dataclass(frozen=True, slots=True)
class BotRecord:
    id: int
    username: str
    name: str
    description: str
    owner_id: int
    token_hash: str
    privacy_mode: bool
    active: bool
    created: int
    commands: list[dict[str, str]] = field(default_factory=list)
    short_description: str = ""
    # commands of other scopes and languages: "<scope key>|<language>" -> commands
    command_sets: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    # names and descriptions per language: "name|<language>" -> text
    texts: dict[str, str] = field(default_factory=dict)
    avatar: str = ""  # the URL of the bot's picture, if it has one
    # hex of HMAC-SHA256(key="WebAppData", msg=<the token in Telegram's form>): the
    # key web app init data is signed with (rest/webapps.py); "" for a bot whose
    # token was issued before web apps, until it is rotated
    webapp_key: str = ""


@dataclass(frozen=True, slots=True)
class ChatRecord:
    id: int  # internal id; a group's id is the same for everyone
    type: str  # "private" or "group"
    title: str
    created: int
    user_id: int = 0  # private chats: the user
    bot_id: int = 0  # private chats: the bot
    pinned: list[int] = field(default_factory=list)


@dataclass(slots=True)
class MessageRecord:
    """A stored message; ``sender`` is ``u<id>`` or ``b<id>``.

    ``extra`` holds the other Telegram fields of the message (photo, document,
    caption, poll ...). Keys starting with ``_`` are internal and rendered per
    viewer (``_forward``: where a forwarded message came from).
    """

    id: int
    chat_id: int
    sender: str
    date: int
    text: str | None = None
    entities: list[dict[str, Any]] | None = None
    reply_to: int | None = None
    reply_markup: dict[str, Any] | None = None
    edit_date: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_storage(self) -> dict[str, Any]:
        out: dict[str, Any] = {"i": self.id, "c": self.chat_id, "s": self.sender, "d": self.date}
        if self.text is not None:
            out["t"] = self.text
        if self.entities:
            out["e"] = self.entities
        if self.reply_to is not None:
            out["r"] = self.reply_to
        if self.reply_markup is not None:
            out["m"] = self.reply_markup
        if self.edit_date is not None:
            out["ed"] = self.edit_date
        if self.extra:
            out["x"] = self.extra
        return out

    @classmethod
    def from_storage(cls, data: dict[str, Any]) -> MessageRecord:
        return cls(
            id=int(data["i"]),
            chat_id=int(data["c"]),
            sender=str(data["s"]),
            date=int(data["d"]),
            text=data.get("t"),
            entities=data.get("e"),
            reply_to=data.get("r"),
            reply_markup=data.get("m"),
            edit_date=data.get("ed"),
            extra=dict(data.get("x") or {}),
        )

    @property
    def sent_by_bot(self) -> bool:
        return self.sender.startswith("b")


@dataclass(frozen=True, slots=True)
class FileRecord:
    """An uploaded file: its content (by SHA-256 in the file store) and what it is."""

    file_id: str
    file_unique_id: str
    sha256: str
    size: int
    kind: str  # "photo" or "document"
    mime_type: str
    file_name: str = ""
    extension: str = ""  # with the dot, e.g. ".jpg"; may be empty
    width: int = 0
    height: int = 0
    created: int = 0

    @property
    def file_path(self) -> str:
        """The download path: ``photos/<file_id>.jpg``, ``documents/<file_id>.pdf``."""
        return f"{self.kind}s/{self.file_id}{self.extension}"


@dataclass(frozen=True, slots=True)
class CallbackRecord:
    """A pressed inline button, waiting for (or holding) the bot's answer."""

    id: str
    bot_id: int
    user_id: int
    chat_id: int  # internal chat id
    message_id: int
    data: str
    created: int
    answer: dict[str, Any] | None = None  # text, show_alert, url, cache_time once answered
