"""Every Redis key and channel name, in one place.

All keys of one bot share the hash tag ``{b<id>}`` so one Lua script touches one
slot and the layout works on Redis Cluster unchanged; likewise ``{c<id>}`` for a
chat, ``{u<id>}`` for a user, ``{f<file id>}`` for a file (its record, uploader,
carriers and chats) and ``{q<id>}`` for a callback query.

No class of keys sits in one slot. A username is its own key (``{n<name>}``);
the lists of every bot and of the bots with a webhook are split into
:data:`INDEX_BUCKETS` sets by bot id (:func:`index_bucket`), read together in one
pipelined round trip. The one fixed slot is ``{idx}``: the server secret (read
once per process) and the pub/sub channels nobody keys by id.
"""

from __future__ import annotations

__all__ = [
    "INDEX_BUCKETS",
    "auth_challenge",
    "auth_key_rate",
    "auth_key_user",
    "auth_peer_rate",
    "backlog_leader",
    "bot_appended",
    "bot_chats",
    "bot_conversation",
    "bot_cursors",
    "bot_doomed_messages",
    "bot_epoch",
    "bot_generation",
    "bot_idempotency",
    "bot_index",
    "bot_info",
    "bot_last_id",
    "bot_log",
    "bot_menu_buttons",
    "bot_outbox_held",
    "bot_private_chats",
    "bot_rate",
    "bot_reader",
    "bot_reader_lease",
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
    "index_bucket",
    "message_reactions",
    "outbox_index",
    "poll_state",
    "poll_votes",
    "server_secret",
    "user_appended",
    "user_chats",
    "user_epoch",
    "user_events_channel",
    "user_info",
    "user_last_event",
    "user_log",
    "user_log_idempotency",
    "user_outbox_held",
    "user_rate",
    "username_owner",
    "webapp_launch",
    "webapp_query",
    "webhook_dispatchers",
    "webhook_dispatchers_channel",
    "webhook_index",
]

PREFIX = "botgw:"

# how many sets each bot-wide index is split into (one slot each)
INDEX_BUCKETS = 64


def index_bucket(bot_id: int) -> int:
    """The bucket of a bot in :func:`bot_index` and :func:`webhook_index`."""
    return bot_id % INDEX_BUCKETS


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


def bot_conversation(bot_id: int, chat_id: int) -> str:
    """String (JSON), with a TTL: what a bot's own conversation in one chat waits
    for (the system bot's, shared/store/conversations.py)."""
    return f"{_bot(bot_id)}:conversation:{chat_id}"


def bot_doomed_messages(bot_id: int) -> str:
    """Sorted set ``<chat>:<message>`` by when (ms): messages a bot deletes then
    (the system bot's token messages)."""
    return f"{_bot(bot_id)}:doomed"


def bot_webhook(bot_id: int) -> str:
    return f"{_bot(bot_id)}:webhook"


def bot_rate(bot_id: int, scope: str) -> str:
    return f"{_bot(bot_id)}:rate:{scope}"


def bot_reader(bot_id: int, consumer: str) -> str:
    """Which live reader (a WebSocket connection) holds a consumer: its mark,
    ``<lease>|<connection>`` under a gateway worker's :func:`bot_reader_lease`."""
    return f"{_bot(bot_id)}:reader:{consumer}"


def bot_reader_lease(bot_id: int, lease: str) -> str:
    """A gateway worker's lease on its live readers of a bot: a mark of
    :func:`bot_reader` naming ``lease`` is live while this key exists. The Lua
    scripts find it from a mark's key: up to the bot's hash tag, ``:lease:<lease>``
    (lua/_reader.lua)."""
    return f"{_bot(bot_id)}:lease:{lease}"


def bot_generation(bot_id: int, consumer: str) -> str:
    return f"{_bot(bot_id)}:gen:{consumer}"


def poll_state(bot_id: int, consumer: str) -> str:
    """Hash: gen, offset, start, until (ms), allowed (csv) of a consumer's polls."""
    return f"{_bot(bot_id)}:poller:{consumer}"


def bot_webhook_lease(bot_id: int) -> str:
    """String: the id of the dispatcher delivering this bot's webhook (with a TTL)."""
    return f"{_bot(bot_id)}:webhook:lease"


def webhook_index(bucket: int) -> str:
    """Set: the ids of the bots of one bucket (:func:`index_bucket`) with an active
    webhook; dispatchers read all :data:`INDEX_BUCKETS` of them."""
    return f"{PREFIX}{{wh{bucket}}}:bots"


def webhook_dispatchers() -> str:
    """Sorted set: the live webhook dispatchers, each scored by when its membership
    expires (Redis time, ms) unless it heartbeats again; one small key, written by
    each dispatcher every third of the lease time (webhooks/dispatcher.py)."""
    return f"{PREFIX}{{whd}}:dispatchers"


def webhook_dispatchers_channel() -> str:
    """Pub/sub: ``bots`` when the list of bots with a webhook changed (set, deleted,
    given up), ``members`` when a dispatcher joined or left; every dispatcher listens."""
    return f"{PREFIX}{{whd}}:changed"


def bot_index(bucket: int) -> str:
    """Set: the ids of every bot of one bucket (:func:`index_bucket`), written when
    the bot is created; ``botgw bots list`` reads all :data:`INDEX_BUCKETS`."""
    return f"{PREFIX}{{bi{bucket}}}:bots"


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
    """Hash: what ``chat_write.lua`` keeps to trim the chat's history by retention
    (the hour its marks hold last, the retention's horizon and its first kept id)."""
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


def message_reactions(chat_id: int, message_id: int) -> str:
    """Hash: member -> JSON list of ReactionType objects, for one message (beside
    :func:`chat_reactions`, written in the same transaction), so that a message's
    reactions are read without scanning the chat's."""
    return f"{PREFIX}{{c{chat_id}}}:reactions:{message_id}"


def poll_votes(chat_id: int, message_id: int) -> str:
    """Hash: member -> JSON list of option ids; field ``~closed`` once the poll is closed."""
    return f"{PREFIX}{{c{chat_id}}}:poll:{message_id}"


def _file(file_id: str) -> str:
    # file ids are url-safe base64 (no braces), so the tag is the whole id
    return f"{PREFIX}{{f{file_id}}}"


def files(file_id: str) -> str:
    """Hash: a file's record (sha256, size, kind, names, dimensions)."""
    return f"{_file(file_id)}:info"


def file_chats(file_id: str) -> str:
    """Set of the chats a file was sent to (who may download it)."""
    return f"{_file(file_id)}:chats"


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


# A user's event log (shared/store/userlog.py): the same layout as a bot's update
# log, in the user's slot, appended by ``append_update.lua`` as well.


def user_log(user_id: int) -> str:
    """Stream: the user's events (``/client/events``)."""
    return f"{PREFIX}{{u{user_id}}}:events"


def user_epoch(user_id: int) -> str:
    return f"{PREFIX}{{u{user_id}}}:events:epoch"


def user_last_event(user_id: int) -> str:
    return f"{PREFIX}{{u{user_id}}}:events:last"


def user_appended(user_id: int) -> str:
    return f"{PREFIX}{{u{user_id}}}:events:n"


def user_log_idempotency(user_id: int, key: str) -> str:
    return f"{PREFIX}{{u{user_id}}}:events:idem:{key}"


def user_outbox_held(user_id: int) -> str:
    """Hash: chat id -> the newest outbox seq the user's log holds (as for bots)."""
    return f"{PREFIX}{{u{user_id}}}:events:held"


def user_events_channel(user_id: int) -> str:
    """Channel: ``"<id> <prev>"`` per appended event, or an ephemeral event as
    ``!<type> <json>`` (a chat action)."""
    return f"{PREFIX}{{u{user_id}}}:events:wake"


def username_owner(username: str) -> str:
    """String ``<owner> <ms>``: who holds a username (``u<id>`` or ``b<id>``: users
    and bots share one namespace) since when (Redis time). Usernames are
    ``[a-z0-9_]``, so the tag is the whole name."""
    return f"{PREFIX}{{n{username}}}:owner"


def bots_by_owner(user_id: int) -> str:
    return f"{PREFIX}{{u{user_id}}}:bots"


def call_result(caller: str, key: str) -> str:
    """String: the result of a call made with an Idempotency-Key, in the slot of its
    caller (``caller`` is ``b<id>`` or ``u<id>``)."""
    return f"{PREFIX}{{{caller}}}:call:{key}"


def bot_menu_buttons(bot_id: int) -> str:
    """Hash: the bot's MenuButton (JSON) by chat internal id, ``default`` for all."""
    return f"{_bot(bot_id)}:menu"


def webapp_query(query_id: str) -> str:
    """Hash: a web app launch that answerWebAppQuery may answer once, with a TTL."""
    return f"{PREFIX}{{wq{query_id}}}:webapp"


def webapp_launch(init_hash: str) -> str:
    """Hash: the launch behind a signed init data (by its hash), with a TTL."""
    return f"{PREFIX}{{wl{init_hash}}}:webapp"


def callback_answers(query_id: str) -> str:
    """Hash: a callback query (who pressed what) and its one answer, with a TTL."""
    return f"{PREFIX}{{q{query_id}}}:callback"


def backlog_leader() -> str:
    """String: the process that measures every consumer's backlog for ``/metrics``
    (with a TTL; shared/store/backlog.py)."""
    return f"{PREFIX}{{lag}}:leader"


def server_secret() -> str:
    """String: the secret behind scoped user ids, when not configured (read once
    per process, so its one fixed slot is no hot spot)."""
    return f"{PREFIX}{{idx}}:secret"


def _auth_key(public_key: str) -> str:
    """The tag of a sign-in key: its base64url form (``[A-Za-z0-9_-]``, no braces)."""
    return f"{PREFIX}{{k{public_key}}}"


def auth_challenge(public_key: str, challenge: str) -> str:
    """String (the audience it was issued for), with a TTL: one outstanding sign-in
    challenge of a key, consumed by GETDEL."""
    return f"{_auth_key(public_key)}:challenge:{challenge}"


def auth_key_user(public_key: str) -> str:
    """String: the id of the user a sign-in key belongs to."""
    return f"{_auth_key(public_key)}:user"


def auth_key_rate(public_key: str) -> str:
    """Hash (tokens, ts): the bucket of sign-in challenges of one key."""
    return f"{_auth_key(public_key)}:rate"


def auth_peer_rate(peer: str) -> str:
    """Hash (tokens, ts): the bucket of sign-in calls from one client address."""
    return f"{PREFIX}{{ap{peer}}}:rate"
