"""The REST application: routes, error handling, health, metrics and lifespan.

Every request has a request id, logged with what is logged while it runs and sent
back in ``X-Request-Id``: the client's own ``X-Request-Id`` when it sends a
well-formed one (:func:`shared.logs.request_id_from`), else a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from rest.dialects import ROUTES as DIALECT_ROUTES
from rest.dispatch import (
    STARTED,
    JSONResponse,
    auth_token,
    call_method,
    count_request,
    error_response,
    idempotency_key,
    register_methods,
    request_labels,
)
from rest.downloads import (
    client_download_route,
    download_route,
    presigned_download_route,
    presigned_upload_route,
)
from rest.events import UserFeeds, events_route
from rest.messenger import Messenger
from rest.methods import AUTH_METHODS, BOT_METHODS, CLIENT_METHODS, MANAGE_METHODS
from rest.methods.auth import AnonymousCall
from rest.methods.manage import ON_BEHALF_HEADER, system_bot_call
from rest.methods.updates import end_waiting_polls
from rest.openapi import SERVICE_PATHS, openapi_document
from rest.playground import ROUTES as PLAYGROUND_ROUTES
from rest.schema import Method
from rest.serve import DRAIN_STATE, Drain, metrics_registry
from rest.services import BotCall, Services, UserCall
from rest.telegram import OPENAPI_PATHS as TELEGRAM_PATHS
from rest.telegram import ROUTES as TELEGRAM_ROUTES
from rest.webapps import bridge_route
from shared import logs
from shared.blob_stores import open_blob_store
from shared.errors import ApiError
from shared.settings import Settings
from shared.store import NotReplicated, Store, StoreError, StoreMisconfigured, StoreTimeout

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("botgw.rest")


Endpoint = Callable[[Request], Awaitable[Response]]
ExceptionHandler = Callable[[Request, Exception], Awaitable[Response]]

_BOT_SCHEMES = ("bot", "bearer")
_USER_SCHEMES = ("bearer",)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _bot_call(services: Services, request: Request) -> BotCall:
    bot = await services.accounts.authenticate_bot(auth_token(request, _BOT_SCHEMES))
    return BotCall(services, bot, idempotency_key=idempotency_key(request))


async def _user_call(services: Services, request: Request) -> UserCall:
    user = await services.accounts.authenticate_user(auth_token(request, _USER_SCHEMES))
    return UserCall(services, user, idempotency_key=idempotency_key(request))


async def _manage_call(services: Services, request: Request) -> UserCall:
    """A user's call, or the system bot's on behalf of the user it cites."""
    citation = request.headers.get(ON_BEHALF_HEADER)
    if citation is None:
        return await _user_call(services, request)
    token = auth_token(request, _BOT_SCHEMES)
    return await system_bot_call(
        services, token, citation, idempotency_key=idempotency_key(request)
    )


async def _anonymous_call(services: Services, request: Request) -> AnonymousCall:
    peer = request.client.host if request.client else "unknown"
    return AnonymousCall(services, peer=peer, host=request.headers.get("host", ""))


@dataclass(frozen=True, slots=True)
class Api:
    """One API under ``/<name>/<method>``: its methods, the call an authenticated
    request makes, and the OpenAPI security: the ways to authenticate, each the
    schemes sent together (none: the API takes no token)."""

    methods: Mapping[str, Method]
    call: Callable[[Services, Request], Awaitable[BotCall | UserCall | AnonymousCall]]
    security: tuple[tuple[str, ...], ...]


_APIS: dict[str, Api] = {
    "bot": Api(BOT_METHODS, _bot_call, (("botToken",),)),
    "client": Api(CLIENT_METHODS, _user_call, (("userToken",),)),
    "manage": Api(
        MANAGE_METHODS, _manage_call, (("userToken",), ("botToken", "systemBotCitation"))
    ),
    # Ed25519 sign-in: through the router (the fast path takes one-segment methods)
    "client/auth": Api(AUTH_METHODS, _anonymous_call, ()),
}


def _api_endpoint(name: str, api: Api) -> Endpoint:
    """The endpoint of ``/<name>/<method>``."""

    async def endpoint(request: Request) -> Response:
        method = request.path_params["method"]
        call = await api.call(_services(request), request)
        return await call_method(request, api.methods, method, call, api=name)

    return endpoint


async def healthz(request: Request) -> Response:
    return JSONResponse({"ok": True, "result": {"status": "alive"}})


async def readyz(request: Request) -> Response:
    services = _services(request)
    if services.draining:
        return JSONResponse(
            {"ok": False, "error_code": 503, "code": "DRAINING", "description": "draining"},
            status_code=503,
        )
    problem = await services.store.unready()
    if problem is not None:
        return JSONResponse(
            {
                "ok": False,
                "error_code": 503,
                "code": "BACKEND_UNAVAILABLE",
                "description": f"the store cannot take writes: {problem}",
            },
            status_code=503,
        )
    return JSONResponse({"ok": True, "result": {"status": "ready"}})


async def metrics(request: Request) -> Response:
    return Response(generate_latest(metrics_registry()), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    return JSONResponse(request.app.state.openapi)


def _telegram_call(scope: Scope) -> tuple[str, str] | None:
    """The labels of a Telegram method call (``/bot<token>/<method>``), else None."""
    api, method = request_labels(scope)
    return (api, method) if api == "telegram" and method != "file" else None


def _count_handled(request: Request, response: Response) -> Response:
    """Count an error a handler answers on a Telegram method call.

    ``bot_method`` counts the answers it makes itself, so only what escaped it (or
    never reached it: a wrong HTTP method) is counted here; every other request
    is counted by :class:`RestApp` as its answer is sent.
    """
    labels = _telegram_call(request.scope)
    if labels is not None:
        count_request(*labels, response.status_code, request.scope.get(STARTED))
    return response


async def on_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _count_handled(request, error_response(exc))


async def on_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
    return _count_handled(request, error_response(ApiError(exc.status_code, code, str(exc.detail))))


def store_error(exc: Exception) -> ApiError:
    """The answer to a request the store failed: an outage is retried, a
    misconfiguration is not (the operator must fix it)."""
    if isinstance(exc, StoreMisconfigured):
        return ApiError(
            503,
            "BACKEND_MISCONFIGURED",
            "the server's Redis is misconfigured and an operator must fix it; "
            "retrying does not help until then",
        )
    if isinstance(exc, NotReplicated):
        return ApiError(
            503,
            "NOT_REPLICATED",
            "the write was not confirmed by Redis replicas in time and may or may not "
            "stay; repeat it with the same Idempotency-Key",
        )
    if isinstance(exc, StoreTimeout):
        return ApiError(
            503,
            "BACKEND_UNAVAILABLE",
            "the store did not answer in time; retry shortly (writes with the same "
            "Idempotency-Key)",
        )
    return ApiError(503, "BACKEND_UNAVAILABLE", "the store is unavailable; retry shortly")


async def on_redis_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StoreMisconfigured):  # the store logged that one already
        log.warning("backend error: %s", exc)
    return _count_handled(request, error_response(store_error(exc)))


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    error = ApiError(500, "INTERNAL_ERROR", "the server failed on this request")
    return _count_handled(request, error_response(error))


# Starlette's table, and the fast path's: a handler is looked up by the MRO
_HANDLERS: dict[type[Exception], ExceptionHandler] = {
    ApiError: on_api_error,
    HTTPException: on_http_error,
    StoreError: on_redis_error,
    Exception: on_unexpected,
}


def _handler(exc: Exception) -> ExceptionHandler:
    """The handler of ``exc``, found as Starlette finds it (its class's MRO)."""
    for cls in type(exc).__mro__:
        handler = _HANDLERS.get(cls)
        if handler is not None:
            return handler
    return on_unexpected


# the API routes of every call: "/<api>/<method>", matched without the router
_API_ENDPOINTS: dict[str, Endpoint] = {name: _api_endpoint(name, a) for name, a in _APIS.items()}
# paths under an API that are routes of their own, not methods
_ROUTED = frozenset({"/client/events"})


class RestApp(Starlette):
    """Starlette, with the API calls (``/bot/<method>``, ``/client/<method>``,
    ``/manage/<method>``) taken straight to their endpoint.

    Those are nearly every request a deployment serves. Starlette's two exception
    layers, its router and its request wrapper cost a good part of a call's CPU
    and add nothing there: the endpoint's errors are turned into the envelope here
    by the same handlers the app registers. Every other request (files, health,
    metrics, the Telegram dialect, any other HTTP method) goes through Starlette.

    Counting in ``botgw_rest_requests_total``: an API call taken straight to its
    endpoint is counted here with its answer, error or not. Through Starlette, an
    answer on an API path (a download, another HTTP method, no such route) is
    counted as it is sent, labelled by its path (:func:`request_labels`), and any
    other path's errors under ``other``; a Telegram method call counts itself
    (``rest.telegram.bot_method``), what escapes it is counted by the handlers.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        # each request runs in a task of its own: what is bound here stays with it
        # (and with uvicorn's own record of a failure, logged in the same task)
        scope[STARTED] = started = time.perf_counter()
        request_id = logs.request_id_from(_header(scope, b"x-request-id"))
        logs.bind(request_id=request_id, bot_id=None, consumer=None)
        if scope["method"] in ("GET", "POST"):
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            api, slash, method = path[1:].partition("/")
            endpoint = _API_ENDPOINTS.get(api) if slash and method else None
            if endpoint is not None and "/" not in method and path not in _ROUTED:
                scope["app"] = self
                scope["path_params"] = {"method": method}
                request = Request(scope, receive, send)
                try:
                    response = await endpoint(request)
                except Exception as exc:
                    response = await _handler(exc)(request, exc)
                count_request(api, method, response.status_code, started)
                response.raw_headers.append((b"x-request-id", request_id.encode()))
                await response(scope, receive, send)
                return
        counting = _telegram_call(scope) is None and not _koto_call(scope)
        await super().__call__(scope, receive, _answering(scope, send, request_id, counting))


def _koto_call(scope: Scope) -> bool:
    """Whether a request is Koto v1's (``/v1/bot/...``), whose routes count every
    answer they make, errors and unknown paths included (``rest.dialects.koto``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == "/v1/bot" or path.startswith("/v1/bot/")


def _header(scope: Scope, name: bytes) -> bytes | None:
    """The value of header ``name`` (lower case) of a request, if it has one."""
    for key, value in scope["headers"]:
        if key == name:
            found: bytes = value
            return found
    return None


def _answering(scope: Scope, send: Send, request_id: str, counting: bool) -> Send:
    """``send``, with the request id in the answer's headers and, if ``counting``,
    the answer's status counted under the labels of its path."""
    api, method = request_labels(scope)
    header = (b"x-request-id", request_id.encode())

    async def answer(message: Message) -> None:
        if message["type"] == "http.response.start":
            status: int = message["status"]
            if counting and (api != "other" or status >= 400):
                count_request(api, method, status, scope.get(STARTED))
            message = {**message, "headers": [*message.get("headers", ()), header]}
        await send(message)

    return answer


def _register_labels() -> None:
    """The method names each API's calls are counted under (any other: ``other``)."""
    register_methods("bot", [*BOT_METHODS, "file"])
    register_methods("client", [*CLIENT_METHODS, "file"])
    register_methods("manage", MANAGE_METHODS)
    register_methods("client", [f"auth/{name}" for name in AUTH_METHODS])
    # the dialect's method names are case-insensitive, as Telegram's
    register_methods("telegram", [*BOT_METHODS, "file"], any_case=True)


def create_app(settings: Settings) -> Starlette:
    """The REST app; Redis is connected in the lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        store = Store.connect(settings, role="rest")
        secret = await store.entities.server_secret(settings.secret)
        wakeups = store.wakeups()
        store.entities.enable_cache(wakeups)
        wakeups.start()
        services = Services(
            settings=settings,
            store=store,
            messenger=Messenger(store, settings, secret),
            wakeups=wakeups,
            files=open_blob_store(settings, secret=secret),
        )
        app.state.services = services
        app.state.user_feeds = feeds = UserFeeds(wakeups)

        def start_drain() -> None:
            services.draining = True  # /readyz: 503; a poll that starts now waits not
            feeds.closing.set()  # every user's event stream ends now
            answered = end_waiting_polls(services)
            log.info("draining: %d waiting long polls answered now", answered)

        replay = asyncio.create_task(store.outbox.replay_forever())
        try:
            yield {DRAIN_STATE: Drain(start_drain)}
        finally:
            replay.cancel()
            await wakeups.stop()
            await store.close()

    _register_labels()
    # on the API port /metrics is as public as the API: only when asked for (its
    # own bind is rest.serve's)
    metrics_routes = [Route("/metrics", metrics, methods=["GET"])]
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *(metrics_routes if settings.rest_metrics_on_api_port else []),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/bot/file/{file_path:path}", download_route, methods=["GET"]),
        Route("/bot/{method}", _API_ENDPOINTS["bot"], methods=["GET", "POST"]),
        Route("/client/file/{file_path:path}", client_download_route, methods=["GET"]),
        Route("/client/auth/{method}", _API_ENDPOINTS["client/auth"], methods=["POST"]),
        Route("/client/events", events_route, methods=["GET"]),
        Route("/webapp.js", bridge_route, methods=["GET"]),
        Route("/client/{method}", _API_ENDPOINTS["client"], methods=["GET", "POST"]),
        Route("/manage/{method}", _API_ENDPOINTS["manage"], methods=["GET", "POST"]),
        Route("/files/upload/{token}", presigned_upload_route, methods=["PUT"]),
        Route("/files/download/{token}", presigned_download_route, methods=["GET"]),
        *TELEGRAM_ROUTES,
        *DIALECT_ROUTES,
        *PLAYGROUND_ROUTES,
    ]
    app = RestApp(routes=routes, exception_handlers=_HANDLERS, lifespan=lifespan)
    app.state.openapi = openapi_document(
        {name: (api.methods, api.security) for name, api in _APIS.items()},
        extra_paths={**SERVICE_PATHS, **TELEGRAM_PATHS},
    )
    return app


def app_from_env() -> Starlette:
    """Factory for ``uvicorn --factory``: settings are read here, once per process."""
    return create_app(Settings.from_env(os.environ))
