"""The blob store in an S3-compatible bucket (AWS S3, MinIO, Ceph, ...).

Content is ``<prefix>/blobs/ab/cd/<sha256>``, pending uploads are
``<prefix>/uploads/<key>``; every REST replica configured with the same bucket
serves every file. Presigned URLs are S3's own (SigV4, query-signed): an upload
URL signs ``Content-Type`` and ``Content-Length``, so S3 refuses another type or
size; a download URL sets the response's ``Content-Disposition`` to an attachment.

boto3 blocks, so every call runs in a worker thread and the event loop never
waits on S3. A failing S3 (unreachable, no credentials, access denied) is logged
and answered 503 ``FILE_STORE_UNAVAILABLE``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import tempfile
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from typing import Any, BinaryIO, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from shared.errors import ApiError
from shared.files import (
    CHUNK,
    Blob,
    PendingUpload,
    PresignedUpload,
    attachment_disposition,
    check_expires_in,
    check_sha256,
    check_upload_args,
    not_uploaded,
    served_type,
    size_mismatch,
)
from shared.settings import Settings

__all__ = ["S3BlobStore"]

log = logging.getLogger("botgw.files")

T = TypeVar("T")
_MISSING = {"404", "NoSuchKey", "NotFound"}
# uploads through REST are spooled to disk past this size before they go to S3
_SPOOL_BYTES = 8 * 1024 * 1024


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code", "")) in _MISSING


def _client(endpoint_url: str | None, region: str | None) -> Any:
    config = Config(
        signature_version="s3v4",
        # a custom endpoint (MinIO, a proxy) is addressed by path: no wildcard DNS
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url, region_name=region, config=config
    )


class S3BlobStore:
    """Blobs in ``bucket`` under ``prefix``; ``client`` does the work, ``signer``
    (a client for the endpoint clients reach, which may differ) signs URLs."""

    def __init__(self, *, bucket: str, prefix: str, client: Any, signer: Any) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        self._s3 = client
        self._signer = signer

    @classmethod
    def from_settings(cls, settings: Settings) -> S3BlobStore:
        assert settings.files_url is not None
        parts = urllib.parse.urlsplit(settings.files_url)
        client = _client(settings.s3_endpoint_url, settings.s3_region)
        signer = client
        if settings.s3_public_endpoint_url not in (None, settings.s3_endpoint_url):
            signer = _client(settings.s3_public_endpoint_url, settings.s3_region)
        return cls(bucket=parts.netloc, prefix=parts.path, client=client, signer=signer)

    def blob_key(self, sha256: str) -> str:
        check_sha256(sha256)
        return f"{self.prefix}blobs/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def pending_key(self, key: str) -> str:
        check_upload_args(key, "a/b", 1, 1)
        return f"{self.prefix}uploads/{key}"

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread; S3's own failures as 503."""
        try:
            return await asyncio.to_thread(fn, *args)
        except (BotoCoreError, ClientError) as exc:
            log.warning("file store error: %s", exc)
            raise ApiError(
                503, "FILE_STORE_UNAVAILABLE", "the file store is unavailable; retry shortly"
            ) from exc

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            head: dict[str, Any] = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return head

    # -- content ------------------------------------------------------------------

    async def put(self, source: BinaryIO) -> Blob:
        return await self._run(self._put, source)

    def _put(self, source: BinaryIO) -> Blob:
        digest = hashlib.sha256()
        size = 0
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            while chunk := source.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                spool.write(chunk)
            spool.seek(0)
            key = self.blob_key(digest.hexdigest())
            if self._head(key) is None:  # else the same content is stored already
                self._s3.upload_fileobj(
                    spool, self.bucket, key, ExtraArgs={"ContentType": "application/octet-stream"}
                )
        return Blob(sha256=digest.hexdigest(), size=size)

    async def exists(self, sha256: str) -> bool:
        return await self.size(sha256) is not None

    async def size(self, sha256: str) -> int | None:
        head = await self._run(self._head, self.blob_key(sha256))
        return None if head is None else int(head["ContentLength"])

    async def read(self, sha256: str, *, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        body = await self._run(self._body, self.blob_key(sha256))
        try:
            while chunk := await asyncio.to_thread(body.read, chunk_size):
                yield chunk
        finally:
            await asyncio.to_thread(body.close)

    def _body(self, key: str) -> Any:
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from None
            raise

    # -- presigned URLs -------------------------------------------------------------

    async def upload_url(
        self, key: str, *, content_type: str, size: int, expires_in: int
    ) -> PresignedUpload:
        check_upload_args(key, content_type, size, expires_in)
        params = {
            "Bucket": self.bucket,
            "Key": self.pending_key(key),
            "ContentType": content_type,
            "ContentLength": size,
        }
        expires_at = int(time.time()) + expires_in
        url: str = await self._run(self._presign, "put_object", params, expires_in)
        return PresignedUpload(
            url=url,
            method="PUT",
            headers={"Content-Type": content_type, "Content-Length": str(size)},
            expires_at=expires_at,
        )

    def _presign(self, operation: str, params: dict[str, Any], expires_in: int) -> str:
        url: str = self._signer.generate_presigned_url(
            operation, Params=params, ExpiresIn=expires_in
        )
        return url

    async def stat(self, key: str) -> PendingUpload | None:
        head = await self._run(self._head, self.pending_key(key))
        if head is None:
            return None
        content_type = str(head.get("ContentType") or "application/octet-stream")
        return PendingUpload(size=int(head["ContentLength"]), content_type=content_type)

    async def claim(self, key: str, *, size: int) -> Blob:
        return await self._run(self._claim, self.pending_key(key), size)

    def _claim(self, pending: str, size: int) -> Blob:
        head = self._head(pending)
        if head is None:
            raise not_uploaded()
        actual = int(head["ContentLength"])
        if actual != size:
            self._s3.delete_object(Bucket=self.bucket, Key=pending)
            raise size_mismatch(actual, size)
        etag = head["ETag"]
        try:
            # what is hashed and what is copied are the same object: the one of etag
            body = self._s3.get_object(Bucket=self.bucket, Key=pending, IfMatch=etag)["Body"]
            digest = hashlib.sha256()
            with body:
                while chunk := body.read(CHUNK):
                    digest.update(chunk)
            target = self.blob_key(digest.hexdigest())
            if self._head(target) is None:
                self._s3.copy(
                    {"Bucket": self.bucket, "Key": pending},
                    self.bucket,
                    target,
                    ExtraArgs={
                        "CopySourceIfMatch": etag,
                        "ContentType": "application/octet-stream",
                        "MetadataDirective": "REPLACE",
                    },
                )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("412", "PreconditionFailed") or _missing(exc):
                raise ApiError(
                    409,
                    "MEDIA_CHANGED",
                    "the upload was replaced while it was confirmed: confirm it again",
                ) from None
            raise
        self._s3.delete_object(Bucket=self.bucket, Key=pending)
        return Blob(sha256=digest.hexdigest(), size=actual)

    async def discard(self, key: str) -> None:
        await self._run(self._delete, self.pending_key(key))

    def _delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)

    async def download_url(
        self,
        sha256: str,
        *,
        expires_in: int,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> str:
        check_expires_in(expires_in)
        params = {
            "Bucket": self.bucket,
            "Key": self.blob_key(sha256),
            "ResponseContentDisposition": attachment_disposition(filename or sha256),
            "ResponseContentType": served_type(content_type),
            "ResponseCacheControl": "private, max-age=60",
        }
        return await self._run(self._presign, "get_object", params, expires_in)
