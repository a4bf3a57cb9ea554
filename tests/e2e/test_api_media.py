"""Photos and documents: uploads, file_id reuse, getFile, downloads and size limits.

The size-limit tests run against a REST process of their own with small limits
(``BOTGW_MAX_PHOTO_BYTES``, ``BOTGW_MAX_DOCUMENT_BYTES``) and a files directory
they can inspect; the rest use the shared stack.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiogram import types as tg

from botgw.local_redis import LocalRedis
from shared.settings import Settings
from tests.api import Scene, build_scene, client_api, create_user, scene_at
from tests.conftest import Stack, rest_process, running, unique

pytestmark = pytest.mark.asyncio

PHOTO_LIMIT = 4096
DOCUMENT_LIMIT = 8192


def png(width: int, height: int, *, noise: bool = False) -> bytes:
    """A real PNG image; ``noise`` makes it incompressible (so it is large)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    rows = b"".join(
        b"\0" + (os.urandom(width * 3) if noise else b"\x80" * (width * 3)) for _ in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def auth(sender: Scene) -> dict[str, str]:
    return {"Authorization": sender.as_bot.auth}


async def upload(
    sender: Scene, method: str, field: str, name: str, content: bytes, mime: str, **data: Any
) -> httpx.Response:
    return await sender.http.post(
        f"/bot/{method}",
        data={k: str(v) for k, v in data.items()},
        files={field: (name, content, mime)},
        headers=auth(sender),
    )


async def make_sender(http: httpx.AsyncClient, settings: Settings) -> Scene:
    return await build_scene(http, settings, "f", private=True, group="Files")


@pytest.fixture
async def sender(stack: Stack, settings: Settings) -> AsyncIterator[Scene]:
    async with scene_at(stack.rest_url, settings, "f", private=True, group="Files") as scene:
        yield scene


def ok(response: httpx.Response) -> Any:
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True, body
    return body["result"]


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    body = response.json()
    assert (response.status_code, body["code"]) == (status, code), body
    assert body["ok"] is False and body["error_code"] == status
    return dict(body)


async def test_photo_upload_reuse_and_download(sender: Scene, settings: Settings) -> None:
    image = png(32, 24)
    sent = ok(
        await upload(
            sender,
            "sendPhoto",
            "photo",
            "cat.png",
            image,
            "image/png",
            chat_id=sender.group,
            caption="<b>cat</b>",
            parse_mode="HTML",
            reply_markup='{"inline_keyboard": [[{"text": "Like", "callback_data": "like"}]]}',
        )
    )
    message = tg.Message.model_validate(sent)
    assert message.photo is not None and len(message.photo) == 1
    size = sent["photo"][0]
    assert (size["width"], size["height"], size["file_size"]) == (32, 24, len(image))
    assert sent["caption"] == "cat" and sent["caption_entities"][0]["type"] == "bold"
    assert sent["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "like"

    again = await sender.as_bot("sendPhoto", chat_id=sender.group, photo=size["file_id"])
    assert again["photo"][0]["file_id"] == size["file_id"] and "caption" not in again

    info = await sender.as_bot("getFile", file_id=size["file_id"])
    tg.File.model_validate(info)
    assert info["file_path"] == f"photos/{size['file_id']}.png"
    assert info["file_size"] == len(image) and info["file_unique_id"] == size["file_unique_id"]
    download = await sender.http.get(f"/bot/file/{info['file_path']}", headers=auth(sender))
    assert download.status_code == 200 and download.content == image
    assert download.headers["content-type"] == "image/png"
    assert (await sender.http.get(f"/bot/file/{info['file_path']}")).status_code == 401
    refused(
        await sender.http.get("/bot/file/photos/AAAAAAAAAAAAAAAA.png", headers=auth(sender)),
        404,
        "FILE_NOT_FOUND",
    )
    history = await sender.as_user("getChatHistory", chat_id=sender.group)
    assert [m["photo"][0]["file_id"] for m in history] == [size["file_id"]] * 2
    assert history[0]["caption"] == "cat"

    # the user's app reads the file it was sent; a stranger cannot
    users = await sender.as_user("getFile", file_id=size["file_id"])
    assert users == info
    user_auth = {"Authorization": sender.as_user.auth}
    download = await sender.http.get(f"/client/file/{users['file_path']}", headers=user_auth)
    assert download.status_code == 200 and download.content == image
    stranger = client_api(sender.http, await create_user(settings, unique("fs")))
    refused(await stranger.raw("getFile", file_id=size["file_id"]), 400, "FILE_ID_INVALID")
    stranger_auth = {"Authorization": stranger.auth}
    refused(
        await sender.http.get(f"/client/file/{users['file_path']}", headers=stranger_auth),
        404,
        "FILE_NOT_FOUND",
    )


async def test_document_upload_reuse_and_download(sender: Scene) -> None:
    content = b"%PDF-1.4\n" + b"x" * 100
    sent = ok(
        await upload(
            sender,
            "sendDocument",
            "document",
            "report.pdf",
            content,
            "application/pdf",
            chat_id=sender.group,
            caption="Q3",
        )
    )
    tg.Message.model_validate(sent)
    document = sent["document"]
    assert document["file_name"] == "report.pdf" and document["mime_type"] == "application/pdf"
    assert document["file_size"] == len(content) and sent["caption"] == "Q3"
    info = await sender.as_bot("getFile", file_id=document["file_id"])
    assert info["file_path"] == f"documents/{document['file_id']}.pdf"
    download = await sender.http.get(f"/bot/file/{info['file_path']}", headers=auth(sender))
    assert download.content == content
    reused = await sender.as_bot(
        "sendDocument", chat_id=sender.group, document=document["file_id"], caption="again"
    )
    assert reused["document"] == document
    # a document is no photo; any photo can be sent as a document
    refused(
        await sender.as_bot.raw("sendPhoto", chat_id=sender.group, photo=document["file_id"]),
        400,
        "PHOTO_INVALID",
    )
    same = ok(
        await upload(
            sender, "sendDocument", "document", "copy.bin", content, "", chat_id=sender.group
        )
    )
    assert same["document"]["file_unique_id"] == document["file_unique_id"]
    assert same["document"]["file_id"] != document["file_id"]
    assert same["document"]["mime_type"] == "application/octet-stream"


async def test_bad_files_are_refused(sender: Scene) -> None:
    refused(
        await upload(
            sender,
            "sendPhoto",
            "photo",
            "x.png",
            b"not really a png",
            "image/png",
            chat_id=sender.group,
        ),
        400,
        "PHOTO_INVALID",
    )
    refused(
        await sender.as_bot.raw(
            "sendPhoto", chat_id=sender.group, photo="AAAAAAAAAAAAAAAAAAAAAAAA"
        ),
        400,
        "FILE_ID_INVALID",
    )
    body = refused(
        await sender.as_bot.raw("sendPhoto", chat_id=sender.group, photo="https://e.org/cat.png"),
        400,
        "INVALID_PARAMETER",
    )
    assert "'photo'" in body["description"]
    refused(await sender.as_bot.raw("sendDocument", chat_id=sender.group), 400, "MISSING_PARAMETER")
    refused(
        await upload(
            sender, "sendDocument", "document", "e.txt", b"", "text/plain", chat_id=sender.group
        ),
        400,
        "FILE_EMPTY",
    )
    refused(
        await upload(
            sender, "sendMessage", "text", "t.txt", b"hi", "text/plain", chat_id=sender.group
        ),
        400,
        "BAD_REQUEST",
    )
    refused(await sender.as_bot.raw("getFile", file_id="unknown-file"), 400, "FILE_ID_INVALID")
    assert await sender.as_user("getChatHistory", chat_id=sender.group) == []


@dataclass
class SmallLimits:
    url: str
    files: Path


@pytest.fixture(scope="module")
def small_limits(
    redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SmallLimits]:
    tmp = tmp_path_factory.mktemp("media")
    process = rest_process(
        redis_server.url,
        tmp,
        "rest-small-files",
        BOTGW_MAX_PHOTO_BYTES=str(PHOTO_LIMIT),
        BOTGW_MAX_DOCUMENT_BYTES=str(DOCUMENT_LIMIT),
        BOTGW_FILES_DIR=str(tmp / "files"),
    )
    with running(process):
        yield SmallLimits(process.url, tmp / "files")


def stored_blobs(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and p.parent.name != "incoming"]


async def test_size_limits_answer_413_and_store_nothing(
    small_limits: SmallLimits, settings: Settings
) -> None:
    async with httpx.AsyncClient(base_url=small_limits.url, timeout=30) as http:
        sender = await make_sender(http, settings)
        big_photo = png(64, 64, noise=True)
        assert len(big_photo) > PHOTO_LIMIT
        body = refused(
            await upload(
                sender,
                "sendPhoto",
                "photo",
                "big.png",
                big_photo,
                "image/png",
                chat_id=sender.group,
            ),
            413,
            "FILE_TOO_LARGE",
        )
        assert str(PHOTO_LIMIT) in body["description"]
        # a body far beyond the limit is refused as it streams in
        refused(
            await upload(
                sender,
                "sendDocument",
                "document",
                "huge.bin",
                b"\0" * (1 << 20),
                "",
                chat_id=sender.group,
            ),
            413,
            "FILE_TOO_LARGE",
        )
        document = b"d" * (DOCUMENT_LIMIT + 1)
        refused(
            await upload(
                sender, "sendDocument", "document", "d.bin", document, "", chat_id=sender.group
            ),
            413,
            "FILE_TOO_LARGE",
        )
        assert await sender.as_user("getChatHistory", chat_id=sender.group) == []
        assert stored_blobs(small_limits.files) == []
        small = png(8, 8)
        for _ in range(2):
            ok(
                await upload(
                    sender, "sendPhoto", "photo", "s.png", small, "image/png", chat_id=sender.group
                )
            )
        ok(
            await upload(
                sender,
                "sendDocument",
                "document",
                "d.bin",
                document[:DOCUMENT_LIMIT],
                "",
                chat_id=sender.group,
            )
        )
        # content-addressed: the same photo twice is stored once
        assert len(stored_blobs(small_limits.files)) == 2
