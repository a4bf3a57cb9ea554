"""``GET /client/events``: a user's live events as Server-Sent Events.

The stream reads the user's durable event log (:mod:`shared.store.userlog`) after
a cursor: the ``Last-Event-ID`` header, or ``?after=<id>``; without one it starts
at the log's head (new events only). Each stored event is written as

    id: <event id>
    event: <type>
    data: <one line of JSON, ids as decimal strings as in the native API>

A cursor older than the log retains gets an event ``gap`` (data
``{"reason": "out_of_retention"}``, no id) and the stream goes on from the oldest
event retained. Ephemeral events (``chat_action``) have no id and are never
stored: a stream hears them only while it is open. A comment line
(``: keepalive``) is sent every :data:`KEEPALIVE_SECONDS`, and the log is read
again then, so a wake-up that pub/sub lost delays an event by that much at most;
the user's token is checked again then too, and a stream opened with a token
that has since been replaced ends.

A process watches each user's channel once (:class:`UserFeeds`), however many
streams of that user it serves. The user token comes in the ``Authorization``
header only (``Bearer``): never in the URL, so it is not in access logs, and no
cookie is read, so another site cannot open a stream as the user. A draining
process (SIGTERM, :mod:`rest.serve`) ends every stream at once; the client
reconnects to another process with its ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from rest.dispatch import auth_token
from rest.services import Services
from shared import keys
from shared.codecs import json_dumps, json_loads, unpack
from shared.dialect import native_ids
from shared.errors import ApiError
from shared.store import StoredUpdate, StoreError, Wakeups
from shared.store.userlog import EPHEMERAL_MARK, UserLog

__all__ = ["KEEPALIVE_SECONDS", "UserFeeds", "events_route"]

log = logging.getLogger("botgw.events")

KEEPALIVE_SECONDS = 15.0
READ_BATCH = 100
EPHEMERAL_KEPT = 64  # ephemeral events a slow stream may have waiting (older ones drop)
SUBSCRIBE_WAIT_SECONDS = 5.0
LINGER_SECONDS = 60.0  # a user's channel stays watched this long after their last stream
_MAX_CURSOR = 2**63 - 1
_CURSOR_RE = re.compile(r"[0-9]{1,19}")


class Feed:
    """One open stream's view of its user's channel."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self.woken = asyncio.Event()
        self.ready = asyncio.Event()
        self.ephemeral: deque[tuple[str, str]] = deque(maxlen=EPHEMERAL_KEPT)


class UserFeeds:
    """The users' channels this process watches, each once, for its open streams;
    ``closing`` is set when the process drains."""

    def __init__(self, wakeups: Wakeups) -> None:
        self._wakeups = wakeups
        # watched users: their open feeds (none: lingering, unwatched later)
        self._feeds: dict[int, set[Feed]] = {}
        self._confirmed: set[int] = set()
        self.closing = asyncio.Event()

    def open(self, user_id: int) -> Feed:
        feed = Feed(user_id)
        feeds = self._feeds.get(user_id)
        if feeds is None:
            feeds = self._feeds[user_id] = set()
            self._wakeups.watch(
                keys.user_events_channel(user_id),
                lambda data: self._on_message(user_id, data),
                lambda up: self._on_state(user_id, up),
            )
        feeds.add(feed)
        if user_id in self._confirmed:
            feed.ready.set()
        return feed

    def close(self, feed: Feed) -> None:
        feeds = self._feeds.get(feed.user_id)
        if feeds is None:
            return
        feeds.discard(feed)
        if not feeds:
            # a page reloaded comes straight back: its channel stays subscribed a while
            loop = asyncio.get_running_loop()
            loop.call_later(LINGER_SECONDS, self._unwatch_idle, feed.user_id)

    def _unwatch_idle(self, user_id: int) -> None:
        if user_id in self._feeds and not self._feeds[user_id]:
            del self._feeds[user_id]
            self._confirmed.discard(user_id)
            self._wakeups.unwatch(keys.user_events_channel(user_id))

    def _on_message(self, user_id: int, data: bytes) -> None:
        text = data.decode(errors="replace")
        ephemeral = None
        if text.startswith(EPHEMERAL_MARK):
            kind, _, body = text[1:].partition(" ")
            ephemeral = (kind, body)
        for feed in self._feeds.get(user_id, ()):
            if ephemeral is not None:
                feed.ephemeral.append(ephemeral)
            feed.woken.set()

    def _on_state(self, user_id: int, up: bool) -> None:
        if not up:
            self._confirmed.discard(user_id)
            return
        # subscribed (again): anything published before was missed, so look again
        self._confirmed.add(user_id)
        for feed in self._feeds.get(user_id, ()):
            feed.ready.set()
            feed.woken.set()


def event_data(kind: str, data: Any) -> bytes:
    """One event's data line: JSON with ids as decimal strings."""
    shown = native_ids(data)
    if isinstance(shown, dict) and isinstance(shown.get("message_ids"), list):
        shown["message_ids"] = [str(i) for i in shown["message_ids"]]
    return json_dumps(shown)


def frame(entry: StoredUpdate) -> bytes:
    data = event_data(entry.kind, unpack(entry.payload))
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (entry.update_id, entry.kind.encode(), data)


def _ephemeral_frame(kind: str, body: str) -> bytes:
    try:
        data = event_data(kind, json_loads(body))
    except ValueError:
        return b""
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), data)


GAP_FRAME = b'event: gap\ndata: {"reason":"out_of_retention"}\n\n'


def _cursor(request: Request) -> int | None:
    """The stream's cursor: ``Last-Event-ID``, else ``?after=``, else None."""
    raw = request.headers.get("last-event-id")
    name = "header 'Last-Event-ID'"
    if raw is None or not raw.strip():
        raw = request.query_params.get("after")
        name = "parameter 'after'"
    if raw is None or not raw.strip():
        return None
    raw = raw.strip()
    if not _CURSOR_RE.fullmatch(raw) or int(raw) > _MAX_CURSOR:
        raise ApiError(
            400, "INVALID_CURSOR", f"{name} must be the id of an event this stream sent (digits)"
        )
    return int(raw)


async def events_route(request: Request) -> Response:
    services: Services = request.app.state.services
    cursor = _cursor(request)
    user = await services.accounts.authenticate_user(auth_token(request, ("bearer",)))
    if services.draining:
        raise ApiError(503, "DRAINING", "this server is draining: reconnect (to another one)")
    feeds: UserFeeds = request.app.state.user_feeds
    feed = feeds.open(user.id)
    headers = {
        "Cache-Control": "no-store",
        "X-Accel-Buffering": "no",  # proxies must not hold events back
        "Content-Security-Policy": "default-src 'none'",
    }
    return StreamingResponse(
        _stream(services, feeds, feed, cursor, user.token_hash),
        media_type="text/event-stream",
        headers=headers,
    )


async def _wait(feed: Feed, closing: asyncio.Event, timeout: float) -> None:
    """Until the feed is woken, the process drains or ``timeout`` passes."""
    if feed.woken.is_set() or closing.is_set():
        return
    woken = asyncio.ensure_future(feed.woken.wait())
    drained = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait((woken, drained), timeout=timeout, return_when="FIRST_COMPLETED")
    finally:
        woken.cancel()
        drained.cancel()


async def _stream(
    services: Services, feeds: UserFeeds, feed: Feed, cursor: int | None, token_hash: str
) -> AsyncIterator[bytes]:
    userlog = services.store.userlog
    closing = feeds.closing

    async def token_kept() -> bool:
        user = await services.store.entities.get_user(feed.user_id)
        return user is not None and user.token_hash == token_hash

    try:
        async for chunk in _events(userlog, feed, closing, cursor, token_kept):
            yield chunk
    except StoreError as exc:
        # the client reconnects with its Last-Event-ID and misses nothing
        log.warning("user %d: event stream ended by the store (%s)", feed.user_id, exc)
    finally:
        feeds.close(feed)


async def _events(
    userlog: UserLog,
    feed: Feed,
    closing: asyncio.Event,
    cursor: int | None,
    token_kept: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    # subscribed first, then the log is read: no event appended between is missed
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(feed.ready.wait(), SUBSCRIBE_WAIT_SECONDS)
    state = await userlog.state(feed.user_id)
    gap = False
    if cursor is None:
        position = state.head
    elif cursor > state.head:
        position = state.head  # not an id of this log (one a failover lost): from its head
    else:
        position = cursor
        entries = await userlog.read_after(feed.user_id, cursor, READ_BATCH)
        # the oldest retained follows a newer entry, or none is retained after the cursor
        gap = entries[0].prev_id > cursor if entries else state.head > cursor
        if gap and not entries:
            position = state.head
    # the first frame: the stream is positioned, every event from now on will come
    yield b"retry: 1000\n\n"
    if gap:
        yield GAP_FRAME
    while not closing.is_set():
        feed.woken.clear()
        entries = await userlog.read_after(feed.user_id, position, READ_BATCH)
        for entry in entries:
            yield frame(entry)
            position = entry.update_id
        while feed.ephemeral:
            chunk = _ephemeral_frame(*feed.ephemeral.popleft())
            if chunk:
                yield chunk
        if len(entries) == READ_BATCH:
            continue
        await _wait(feed, closing, KEEPALIVE_SECONDS)
        if not feed.woken.is_set() and not closing.is_set():
            if not await token_kept():
                return  # the token was changed: the stream was opened with the old one
            yield b": keepalive\n\n"
