"""Mini apps: init data signed as Telegram signs it, and the bridge script.

Telegram's algorithm (core.telegram.org/bots/webapps, "Validating data received
via the Mini App"): ``secret_key = HMAC_SHA256(key="WebAppData", msg=bot_token)``
and ``hash = hex(HMAC_SHA256(key=secret_key, msg=data_check_string))``, where the
data-check string is every field but ``hash`` as ``key=value`` lines, sorted by
key, joined by ``\\n``. Init data is those fields and ``hash``, URL-encoded.

Bot tokens are stored only as hashes, so the server cannot derive the key when it
signs. It keeps the derived key instead (``BotRecord.webapp_key``), computed when
the token is issued or rotated from the token in Telegram's form,
``<bot id>:<secret>`` (the native token without its ``bot_`` prefix): a bot
validates with that string, as Telegram libraries do with the token they hold.
The key can only sign init data; it cannot call the API.

``GET /webapp.js`` serves the bridge (``rest/static/webapp.js``): the
``window.Telegram.WebApp`` object a mini app's page uses, talking to the page that
framed it with Telegram's web events (docs/webapps.md).
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "BRIDGE_CSP",
    "bridge_route",
    "check_init_data",
    "data_check_string",
    "sign_init_data",
    "webapp_key",
    "webapp_secret",
]

BRIDGE_PATH = Path(__file__).with_name("static") / "webapp.js"
# the script runs nothing of its own origin's: it is only ever loaded by a mini app
BRIDGE_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
MAX_INIT_DATA = 8192


def webapp_secret(token: str) -> bytes:
    """``HMAC_SHA256(key="WebAppData", msg=token)``, ``token`` as the bot holds it."""
    return hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()


def webapp_key(native_token: str) -> str:
    """The key kept for a bot: :func:`webapp_secret` of its token in Telegram's form."""
    return webapp_secret(native_token.removeprefix("bot_")).hex()


def data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")


def sign_init_data(secret: bytes, fields: dict[str, str]) -> tuple[str, str]:
    """(init data, its hash): ``fields`` and ``hash``, URL-encoded as Telegram does."""
    digest = hmac.new(secret, data_check_string(fields).encode(), hashlib.sha256).hexdigest()
    return urlencode({**fields, "hash": digest}, quote_via=quote), digest


def parse_init_data(init_data: str) -> dict[str, str] | None:
    """The fields of an init data string (``hash`` included); None if malformed."""
    if not init_data or len(init_data) > MAX_INIT_DATA:
        return None
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    fields = dict(pairs)
    if len(fields) != len(pairs) or not fields.get("hash"):
        return None
    return fields


def check_init_data(secret: bytes, init_data: str) -> dict[str, str] | None:
    """The fields of ``init_data`` if its hash is right for ``secret``, else None."""
    fields = parse_init_data(init_data)
    if fields is None:
        return None
    expected = hmac.new(secret, data_check_string(fields).encode(), hashlib.sha256).hexdigest()
    return fields if hmac.compare_digest(expected, fields["hash"]) else None


async def bridge_route(request: Request) -> Response:
    return Response(
        BRIDGE_PATH.read_bytes(),
        headers={
            "Content-Type": "text/javascript; charset=utf-8",
            "Content-Security-Policy": BRIDGE_CSP,
            "X-Content-Type-Options": "nosniff",
            # any mini app, on any origin, may load it
            "Cross-Origin-Resource-Policy": "cross-origin",
            "Access-Control-Allow-Origin": "*",
            "Cache-Control": "public, max-age=300",
        },
    )
