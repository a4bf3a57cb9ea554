"""Koto v1's media: ``sendMedia`` hands out a presigned upload URL, ``confirmMedia``
sends what was uploaded there and answers a presigned download URL.

* ``POST /v1/bot/sendMedia`` checks the recipient as ``sendMessage`` would (the
  bot may write to it), the size (1 byte up to ``max_document_bytes``), the
  content type and the caption, and asks the blob store (``services.files``) for
  an upload URL of exactly that size and type, named by a new ``mediaId``. What
  confirmMedia needs later (recipient, caption) is kept for a day beside the
  bot's call results (``store.calls``, under the bot and the media id), so
  another bot's token finds nothing there (404).
* ``POST /v1/bot/confirmMedia`` turns the upload into a file of the bot's
  (``rest.methods.media.claim_presigned``: a photo when it is an image, else a
  document) and sends it with ``sendPhoto``/``sendDocument`` under the
  ``Idempotency-Key`` ``koto-media-<mediaId>``, so confirming again answers the
  same message instead of sending another.
"""

from __future__ import annotations

import secrets
from typing import Any

from starlette.requests import Request

from rest.dialects.koto_http import KotoBody, bot_call, invoke, read_body, require_str
from rest.methods import BOT_METHODS
from rest.methods.media import MAX_CAPTION, claim_presigned
from rest.schema import Param
from rest.services import BotCall, Services
from shared.errors import ApiError
from shared.files import MEDIA_TYPE_RE
from shared.koto import millis

__all__ = ["confirm_media", "send_media"]

Result = tuple[KotoBody, dict[str, str]]
_API = "koto-media"  # where pending media are kept among the bot's call results
_PENDING = "sendMedia"


def _media_key(media_id: Any) -> str:
    if not isinstance(media_id, str) or not media_id:
        raise ApiError(400, "MISSING_PARAMETER", "'mediaId' is required (from sendMedia)")
    return media_id


async def send_media(request: Request, services: Services) -> Result:
    body, from_text = await read_body(request, BOT_METHODS["sendDocument"])
    call = await bot_call(request, services, body)
    limit = services.settings.max_document_bytes
    recipient = Param("recipientFingerprint", "id", required=True)
    size_param = Param("sizeBytes", "int", minimum=1, maximum=limit)
    for field in ("recipientFingerprint", "sizeBytes", "contentType"):
        if body.get(field) is None:
            raise ApiError(400, "MISSING_PARAMETER", f"'{field}' is required")
    chat_id = recipient.parse(body["recipientFingerprint"], from_text=from_text)
    size = size_param.parse(body["sizeBytes"], from_text=from_text)
    content_type = require_str(body, "contentType").lower()
    if not MEDIA_TYPE_RE.match(content_type):
        raise ApiError(
            400, "INVALID_PARAMETER", "'contentType' must be a media type such as image/png"
        )
    caption = require_str(body, "caption", default="")
    if len(caption) > MAX_CAPTION:
        raise ApiError(
            400, "INVALID_PARAMETER", f"'caption' may have at most {MAX_CAPTION} characters"
        )
    await services.messenger.chat_for_bot(call.bot, chat_id)  # 403/404 before any URL
    media_id = "med_" + secrets.token_urlsafe(18)
    upload = await services.files.upload_url(
        media_id,
        content_type=content_type,
        size=size,
        expires_in=services.settings.files_url_seconds,
    )
    pending = {"chat_id": chat_id, "caption": caption, "file_id": None}
    await services.store.calls.finish(call.caller, _API, media_id, _PENDING, pending)
    return {
        "mediaId": media_id,
        "uploadUrl": upload.url,
        # beyond the document: how to upload (both headers are signed)
        "uploadMethod": upload.method,
        "uploadHeaders": upload.headers,
        "expiresAt": upload.expires_at * 1000,
    }, {}


async def _pending(call: BotCall, media_id: str) -> dict[str, Any]:
    """What sendMedia kept for this bot's ``media_id``; 404 for any other."""
    calls = call.services.store.calls
    claim = await calls.claim(call.caller, _API, media_id, "confirmMedia")
    if claim.state == "new":
        await calls.release(call.caller, _API, media_id)
    if claim.state != "done" or claim.method != _PENDING:
        raise ApiError(404, "MEDIA_NOT_FOUND", f"there is no media '{media_id[:64]}' of this bot")
    found: dict[str, Any] = claim.result
    return found


async def confirm_media(request: Request, services: Services) -> Result:
    body, _ = await read_body(request, BOT_METHODS["sendDocument"])
    call = await bot_call(request, services, body)
    media_id = _media_key(body.get("mediaId"))
    pending = await _pending(call, media_id)
    if pending["file_id"] is None:
        claimed = await claim_presigned(call, media_id)
        pending = {**pending, "file_id": claimed.file_id}
        # a confirm that fails after this (a send limit) finds the file again
        await services.store.calls.finish(call.caller, _API, media_id, _PENDING, pending)
    record = await services.messenger.db.get_file(pending["file_id"])
    if record is None:
        raise ApiError(404, "MEDIA_NOT_FOUND", f"the media '{media_id[:64]}' is gone")
    kind = "photo" if record.kind == "photo" else "document"
    params: dict[str, Any] = {"chat_id": pending["chat_id"], kind: record.file_id}
    if pending["caption"]:
        params["caption"] = pending["caption"]
    once = BotCall(services, call.bot, dialect=call.dialect, idempotency_key=f"koto-{media_id}")
    name = "sendPhoto" if kind == "photo" else "sendDocument"
    message, headers = await invoke(request, BOT_METHODS, name, once, params, api="bot")
    message_id = int(message["message_id"])
    url = await services.files.download_url(
        record.sha256,
        expires_in=services.settings.files_url_seconds,
        filename=record.file_name or f"{media_id}{record.extension}",
        content_type=record.mime_type,
    )
    answer = {"messageId": str(message_id), "timestamp": millis(message_id), "downloadUrl": url}
    return answer, headers
