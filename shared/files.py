"""File contents, stored by their SHA-256: the interface and the local implementation.

What a file *is* (its file_id, name, type, size) is a record in Redis; its bytes
live in a :class:`BlobStore` under their SHA-256, so the same content is stored
once however often it is sent. :class:`LocalBlobStore` keeps them in a directory
(``<root>/ab/cd/<sha256>``); an S3-compatible store implements the same four
methods.

Writes are atomic: content goes to a temporary file in the same directory tree
and is renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["Blob", "BlobStore", "LocalBlobStore", "open_blob_store"]

CHUNK = 256 * 1024
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class Blob:
    """Stored content: its SHA-256 (hex) and size in bytes."""

    sha256: str
    size: int


class BlobStore(Protocol):
    """Content-addressed storage of file bytes."""

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


class LocalBlobStore:
    """Blobs as files under ``root``; blocking file I/O runs in worker threads."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

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


def open_blob_store(files_path: str) -> BlobStore:
    """The configured blob store: a local directory (the only kind so far)."""
    return LocalBlobStore(files_path)
