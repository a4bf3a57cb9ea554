"""Changes of a chat's state, each written with the updates it causes in one step.

A reaction, a pin, a vote, the end of a poll, a member joining or leaving: the
state is read (a :class:`~shared.store.outbox.Snapshot` of the hash it lives in),
the events of the chat's users and the updates of the bots that hear of the
change are rendered from it, and one script in the chat's slot writes the change
and queues them in the chat's outbox (``Outbox.change``): a crash keeps both or
neither. Should the hash have changed between the read and the write, the script
writes nothing and the change is computed again from a new read. The entries are
then drained as a message's are (shared/store/outbox.py; docs/design.md, "Users
hear their chats live").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from rest import visibility
from rest.messenger import NO_CHAT, Messenger, now
from rest.view import reaction_summary
from shared.codecs import pack
from shared.errors import ApiError
from shared.ids import random_id
from shared.models import (
    BotRecord,
    ChatRecord,
    MessageRecord,
    UserRecord,
    member_key,
    parse_member,
)
from shared.store.outbox import MEMBERSHIP, Pending, Written

__all__ = [
    "add_member",
    "close_poll",
    "create_group",
    "leave_chat",
    "remove_member",
    "set_member",
    "set_pins",
    "set_reaction",
    "vote",
]

# reads and writes of one change before giving up: each lost race means another
# change of the same hash was written meanwhile
ATTEMPTS = 50


def _busy() -> ApiError:
    return ApiError(503, "CHAT_BUSY", "the chat changed too often meanwhile: try again")


async def _drain(
    messenger: Messenger, chat: ChatRecord, written: Written, entries: list[list[Pending]]
) -> None:
    """Append what a change queued (when it is the outbox's one entry, it is the
    last of ``entries``: the drain appends that without reading it again)."""
    await messenger.events.drain(chat, written, entries[-1])


# -- reactions ----------------------------------------------------------------


async def set_reaction(
    messenger: Messenger,
    chat: ChatRecord,
    message: MessageRecord,
    member: str,
    reaction: list[dict[str, Any]],
) -> bool:
    """Set ``member``'s reaction on ``message`` and queue the ``message_reaction``
    event of the chat's users (and, for a user's reaction, the updates of the bots
    that hear of it); False when the reaction was that already."""
    users = await messenger.events.members(chat)
    for _ in range(ATTEMPTS):
        snapshot, reactions = await messenger.db.read_reactions(chat.id, message.id)
        old = reactions.get(member, [])
        if old == reaction:
            return False
        after = {m: r for m, r in reactions.items() if m != member}
        if reaction:
            after[member] = reaction
        entry = [
            Pending(
                uid,
                "message_reaction",
                chat.id,
                pack(
                    {
                        "chat_id": chat.id,
                        "message_id": message.id,
                        "reactions": reaction_summary(after, member_key("u", uid)),
                    }
                ),
                user=True,
            )
            for uid in users
        ]
        if member[0] == "u":
            entry += await _reaction_updates(messenger, chat, message, member, old, reaction)
        if not entry:  # nobody hears of it
            await messenger.db.set_reaction(chat.id, message.id, member, reaction)
            return True
        written = await messenger.db.change_reaction(
            snapshot, chat.id, message.id, member, reaction, [entry]
        )
        if written is not None:
            await _drain(messenger, chat, written, [entry])
            return True
    raise _busy()


async def _reaction_updates(
    messenger: Messenger,
    chat: ChatRecord,
    message: MessageRecord,
    member: str,
    old: list[dict[str, Any]],
    new: list[dict[str, Any]],
) -> list[Pending]:
    """``message_reaction`` for each bot of the chat that hears of a user's reaction."""
    if chat.type == "private":
        candidates = [chat.bot_id]
    else:
        candidates = [int(m[1:]) for m in await messenger.db.members(chat.id) if m[0] == "b"]
    bots = await messenger.db.get_bots(candidates)
    found = []
    for bot in bots.values():
        own = message.sender == member_key("b", bot.id)
        if not bot.active or (chat.type == "group" and bot.privacy_mode and not own):
            continue  # in privacy mode a bot hears about reactions to its own messages only
        if chat.type == "group" and not own:
            seen = await visibility.sight(messenger.db, bot, chat)
            if not await visibility.visible(messenger.db, seen, [message]):
                continue  # nor about messages it may not see (another bot's, older ones)
        view = messenger.view(bot.id)
        body = {
            "chat": await view.chat(chat),
            "message_id": message.id,
            "user": await view.user(member),
            "date": now(),
            "old_reaction": old,
            "new_reaction": new,
        }
        found.append(
            Pending(
                bot.id,
                "message_reaction",
                messenger.bot_chat_id(bot.id, chat),
                pack({"message_reaction": body}),
            )
        )
    return found


# -- pins ---------------------------------------------------------------------


async def set_pins(
    messenger: Messenger, chat: ChatRecord, change: Callable[[list[int]], list[int]]
) -> None:
    """Replace the chat's pins by ``change`` of them and queue the ``pinned_message``
    event (the latest pin now, or None) of its users."""
    users = await messenger.events.members(chat)
    for _ in range(ATTEMPTS):
        snapshot, fresh = await messenger.db.read_chat(chat.id)
        pinned = change([] if fresh is None else fresh.pinned)
        if fresh is None or not users:
            await messenger.db.update_chat(chat.id, {"pinned": pinned})
            return
        latest = await messenger.view(None).pinned(dataclasses.replace(fresh, pinned=pinned))
        data = {"chat_id": chat.id, "message_id": None if latest is None else latest.id}
        entry = messenger.events.pending(users, "pinned_message", chat, data)
        written = await messenger.db.change_pins(snapshot, chat.id, pinned, [entry])
        if written is not None:
            await _drain(messenger, chat, written, [entry])
            return
    raise _busy()


# -- polls --------------------------------------------------------------------


async def vote(
    messenger: Messenger,
    chat: ChatRecord,
    message: MessageRecord,
    member: str,
    chosen: list[int],
    *,
    expired: bool = False,
) -> None:
    """Record ``member``'s vote (``[]``: retract it) unless the poll is closed (400
    ``POLL_CLOSED``; ``expired``: its close date passed) or a quiz the member
    answered (400 ``POLL_ANSWER_FINAL``), and queue the ``poll`` event of the chat's
    users and the poll's bot's ``poll_answer`` (unless anonymous) and ``poll``."""
    spec: dict[str, Any] = message.extra["poll"]
    users = await messenger.events.members(chat)
    bot_id = int(message.sender[1:]) if message.sent_by_bot else None
    bot = await messenger.bot_in_chat(bot_id, chat) if bot_id is not None else None
    for _ in range(ATTEMPTS):
        snapshot, votes, closed = await messenger.db.read_poll(chat.id, message.id)
        old = votes.get(member, [])
        if spec["type"] == "quiz" and old:
            raise ApiError(400, "POLL_ANSWER_FINAL", "an answer to a quiz cannot be changed")
        if closed or expired:
            raise ApiError(400, "POLL_CLOSED", "the poll is closed")
        if old == chosen:
            return
        after = {m: v for m, v in votes.items() if m != member}
        if chosen:
            after[member] = chosen
        # one update per log and entry: the bot's answer goes first, on its own
        entries: list[list[Pending]] = []
        shown = await messenger.view(None).poll(chat, message, state=(after, False))
        last = _poll_entry(messenger, chat, message, users, shown)
        if bot is not None:
            view = messenger.view(bot.id)
            if not spec["is_anonymous"]:
                answer = {
                    "poll_id": spec["id"],
                    "user": await view.user(member),
                    "option_ids": chosen,
                    "option_persistent_ids": [str(i) for i in chosen],
                }
                # neither update names a chat: both go to shard 0 (docs/protocol.md §9)
                body = pack({"poll_answer": answer})
                entries.append([Pending(bot.id, "poll_answer", NO_CHAT, body)])
            poll = await view.poll(chat, message, state=(after, False))
            last.append(Pending(bot.id, "poll", NO_CHAT, pack({"poll": poll})))
        entries.append(last)
        written = await messenger.db.change_poll(
            snapshot, chat.id, entries, member=member, option_ids=chosen
        )
        if written is not None:
            await _drain(messenger, chat, written, entries)
            return
    raise _busy()


def _poll_entry(
    messenger: Messenger,
    chat: ChatRecord,
    message: MessageRecord,
    users: list[int],
    poll: dict[str, Any],
) -> list[Pending]:
    data = {"chat_id": chat.id, "message_id": message.id, "poll": poll}
    return messenger.events.pending(users, "poll", chat, data)


async def close_poll(messenger: Messenger, chat: ChatRecord, message: MessageRecord) -> bool:
    """Close the poll of ``message`` (a bot's) and queue the ``poll`` event of the
    chat's users and the ``poll`` update of its bot; False if it was closed already."""
    users = await messenger.events.members(chat)
    bot_id = int(message.sender[1:])
    for _ in range(ATTEMPTS):
        snapshot, votes, closed = await messenger.db.read_poll(chat.id, message.id)
        if closed:
            return False
        shown = await messenger.view(None).poll(chat, message, state=(votes, True))
        entry = _poll_entry(messenger, chat, message, users, shown)
        poll = await messenger.view(bot_id).poll(chat, message, state=(votes, True))
        # a poll update names no chat: it goes to shard 0 (docs/protocol.md §9)
        entry.append(Pending(bot_id, "poll", NO_CHAT, pack({"poll": poll})))
        written = await messenger.db.change_poll(snapshot, chat.id, [entry])
        if written is not None:
            await _drain(messenger, chat, written, [entry])
            return True
    raise _busy()


# -- members ------------------------------------------------------------------


async def create_group(messenger: Messenger, user: UserRecord, title: str) -> ChatRecord:
    """A group with ``user`` as its creator: the creator's membership and its
    ``chat`` event are one step (a crash before it leaves a group nobody sees)."""
    chat = ChatRecord(id=random_id(), type="group", title=title, created=now())
    await messenger.db.create_chat(chat)
    me = member_key("u", user.id)
    info = {"status": "creator", "date": chat.created, "since": 0, "by": me}
    await set_member(messenger, chat, me, info, actor=me, announce=False)
    return chat


async def add_member(
    messenger: Messenger, actor: UserRecord, chat: ChatRecord, username: str
) -> str:
    """Add a user or a bot to a group; a bot gets ``my_chat_member``. Idempotent."""
    if chat.type != "group":
        raise ApiError(400, "NOT_A_GROUP", "members can only be added to groups")
    member = await _username_member(messenger, username)
    if member[0] == "b":
        bot = await messenger.db.get_bot(int(member[1:]))
        if bot is None or not bot.active:
            raise ApiError(412, "BOT_INACTIVE", f"the bot '{username}' was revoked")
    info = {
        "status": "member",
        "date": now(),
        "since": await messenger.db.last_message_id(chat.id),
        "by": member_key("u", actor.id),
    }
    await set_member(messenger, chat, member, info, actor=member_key("u", actor.id))
    return member


async def remove_member(
    messenger: Messenger, actor: UserRecord, chat: ChatRecord, username: str
) -> str:
    """Remove a member: the creator removes anyone, others themselves and whom they added."""
    if chat.type != "group":
        raise ApiError(400, "NOT_A_GROUP", "members can only be removed from groups")
    member = await _username_member(messenger, username)
    info = await messenger.db.member(chat.id, member)
    if info is None:
        raise ApiError(400, "USER_NOT_PARTICIPANT", f"'{username}' is not in this group")
    me = member_key("u", actor.id)
    mine = await messenger.db.member(chat.id, me)
    allowed = member == me or info.get("by") == me or (mine or {}).get("status") == "creator"
    if not allowed:
        raise ApiError(
            403,
            "NOT_ENOUGH_RIGHTS",
            "only the group's creator, or whoever added a member, may remove it",
        )
    await set_member(messenger, chat, member, None, actor=me)
    return member


async def leave_chat(messenger: Messenger, bot: BotRecord, chat: ChatRecord) -> None:
    if chat.type != "group":
        raise ApiError(400, "NOT_A_GROUP", "a bot can only leave groups")
    me = member_key("b", bot.id)
    await set_member(messenger, chat, me, None, actor=me)


async def _username_member(messenger: Messenger, username: str) -> str:
    owner = await messenger.db.resolve_username(username.lower().lstrip("@"))
    if owner is None:
        raise ApiError(404, "USER_NOT_FOUND", f"no user or bot is called '{username}'")
    return owner


async def set_member(
    messenger: Messenger,
    chat: ChatRecord,
    member: str,
    info: dict[str, Any] | None,
    *,
    actor: str,
    announce: bool = True,
) -> bool:
    """Add ``member`` to a group with ``info`` (None: remove it); False if it was
    (not) a member already. Queued with it: a ``chat`` event to a user who joins,
    a bot's ``my_chat_member`` update, and (``announce``) the ``chat_member``
    event of the users who were or are in the group; and a ``MEMBERSHIP`` item
    with which the drain brings the member's own set of chats (in the member's
    slot, not the chat's) in line: a crash before leaves that to the replay."""
    kind, member_id = parse_member(member)
    status = "member" if info is not None else "left"
    view = messenger.view(None)
    for _ in range(ATTEMPTS):
        snapshot, members = await messenger.db.read_members(chat.id)
        if (member in members) == (info is not None):
            return False
        names = set(members) | {member} if info is not None else set(members) - {member}
        users = {parse_member(m)[1] for m in set(members) | names if m[0] == "u"}
        entries: list[list[Pending]] = []
        first = [Pending(0, MEMBERSHIP, chat.id, member.encode())]
        if kind == "b":
            first.append(await _my_chat_member(messenger, member_id, chat, actor, status))
        if kind == "u" and info is not None:
            chat_data = {"chat": await view.chat(chat)}
            first += messenger.events.pending([member_id], "chat", chat, chat_data)
        entries.append(first)
        if announce:
            data = {"chat_id": chat.id, "member": await view.user(member), "status": status}
            entries.append(messenger.events.pending(sorted(users), "chat_member", chat, data))
        written = await messenger.db.change_member(snapshot, chat.id, member, info, entries)
        if written is not None:
            await _drain(messenger, chat, written, entries)
            return True
    raise _busy()


async def _my_chat_member(
    messenger: Messenger, bot_id: int, chat: ChatRecord, actor: str, new: str
) -> Pending:
    old = "left" if new == "member" else "member"
    view = messenger.view(bot_id)
    me = await view.user(member_key("b", bot_id))
    body = {
        "my_chat_member": {
            "chat": await view.chat(chat),
            "from": await view.user(actor),
            "date": now(),
            "old_chat_member": {"status": old, "user": me},
            "new_chat_member": {"status": new, "user": me},
        }
    }
    return Pending(bot_id, "my_chat_member", chat.id, pack(body))
