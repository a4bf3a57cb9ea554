"""The Telegram-compatible dialect: ``/bot<token>/<method>`` and file downloads.

Bots written for Telegram's Bot API (python-telegram-bot, aiogram, plain HTTP)
talk to botgw by changing only the server URL. This module is a thin encoding
layer over the native methods in :data:`rest.methods.BOT_METHODS` -- one
implementation, two encodings:

* the token travels in the path (``/bot<id>:<secret>/<method>``; the native
  ``bot_`` prefix may be left off; docs/design.md, Identifiers);
* parameters come from the query string, an urlencoded or multipart form (nested
  objects as JSON strings, files referenced as ``attach://<field>``) or a JSON
  body, on GET or POST alike, and method names are case-insensitive;
* results keep integer ids (the native dialect would stringify them);
* errors are ``{ok: false, error_code, description, parameters?}`` with the HTTP
  status equal to ``error_code`` and Telegram's description texts ("Bad Request:
  chat not found", "Too Many Requests: retry after 3"), so the client libraries
  raise their usual exceptions. The native ``code`` field is kept: the libraries
  ignore unknown fields and it tells a human exactly what went wrong.

A webhook set through this dialect is delivered in this dialect too: the layer
asks for numeric ids (``id_format="number"``); the dispatcher sends Telegram's
``X-Telegram-Bot-Api-Secret-Token`` header with the ``secret_token``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from rest.dispatch import (
    STARTED,
    JSONResponse,
    body_limit,
    call_method,
    count_request,
    idempotency_key,
    read_params,
)
from rest.downloads import bot_file_response
from rest.methods import BOT_METHODS
from rest.openapi import success_response
from rest.schema import Method
from rest.services import BotCall, Services
from shared.codecs import CodecError, json_loads
from shared.errors import ApiError
from shared.models import BotRecord
from shared.updates import UPDATE_TYPES

__all__ = [
    "FILE_PARAMS",
    "OPENAPI_PATHS",
    "ROUTES",
    "adapt_params",
    "authenticate",
    "bot_method",
    "download_file",
    "error_response",
    "find_method",
    "read_telegram_params",
    "retry_after_seconds",
    "telegram_error",
]

# Parameters that carry an InputFile (besides those of type ``file``): only these
# may say ``attach://<field>`` (anywhere else that text is just text).
FILE_PARAMS = frozenset(
    {
        "photo",
        "document",
        "audio",
        "video",
        "animation",
        "voice",
        "video_note",
        "sticker",
        "thumbnail",
        "certificate",
    }
)
_ATTACH = "attach://"

# Parameters naming a chat; Telegram also accepts ``@channelusername`` there.
_CHAT_PARAMS = ("chat_id", "from_chat_id")

# Telegram's reason phrases, which start every description of its errors.
_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}

# Telegram's wording for errors whose text bots are known to match on
# ("message is not modified" is the classic one).
_TELEGRAM_TEXTS = {
    "CHAT_NOT_FOUND": "chat not found",
    "MESSAGE_NOT_MODIFIED": (
        "message is not modified: specified new message content and reply markup are "
        "exactly the same as a current content and reply markup of the message"
    ),
    "QUERY_ID_INVALID": "query is too old and response timeout expired or query ID is invalid",
    "CONFLICT": (
        "terminated by other getUpdates request; make sure that only one bot instance is running"
    ),
    "WEBHOOK_ACTIVE": (
        "can't use getUpdates method while webhook is active; use deleteWebhook to delete "
        "the webhook first"
    ),
    "FILE_ID_INVALID": "wrong file_id or the file is temporarily unavailable",
    "MESSAGE_CANT_BE_EDITED": "message can't be edited",
    "MESSAGE_CANT_BE_DELETED": "message can't be deleted",
}

# Statuses Telegram never answers, mapped to ones its libraries understand. A
# revoked bot's own token no longer works, which Telegram says with 401 (see
# ``authenticate``); a 412 about anything else is a request that cannot work (400).
_STATUS_MAP = {412: 400}

_METHOD_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def find_method(name: str, methods: Mapping[str, Method] | None = None) -> Method | None:
    """The Bot API method called ``name``, ignoring case as Telegram does."""
    table = BOT_METHODS if methods is None else methods
    if not _METHOD_NAME_RE.fullmatch(name):
        return None
    exact = table.get(name)
    if exact is not None:
        return exact
    lowered = name.lower()
    for method in table.values():
        if method.name.lower() == lowered:
            return method
    return None


def _message_not_found(method: str) -> str:
    lowered = method.lower()
    if lowered.startswith("edit") or lowered == "stoppoll":
        return "message to edit not found"
    if lowered == "deletemessage":
        return "message to delete not found"
    if lowered == "forwardmessage":
        return "message to forward not found"
    if lowered == "copymessage":
        return "message to copy not found"
    if lowered.startswith("send"):
        return "message to be replied not found"
    return "message not found"


def retry_after_seconds(value: Any) -> int:
    """Telegram's ``retry_after``: whole seconds, at least 1 (0 would mean "now" to
    python-telegram-bot, which then raises no RetryAfter at all)."""
    try:
        seconds = math.ceil(float(value))
    except (TypeError, ValueError, OverflowError):
        return 1
    return max(1, seconds)


def telegram_error(error: ApiError, method: str = "") -> tuple[int, dict[str, Any], dict[str, str]]:
    """(HTTP status, body, headers) of ``error`` in the Telegram dialect."""
    status = _STATUS_MAP.get(error.status, error.status)
    phrase = _PHRASES.get(status)
    parameters = dict(error.parameters) if error.parameters else None
    headers = dict(error.headers)
    if status == 429:
        seconds = retry_after_seconds((parameters or {}).get("retry_after", 1))
        parameters = {**(parameters or {}), "retry_after": seconds}
        headers["Retry-After"] = str(seconds)
        description = f"Too Many Requests: retry after {seconds}"
    elif status == 401:
        description = "Unauthorized"
        if error.code != "UNAUTHORIZED":
            description += f": {error.description}"
    else:
        text = _TELEGRAM_TEXTS.get(error.code)
        if error.code == "MESSAGE_NOT_FOUND":
            text = _message_not_found(method)
        elif error.code == "CANT_PARSE_ENTITIES":
            text = f"can't parse entities: {error.description}"
        text = text or error.description
        prefixed = phrase is None or text.startswith(phrase)
        description = text if prefixed else f"{phrase}: {text}"
    body: dict[str, Any] = {
        "ok": False,
        "error_code": status,
        "code": error.code,
        "description": description,
    }
    if parameters:
        body["parameters"] = parameters
    return status, body, headers


async def authenticate(services: Services, token: str | None) -> BotRecord:
    """The bot of a token; a revoked one is 401 Unauthorized, as on Telegram (its
    libraries stop on 401 instead of retrying forever)."""
    try:
        return await services.accounts.authenticate_bot(token)
    except ApiError as error:
        if error.status != 412:
            raise
        raise ApiError(401, error.code, error.description) from None


def error_response(error: ApiError, method: str = "") -> JSONResponse:
    status, body, headers = telegram_error(error, method)
    return JSONResponse(body, status_code=status, headers=headers)


def _allowed_updates(name: str, value: Any) -> Any:
    """Keep the update types botgw produces; drop Telegram's others (inline queries,
    channel posts ...) instead of refusing a bot that asks for ``Update.ALL_TYPES``."""
    if isinstance(value, str):
        return value  # a JSON string: validated after it is decoded
    if not isinstance(value, list):
        return value  # the parameter's own validation names the mistake
    for item in value:
        if not isinstance(item, str):
            raise ApiError(
                400, "INVALID_PARAMETER", f"parameter '{name}' must be an array of strings"
            )
    return [item for item in value if item in UPDATE_TYPES]


def adapt_params(method: Method, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Telegram's spelling of the parameters of ``method`` turned into the native one."""
    params = dict(raw)
    for key, value in raw.items():
        if not (isinstance(value, str) and value.startswith(_ATTACH)):
            continue
        param = method.param(key)
        if key in FILE_PARAMS or (param is not None and param.type == "file"):
            field = value[len(_ATTACH) :]
            upload = raw.get(field)
            if not isinstance(upload, UploadFile):
                raise ApiError(
                    400,
                    "INVALID_PARAMETER",
                    f"parameter '{key}' refers to '{value}', but no file part called "
                    f"'{field}' was uploaded",
                )
            params[key] = upload
    for key in _CHAT_PARAMS:
        value = params.get(key)
        if isinstance(value, str) and value.strip().startswith("@"):
            raise ApiError(
                400,
                "CHAT_NOT_FOUND",
                f"chat not found: botgw has no channels, so '{key}' must be a numeric chat id",
            )
    for param in method.params:
        value = params.get(param.name)
        # Telegram takes numbers where it expects strings ("text": 42)
        if param.type == "str" and type(value) in (int, float):
            params[param.name] = str(value)
    if method.param("allowed_updates") is not None and params.get("allowed_updates") is not None:
        value = params["allowed_updates"]
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = json_loads(value)
            except CodecError as exc:
                raise ApiError(
                    400,
                    "INVALID_PARAMETER",
                    f"parameter 'allowed_updates' is not valid JSON: {exc}",
                ) from None
        params["allowed_updates"] = _allowed_updates("allowed_updates", value)
    if method.name == "setWebhook":
        _adapt_set_webhook(method, params)
    return params


def _adapt_set_webhook(method: Method, params: dict[str, Any]) -> None:
    # deliveries of a webhook set through this dialect carry integer ids
    if method.param("id_format") is not None:
        params["id_format"] = "number"


async def read_telegram_params(request: Request, method: Method, call: BotCall) -> dict[str, Any]:
    """Query string, form or JSON body, merged (the body wins)."""
    params, from_text = await read_params(request, method, max_body=body_limit(method, call))
    if not from_text and request.query_params:
        # a JSON body: the query string may still carry parameters
        params = {**dict(request.query_params), **params}
    return params


async def bot_method(request: Request) -> Response:
    """``GET|POST /bot<token>/<method>``."""
    response = await _bot_method(request)
    method = request.path_params.get("method", "")
    count_request("telegram", method, response.status_code, request.scope.get(STARTED))
    return response


async def _bot_method(request: Request) -> Response:
    name = request.path_params.get("method", "")
    try:
        services: Services = request.app.state.services
        bot = await authenticate(services, request.path_params.get("token"))
        method = find_method(name)
        if method is None:
            raise ApiError(
                404, "METHOD_NOT_FOUND", f"method '{name[:64]}' is not supported by botgw"
            )
        name = method.name
        if request.method == "HEAD" and not method.getter:
            # Starlette answers HEAD wherever GET is allowed; it must not send anything
            raise ApiError(405, "METHOD_NOT_ALLOWED", f"'{name}' changes state: use GET or POST")
        call = BotCall(services, bot, dialect="telegram", idempotency_key=idempotency_key(request))
        raw = await read_telegram_params(request, method, call)
        try:
            return await call_method(
                request,
                {name: method},
                name,
                call,
                native=False,
                params=adapt_params(method, raw),
                from_text=True,
            )
        finally:
            # uploads a refused call never reached (call_method closes the others)
            for value in raw.values():
                if isinstance(value, UploadFile):
                    await value.close()
    except ApiError as error:
        return error_response(error, name)


async def download_file(request: Request) -> Response:
    """``GET /file/bot<token>/<file_path>``: the bytes of a file the bot may read."""
    try:
        services: Services = request.app.state.services
        bot = await authenticate(services, request.path_params.get("token"))
        file_path: str = request.path_params.get("file_path", "")
        # as on the native route: only a file the bot may use (404 for any other)
        return await bot_file_response(services, bot, file_path)
    except ApiError as error:
        return error_response(error, "download")


_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["ok", "error_code", "description"],
    "properties": {
        "ok": {"type": "boolean", "enum": [False]},
        "error_code": {"type": "integer"},
        "code": {"type": "string"},
        "description": {"type": "string"},
        "parameters": {"type": "object"},
    },
}


def _path_param(name: str, doc: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": doc,
    }


def _errors() -> dict[str, Any]:
    return {
        str(status): {
            "description": phrase,
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        }
        for status, phrase in _PHRASES.items()
        if status < 500
    }


def _method_operation(verb: str) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"telegram.method.{verb}",
        "summary": "Any Bot API method in the Telegram dialect (integer ids).",
        "parameters": [
            _path_param("token", "the bot token without its 'bot_' prefix: <id>:<secret>"),
            _path_param("method", "a Bot API method name, e.g. getMe (case-insensitive)"),
        ],
        "responses": {"200": success_response({}), **_errors()},
    }
    if verb == "post":
        op["requestBody"] = {
            "required": False,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                "multipart/form-data": {"schema": {"type": "object"}},
            },
        }
    return op


OPENAPI_PATHS: dict[str, Any] = {
    "/bot{token}/{method}": {
        "get": _method_operation("get"),
        "post": _method_operation("post"),
    },
    "/file/bot{token}/{file_path}": {
        "get": {
            "operationId": "telegram.file.get",
            "summary": "Download a file by the file_path that getFile returned.",
            "parameters": [
                _path_param("token", "the bot token without its 'bot_' prefix"),
                _path_param("file_path", "file_path from getFile"),
            ],
            "responses": {
                "200": {
                    "description": "The file's bytes.",
                    "content": {"application/octet-stream": {"schema": {"type": "string"}}},
                },
                **_errors(),
            },
        }
    },
}

ROUTES: list[BaseRoute] = [
    Route("/bot{token}/{method}", bot_method, methods=["GET", "POST"]),
    Route("/file/bot{token}/{file_path:path}", download_file, methods=["GET"]),
]
