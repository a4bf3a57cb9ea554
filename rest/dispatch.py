"""Turning an HTTP request into a validated method call and the envelope back.

One place reads parameters (JSON body, query string, urlencoded or multipart form),
validates them against the method's :class:`~rest.schema.Param` list, calls the
handler and writes ``{ok, result}``; every :class:`ApiError` becomes the error
envelope with the HTTP status equal to ``error_code``.

Bodies are size-checked while they stream in (413 before a byte too many is
buffered): JSON and plain forms up to :data:`MAX_JSON_BODY`, multipart uploads up
to the method's ``body_limit``. Uploaded files are closed after the call.

``Idempotency-Key`` (any method that writes, every API and dialect): the first call
with a key runs and its result is kept for a day; a retry with the same key gets
that result again (header ``Idempotent-Replayed: true``) and writes nothing. While
the first call still runs a retry is 409 ``IDEMPOTENCY_KEY_IN_USE``; a call that
failed with an error wrote nothing and keeps no result, so its retry runs again;
the key of another method is 400 ``IDEMPOTENCY_KEY_REUSED``
(:mod:`shared.store.calls`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive, Scope

from rest.schema import Method, validate_params
from shared import logs
from shared.codecs import CodecError, json_dumps, json_loads
from shared.dialect import native_ids
from shared.errors import ApiError, ok_envelope

__all__ = [
    "MAX_JSON_BODY",
    "STARTED",
    "JSONResponse",
    "auth_token",
    "body_limit",
    "call_method",
    "count_error",
    "count_request",
    "error_response",
    "idempotency_key",
    "invoke",
    "read_params",
    "register_methods",
    "request_labels",
]

REQUESTS = Counter(
    "botgw_rest_requests_total", "REST calls, errors included", ["api", "method", "status"]
)
DURATION = Histogram(
    "botgw_rest_request_duration_seconds",
    "from a REST call's arrival to its answer, by API, method and status class (2xx...)",
    ["api", "method", "status"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60),
)
STARTED = "botgw.started"  # the scope key of a request's arrival (time.perf_counter)

# api label -> the method names it is labelled with (by their lower-cased
# spelling too in the APIs of _ANY_CASE); any other name is labelled "other"
_KNOWN: dict[str, dict[str, str]] = {}
_ANY_CASE: set[str] = set()
_COUNTERS: dict[tuple[str, str, int], Any] = {}
_DURATIONS: dict[tuple[str, str, int], Any] = {}
_MAX_CACHED = 4096


def register_methods(api: str, names: Iterable[str], *, any_case: bool = False) -> None:
    """Let ``api``'s calls of ``names`` be counted under their own name."""
    table = _KNOWN.setdefault(api, {})
    table.update((name, name) for name in names)
    if any_case:
        _ANY_CASE.add(api)
        table.update((name.lower(), name) for name in list(table.values()))


def _method_label(api: str, method: str) -> str:
    table = _KNOWN.get(api)
    if table is None:
        return "other"
    label = table.get(method)
    if label is None and api in _ANY_CASE and len(method) <= 64:
        label = table.get(method.lower())
    return label or "other"


def count_request(api: str, method: str, status: int, started: float | None = None) -> None:
    """Count one call in ``botgw_rest_requests_total`` and, given when it arrived
    (``time.perf_counter``), its duration in ``botgw_rest_request_duration_seconds``.

    ``method`` is labelled with its registered name (see :func:`register_methods`),
    any other name with ``other``, so callers cannot create series.
    """
    key = (api, method, status)
    counter = _COUNTERS.get(key)
    if counter is None:
        label = _method_label(api, method)
        counter = REQUESTS.labels(api if api in _KNOWN else "other", label, str(status))
        if label == method and len(_COUNTERS) < _MAX_CACHED:
            _COUNTERS[key] = counter
    counter.inc()
    if started is None:
        return
    timer = _DURATIONS.get(key)
    if timer is None:
        label = _method_label(api, method)
        timer = DURATION.labels(api if api in _KNOWN else "other", label, f"{status // 100}xx")
        if label == method and len(_DURATIONS) < _MAX_CACHED:
            _DURATIONS[key] = timer
    timer.observe(time.perf_counter() - started)


def request_labels(scope: Scope) -> tuple[str, str]:
    """The (api, method) a request's path names, before any route or handler ran:
    ``/bot/<m>``, ``/client/<m>``, ``/manage/<m>``, ``/bot<token>/<m>`` (Telegram)
    and the file downloads (method ``file``); anything else is ``other``."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    head, _, rest = path[1:].partition("/")
    if head in ("bot", "client", "manage"):
        return head, "file" if rest.startswith("file/") else rest
    if head.startswith("bot"):
        return "telegram", rest
    if head == "file" and rest.startswith("bot"):
        return "telegram", "file"
    return "other", "other"


def count_error(scope: Scope, status: int) -> None:
    """Count an error answered outside the endpoints' own counting (no route,
    a wrong HTTP method, a failure that escaped the endpoint, an overload)."""
    api, method = request_labels(scope)
    count_request(api, method, status, scope.get(STARTED))


MAX_JSON_BODY = 1 << 20


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json_dumps(content)


def error_response(error: ApiError) -> JSONResponse:
    headers = dict(error.headers)
    if error.status == 429 and error.parameters and "retry_after" in error.parameters:
        headers["Retry-After"] = str(error.parameters["retry_after"])
    return JSONResponse(error.envelope(), status_code=error.status, headers=headers)


_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` header (1-255 visible ASCII characters)."""
    value = request.headers.get("idempotency-key")
    if value is None:
        return None
    if not _IDEMPOTENCY_KEY.match(value):
        raise ApiError(
            400,
            "INVALID_IDEMPOTENCY_KEY",
            "header 'Idempotency-Key' must be 1 to 255 visible ASCII characters (e.g. a UUID)",
        )
    return value


def auth_token(request: Request, schemes: tuple[str, ...]) -> str | None:
    """The token of an ``Authorization: <scheme> <token>`` header, if any."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() not in schemes or not token.strip():
        return None
    return token.strip()


def body_limit(method: Method, context: Any) -> int:
    """The largest body ``method`` accepts in this call (uploads have their own limit)."""
    return method.body_limit(context) if method.body_limit is not None else MAX_JSON_BODY


def _too_large(limit: int, method: Method) -> ApiError:
    if method.multipart:
        return ApiError(
            413, "FILE_TOO_LARGE", f"the request is larger than {limit} bytes: send a smaller file"
        )
    return ApiError(413, "BODY_TOO_LARGE", f"a request body may be at most {limit} bytes")


def _guarded(request: Request, limit: int, method: Method) -> Request:
    """The request with a body that raises 413 once more than ``limit`` bytes arrived."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit():
        if int(declared) > limit:
            raise _too_large(limit, method)
        return request  # the server reads no more than the declared length
    received = 0
    inner: Receive = request.receive

    async def receive() -> Message:
        nonlocal received
        message = await inner()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit, method)
        return message

    return Request(request.scope, receive=receive)


async def read_params(
    request: Request, method: Method, *, max_body: int = MAX_JSON_BODY
) -> tuple[dict[str, Any], bool]:
    """Raw parameters and whether they came as text (query string or form). A GET
    may carry a body too (form or JSON, as some Telegram libraries send it): it is
    read like a POST's."""
    if request.method == "GET" and not _has_body(request):
        return dict(request.query_params), True
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    multipart = content_type == "multipart/form-data"
    if multipart or content_type == "application/x-www-form-urlencoded":
        limit = max_body if multipart else min(max_body, MAX_JSON_BODY)
        guarded = _guarded(request, limit, method)
        try:
            form = await guarded.form(
                max_files=10 if method.multipart else 0,
                max_part_size=1 << 20,
            )
        except ApiError:
            raise
        except Exception as exc:  # malformed multipart, too many files ...
            raise ApiError(400, "BAD_REQUEST", f"the form body could not be read: {exc}") from None
        params: dict[str, Any] = dict(request.query_params)
        for key, value in form.multi_items():
            previous = params.get(key)
            if isinstance(previous, UploadFile):
                await previous.close()  # a repeated field: the last one counts
            params[key] = value
        return params, True
    guarded = _guarded(request, MAX_JSON_BODY, method)
    body = await guarded.body()
    if not body.strip():
        params = dict(request.query_params)
        return params, bool(params)
    try:
        data = json_loads(body)
    except CodecError as exc:
        raise ApiError(
            400, "BAD_REQUEST", f"the request body is not valid JSON ({exc}); send a JSON object"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "BAD_REQUEST", "the request body must be a JSON object")
    return data, False


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length", "").strip()
    if length:
        return length != "0"
    return "transfer-encoding" in request.headers


async def _close_uploads(params: Mapping[str, Any]) -> None:
    for value in params.values():
        if isinstance(value, UploadFile):
            await value.close()


async def call_method(
    request: Request,
    methods: Mapping[str, Method],
    name: str,
    context: Any,
    *,
    api: str = "bot",
    native: bool = True,
    params: dict[str, Any] | None = None,
    from_text: bool = False,
) -> JSONResponse:
    """Validate and run one method; the envelope in the requested id dialect."""
    bot = getattr(context, "bot", None)
    if bot is not None:
        logs.bind(bot_id=bot.id)  # what the call logs is about this bot
    method = methods.get(name)
    if method is None:
        raise ApiError(404, "METHOD_NOT_FOUND", f"there is no method called '{name}'")
    if request.method == "GET" and not method.getter and native:
        raise ApiError(405, "METHOD_NOT_ALLOWED", f"'{name}' changes state: call it with POST")
    if params is None:
        params, from_text = await read_params(request, method, max_body=body_limit(method, context))
    headers: dict[str, str] = {}
    try:
        result, replayed = await invoke(method, context, params, api=api, from_text=from_text)
        if replayed:
            headers["Idempotent-Replayed"] = "true"
    finally:
        await _close_uploads(params)
    body = ok_envelope(native_ids(result) if native else result)
    return JSONResponse(body, headers=headers)


async def invoke(
    method: Method, context: Any, params: Mapping[str, Any], *, api: str, from_text: bool
) -> tuple[Any, bool]:
    """Validate ``params`` and run ``method`` for ``context`` (a call with its
    ``idempotency_key``): (result, whether it was replayed from an earlier call
    with the key). What a request runs once its parameters are read."""
    args = validate_params(method, params, from_text=from_text)
    key: str | None = getattr(context, "idempotency_key", None)
    if key is None or method.getter:
        return await method.handler(context, args), False
    return await _once(context, api, method, key, args)


async def _once(
    context: Any, api: str, method: Method, key: str, args: dict[str, Any]
) -> tuple[Any, bool]:
    """Run a call made with an Idempotency-Key once: (result, whether replayed)."""
    calls = context.services.store.calls
    caller: str = context.caller
    claim = await calls.claim(caller, api, key, method.name)
    if claim.state == "done" or claim.state == "running":
        if claim.method != method.name:
            raise ApiError(
                400,
                "IDEMPOTENCY_KEY_REUSED",
                f"this Idempotency-Key was used for '{claim.method}': use a new key "
                "for every new call",
            )
        if claim.state == "running":
            raise ApiError(
                409,
                "IDEMPOTENCY_KEY_IN_USE",
                "a call with this Idempotency-Key is still running: retry in a second",
                parameters={"retry_after": 1},
            )
        return claim.result, True
    try:
        result = await method.handler(context, args)
    except BaseException:
        # it wrote nothing (errors are raised before writing) or the writes below
        # are keyed too: a retry may run again
        await calls.release(caller, api, key)
        raise
    await calls.finish(caller, api, key, method.name, result)
    return result, False
