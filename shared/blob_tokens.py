"""Signed tokens behind the local store's presigned URLs.

A token is ``<payload>.<mac>``: the payload is base64url JSON saying what the URL
allows (one upload to one key of one size and type, or one download of one
content), until when; the mac is HMAC-SHA256 over the payload with a key derived
from the server secret. Nothing is kept on the server: a token is checked by
recomputing its mac, so any REST replica with the same secret accepts it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import orjson

from shared.errors import ApiError

__all__ = ["DownloadGrant", "TokenSigner", "UploadGrant"]

_UPLOAD = "u"
_DOWNLOAD = "d"


@dataclass(frozen=True, slots=True)
class UploadGrant:
    """One upload of ``size`` bytes of ``content_type`` to pending upload ``key``."""

    key: str
    content_type: str
    size: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class DownloadGrant:
    """One content's download, as an attachment named ``filename``."""

    sha256: str
    filename: str
    content_type: str
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _invalid() -> ApiError:
    return ApiError(403, "URL_INVALID", "this file URL is not valid: ask for a new one")


class TokenSigner:
    """Signs and checks tokens with a key derived from ``secret``."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"botgw presigned file URLs v1", hashlib.sha256).digest()

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def _sign(self, fields: dict[str, Any]) -> str:
        payload = _b64(orjson.dumps(fields))
        return f"{payload}.{self._mac(payload)}"

    def upload_token(self, grant: UploadGrant) -> str:
        return self._sign(
            {
                "o": _UPLOAD,
                "k": grant.key,
                "t": grant.content_type,
                "n": grant.size,
                "e": grant.expires_at,
            }
        )

    def download_token(self, grant: DownloadGrant) -> str:
        return self._sign(
            {
                "o": _DOWNLOAD,
                "h": grant.sha256,
                "f": grant.filename,
                "t": grant.content_type,
                "e": grant.expires_at,
            }
        )

    def _open(self, token: str, kind: str, now: float) -> dict[str, Any]:
        """The token's fields, or 403 ``URL_INVALID`` / ``URL_EXPIRED``."""
        payload, dot, mac = token.partition(".")
        if not dot or not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            raise _invalid()
        try:
            fields = orjson.loads(_unb64(payload))
        except (binascii.Error, ValueError):
            raise _invalid() from None
        if not isinstance(fields, dict) or fields.get("o") != kind:
            raise _invalid()
        expires_at = fields.get("e")
        if not isinstance(expires_at, int) or now >= expires_at:
            raise ApiError(403, "URL_EXPIRED", "this file URL has expired: ask for a new one")
        return fields

    def open_upload(self, token: str, *, now: float) -> UploadGrant:
        """The upload a token allows, or 403 ``URL_INVALID`` / ``URL_EXPIRED``."""
        f = self._open(token, _UPLOAD, now)
        return UploadGrant(key=f["k"], content_type=f["t"], size=f["n"], expires_at=f["e"])

    def open_download(self, token: str, *, now: float) -> DownloadGrant:
        """The download a token allows, or 403 ``URL_INVALID`` / ``URL_EXPIRED``."""
        f = self._open(token, _DOWNLOAD, now)
        return DownloadGrant(sha256=f["h"], filename=f["f"], content_type=f["t"], expires_at=f["e"])
