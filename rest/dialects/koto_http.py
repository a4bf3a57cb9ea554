"""Koto v1's HTTP encoding: its errors, its bodies, its two tokens, and the call of
a botgw method on behalf of one of its routes.

* An answer is the route's own JSON object; an error is ``{"error": "<text>"}``
  with Koto's statuses (400, 401, 403, 404, 409, 412, 429 with ``Retry-After``,
  500). botgw's other statuses are mapped onto them (:func:`koto_status`), and
  the native texts name Koto's fields instead of botgw's (``renames``).
* Bodies are JSON objects; a getter's parameters come from its query string.
* A user token (``Authorization: Bearer usr_<id>:<secret>``) stands for Koto's
  user JWT; a bot token is botgw's own ``bot_<id>:<secret>``, sent as the body's
  ``botToken`` or as ``Authorization: Bearer``.
* :func:`invoke` runs a method of :mod:`rest.methods` through
  :func:`rest.dispatch.call_method`, the path every dialect takes (validation,
  ``Idempotency-Key``, uploads), and hands back its result.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from rest.dispatch import (
    STARTED,
    JSONResponse,
    auth_token,
    call_method,
    count_request,
    idempotency_key,
    read_params,
    register_methods,
)
from rest.schema import Method
from rest.services import BotCall, Services, UserCall
from shared.codecs import json_loads
from shared.errors import ApiError
from shared.models import BotRecord
from shared.store import StoreError

__all__ = [
    "API",
    "Handler",
    "KotoBody",
    "bot_call",
    "bot_named",
    "endpoint",
    "invoke",
    "koto_error",
    "koto_status",
    "user_call",
]

log = logging.getLogger("botgw.rest")

API = "koto"  # the api label of its calls in botgw_rest_requests_total
KotoBody = dict[str, Any]
Handler = Callable[[Request, Services], Awaitable[tuple[KotoBody, dict[str, str]]]]

# botgw statuses Koto v1 does not answer, as the closest one it does
_STATUS_MAP = {405: 404, 413: 400, 422: 400}
# a button of a keyboard made of inlineButtons (one a row), as botgw's checks name it
_BUTTON_PATH = re.compile(r"reply_markup\.inline_keyboard\[(\d+)\]\[0\]\.?([a-z_]*)")
_BUTTON_FIELDS = {"callback_data": "callbackData", "text": "text"}


def _button(match: re.Match[str]) -> str:
    field = match.group(2)
    named = f".{_BUTTON_FIELDS.get(field, field)}" if field else ""
    return f"inlineButtons[{match.group(1)}]{named}"


def koto_status(error: ApiError) -> int:
    """The status of ``error`` in Koto v1: an id naming nothing is 404 (botgw's
    native API says 400 there, as Telegram does); 5xx is 500."""
    if error.status >= 500:
        return 500
    if error.status == 400 and error.code.endswith("_NOT_FOUND"):
        return 404
    return _STATUS_MAP.get(error.status, error.status)


def koto_error(error: ApiError, renames: Mapping[str, str] = {}) -> JSONResponse:
    """``{"error": ...}`` with Koto's status; ``renames`` maps botgw's parameter
    names (as the description quotes them) to the route's field names."""
    text = error.description
    for native, koto in renames.items():
        text = text.replace(f"'{native}'", f"'{koto}'")
    text = _BUTTON_PATH.sub(_button, text)
    status = koto_status(error)
    headers = dict(error.headers)
    if status == 429:
        try:
            seconds = max(1, math.ceil(float((error.parameters or {}).get("retry_after", 1))))
        except (TypeError, ValueError, OverflowError):
            seconds = 1
        headers["Retry-After"] = str(seconds)
    return JSONResponse({"error": text}, status_code=status, headers=headers)


def endpoint(
    name: str,
    handler: Handler,
    renames: Mapping[str, str] = {},
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint around ``handler``: Koto's errors, counted as ``name``."""

    async def serve(request: Request) -> Response:
        response: Response
        try:
            body, headers = await handler(request, request.app.state.services)
            response = JSONResponse(body, headers=headers)
        except ApiError as error:
            response = koto_error(error, renames)
        except StoreError as exc:
            log.warning("backend error: %s", exc)
            response = koto_error(ApiError(503, "BACKEND_UNAVAILABLE", "retry shortly"))
        except Exception:
            log.exception("unexpected error on %s", request.url.path)
            response = koto_error(ApiError(500, "INTERNAL_ERROR", "internal server error"))
        count_request(API, name, response.status_code, request.scope.get(STARTED))
        return response

    register_methods(API, [name])
    return serve


async def read_body(request: Request, method: Method) -> tuple[KotoBody, bool]:
    """The route's fields (a JSON object, or a getter's query string) and whether
    they came as text, within the limits of the botgw ``method`` it calls."""
    return await read_params(request, method)


def _bearer(request: Request) -> str | None:
    return auth_token(request, ("bearer",))


async def user_call(request: Request, services: Services) -> UserCall:
    """The call of the user whose token the request carries (401 without one)."""
    user = await services.accounts.authenticate_user(_bearer(request))
    return UserCall(services, user, idempotency_key=idempotency_key(request))


async def bot_call(request: Request, services: Services, body: KotoBody) -> BotCall:
    """The call of the bot whose token is the body's ``botToken`` (taken out of
    it) or the request's ``Authorization: Bearer``; 401 without a valid one, 412
    for a revoked bot."""
    given = body.pop("botToken", None)
    token = given if isinstance(given, str) and given else _bearer(request)
    try:
        bot = await services.accounts.authenticate_bot(token)
    except ApiError as error:
        if error.status != 401:
            raise
        raise ApiError(
            401,
            "UNAUTHORIZED",
            "a valid bot token is required: send it as 'botToken' in the body or in "
            "'Authorization: Bearer <botToken>'",
        ) from None
    return BotCall(services, bot, dialect=API, idempotency_key=idempotency_key(request))


async def bot_named(services: Services, bot_id: Any, field: str = "botId") -> BotRecord:
    """The bot a Koto ``botId`` (the bot's username) names; 400 for a malformed
    one, 404 for one that names no bot."""
    if not isinstance(bot_id, str) or not bot_id:
        raise ApiError(400, "MISSING_PARAMETER", f"'{field}' is required: the bot's id (…_bot)")
    bot = await services.accounts.bot_by_username(bot_id[:64]) if bot_id.isascii() else None
    if bot is None:
        raise ApiError(404, "BOT_NOT_FOUND", f"there is no bot '{bot_id[:64]}'")
    return bot


async def invoke(
    request: Request,
    methods: Mapping[str, Method],
    name: str,
    call: BotCall | UserCall,
    params: dict[str, Any],
    *,
    api: str,
    from_text: bool = False,
) -> tuple[Any, dict[str, str]]:
    """Run botgw's method ``name`` as every dialect does (``call_method``): its
    result (integer ids) and the headers to pass on (``Idempotent-Replayed``)."""
    response = await call_method(
        request, methods, name, call, api=api, native=False, params=params, from_text=from_text
    )
    envelope = json_loads(response.body)
    headers = {}
    if response.headers.get("idempotent-replayed"):
        headers["Idempotent-Replayed"] = "true"
    return envelope["result"], headers


def require_str(body: KotoBody, field: str, *, default: str | None = None) -> str:
    """The string field ``field`` of a body (400 if it is missing or not a string;
    ``default``, if given, for a missing or null one)."""
    value = body.get(field)
    if value is None:
        value = default
    if value is None:
        raise ApiError(400, "MISSING_PARAMETER", f"'{field}' is required")
    if not isinstance(value, str):
        raise ApiError(400, "INVALID_PARAMETER", f"'{field}' must be a string")
    return value
