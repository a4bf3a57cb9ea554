"""The blob store a process is configured with (:func:`open_blob_store`)."""

from __future__ import annotations

from shared.blobs_s3 import S3BlobStore
from shared.files import BlobStore, LocalBlobStore
from shared.settings import Settings

__all__ = ["open_blob_store"]


def open_blob_store(settings: Settings, *, secret: bytes) -> BlobStore:
    """The configured blob store: an S3 bucket with ``BOTGW_FILES_URL=s3://...``,
    else the local directory ``settings.files_path``. ``secret`` signs the local
    store's presigned URLs (the server secret: the same on every replica)."""
    if settings.files_url is not None:
        return S3BlobStore.from_settings(settings)
    public_url = settings.files_public_url or settings.public_rest_url
    if public_url is None:
        public_url = f"http://{settings.rest_host}:{settings.rest_port}"
    return LocalBlobStore(settings.files_path, secret=secret, public_url=public_url)
