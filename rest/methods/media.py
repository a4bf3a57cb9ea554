"""Photos and documents: sendPhoto, sendDocument and getFile (bots and users).

A file is sent either as a multipart upload (the ``photo`` / ``document`` field)
or by the ``file_id`` of a file sent before. Uploads are checked (size against
``max_photo_bytes`` / ``max_document_bytes`` with 413 ``FILE_TOO_LARGE``; a photo
must be a JPEG, PNG, GIF or WebP image) and the send rate is taken before the
content is written to the blob store, so a refused call stores nothing.

getFile answers a ``file_path`` to download the file from (:mod:`rest.downloads`).
A bot may use a ``file_id`` (getFile, download, send it again) only if it uploaded
the file or may see a message carrying it (:func:`rest.visibility.may_use_file`);
any other is answered as an unknown one. Users read the files sent to their
chats with client ``getFile``.
"""

from __future__ import annotations

import base64
import mimetypes
import re
import secrets
import struct
import time
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile

from rest import visibility
from rest.downloads import user_may_read
from rest.object_schemas import ref
from rest.ratelimit import take_send_token
from rest.schema import (
    CAPTION_PARAMS,
    CHAT_ID,
    FILE_ID_PATTERN,
    SEND_TAIL,
    Method,
    Param,
    reply_target,
)
from rest.services import BotCall, Services, UserCall
from rest.text import formatted
from shared.errors import ApiError
from shared.files import Blob
from shared.models import FileRecord, member_key

__all__ = ["BOT", "CLIENT", "claim_presigned", "sniff_image", "upload_document"]

MAX_CAPTION = 1024
# room in a multipart body for the other fields besides the file itself
FORM_SLACK = 256 * 1024
_HEAD = 1 << 20  # enough of a file to find an image's dimensions
_EXTENSION_RE = re.compile(r"^\.[A-Za-z0-9]{1,10}$")
_IMAGE_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
}


# -- image dimensions -------------------------------------------------------------


def sniff_image(head: bytes) -> tuple[str, int, int] | None:
    """(mime type, width, height) of a JPEG, PNG, GIF or WebP image, else None."""
    try:
        if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return _sane("image/png", width, height)
        if head[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", head[6:10])
            return _sane("image/gif", width, height)
        if head.startswith(b"\xff\xd8"):
            return _jpeg(head)
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            return _webp(head)
    except struct.error:
        return None
    return None


def _sane(mime: str, width: int, height: int) -> tuple[str, int, int] | None:
    return (mime, width, height) if 0 < width <= 65535 and 0 < height <= 65535 else None


def _jpeg(data: bytes) -> tuple[str, int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return _sane("image/jpeg", width, height)
        i += 2 + length
    return None


def _webp(data: bytes) -> tuple[str, int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return _sane("image/webp", width & 0x3FFF, height & 0x3FFF)
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return _sane("image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return _sane("image/webp", width, height)
    return None


# -- uploads ------------------------------------------------------------------------


@dataclass(slots=True)
class _Upload:
    """A checked upload, not yet stored."""

    upload: UploadFile
    kind: str
    mime_type: str
    file_name: str
    extension: str
    width: int = 0
    height: int = 0


def _limit(call: BotCall, kind: str) -> int:
    settings = call.services.settings
    return settings.max_photo_bytes if kind == "photo" else settings.max_document_bytes


async def _check_upload(call: BotCall, kind: str, upload: UploadFile) -> _Upload:
    limit = _limit(call, kind)
    size = upload.size
    if size is None:
        upload.file.seek(0, 2)
        size = upload.file.tell()
    if size > limit:
        raise ApiError(
            413,
            "FILE_TOO_LARGE",
            f"parameter '{kind}': the file has {size} bytes; a {kind} may have at most {limit}",
        )
    if size == 0:
        raise ApiError(400, "FILE_EMPTY", f"parameter '{kind}': the uploaded file is empty")
    file_name = _clean_name(upload.filename or "")
    if kind == "photo":
        await upload.seek(0)
        found = sniff_image(await upload.read(_HEAD))
        await upload.seek(0)
        if found is None:
            raise ApiError(
                400,
                "PHOTO_INVALID",
                "parameter 'photo' must be a JPEG, PNG, GIF or WebP image "
                "(send other files with sendDocument)",
            )
        mime, width, height = found
        return _Upload(upload, kind, mime, file_name, _IMAGE_EXTENSIONS[mime], width, height)
    await upload.seek(0)
    mime = (upload.content_type or "").split(";")[0].strip().lower()
    if not re.fullmatch(r"[a-z0-9.+-]+/[a-z0-9.+-]+", mime) or mime == "application/octet-stream":
        mime = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    extension = ""
    if "." in file_name:
        suffix = "." + file_name.rsplit(".", 1)[1]
        extension = suffix.lower() if _EXTENSION_RE.match(suffix) else ""
    return _Upload(upload, kind, mime, file_name or "document", extension)


def _clean_name(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    return name.strip()[:255]


async def _store_upload(services: Services, checked: _Upload) -> FileRecord:
    await checked.upload.seek(0)
    blob = await services.files.put(checked.upload.file)
    return await _save_file(services, blob, checked)


@dataclass(slots=True)
class _Kind:
    """What a file is, found by checking it (an upload's or a stored content's)."""

    kind: str
    mime_type: str
    file_name: str
    extension: str
    width: int = 0
    height: int = 0


async def _save_file(services: Services, blob: Blob, checked: _Upload | _Kind) -> FileRecord:
    record = FileRecord(
        file_id=secrets.token_urlsafe(24),
        file_unique_id=_unique_id(blob.sha256),
        sha256=blob.sha256,
        size=blob.size,
        kind=checked.kind,
        mime_type=checked.mime_type,
        file_name=checked.file_name if checked.kind == "document" else "",
        extension=checked.extension,
        width=checked.width,
        height=checked.height,
        created=int(time.time()),
    )
    await services.messenger.db.save_file(record)
    return record


async def claim_presigned(call: BotCall, key: str, *, file_name: str = "") -> FileRecord:
    """The bot's presigned upload ``key`` (``services.files``) as a file it may send
    by ``file_id``, checked as sendPhoto and sendDocument check uploads: a photo
    when it is a JPEG, PNG, GIF or WebP image within ``max_photo_bytes``, else a
    document within ``max_document_bytes`` (413 ``FILE_TOO_LARGE``, and the upload
    is dropped). 400 ``MEDIA_NOT_UPLOADED`` when nothing arrived."""
    files = call.services.files
    pending = await files.stat(key)
    if pending is None:
        raise ApiError(
            400, "MEDIA_NOT_UPLOADED", "nothing was uploaded to the upload URL: upload it first"
        )
    limit = _limit(call, "document")
    if pending.size > limit:
        await files.discard(key)
        raise ApiError(
            413, "FILE_TOO_LARGE", f"the file has {pending.size} bytes; at most {limit} are taken"
        )
    blob = await files.claim(key, size=pending.size)
    head = b""
    async for chunk in files.read(blob.sha256):
        head += chunk
        if len(head) >= _HEAD:
            break
    found = sniff_image(head[:_HEAD]) if blob.size <= _limit(call, "photo") else None
    name = _clean_name(file_name)
    if found is not None:
        mime, width, height = found
        checked = _Kind("photo", mime, name, _IMAGE_EXTENSIONS[mime], width, height)
    else:
        mime = pending.content_type
        extension = mimetypes.guess_extension(mime) or ""
        checked = _Kind("document", mime, name or "document" + extension, extension)
    record = await _save_file(call.services, blob, checked)
    await call.services.messenger.db.note_file_uploader(
        record.file_id, member_key("b", call.bot.id)
    )
    return record


async def upload_document(call: BotCall, upload: UploadFile) -> FileRecord:
    """Store an upload as a document the bot may send later by its ``file_id``,
    checked as sendDocument checks it, without sending anything."""
    checked = await _check_upload(call, "document", upload)
    record = await _store_upload(call.services, checked)
    await call.services.messenger.db.note_file_uploader(
        record.file_id, member_key("b", call.bot.id)
    )
    return record


def _unique_id(sha256: str) -> str:
    """The same for the same content, whoever sent it (Telegram's file_unique_id)."""
    return base64.urlsafe_b64encode(bytes.fromhex(sha256)[:12]).decode().rstrip("=")


async def _usable_file(call: BotCall, file_id: str) -> FileRecord | None:
    """The file behind ``file_id`` if the bot may use it (else as if there were none)."""
    messenger = call.services.messenger
    record = await messenger.db.get_file(file_id)
    if record is None or not await visibility.may_use_file(messenger.db, call.bot, file_id):
        return None
    return record


async def _known_file(call: BotCall, kind: str, file_id: str) -> FileRecord:
    record = await _usable_file(call, file_id)
    if record is None:
        raise ApiError(400, "FILE_ID_INVALID", f"parameter '{kind}': no file has this file_id")
    if kind == "photo" and not record.width:
        raise ApiError(400, "PHOTO_INVALID", "parameter 'photo': this file_id is not a photo")
    return record


def photo_sizes(record: FileRecord) -> list[dict[str, Any]]:
    """The PhotoSize list of a photo (one size: the original)."""
    return [
        {
            "file_id": record.file_id,
            "file_unique_id": record.file_unique_id,
            "file_size": record.size,
            "width": record.width,
            "height": record.height,
        }
    ]


def document_object(record: FileRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "file_id": record.file_id,
        "file_unique_id": record.file_unique_id,
        "file_size": record.size,
        "mime_type": record.mime_type,
    }
    if record.file_name:
        out["file_name"] = record.file_name
    return out


async def _send_file(call: BotCall, p: dict[str, Any], kind: str) -> dict[str, Any]:
    services = call.services
    messenger = services.messenger
    chat = await messenger.chat_for_bot(call.bot, p["chat_id"])
    caption, caption_entities = formatted(
        p, "caption", "caption_entities", limit=MAX_CAPTION, required=False
    )
    replied = await visibility.reply_target(messenger.db, call.bot, chat, *reply_target(p))
    source = p[kind]
    checked: _Upload | None = None
    record: FileRecord | None = None
    if isinstance(source, UploadFile):
        checked = await _check_upload(call, kind, source)
    else:
        record = await _known_file(call, kind, source)
    await take_send_token(services.store, services.settings, call.bot.id, chat)
    if checked is not None:
        record = await _store_upload(services, checked)
    assert record is not None
    extra: dict[str, Any] = {}
    if kind == "photo":
        extra["photo"] = photo_sizes(record)
    else:
        extra["document"] = document_object(record)
    if caption is not None:
        extra["caption"] = caption
        if caption_entities:
            extra["caption_entities"] = caption_entities
    message = await messenger.new_bot_message(
        chat,
        call.bot.id,
        replied,
        extra,
        reply_markup=p["reply_markup"],
        idempotency_key=call.idempotency_key,
    )
    await visibility.note_files(messenger.db, message, uploaded=checked is not None)
    view = messenger.view(call.bot.id)
    view.remember(replied)
    return await view.message(chat, message)


async def get_file(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
    record = await _usable_file(call, p["file_id"])
    if record is None:
        raise ApiError(400, "FILE_ID_INVALID", "parameter 'file_id': no file has this file_id")
    return _file_object(record)


async def client_get_file(call: UserCall, p: dict[str, Any]) -> dict[str, Any]:
    services = call.services
    record = await services.messenger.db.get_file(p["file_id"])
    if record is None or not await user_may_read(services, call.user, record.file_id):
        raise ApiError(
            400, "FILE_ID_INVALID", "parameter 'file_id': no file with this id was sent to you"
        )
    return _file_object(record)


def _file_object(record: FileRecord) -> dict[str, Any]:
    return {
        "file_id": record.file_id,
        "file_unique_id": record.file_unique_id,
        "file_size": record.size,
        "file_path": record.file_path,
    }


def _send_params(kind: str) -> tuple[Param, ...]:
    return (
        CHAT_ID,
        Param(kind, "file", required=True, doc=f"the {kind}: an upload, or a file_id"),
        *CAPTION_PARAMS,
        Param("has_spoiler", "bool"),
        Param("show_caption_above_media", "bool"),
        Param("disable_content_type_detection", "bool"),
        *SEND_TAIL,
    )


def _send_method(name: str, kind: str, what: str) -> Method:
    """sendPhoto or sendDocument: ``kind`` uploaded, or named by a file_id."""

    async def send(call: BotCall, p: dict[str, Any]) -> dict[str, Any]:
        return await _send_file(call, p, kind)

    def body_limit(call: BotCall) -> int:
        return _limit(call, kind) + FORM_SLACK

    return Method(
        name,
        send,
        summary=f"Send {what}: a multipart upload, or the file_id of {what} sent before.",
        params=_send_params(kind),
        result=ref("Message"),
        multipart=True,
        body_limit=body_limit,
    )


# file ids are url-safe (they name Redis keys and download paths)
_FILE_ID = Param("file_id", "str", required=True, pattern=f"^{FILE_ID_PATTERN}$")

CLIENT: tuple[Method, ...] = (
    Method(
        "getFile",
        client_get_file,
        getter=True,
        summary="The file_path of a file sent to one of the user's chats (for /client/file).",
        params=(_FILE_ID,),
        result=ref("File"),
    ),
)

BOT: tuple[Method, ...] = (
    _send_method("sendPhoto", "photo", "a photo"),
    _send_method("sendDocument", "document", "a file"),
    Method(
        "getFile",
        get_file,
        getter=True,
        summary="The file_path to download a file from.",
        params=(_FILE_ID,),
        result=ref("File"),
    ),
)
