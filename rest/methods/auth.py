"""Ed25519 sign-in for users: ``/client/auth/challenge`` and ``/client/auth/verify``.

The two calls need no token. A client holding an Ed25519 key pair asks for a
challenge for its public key, signs the message below with its private key and
sends the signature back; the answer is a user token. A key seen for the first
time registers a new user; a key seen before signs in to its user, with a new
token (users have one token each: the one they had stops working).

Encodings (all base64url without padding, RFC 4648 section 5):

* ``public_key``: the 32 raw bytes of the key (RFC 8032), 43 characters;
* ``challenge``: 32 random bytes from the server, 43 characters;
* ``signature``: the 64 bytes of the signature, 86 characters.

The signed message is the UTF-8 of these four lines, joined by ``\\n`` with no
newline at the end::

    botgw-auth-v1
    <audience>
    <public_key>
    <challenge>

``audience`` names the server (setting ``auth_audience``; unset: the host of
``public_rest_url``, else the ``Host`` the challenge was asked under), so that a
signature made for one server is no good on another. The challenge's answer
carries the audience and the whole message; a client should check the audience
is the server it means to sign in to before signing.

A challenge lives ``auth_challenge_ttl_seconds`` and is consumed by the first
verification that names it, right or wrong: a replayed, expired or unknown
challenge is 401 ``CHALLENGE_INVALID``, a wrong signature 401
``SIGNATURE_INVALID`` (ask for a new challenge either way). Malformed parameters
are 400 and consume nothing. Challenges are limited per key
(``auth_key_per_minute``) and both calls per client address
(``auth_peer_per_minute``): 429 with ``retry_after`` past them.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from rest.accounts import checked_user_name
from rest.object_schemas import ref
from rest.ratelimit import take_sign_in_token
from rest.schema import Method, Param
from rest.services import Services
from shared import keys
from shared.errors import ApiError
from shared.settings import Settings

__all__ = ["AUTH", "PROTOCOL", "AnonymousCall", "audience_for", "signed_message"]

PROTOCOL = "botgw-auth-v1"

_BASE64URL = re.compile(r"^[A-Za-z0-9_-]*$")
_HOST = re.compile(r"^[a-z0-9.\-]{1,253}(:[0-9]{1,5})?$|^\[[0-9a-f:.]{2,45}\](:[0-9]{1,5})?$")


@dataclass(frozen=True, slots=True)
class AnonymousCall:
    """A call that carries no token: the services, the client's address and the
    ``Host`` it was sent to."""

    services: Services
    peer: str
    host: str
    idempotency_key: str | None = None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decoded(text: str, size: int, name: str) -> bytes:
    """The ``size`` bytes that ``text`` encodes (canonical unpadded base64url), or
    400 ``INVALID_<NAME>``."""
    length = (size * 4 + 2) // 3
    raw = b""
    if len(text) == length and _BASE64URL.match(text):
        raw = base64.urlsafe_b64decode(text + "=" * (-length % 4))
    if len(raw) != size or _b64(raw) != text:
        raise ApiError(
            400,
            f"INVALID_{name.upper()}",
            f"'{name}' must be the {size} bytes in base64url without padding "
            f"({length} characters of A-Z a-z 0-9 - _)",
        )
    return raw


def signed_message(audience: str, public_key: str, challenge: str) -> bytes:
    """What the client signs (see the module docstring)."""
    return f"{PROTOCOL}\n{audience}\n{public_key}\n{challenge}".encode()


def audience_for(settings: Settings, host: str) -> str:
    """The name a challenge is signed for: configured, the public URL's host, or
    the ``Host`` of the request (400 if that is no host name)."""
    if settings.auth_audience:
        return settings.auth_audience
    if settings.public_rest_url:
        netloc = urlsplit(settings.public_rest_url).netloc
        if netloc:
            return netloc.lower()
    host = host.strip().lower()
    if not _HOST.match(host):
        raise ApiError(400, "INVALID_HOST", "the request's Host header must name this server")
    return host


def default_username(public_key: bytes) -> str:
    """The name a new key's user gets when it asks for none: from the key's hash."""
    return "key_" + hashlib.sha256(public_key).hexdigest()[:16]


async def auth_challenge(call: AnonymousCall, p: dict[str, Any]) -> dict[str, Any]:
    public_key = p["public_key"]
    _decoded(public_key, 32, "public_key")
    services = call.services
    settings = services.settings
    audience = audience_for(settings, call.host)
    await take_sign_in_token(
        services.store, keys.auth_peer_rate(call.peer), settings.auth_peer_per_minute
    )
    await take_sign_in_token(
        services.store, keys.auth_key_rate(public_key), settings.auth_key_per_minute
    )
    challenge = _b64(secrets.token_bytes(32))
    ttl = settings.auth_challenge_ttl_seconds
    await services.store.challenges.issue(public_key, challenge, audience, ttl * 1000)
    return {
        "challenge": challenge,
        "audience": audience,
        "message": signed_message(audience, public_key, challenge).decode(),
        "expires_in": ttl,
        "expires_at": int(time.time()) + ttl,
    }


async def auth_verify(call: AnonymousCall, p: dict[str, Any]) -> dict[str, Any]:
    public_key, challenge = p["public_key"], p["challenge"]
    raw_key = _decoded(public_key, 32, "public_key")
    _decoded(challenge, 32, "challenge")
    signature = _decoded(p["signature"], 64, "signature")
    username = checked_user_name(p["username"] or default_username(raw_key))
    services = call.services
    await take_sign_in_token(
        services.store, keys.auth_peer_rate(call.peer), services.settings.auth_peer_per_minute
    )
    audience = await services.store.challenges.consume(public_key, challenge)
    if audience is None:
        raise ApiError(
            401,
            "CHALLENGE_INVALID",
            "this challenge is unknown, was used already or expired: ask "
            "/client/auth/challenge for a new one",
        )
    try:
        key = Ed25519PublicKey.from_public_bytes(raw_key)
        key.verify(signature, signed_message(audience, public_key, challenge))
    except (InvalidSignature, ValueError):
        raise ApiError(
            401,
            "SIGNATURE_INVALID",
            f"the signature is not the key's over the challenge's message ({PROTOCOL}); "
            "the challenge is used up: ask for a new one",
        ) from None
    user, token, created = await services.accounts.sign_in_with_key(
        public_key, username=username, name=p["name"]
    )
    return {
        "token": token,
        "created": created,
        "user": {
            "id": user.id,
            "is_bot": False,
            "first_name": user.name,
            "username": user.username,
        },
    }


_PUBLIC_KEY = Param(
    "public_key",
    "str",
    required=True,
    max_length=64,
    doc="the 32-byte Ed25519 public key, base64url without padding (43 characters)",
)

AUTH: tuple[Method, ...] = (
    Method(
        "challenge",
        auth_challenge,
        summary="A single-use challenge for an Ed25519 key to sign (no token needed).",
        params=(_PUBLIC_KEY,),
        result={
            "type": "object",
            "required": ["challenge", "audience", "message", "expires_in", "expires_at"],
            "properties": {
                "challenge": {"type": "string"},
                "audience": {"type": "string"},
                "message": {"type": "string", "description": "exactly what to sign"},
                "expires_in": {"type": "integer"},
                "expires_at": {"type": "integer"},
            },
        },
    ),
    Method(
        "verify",
        auth_verify,
        summary="Exchange a signed challenge for a user token; a new key registers a user.",
        params=(
            _PUBLIC_KEY,
            Param("challenge", "str", required=True, max_length=64, doc="from auth/challenge"),
            Param(
                "signature",
                "str",
                required=True,
                max_length=128,
                doc="the 64-byte Ed25519 signature of the message, base64url without padding",
            ),
            Param("username", "str", max_length=32, doc="a new key's user name (else derived)"),
            Param("name", "str", min_length=1, max_length=64, doc="a new key's display name"),
        ),
        result={
            "type": "object",
            "required": ["token", "created", "user"],
            "properties": {
                "token": {"type": "string"},
                "created": {"type": "boolean"},
                "user": ref("User"),
            },
        },
    ),
)
