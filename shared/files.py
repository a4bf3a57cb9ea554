"""File contents, stored by their SHA-256: the interface and the local implementation.

What a file *is* (its file_id, name, type, size) is a record in Redis; its bytes
live in a :class:`BlobStore` under their SHA-256, so the same content is stored
once however often it is sent. :class:`LocalBlobStore` keeps them in a directory
(``<root>/ab/cd/<sha256>``); :class:`shared.blobs_s3.S3BlobStore` in an
S3-compatible bucket, which every REST replica then shares.

Besides uploads through REST (:meth:`BlobStore.put`), a client may upload
straight to the store with a presigned URL, and download from one:

1. ``await files.upload_url(key, content_type=..., size=..., expires_in=...)``
   gives a :class:`PresignedUpload` for one pending upload named ``key``;
2. the client sends the bytes with ``upload.method`` to ``upload.url`` with
   ``upload.headers``;
3. ``await files.claim(key, size=...)`` checks that they arrived (size) and
   turns them into content (a :class:`Blob`, its SHA-256 computed by the store)
   for a :class:`shared.models.FileRecord`; ``stat``/``discard`` look at or drop
   a pending upload;
4. ``await files.download_url(blob.sha256, expires_in=..., filename=...)`` is a
   link the client downloads the content from, without a token.

For ``expires_in`` use ``services.settings.files_url_seconds``
(``BOTGW_FILES_URL_SECONDS``, 900 by default).

In REST the store is ``services.files`` (:class:`rest.services.Services`, from
``request.app.state.services`` or ``call.services``). A download URL is a
capability: whoever has it reads the file until it expires, so it is given only
to a caller that may see the file (:func:`rest.visibility.may_use_file`,
:func:`rest.downloads.user_may_read`).

Writes are atomic: content goes to a temporary file in the same directory tree
and is renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from shared.blob_tokens import DownloadGrant, TokenSigner, UploadGrant
from shared.errors import ApiError

__all__ = [
    "MAX_URL_SECONDS",
    "MEDIA_TYPE_RE",
    "UPLOAD_KEY_RE",
    "Blob",
    "BlobStore",
    "LocalBlobStore",
    "PendingUpload",
    "PresignedUpload",
    "attachment_disposition",
]

CHUNK = 256 * 1024
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# the name of a pending upload, chosen by the caller (e.g. a media id)
UPLOAD_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")
# a media type without parameters, as presigned uploads take it: "image/png"
MEDIA_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]{0,63}/[a-z0-9][a-z0-9.+-]{0,63}$")
# the longest a presigned URL may live (S3's own limit for signed URLs: 7 days)
MAX_URL_SECONDS = 7 * 86_400


@dataclass(frozen=True, slots=True)
class Blob:
    """Stored content: its SHA-256 (hex) and size in bytes."""

    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class PresignedUpload:
    """Where and how a client uploads one file, without any other credential.

    Send the bytes as the whole body of one ``method`` (``"PUT"``) request to
    ``url`` with every header in ``headers`` (``Content-Type`` and
    ``Content-Length``, both signed: another type or size is refused). Until
    ``expires_at`` (Unix seconds); a second upload to it replaces the first.
    """

    url: str
    method: str
    headers: dict[str, str]
    expires_at: int


@dataclass(frozen=True, slots=True)
class PendingUpload:
    """What has arrived for a pending upload: its size in bytes and content type."""

    size: int
    content_type: str


class BlobStore(Protocol):
    """Content-addressed storage of file bytes, and presigned URLs to them.

    ``put``/``exists``/``size``/``read`` work on content by SHA-256. The
    presigned operations work on *pending uploads* named by a ``key`` matching
    :data:`UPLOAD_KEY_RE` that the caller chooses and keeps (e.g. a media id):
    ``upload_url`` → the client uploads → ``claim`` → content. A pending upload
    nobody claims is left to expire (``docs/operations.md``, File storage).
    Arguments out of range (a key, a content type not matching
    :data:`MEDIA_TYPE_RE`, ``size`` < 1, ``expires_in`` not in 1 ..
    :data:`MAX_URL_SECONDS`) raise ``ValueError``: check what a client sent
    first. A store that cannot be reached raises :class:`shared.errors.ApiError`
    503 ``FILE_STORE_UNAVAILABLE``.
    """

    async def put(self, source: BinaryIO) -> Blob:
        """Store everything readable from ``source`` (from its current position)."""
        ...

    async def exists(self, sha256: str) -> bool: ...

    async def size(self, sha256: str) -> int | None:
        """The stored size, or None if there is no such content."""
        ...

    def read(self, sha256: str, *, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        """The content in chunks (FileNotFoundError when it is missing)."""
        ...

    async def upload_url(
        self, key: str, *, content_type: str, size: int, expires_in: int
    ) -> PresignedUpload:
        """A URL for one upload of exactly ``size`` bytes of ``content_type`` to the
        pending upload ``key``, valid for ``expires_in`` seconds. Stores nothing."""
        ...

    async def stat(self, key: str) -> PendingUpload | None:
        """What has been uploaded to ``key`` so far, or None when nothing has."""
        ...

    async def claim(self, key: str, *, size: int) -> Blob:
        """The pending upload ``key`` as stored content, when it has exactly
        ``size`` bytes; the pending upload is gone afterwards (claiming twice
        finds nothing). Raises :class:`shared.errors.ApiError`: 400
        ``MEDIA_NOT_UPLOADED`` when nothing was uploaded to ``key``, 400
        ``MEDIA_SIZE_MISMATCH`` when the upload has another size (and discards it,
        so the client may upload again to the same URL); with S3, 409
        ``MEDIA_CHANGED`` when the upload was replaced while it was claimed
        (claim again)."""
        ...

    async def discard(self, key: str) -> None:
        """Drop the pending upload ``key``, if there is one."""
        ...

    async def download_url(
        self,
        sha256: str,
        *,
        expires_in: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """A URL that downloads the content ``sha256`` (as an attachment named
        ``filename``, served as ``content_type`` when it is a plain media type,
        else as ``application/octet-stream``)
        for ``expires_in`` seconds, with no other credential. Give it only to a
        caller that may see the file; it does not check that the content exists."""
        ...


def check_upload_args(key: str, content_type: str, size: int, expires_in: int) -> None:
    """``ValueError`` when an ``upload_url`` argument is out of range."""
    if not UPLOAD_KEY_RE.match(key):
        raise ValueError(f"not an upload key: {key!r}")
    if not MEDIA_TYPE_RE.match(content_type):
        raise ValueError(f"not a media type: {content_type!r}")
    if size < 1:
        raise ValueError(f"an upload has at least one byte, not {size}")
    check_expires_in(expires_in)


def check_expires_in(expires_in: int) -> None:
    if not 1 <= expires_in <= MAX_URL_SECONDS:
        raise ValueError(f"expires_in must be 1 to {MAX_URL_SECONDS} seconds, not {expires_in}")


def check_sha256(sha256: str) -> None:
    if not _SHA256_RE.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")


_SERVED_TYPE_RE = re.compile(r"^[a-z0-9.+-]{1,127}/[a-z0-9.+-]{1,127}$")


def served_type(content_type: str | None) -> str:
    """The Content-Type a download is served with: ``content_type`` when it is a
    plain media type, else ``application/octet-stream``."""
    if content_type and _SERVED_TYPE_RE.match(content_type):
        return content_type
    return "application/octet-stream"


def not_uploaded() -> ApiError:
    return ApiError(
        400, "MEDIA_NOT_UPLOADED", "nothing was uploaded to the upload URL: upload the file first"
    )


def size_mismatch(actual: int, size: int) -> ApiError:
    return ApiError(
        400,
        "MEDIA_SIZE_MISMATCH",
        f"the upload has {actual} bytes, not the {size} announced; upload it again",
    )


class LocalBlobStore:
    """Blobs as files under ``root``; blocking file I/O runs in worker threads.

    Presigned URLs point at REST itself (``<public_url>/files/upload/<token>``,
    ``/files/download/<token>``, served by :mod:`rest.downloads`), with tokens
    signed by ``secret`` (:mod:`shared.blob_tokens`): every replica sharing the
    secret and ``root`` serves them. Pending uploads are ``<root>/uploads/<key>``.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        secret: bytes | None = None,
        public_url: str = "http://127.0.0.1:8080",
    ) -> None:
        self.root = Path(root)
        self.signer = TokenSigner(secret if secret is not None else secrets.token_bytes(32))
        self.public_url = public_url.rstrip("/")

    def path(self, sha256: str) -> Path:
        if not _SHA256_RE.match(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put(self, source: BinaryIO) -> Blob:
        return await asyncio.to_thread(self._put, source)

    def _put(self, source: BinaryIO) -> Blob:
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=incoming)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            target = self.path(digest.hexdigest())
            if target.exists():
                os.unlink(tmp_name)  # the same content is stored already
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp_name, target)
        except BaseException:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise
        return Blob(sha256=digest.hexdigest(), size=size)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path(sha256).is_file)

    async def size(self, sha256: str) -> int | None:
        try:
            return (await asyncio.to_thread(self.path(sha256).stat)).st_size
        except FileNotFoundError:
            return None

    async def read(self, sha256: str, *, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self.path(sha256).open, "rb")
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    # -- presigned URLs -------------------------------------------------------------

    def _pending(self, key: str) -> Path:
        if not UPLOAD_KEY_RE.match(key):
            raise ValueError(f"not an upload key: {key!r}")
        return self.root / "uploads" / key

    async def upload_url(
        self, key: str, *, content_type: str, size: int, expires_in: int
    ) -> PresignedUpload:
        check_upload_args(key, content_type, size, expires_in)
        expires_at = int(time.time()) + expires_in
        grant = UploadGrant(key=key, content_type=content_type, size=size, expires_at=expires_at)
        return PresignedUpload(
            url=f"{self.public_url}/files/upload/{self.signer.upload_token(grant)}",
            method="PUT",
            headers={"Content-Type": content_type, "Content-Length": str(size)},
            expires_at=expires_at,
        )

    async def receive_upload(
        self,
        token: str,
        *,
        content_type: str,
        content_length: str | None,
        chunks: AsyncIterator[bytes],
    ) -> None:
        """Store the body of a ``PUT /files/upload/<token>`` as the pending upload
        its token names, or raise the :class:`ApiError` that refuses it (nothing is
        stored then): 403 ``URL_INVALID``/``URL_EXPIRED``, 400
        ``CONTENT_TYPE_MISMATCH``, 411 ``LENGTH_REQUIRED``, 413 ``FILE_TOO_LARGE``,
        400 ``MEDIA_SIZE_MISMATCH``."""
        grant = self.signer.open_upload(token, now=time.time())
        target = self._pending(grant.key)
        sent_type = content_type.split(";")[0].strip().lower()
        if sent_type != grant.content_type:
            raise ApiError(
                400,
                "CONTENT_TYPE_MISMATCH",
                f"this URL takes Content-Type {grant.content_type}, not {sent_type or 'none'}",
            )
        if content_length is None or not content_length.isdigit():
            raise ApiError(411, "LENGTH_REQUIRED", "send the upload with its Content-Length")
        if int(content_length) > grant.size:
            raise _too_large(grant.size)
        if int(content_length) != grant.size:
            raise size_mismatch(int(content_length), grant.size)
        incoming = self.root / "incoming"
        await asyncio.to_thread(incoming.mkdir, parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=incoming)
        out = os.fdopen(fd, "wb")
        try:
            received = 0
            async for chunk in chunks:
                received += len(chunk)
                if received > grant.size:
                    raise _too_large(grant.size)
                await asyncio.to_thread(out.write, chunk)
            if received != grant.size:
                raise size_mismatch(received, grant.size)
            await asyncio.to_thread(self._keep_upload, out, tmp_name, target, grant.content_type)
        except BaseException:
            out.close()
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
            raise

    @staticmethod
    def _keep_upload(out: BinaryIO, tmp_name: str, target: Path, content_type: str) -> None:
        out.flush()
        os.fsync(out.fileno())
        out.close()
        target.parent.mkdir(parents=True, exist_ok=True)
        meta = target.with_name(target.name + ".type")
        meta_tmp = Path(tmp_name + ".type")
        meta_tmp.write_text(content_type)
        os.replace(meta_tmp, meta)
        os.replace(tmp_name, target)

    async def stat(self, key: str) -> PendingUpload | None:
        return await asyncio.to_thread(self._stat, self._pending(key))

    @staticmethod
    def _stat(path: Path) -> PendingUpload | None:
        try:
            size = path.stat().st_size
            content_type = path.with_name(path.name + ".type").read_text()
        except FileNotFoundError:
            return None
        return PendingUpload(size=size, content_type=content_type)

    async def claim(self, key: str, *, size: int) -> Blob:
        return await asyncio.to_thread(self._claim, self._pending(key), size)

    def _claim(self, pending: Path, size: int) -> Blob:
        incoming = self.root / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        taken = incoming / f"claim-{secrets.token_hex(8)}"
        try:
            # taken away first: an upload to the same URL meanwhile is a new one
            os.replace(pending, taken)
        except FileNotFoundError:
            raise not_uploaded() from None
        pending.with_name(pending.name + ".type").unlink(missing_ok=True)
        try:
            actual = taken.stat().st_size
            if actual != size:
                raise size_mismatch(actual, size)
            digest = hashlib.sha256()
            with taken.open("rb") as source:
                while chunk := source.read(CHUNK):
                    digest.update(chunk)
            target = self.path(digest.hexdigest())
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(taken, target)
        finally:
            taken.unlink(missing_ok=True)
        return Blob(sha256=digest.hexdigest(), size=actual)

    async def discard(self, key: str) -> None:
        pending = self._pending(key)
        await asyncio.to_thread(pending.unlink, missing_ok=True)
        await asyncio.to_thread(pending.with_name(pending.name + ".type").unlink, missing_ok=True)

    async def download_url(
        self,
        sha256: str,
        *,
        expires_in: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        check_sha256(sha256)
        check_expires_in(expires_in)
        grant = DownloadGrant(
            sha256=sha256,
            filename=filename or sha256,
            content_type=served_type(content_type),
            expires_at=int(time.time()) + expires_in,
        )
        return f"{self.public_url}/files/download/{self.signer.download_token(grant)}"

    def open_download(self, token: str) -> DownloadGrant:
        """The download a ``GET /files/download/<token>`` may serve, or 403
        ``URL_INVALID``/``URL_EXPIRED``."""
        grant = self.signer.open_download(token, now=time.time())
        check_sha256(grant.sha256)
        return grant


def _too_large(size: int) -> ApiError:
    return ApiError(413, "FILE_TOO_LARGE", f"this URL takes an upload of {size} bytes, no more")


def attachment_disposition(name: str) -> str:
    """``attachment`` with the file's name (RFC 6266: an ASCII fallback and UTF-8)."""
    fallback = "".join(
        ch if ch.isascii() and ch.isprintable() and ch not in '"\\' else "_" for ch in name
    )
    quoted = urllib.parse.quote(name, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"
