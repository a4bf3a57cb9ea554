"""The playground: a messenger page, served by REST, where a person chats with bots.

``/playground/`` serves the static files of ``rest/playground/`` (plain HTML, CSS
and ES modules; nothing to build). The page talks to the client API with the
user's token in ``Authorization: Bearer``; no cookie is ever set, so another
site cannot make a request in the user's name. Its two tokenless calls
(:mod:`rest.methods.logins`) are ``POST /playground/api/<method>``.

Every file is sent with a Content-Security-Policy that allows only the page's own
scripts, styles and API (``'self'``), images it made from downloads (``blob:``)
and mini apps in frames from any ``https:`` origin or a local ``http:`` one (a
developer's own server). Nothing else may frame the page.
"""

from __future__ import annotations

import re
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from rest.dispatch import call_method
from rest.methods.logins import LOGIN, LoginCall
from rest.services import Services
from shared.errors import ApiError

__all__ = ["CONTENT_SECURITY_POLICY", "ROUTES", "STATIC_DIR"]

STATIC_DIR = Path(__file__).with_name("playground")

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "frame-src https: http://localhost:* http://127.0.0.1:*",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# a file name of the directory itself: no sub-directories, no dot files
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*\.[a-z]{2,4}$")
_LOGIN_METHODS = {method.name: method for method in LOGIN}


def _headers(media_type: str) -> dict[str, str]:
    return {
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        # the page changes with the server it comes with: always ask
        "Cache-Control": "no-cache",
        "Content-Type": media_type,
    }


async def redirect(request: Request) -> Response:
    return RedirectResponse(str(request.url.replace(path=request.url.path + "/")), 308)


async def static_file(request: Request) -> Response:
    name = request.path_params.get("path") or "index.html"
    media_type = _TYPES.get(Path(name).suffix)
    path = STATIC_DIR / name
    if not _NAME_RE.match(name) or media_type is None or not path.is_file():
        raise ApiError(404, "NOT_FOUND", f"the playground has no file '{name}'")
    return Response(path.read_bytes(), headers=_headers(media_type))


async def login_method(request: Request) -> Response:
    services: Services = request.app.state.services
    method = request.path_params["method"]
    return await call_method(request, _LOGIN_METHODS, method, LoginCall(services), api="client")


ROUTES: list[BaseRoute] = [
    Route("/playground", redirect, methods=["GET"]),
    Route("/playground/", static_file, methods=["GET"]),
    Route("/playground/api/{method}", login_method, methods=["POST"]),
    Route("/playground/{path}", static_file, methods=["GET"]),
]
