"""Two REST processes on one Redis and one S3 bucket (moto in server mode): a file
a bot uploads through one is served by the other, to the bot and to the users of
the chat it was sent to, and to no one else.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from shared.settings import Settings
from tests.api import Scene, build_scene, client_api, create_user
from tests.conftest import Process, RedisServer, rest_process, running, unique
from tests.e2e.test_api_media import png
from tests.s3server import S3Server, s3_server

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def replicas(
    redis_server: RedisServer, s3: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Process, Process]]:
    tmp = tmp_path_factory.mktemp("s3rest")
    a = rest_process(redis_server.url, tmp, "rest-a", **s3.env())
    b = rest_process(redis_server.url, tmp, "rest-b", **s3.env())
    with running(a), running(b):
        yield a, b


@pytest.fixture
async def scene(
    replicas: tuple[Process, Process], settings: Settings
) -> AsyncIterator[tuple[Scene, httpx.AsyncClient]]:
    a, b = replicas
    async with (
        httpx.AsyncClient(base_url=a.url, timeout=30) as on_a,
        httpx.AsyncClient(base_url=b.url, timeout=30) as on_b,
    ):
        yield await build_scene(on_a, settings, "s3", private=True, group="Files"), on_b


def ok(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert response.status_code == 200 and body["ok"] is True, body
    result: dict[str, object] = body["result"]
    return result


async def test_a_file_sent_through_one_replica_is_served_by_another(
    scene: tuple[Scene, httpx.AsyncClient], s3: S3Server, settings: Settings
) -> None:
    sender, on_b = scene
    bot_auth = {"Authorization": sender.as_bot.auth}
    content = b"%PDF-1.4 a report\n" * 5000
    image = png(16, 8)
    sent_document = await sender.http.post(
        "/bot/sendDocument",
        data={"chat_id": sender.group},
        files={"document": ("report.pdf", content, "application/pdf")},
        headers=bot_auth,
    )
    document = ok(sent_document)["document"]
    sent_photo = await sender.http.post(
        "/bot/sendPhoto",
        data={"chat_id": sender.bot_chat},
        files={"photo": ("dot.png", image, "image/png")},
        headers=bot_auth,
    )
    photo = ok(sent_photo)["photo"]
    assert isinstance(document, dict) and isinstance(photo, list)

    # the bytes are in the bucket, not on either replica's disk
    listed = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="media/blobs/")
    assert len(listed["Contents"]) >= 2

    for file_id, expected, kind in (
        (document["file_id"], content, "application/pdf"),
        (photo[0]["file_id"], image, "image/png"),
    ):
        info = ok(await on_b.post("/bot/getFile", json={"file_id": file_id}, headers=bot_auth))
        download = await on_b.get(f"/bot/file/{info['file_path']}", headers=bot_auth)
        assert download.status_code == 200 and download.content == expected
        assert download.headers["content-type"] == kind
        assert download.headers["x-content-type-options"] == "nosniff"

    # the group's user reads the document through the client API on B
    user_auth = {"Authorization": sender.as_user.auth}
    mine = ok(
        await on_b.post("/client/getFile", json={"file_id": document["file_id"]}, headers=user_auth)
    )
    read = await on_b.get(f"/client/file/{mine['file_path']}", headers=user_auth)
    assert read.status_code == 200 and read.content == content

    # a user outside the chat does not, on either replica
    stranger = await create_user(settings, unique("s3x"))
    stranger_auth = {"Authorization": client_api(on_b, stranger).auth}
    for http in (sender.http, on_b):
        refused = await http.get(f"/client/file/{mine['file_path']}", headers=stranger_auth)
        body = refused.json()
        assert (refused.status_code, body["code"]) == (404, "FILE_NOT_FOUND"), body


async def test_local_presigned_routes_are_not_served_with_s3(
    replicas: tuple[Process, Process], tmp_path: Path
) -> None:
    a, _ = replicas
    async with httpx.AsyncClient(base_url=a.url, timeout=30) as http:
        for response in (
            await http.put("/files/upload/x.y", content=b"1"),
            await http.get("/files/download/x.y"),
        ):
            body = response.json()
            assert (response.status_code, body["code"]) == (404, "NOT_FOUND"), body


async def test_koto_presigned_media_through_s3_on_two_replicas(
    scene: tuple[Scene, httpx.AsyncClient], s3: S3Server
) -> None:
    """Koto's sendMedia on A gives an S3 upload URL; the bytes go straight to S3;
    confirmMedia on B sends them, with an S3 download URL; the user reads the file
    through B."""
    sender, on_b = scene
    content = b"a report, not an image\n" * 3000
    asked = await sender.http.post(
        "/v1/bot/sendMedia",
        json={
            "botToken": sender.bot.token,
            "recipientFingerprint": sender.bot_chat,
            "sizeBytes": len(content),
            "contentType": "text/plain",
            "caption": "the report",
        },
    )
    assert asked.status_code == 200, asked.text
    media = asked.json()
    assert media["uploadUrl"].startswith(f"{s3.endpoint_url}/{s3.bucket}/media/uploads/")
    async with httpx.AsyncClient(timeout=30) as outside:
        put = await outside.put(media["uploadUrl"], content=content, headers=media["uploadHeaders"])
        assert put.status_code == 200, put.text

        confirmed = await on_b.post(
            "/v1/bot/confirmMedia",
            json={"botToken": sender.bot.token, "mediaId": media["mediaId"]},
        )
        assert confirmed.status_code == 200, confirmed.text
        url = confirmed.json()["downloadUrl"]
        assert url.startswith(f"{s3.endpoint_url}/{s3.bucket}/media/blobs/")
        fetched = await outside.get(url)
        assert fetched.status_code == 200 and fetched.content == content
        assert fetched.headers["content-disposition"].startswith("attachment;")

    # the upload was claimed: nothing is left under uploads/
    pending = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix="media/uploads/")
    assert pending.get("KeyCount", 0) == 0

    history = await sender.as_user("getChatHistory", chat_id=sender.private)
    (sent,) = [m for m in history if m.get("caption") == "the report"]
    user_auth = {"Authorization": sender.as_user.auth}
    info = ok(
        await on_b.post(
            "/client/getFile", json={"file_id": sent["document"]["file_id"]}, headers=user_auth
        )
    )
    read = await on_b.get(f"/client/file/{info['file_path']}", headers=user_auth)
    assert read.status_code == 200 and read.content == content
