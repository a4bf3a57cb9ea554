"""``/v1/bot-api/chats``, ``/chat/...`` and ``/files``: chats, messages, uploads.

* A chat is ``{id, userId, botId}``: the bot's private chat with the user, then
  the groups the bot is in where the user is too (as the bot names them).
* A message is ``{id, chatId, senderId, body, timestamp}`` (and ``attachments``
  when it carries a file). Its id names its chat: ``<chatId>_<message id>``, as
  botgw's message ids are per chat; ``timestamp`` is the millisecond it was
  written (botgw's message ids are ``ms * 1024 + n``).
* ``POST /chat/message`` is sendMessage, or with an attachment sendDocument of
  the uploaded file with ``body`` as its caption (botgw messages carry one file).
* ``GET /chat/:id/messages`` pages getChatHistory oldest first: page ``n`` holds
  the messages ``(n-1)*limit+1`` to ``n*limit`` of those found, ``total`` counts
  them all (every message the bot may see, from ``since`` on, of ``sender_id``).
* ``GET /chat/message/:id`` is one message the bot may see (else 404).
* ``POST /files`` stores each ``file`` part as a document the bot may attach
  (:func:`rest.methods.media.upload_document`); its ``path``, after the host,
  downloads it with the bot's key.
"""

from __future__ import annotations

import mimetypes
import re
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import Response

from rest import visibility
from rest.dialects.bot_api_http import Context, limited, read_json
from rest.downloads import bot_file_response
from rest.methods.history import read_history
from rest.methods.media import FORM_SLACK, upload_document
from rest.schema import FILE_ID_PATTERN, Param
from shared import bot_api_v1
from shared.errors import ApiError
from shared.ids import MAX_ID, SEQ_PER_MS
from shared.models import FileRecord

__all__ = [
    "FILES_PREFIX",
    "HISTORY_NAMES",
    "SEND_NAMES",
    "UPLOAD_NAMES",
    "download",
    "get_message",
    "list_chats",
    "list_messages",
    "message_object",
    "send_message",
    "upload_files",
]

FILES_PREFIX = "v1/bot-api/files/"  # a file's path: this and its botgw file_path
MAX_FILES = 10
_WALK = 1000  # messages counted per read of a chat's history

SEND_NAMES = {"chat_id": "chatId", "text": "body", "caption": "body", "document": "attachmentIds"}
HISTORY_NAMES = {"chat_id": "id"}
UPLOAD_NAMES = {"document": "file"}

_PAGE = Param("page", "int", default=1, minimum=1, maximum=MAX_ID - 1)
_LIMIT = Param("limit", "int", default=20, minimum=1, maximum=100)
_SINCE = Param("since", "int", minimum=0, maximum=MAX_ID // SEQ_PER_MS)
_MESSAGE_ID_RE = re.compile(r"([0-9]{1,16})_([0-9]{1,16})")


def _id(value: Any) -> int | None:
    """A botgw id from the dialect's text (or number), None if it is none."""
    if type(value) is int:
        return value if 0 < value < MAX_ID else None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 16:
        number = int(value)
        return number if 0 < number < MAX_ID else None
    return None


def _chat_id(value: Any) -> int:
    chat_id = _id(value)
    if chat_id is None:
        raise ApiError(404, "CHAT_NOT_FOUND", "no chat has this id")
    return chat_id


# -- objects ---------------------------------------------------------------------


async def _attachments(context: Context, message: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    document = message.get("document")
    if document:
        found.append((document["file_id"], document.get("file_name", ""), document["mime_type"]))
    if message.get("photo"):
        found.append((message["photo"][-1]["file_id"], "", ""))
    out = []
    for file_id, name, mime in found:
        try:
            file = await context.run("getFile", {"file_id": file_id})
        except ApiError:
            continue  # gone from the store since: the message is shown without it
        path = file["file_path"]
        out.append(
            {
                "id": file_id,
                "path": FILES_PREFIX + path,
                "name": name or path.rsplit("/", 1)[-1],
                "size": file["file_size"],
                "mimeType": mime or mimetypes.guess_type(path)[0] or "application/octet-stream",
            }
        )
    return out


async def message_object(context: Context, message: dict[str, Any]) -> dict[str, Any]:
    """A native message (integer ids) as this dialect writes it, with its files."""
    out = bot_api_v1.message_object(message)
    attachments = await _attachments(context, message)
    if attachments:
        out["attachments"] = attachments
    return out


def _file_object(record: FileRecord) -> dict[str, Any]:
    return {
        "id": record.file_id,
        "path": FILES_PREFIX + record.file_path,
        "name": record.file_name,
        "size": record.size,
        "mimeType": record.mime_type,
    }


# -- chats -----------------------------------------------------------------------


async def list_chats(context: Context) -> list[dict[str, str]]:
    """``GET /v1/bot-api/chats?user_id=``: the chats the bot shares with the user."""
    raw = context.request.query_params.get("user_id")
    if not raw:
        raise ApiError(400, "MISSING_PARAMETER", "parameter 'user_id' is required")
    bot = context.call.bot
    db = context.services.messenger.db
    scoped = _id(raw)
    real = None if scoped is None else await db.seen_user(bot.id, scoped)
    if scoped is None or real is None:
        raise ApiError(404, "USER_NOT_FOUND", "the bot knows no user with this id")
    found: list[int] = []
    if await db.private_chat_of(bot.id, scoped) is not None:
        found.append(scoped)  # a bot names its private chat with a user as the user
    for chat_id in await db.chats_of_user(real):
        chat = await db.get_chat(chat_id)
        if chat is None or chat.type != "group":
            continue
        if (await visibility.sight(db, bot, chat)).since is not None:
            found.append(chat.id)
    return [{"id": str(c), "userId": str(scoped), "botId": str(bot.id)} for c in found]


# -- messages --------------------------------------------------------------------


async def send_message(context: Context) -> dict[str, Any]:
    """``POST /v1/bot-api/chat/message``."""
    body = await read_json(context.request)
    if not isinstance(body, dict):
        raise ApiError(400, "BAD_REQUEST", "the request body must be a JSON object")
    if body.get("chatId") is None:
        raise ApiError(400, "MISSING_PARAMETER", "parameter 'chatId' is required")
    if not isinstance(body["chatId"], str | int) or isinstance(body["chatId"], bool):
        raise ApiError(400, "INVALID_PARAMETER", "parameter 'chatId' must be a string")
    chat_id = _chat_id(body["chatId"])
    if body.get("body") is None:
        raise ApiError(400, "MISSING_PARAMETER", "parameter 'body' is required")
    text = body["body"]
    attachments = body.get("attachmentIds")
    if attachments is None:
        attachments = []
    if not isinstance(attachments, list) or not all(isinstance(a, str) for a in attachments):
        raise ApiError(
            400, "INVALID_PARAMETER", "parameter 'attachmentIds' must be an array of strings"
        )
    if len(attachments) > 1:
        raise ApiError(
            400,
            "INVALID_PARAMETER",
            "parameter 'attachmentIds' may name one file: a message carries at most one",
        )
    if not attachments:
        sent = await context.run("sendMessage", {"chat_id": chat_id, "text": text}, idempotent=True)
        return await message_object(context, sent)
    if not re.fullmatch(FILE_ID_PATTERN, attachments[0]):
        raise ApiError(404, "FILE_NOT_FOUND", "parameter 'attachmentIds': no file has this id")
    params = {"chat_id": chat_id, "document": attachments[0], "caption": text or None}
    sent = await context.run("sendDocument", params, idempotent=True)
    return await message_object(context, sent)


async def list_messages(context: Context) -> dict[str, Any]:
    """``GET /v1/bot-api/chat/:id/messages``: one page, and how many were found."""
    raw_id = context.request.path_params.get("id", "")
    chat_id = _chat_id(raw_id)
    query = context.request.query_params
    page = _PAGE.parse(query.get("page") or 1, from_text=True)
    limit = _LIMIT.parse(query.get("limit") or 20, from_text=True)
    since_ms = _SINCE.parse(query["since"], from_text=True) if query.get("since") else None
    sender_id = query.get("sender_id") or None
    messenger = context.services.messenger
    bot = context.call.bot
    chat = await messenger.chat_for_bot(bot, chat_id)
    sender = None
    if sender_id is not None:
        scoped = _id(sender_id)
        if scoped is None:
            raise ApiError(404, "USER_NOT_FOUND", "no sender has this id in this chat")
        sender = await messenger.resolve_user_for_bot(bot, chat, scoped)
    # what getChatHistory finds, counted: its ids in order
    start = 0 if since_ms is None else since_ms * SEQ_PER_MS - 1
    ids: list[int] = []
    after = start
    while True:
        batch = await read_history(
            messenger, chat, bot=bot, limit=_WALK, before=None, since=after, sender=sender
        )
        ids.extend(m.id for m in batch)
        if len(batch) < _WALK:
            break
        after = batch[-1].id
    first = (page - 1) * limit
    messages: list[dict[str, Any]] = []
    if first < len(ids):
        params: dict[str, Any] = {
            "chat_id": chat_id,
            "limit": limit,
            "since": ids[first - 1] if first else start,
        }
        if sender_id is not None:
            params["sender_id"] = sender_id
        found = await context.run("getChatHistory", params)
        messages = [await message_object(context, m) for m in found]
    return {
        "chatId": str(chat_id),
        "total": len(ids),
        "page": page,
        "limit": limit,
        "messages": messages,
    }


async def get_message(context: Context) -> dict[str, Any]:
    """``GET /v1/bot-api/chat/message/:id``: a message the bot may see."""
    match = _MESSAGE_ID_RE.fullmatch(context.request.path_params.get("id", ""))
    chat_id = None if match is None else _id(match.group(1))
    message_id = None if match is None else _id(match.group(2))
    if chat_id is None or message_id is None:
        raise ApiError(404, "MESSAGE_NOT_FOUND", "no message has this id")
    params = {"chat_id": chat_id, "since": message_id - 1, "before": message_id + 1, "limit": 1}
    try:
        found = await context.run("getChatHistory", params)
    except ApiError as error:
        if error.code not in ("CHAT_NOT_FOUND", "CHAT_FORBIDDEN"):
            raise
        found = []  # another bot's chat: its messages are not there for this bot
    if not found:
        raise ApiError(404, "MESSAGE_NOT_FOUND", "no message has this id")
    return await message_object(context, found[0])


# -- files -----------------------------------------------------------------------


async def upload_files(context: Context) -> list[dict[str, Any]]:
    """``POST /v1/bot-api/files``: every part named ``file``, stored."""
    request = context.request
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        raise ApiError(
            400,
            "BAD_REQUEST",
            "send the files as multipart/form-data, each in a part named 'file'",
        )
    limit = context.services.settings.max_document_bytes + FORM_SLACK
    try:
        form = await limited(request, limit).form(max_files=MAX_FILES, max_part_size=1 << 20)
    except ApiError:
        raise
    except Exception as exc:  # malformed multipart, too many files ...
        raise ApiError(400, "BAD_REQUEST", f"the form body could not be read: {exc}") from None
    try:
        uploads = form.getlist("file")
        if not uploads:
            raise ApiError(400, "MISSING_PARAMETER", "a part named 'file' is required")
        if not all(isinstance(u, UploadFile) for u in uploads):
            raise ApiError(400, "INVALID_PARAMETER", "parameter 'file' must be a file part")
        records = [
            await upload_document(context.call, upload)
            for upload in uploads
            if isinstance(upload, UploadFile)
        ]
    finally:
        await form.close()
    return [_file_object(r) for r in records]


async def download(context: Context) -> Response:
    """``GET /v1/bot-api/files/<file_path>``: a file the bot may use."""
    file_path: str = context.request.path_params.get("file_path", "")
    return await bot_file_response(context.services, context.call.bot, file_path)
