"""The generic ``/v1/bot-api/...`` API over botgw's Bot API operations.

Every route of the document, camelCase, with the bot's token as the access key
(``Authorization: <token>``) and its own error format (:mod:`.bot_api_http`):

=========================================  ==========================================
``GET``/``PUT /v1/bot-api/bot``             getMe, setMyName, setMyDescription, avatar
``GET``/``POST /v1/bot-api/bot/commands``   getMyCommands, setMyCommands
``DELETE /v1/bot-api/bot/command/:id``      setMyCommands without that command
``POST``/``GET``/``DELETE .../bot/webhook``  setWebhook, getWebhookInfo, deleteWebhook
``GET /v1/bot-api/chats?user_id=``          the chats the bot shares with a user
``POST /v1/bot-api/chat/message``           sendMessage, or sendDocument of an upload
``GET /v1/bot-api/chat/:id/messages``       getChatHistory, paged by number
``GET /v1/bot-api/chat/message/:id``        getChatHistory of one message
``POST /v1/bot-api/files``                  uploads to attach later
``GET /v1/bot-api/files/<path>``            the download of an uploaded file
=========================================  ==========================================

docs/bot-api-v1.md says how each maps onto botgw and what the document left open.
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

import rest.dialects.bot_api_bot as bot
import rest.dialects.bot_api_chats as chats
from rest.dialects.bot_api_http import Handler, endpoint, error_response
from shared.errors import ApiError

__all__ = ["ROUTES"]

PREFIX = "/v1/bot-api"
_VERBS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


async def _no_route(request: Request) -> Response:
    return error_response(
        ApiError(404, "ROUTE_NOT_FOUND", f"there is no route {request.method} {request.url.path}")
    )


def _route(
    path: str, verbs: Mapping[str, Handler], names: Mapping[str, str] | None = None
) -> Route:
    return Route(PREFIX + path, endpoint(path, verbs, names), methods=_VERBS)


ROUTES: list[BaseRoute] = [
    _route("/bot", {"GET": bot.get_bot, "PUT": bot.edit_bot}),
    _route("/bot/commands", {"GET": bot.get_commands, "POST": bot.add_commands}),
    _route("/bot/command/{id}", {"DELETE": bot.delete_command}),
    _route(
        "/bot/webhook",
        {"POST": bot.set_webhook, "GET": bot.get_webhook, "DELETE": bot.delete_webhook},
        bot.WEBHOOK_NAMES,
    ),
    _route("/chats", {"GET": chats.list_chats}),
    _route("/chat/message", {"POST": chats.send_message}, chats.SEND_NAMES),
    _route("/chat/message/{id}", {"GET": chats.get_message}),
    _route("/chat/{id}/messages", {"GET": chats.list_messages}, chats.HISTORY_NAMES),
    _route("/files", {"POST": chats.upload_files}, chats.UPLOAD_NAMES),
    _route("/files/{file_path:path}", {"GET": chats.download}),
    Route(PREFIX + "/{rest:path}", _no_route, methods=_VERBS),
]
