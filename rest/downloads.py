"""File downloads: ``GET /bot/file/<file_path>``, ``GET /client/file/<file_path>``;
and the local store's presigned URLs, ``PUT /files/upload/<token>`` and
``GET /files/download/<token>`` (:class:`shared.files.LocalBlobStore`: with an S3
store, presigned URLs are S3's and these answer 404 ``NOT_FOUND``).

``file_path`` (from getFile) is ``photos/<file_id>.<ext>`` or
``documents/<file_id>[.<ext>]``. :func:`open_file` resolves one for any download
route (the two here, ``/file/bot<token>/<file_path>`` in the Telegram dialect);
:func:`file_response` turns it into a streaming response. A bot downloads only
the files it may use (:func:`rest.visibility.may_use_file`), a user the files
sent to its chats; any other is 404 ``FILE_NOT_FOUND``, as one that does not exist.

Downloads are always attachments, with ``X-Content-Type-Options: nosniff`` and a
sandboxing Content-Security-Policy, so an uploaded HTML or SVG file is never
rendered as a page of the API's origin.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from rest import visibility
from rest.dispatch import JSONResponse, auth_token
from rest.services import Services
from shared.errors import ApiError, ok_envelope
from shared.files import LocalBlobStore, attachment_disposition
from shared.models import BotRecord, FileRecord, UserRecord

__all__ = [
    "FileDownload",
    "bot_file_response",
    "client_download_route",
    "download_route",
    "file_response",
    "open_file",
    "presigned_download_route",
    "presigned_upload_route",
    "user_may_read",
]

_FILE_PATH_RE = re.compile(r"^(photo|document)s/([A-Za-z0-9_-]{8,128})(\.[A-Za-z0-9]{1,10})?$")


async def user_may_read(services: Services, user: UserRecord, file_id: str) -> bool:
    """Whether the file was sent to one of the user's chats."""
    messenger = services.messenger
    for chat_id in await messenger.db.file_chats(file_id):
        try:
            await messenger.chat_for_user(user, chat_id)
        except ApiError:
            continue
        return True
    return False


@dataclass(frozen=True, slots=True)
class FileDownload:
    """An opened file: what it is, and its bytes in chunks."""

    record: FileRecord
    chunks: AsyncIterator[bytes]

    @property
    def size(self) -> int:
        return self.record.size

    @property
    def media_type(self) -> str:
        return self.record.mime_type or "application/octet-stream"


async def open_file(services: Services, file_path: str) -> FileDownload | None:
    """The file behind a ``file_path`` from getFile, or None when there is none."""
    match = _FILE_PATH_RE.match(file_path)
    if match is None:
        return None
    record = await services.messenger.db.get_file(match.group(2))
    if record is None or record.kind != match.group(1) or record.file_path != file_path:
        return None
    if await services.files.size(record.sha256) is None:
        return None
    return FileDownload(record=record, chunks=services.files.read(record.sha256))


def _no_file() -> ApiError:
    return ApiError(404, "FILE_NOT_FOUND", "no file has this file_path: call getFile first")


def _content_disposition(record: FileRecord) -> str:
    return attachment_disposition(record.file_name or record.file_path.rsplit("/", 1)[-1])


_SAFE_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "sandbox; default-src 'none'",
}


async def file_response(services: Services, file_path: str) -> Response:
    """A streaming response with the file (as an attachment the browser never
    renders), or 404 ``FILE_NOT_FOUND``."""
    download = await open_file(services, file_path)
    if download is None:
        raise _no_file()
    headers = {
        "Content-Length": str(download.size),
        "ETag": f'"{download.record.sha256}"',
        "Cache-Control": "private, max-age=3600",
        "Content-Disposition": _content_disposition(download.record),
        **_SAFE_HEADERS,
    }
    return StreamingResponse(download.chunks, media_type=download.media_type, headers=headers)


async def bot_file_response(services: Services, bot: BotRecord, file_path: str) -> Response:
    """:func:`file_response` for a bot: 404 ``FILE_NOT_FOUND`` also for a file it may
    not use, as for one that does not exist."""
    match = _FILE_PATH_RE.match(file_path)
    db = services.messenger.db
    if match is None or not await visibility.may_use_file(db, bot, match.group(2)):
        raise _no_file()
    return await file_response(services, file_path)


async def download_route(request: Request) -> Response:
    """``GET /bot/file/{file_path}`` with the bot token in ``Authorization``."""
    services: Services = request.app.state.services
    bot = await services.accounts.authenticate_bot(auth_token(request, ("bot", "bearer")))
    return await bot_file_response(services, bot, request.path_params["file_path"])


async def client_download_route(request: Request) -> Response:
    """``GET /client/file/{file_path}`` with a user token: files sent to the user's chats."""
    services: Services = request.app.state.services
    user = await services.accounts.authenticate_user(auth_token(request, ("bearer",)))
    file_path: str = request.path_params["file_path"]
    match = _FILE_PATH_RE.match(file_path)
    if match is None or not await user_may_read(services, user, match.group(2)):
        raise ApiError(404, "FILE_NOT_FOUND", "no file with this file_path was sent to you")
    return await file_response(services, file_path)


def _local_store(request: Request) -> LocalBlobStore:
    services: Services = request.app.state.services
    if not isinstance(services.files, LocalBlobStore):
        raise ApiError(404, "NOT_FOUND", "this server's presigned file URLs are its S3 store's")
    return services.files


async def presigned_upload_route(request: Request) -> Response:
    """``PUT /files/upload/{token}``: the body is the upload the token allows."""
    await _local_store(request).receive_upload(
        request.path_params["token"],
        content_type=request.headers.get("content-type", ""),
        content_length=request.headers.get("content-length"),
        chunks=request.stream(),
    )
    return JSONResponse(ok_envelope(True))


async def presigned_download_route(request: Request) -> Response:
    """``GET /files/download/{token}``: the content the token names, as an
    attachment (404 ``FILE_NOT_FOUND`` once it is gone)."""
    store = _local_store(request)
    grant = store.open_download(request.path_params["token"])
    size = await store.size(grant.sha256)
    if size is None:
        raise ApiError(404, "FILE_NOT_FOUND", "the file of this URL is not stored any more")
    headers = {
        "Content-Length": str(size),
        "ETag": f'"{grant.sha256}"',
        "Cache-Control": "private, max-age=60",
        "Content-Disposition": attachment_disposition(grant.filename),
        **_SAFE_HEADERS,
    }
    return StreamingResponse(
        store.read(grant.sha256), media_type=grant.content_type, headers=headers
    )
