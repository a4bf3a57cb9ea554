"""The HTTP side of the ``/v1/bot-api`` dialect: the access key, bodies, running
a Bot API operation, and the dialect's error format.

* The access key is the bot's token as issued (``bot_<id>:<secret>``), sent raw
  in ``Authorization:`` as the document shows; ``Bot <token>`` and ``Bearer
  <token>`` work too. A missing, unknown or rotated key, or a revoked bot's, is
  401.
* Errors are ``{"statusCode", "error", "code", "message"}``: the HTTP status, its
  reason phrase, botgw's UPPER_SNAKE code and what to fix, with the dialect's
  field names. Anything that names something the bot cannot see (a chat, a
  message, a user, a file) is 404; a 429 adds ``retryAfter`` (seconds) and the
  ``Retry-After`` header. A store outage is 503, a bug 500, in the same format.
* Each route names its operations from :data:`rest.methods.BOT_METHODS` and runs
  them through :func:`rest.dispatch.call_method`, as the other dialects do: the
  same validation, handlers and ``Idempotency-Key`` handling.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message

from rest.dispatch import (
    MAX_JSON_BODY,
    STARTED,
    JSONResponse,
    call_method,
    count_request,
    idempotency_key,
    register_methods,
)
from rest.methods import BOT_METHODS
from rest.services import BotCall, Services
from shared.codecs import CodecError, json_loads
from shared.errors import ApiError
from shared.store import StoreError

__all__ = [
    "API",
    "Context",
    "Handler",
    "endpoint",
    "error_response",
    "limited",
    "read_json",
    "renamed",
]

API = "bot-api"  # the dialect's name: its api label, its calls' dialect

log = logging.getLogger("botgw.rest")

# codes of errors that name something the bot cannot see: 404 here
_NOT_FOUND = frozenset(
    {
        "CHAT_NOT_FOUND",
        "MESSAGE_NOT_FOUND",
        "USER_NOT_FOUND",
        "FILE_ID_INVALID",
        "FILE_NOT_FOUND",
        "COMMAND_NOT_FOUND",
        "WEBHOOK_NOT_FOUND",
    }
)
_QUOTED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)'")


def renamed(description: str, names: Mapping[str, str]) -> str:
    """``description`` with the native parameter names in it (``'chat_id'``,
    ``'text'``) written as the dialect names them."""
    out = _QUOTED.sub(lambda m: f"'{names.get(m.group(1), m.group(1))}'", description)
    for name, dialect_name in names.items():
        if "_" in name:  # not a word of the text: named unquoted too ("check chat_id")
            out = re.sub(rf"\b{re.escape(name)}\b", dialect_name, out)
    return out


def error_response(error: ApiError, names: Mapping[str, str] | None = None) -> JSONResponse:
    """``error`` in the dialect's format (see the module docstring)."""
    status = error.status
    if error.code in _NOT_FOUND:
        status = 404
    elif error.code == "BOT_INACTIVE":
        status = 401  # the key of a revoked bot no longer works
    elif status == 412:
        status = 400
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "Error"
    body: dict[str, Any] = {
        "statusCode": status,
        "error": phrase,
        "code": error.code,
        "message": renamed(error.description, names or {}),
    }
    headers = dict(error.headers)
    if status == 429:
        retry = (error.parameters or {}).get("retry_after", 1)
        try:
            seconds = max(1, math.ceil(float(retry)))
        except (TypeError, ValueError, OverflowError):
            seconds = 1
        body["retryAfter"] = seconds
        headers["Retry-After"] = str(seconds)
    return JSONResponse(body, status_code=status, headers=headers)


def _key(request: Request) -> str | None:
    header = request.headers.get("authorization", "").strip()
    scheme, _, rest = header.partition(" ")
    if rest.strip() and scheme.lower() in ("bot", "bearer"):
        return rest.strip()
    return header or None


@dataclass(slots=True)
class Context:
    """One request of the dialect: the request, the bot's call and what the
    answer's headers will carry."""

    request: Request
    call: BotCall
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def services(self) -> Services:
        return self.call.services

    async def run(self, name: str, params: dict[str, Any], *, idempotent: bool = False) -> Any:
        """The result of Bot API method ``name`` (integer ids), called with
        ``params``. ``idempotent``: with the request's ``Idempotency-Key`` (only a
        route that makes one write passes it on, or the key would name two)."""
        call = self.call
        if not idempotent and call.idempotency_key is not None:
            call = BotCall(call.services, call.bot, dialect=call.dialect)
        response = await call_method(
            self.request,
            BOT_METHODS,
            name,
            call,
            api=API,
            native=False,
            params=params,
            from_text=False,
        )
        if response.headers.get("idempotent-replayed"):
            self.headers["Idempotent-Replayed"] = "true"
        return json_loads(bytes(response.body))["result"]


Handler = Callable[[Context], Awaitable[Any]]


def endpoint(
    path: str, verbs: Mapping[str, Handler], names: Mapping[str, str] | None = None
) -> Callable[[Request], Awaitable[Response]]:
    """The endpoint of one path: its handler per HTTP method, each answering an
    object to send as JSON (or a ready Response); other methods are 405. Every
    answer is counted in ``botgw_rest_requests_total`` as ``api="bot-api"``,
    ``method="<VERB> <path>"``."""
    allowed = ", ".join(sorted(verbs))
    register_methods(API, [f"{verb} {path}" for verb in verbs])

    async def serve(request: Request) -> Response:
        verb = "GET" if request.method == "HEAD" else request.method
        response = await _answer(request, verbs.get(verb), allowed, names)
        count_request(API, f"{verb} {path}", response.status_code, request.scope.get(STARTED))
        return response

    return serve


async def _answer(
    request: Request, handler: Handler | None, allowed: str, names: Mapping[str, str] | None
) -> Response:
    try:
        if handler is None:
            raise ApiError(
                405,
                "METHOD_NOT_ALLOWED",
                f"{request.method} is not allowed here: use {allowed}",
                headers={"Allow": allowed},
            )
        services: Services = request.app.state.services
        bot = await services.accounts.authenticate_bot(_key(request))
        call = BotCall(services, bot, dialect=API, idempotency_key=idempotency_key(request))
        context = Context(request, call)
        result = await handler(context)
    except ApiError as error:
        return error_response(error, names)
    except StoreError as exc:
        log.warning("backend error: %s", exc)
        return error_response(
            ApiError(503, "BACKEND_UNAVAILABLE", "the store is unavailable; retry shortly")
        )
    except Exception:
        log.exception("unexpected error on %s", request.url.path)
        return error_response(ApiError(500, "INTERNAL_ERROR", "the server failed on this request"))
    if isinstance(result, Response):
        return result
    return JSONResponse(result, headers=context.headers)


def limited(request: Request, limit: int) -> Request:
    """``request`` with a body that is 413 once it is longer than ``limit`` bytes
    (a declared length at once, a streamed one as it arrives)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        if int(declared) > limit:
            raise _too_large(limit)
        return request
    received = 0
    inner = request.receive

    async def receive() -> Message:
        nonlocal received
        message = await inner()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit)
        return message

    return Request(request.scope, receive=receive)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "BODY_TOO_LARGE", f"a request body may be at most {limit} bytes")


async def read_json(request: Request) -> Any:
    """The JSON body of a request (None when it has none)."""
    body = await limited(request, MAX_JSON_BODY).body()
    if not body.strip():
        return None
    try:
        return json_loads(body)
    except CodecError as exc:
        raise ApiError(400, "BAD_REQUEST", f"the request body is not valid JSON ({exc})") from None
