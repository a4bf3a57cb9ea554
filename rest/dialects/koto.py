"""Koto's v1 bot API (``/v1/bot/...``) over botgw's Bot API operations.

A thin adapter: every route calls the same methods the native API calls
(:mod:`rest.methods`: the management API for the bots, the client API for the
users' side, the Bot API for the bots'), and only renames fields and shapes
answers. :mod:`rest.dialects.koto_http` has the encoding (errors, tokens, bodies),
:mod:`rest.dialects.koto_users` the user-token routes, :mod:`rest.dialects.koto_bot`
the bot-token ones, :mod:`rest.dialects.koto_media` the presigned media ones;
:mod:`shared.koto` renders updates for getUpdates and for the webhook
dispatcher. docs/dialects.md says how Koto's ids and tokens map onto botgw's.

Any other path under ``/v1/bot/``, or a route called with another HTTP method,
answers 404 ``{"error": ...}`` (the document has no 405).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

from rest.dialects.koto_bot import bot_commands, get_updates, send, set_my_commands, set_webhook
from rest.dialects.koto_http import API, Handler, endpoint, koto_error
from rest.dialects.koto_media import confirm_media, send_media
from rest.dialects.koto_users import (
    callback,
    get_bot,
    list_bots,
    register,
    revoke,
    start_conversation,
    user_message,
)
from rest.dispatch import STARTED, count_request
from shared.errors import ApiError

__all__ = ["PREFIX", "ROUTES"]

PREFIX = "/v1/bot"

_SEND = {
    "chat_id": "recipientFingerprint",
    "text": "content",
    "reply_markup": "inlineButtons",
    "callback_data": "callbackData",
}
_BUTTON = {"message_id": "messageId", "callback_data": "callbackData"}

# (path, HTTP methods, label, handler, botgw's names -> Koto's in error texts);
# fixed paths before the two that start with {bot_id}
_TABLE: tuple[tuple[str, tuple[str, ...], str, Handler, Mapping[str, str]], ...] = (
    (
        "/register",
        ("POST",),
        "register",
        register,
        {"username": "botId", "name": "displayName"},
    ),
    ("/list", ("GET",), "list", list_bots, {}),
    ("/revoke", ("POST",), "revoke", revoke, {}),
    ("/send", ("POST",), "send", send, _SEND),
    ("/conversation/start", ("POST",), "conversation/start", start_conversation, {}),
    ("/user-message", ("POST",), "user-message", user_message, {"text": "content"}),
    ("/callback", ("POST",), "callback", callback, _BUTTON),
    ("/sendMedia", ("POST",), "sendMedia", send_media, {}),
    ("/confirmMedia", ("POST",), "confirmMedia", confirm_media, {}),
    ("/setMyCommands", ("POST",), "setMyCommands", set_my_commands, {}),
    ("/setWebhook", ("POST",), "setWebhook", set_webhook, {"secret_token": "secret"}),
    ("/getUpdates", ("GET", "POST"), "getUpdates", get_updates, {}),
    ("/{bot_id}/commands", ("GET",), "commands", bot_commands, {}),
    ("/{bot_id}", ("GET",), "bot", get_bot, {}),
)

Endpoint = Callable[[Request], Awaitable[Response]]


def _by_bot_id(inner: Endpoint) -> Endpoint:
    """``inner`` for a path naming a bot id (``..._bot``); any other path segment
    (``/v1/bot/send`` called with GET ...) is no route."""

    async def serve(request: Request) -> Response:
        if not str(request.path_params.get("bot_id", "")).endswith("_bot"):
            return await not_found(request)
        return await inner(request)

    return serve


def _route(
    path: str, verbs: tuple[str, ...], label: str, handler: Handler, renames: Mapping[str, str]
) -> Route:
    serve = endpoint(label, handler, renames)
    if path.startswith("/{bot_id}"):
        serve = _by_bot_id(serve)
    return Route(PREFIX + path, serve, methods=list(verbs))


_ROUTES: list[Route] = [_route(*row) for row in _TABLE]


async def not_found(request: Request) -> Response:
    """Any other request under ``/v1/bot/``: which route it may have meant."""
    verbs = [
        verb
        for route in _ROUTES
        if route.matches(request.scope)[0] is Match.PARTIAL
        for verb in sorted(route.methods or ())
        if verb != "HEAD"
    ]
    path = request.url.path
    if verbs:
        text = f"{request.method} {path} is not a method: call it with {' or '.join(verbs)}"
    else:
        text = f"there is no method at {path}"
    response = koto_error(ApiError(404, "NOT_FOUND", text))
    count_request(API, "other", response.status_code, request.scope.get(STARTED))
    return response


class _NotFound:
    """:func:`not_found` as a plain ASGI app: a route of one takes every HTTP
    method, so nothing under the prefix escapes Koto's errors."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await not_found(Request(scope, receive, send))
        await response(scope, receive, send)


ROUTES: list[BaseRoute] = [
    *_ROUTES,
    Route(PREFIX, _NotFound()),
    Route(PREFIX + "/{rest:path}", _NotFound()),
]
