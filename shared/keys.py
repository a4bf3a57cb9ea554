"""Every Redis key and channel name, in one place.

All keys of one bot share the hash tag ``{b<id>}`` so one Lua script touches one
slot and the layout works on Redis Cluster unchanged; likewise ``{c<id>}`` for a
chat and ``{u<id>}`` for a user. Global indexes (usernames) live under ``{idx}``.
Who may use a file (its uploader and the messages carrying it) is kept under
``{f<file id>}``, so each file's keys share a slot and the files spread over all.
"""

from __future__ import annotations

__all__ = [
    "bot_appended",
    "bot_chats",
    "bot_cursors",
    "bot_epoch",
    "bot_generation",
    "bot_idempotency",
    "bot_info",
    "bot_last_id",
    "bot_log",
    "bot_outbox_held",
    "bot_private_chats",
    "bot_rate",
    "bot_reader",
    "bot_seen_users",
    "bot_wakeup_channel",
    "bot_webhook",
    "bot_webhook_lease",
    "bots_by_owner",
    "call_result",
    "callback_answers",
    "chat_history",
    "chat_history_hours",
    "chat_idempotency",
    "chat_info",
    "chat_members",
    "chat_message_ids",
    "chat_messages",
    "chat_outbox",
    "chat_outbox_clock",
    "chat_rate",
    "chat_reactions",
    "chat_sequence",
    "entities_channel",
    "file_carriers",
    "file_chats",
    "file_uploader",
    "files",
    "idle_channel",
    "outbox_index",
    "poll_state",
    "poll_votes",
    "server_secret",
    "user_chats",
    "user_info",
    "user_rate",
    "usernames",
    "webhook_index",
]

PREFIX = "botgw:"


def _bot(bot_id: int) -> str:
    return f"{PREFIX}{{b{bot_id}}}"


def bot_info(bot_id: int) -> str:
    return f"{_bot(bot_id)}:info"


def bot_log(bot_id: int) -> str:
    return f"{_bot(bot_id)}:log"


def bot_epoch(bot_id: int) -> str:
    return f"{_bot(bot_id)}:epoch"


def bot_last_id(bot_id: int) -> str:
    return f"{_bot(bot_id)}:last"


def bot_appended(bot_id: int) -> str:
    """String: how many updates the log's current epoch has taken (the newest ``n``)."""
    return f"{_bot(bot_id)}:appended"


def bot_idempotency(bot_id: int, key: str) -> str:
    return f"{_bot(bot_id)}:idem:{key}"


def bot_outbox_held(bot_id: int) -> str:
    """Hash: internal chat id -> the newest outbox seq of that chat in the bot's log."""
    return f"{_bot(bot_id)}:held"


def bot_cursors(bot_id: int) -> str:
    return f"{_bot(bot_id)}:cursors"


def bot_wakeup_channel(bot_id: int) -> str:
    return f"{_bot(bot_id)}:wake"


def idle_channel() -> str:
    """Pub/sub channel nobody publishes on: a wake-up connection subscribes to it so
    that it stays in subscribed mode while it listens to no bot."""
    return f"{PREFIX}{{idx}}:wake"


def entities_channel() -> str:
    """Pub/sub: ``"<kind> <id>"`` when a bot (b), user (u), chat (c) or a chat's
    members (m) changed, so processes drop their cached copy."""
    return f"{PREFIX}{{idx}}:changed"


def bot_private_chats(bot_id: int) -> str:
    """Hash: scoped user id -> internal id of the private chat with that user."""
    return f"{_bot(bot_id)}:private"


def bot_seen_users(bot_id: int) -> str:
    """Hash: scoped user id -> real user id, for every user the bot has seen."""
    return f"{_bot(bot_id)}:seen"


def bot_chats(bot_id: int) -> str:
    """Set of internal chat ids of the groups the bot is a member of."""
    return f"{_bot(bot_id)}:chats"


def bot_webhook(bot_id: int) -> str:
    return f"{_bot(bot_id)}:webhook"


def bot_rate(bot_id: int, scope: str) -> str:
    return f"{_bot(bot_id)}:rate:{scope}"


def bot_reader(bot_id: int, consumer: str) -> str:
    """Which live reader (a WebSocket connection id) holds a consumer."""
    return f"{_bot(bot_id)}:reader:{consumer}"


def bot_generation(bot_id: int, consumer: str) -> str:
    return f"{_bot(bot_id)}:gen:{consumer}"


def poll_state(bot_id: int, consumer: str) -> str:
    """Hash: gen, offset, start, until (ms), allowed (csv) of a consumer's polls."""
    return f"{_bot(bot_id)}:poller:{consumer}"


def bot_webhook_lease(bot_id: int) -> str:
    """String: the id of the dispatcher delivering this bot's webhook (with a TTL)."""
    return f"{_bot(bot_id)}:webhook:lease"


def webhook_index() -> str:
    """Set of the ids of bots with an active webhook (what dispatchers scan)."""
    return f"{PREFIX}{{wh}}:bots"


def chat_info(chat_id: int) -> str:
    return f"{PREFIX}{{c{chat_id}}}:info"


def chat_members(chat_id: int) -> str:
    return f"{PREFIX}{{c{chat_id}}}:members"


def chat_messages(chat_id: int) -> str:
    return f"{PREFIX}{{c{chat_id}}}:messages"


def chat_message_ids(chat_id: int) -> str:
    """Sorted set: the ids of the chat's stored messages (score and member the id),
    for reading and trimming its history in id order."""
    return f"{PREFIX}{{c{chat_id}}}:ids"


def chat_history(chat_id: int) -> str:
    """Hash: the bounds of the chat's history (``floor``, the lowest message id it
    may still hold, and what ``chat_write.lua`` needs to trim it)."""
    return f"{PREFIX}{{c{chat_id}}}:history"


def chat_history_hours(chat_id: int) -> str:
    """Sorted set: per hour (score) of the chat's history, its first message id."""
    return f"{PREFIX}{{c{chat_id}}}:hours"


def chat_outbox(chat_id: int) -> str:
    """Hash: outbox seq -> ``<message id>|<pending updates>``, until they are appended."""
    return f"{PREFIX}{{c{chat_id}}}:outbox"


def chat_outbox_clock(chat_id: int) -> str:
    return f"{PREFIX}{{c{chat_id}}}:outbox:seq"


def chat_idempotency(chat_id: int, key: str) -> str:
    """String: the message id a write with this idempotency key stored."""
    return f"{PREFIX}{{c{chat_id}}}:idem:{key}"


def outbox_index(bucket: int) -> str:
    """Sorted set: chat ids that may hold outbox entries, scored by when one was
    written (ms); one of ``OUTBOX_BUCKETS`` so no slot holds every chat."""
    return f"{PREFIX}{{ox{bucket}}}:chats"


def chat_reactions(chat_id: int) -> str:
    """Hash: ``<message id>:<member>`` -> JSON list of ReactionType objects."""
    return f"{PREFIX}{{c{chat_id}}}:reactions"


def poll_votes(chat_id: int, message_id: int) -> str:
    """Hash: member -> JSON list of option ids; field ``~closed`` once the poll is closed."""
    return f"{PREFIX}{{c{chat_id}}}:poll:{message_id}"


def file_chats(file_id: str) -> str:
    """Set of the chats a file was sent to (who may download it)."""
    return files(f"{file_id}:chats")


def _file(file_id: str) -> str:
    # file ids are url-safe base64 (no braces), so the tag is the whole id
    return f"{PREFIX}{{f{file_id}}}"


def file_carriers(file_id: str) -> str:
    """Set of ``<chat id>:<message id>``: the messages carrying a file."""
    return f"{_file(file_id)}:carriers"


def file_uploader(file_id: str) -> str:
    """String ``b<id>``: the bot that uploaded a file (kept from its first upload)."""
    return f"{_file(file_id)}:uploader"


def chat_sequence(chat_id: int) -> str:
    return f"{PREFIX}{{c{chat_id}}}:seq"


def user_rate(user_id: int) -> str:
    """Hash (tokens, ts): the user's client API write bucket."""
    return f"{PREFIX}{{u{user_id}}}:rate"


def chat_rate(chat_id: int) -> str:
    """Hash (tokens, ts): the bucket of users' messages into one chat."""
    return f"{PREFIX}{{c{chat_id}}}:rate"


def user_info(user_id: int) -> str:
    return f"{PREFIX}{{u{user_id}}}:info"


def user_chats(user_id: int) -> str:
    return f"{PREFIX}{{u{user_id}}}:chats"


def usernames() -> str:
    """Hash: username -> ``u<id>`` or ``b<id>`` (users and bots share one namespace)."""
    return f"{PREFIX}{{idx}}:usernames"


def bots_by_owner(user_id: int) -> str:
    return f"{PREFIX}{{u{user_id}}}:bots"


def files(file_key: str) -> str:
    return f"{PREFIX}{{f}}:file:{file_key}"


def call_result(caller: str, key: str) -> str:
    """String: the result of a call made with an Idempotency-Key, in the slot of its
    caller (``caller`` is ``b<id>`` or ``u<id>``)."""
    return f"{PREFIX}{{{caller}}}:call:{key}"


def callback_answers(query_id: str) -> str:
    return f"{PREFIX}{{q}}:callback:{query_id}"


def server_secret() -> str:
    return f"{PREFIX}{{idx}}:secret"
