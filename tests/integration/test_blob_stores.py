"""Both blob stores' presigned flows: upload URL → a real HTTP PUT → stat → claim →
download URL → a real HTTP GET.

The S3 store runs against moto in server mode; the local store's URLs are served
by a real REST process whose files directory and secret the test's store shares,
so the test signs URLs as any replica would and REST checks them. moto does not
check presigned signatures or expiry (real S3 does: the URLs' signed headers are
checked here); what botgw enforces itself, the size at claim, is checked on both.
"""

from __future__ import annotations

import hashlib
import io
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.blob_stores import open_blob_store
from shared.blob_tokens import DownloadGrant, UploadGrant
from shared.blobs_s3 import S3BlobStore
from shared.errors import ApiError
from shared.files import BlobStore, LocalBlobStore
from shared.settings import Settings
from tests.conftest import TEST_SECRET, Process, RedisServer, rest_process, running
from tests.s3server import S3Server, s3_server

pytestmark = pytest.mark.asyncio

CONTENT = b"\x89PNG not really, but bytes" * 1000


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def local_rest(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    process = rest_process(redis_server.url, tmp_path_factory.mktemp("blobs"), "blobs")
    process.env["BOTGW_FILES_PUBLIC_URL"] = process.url
    with running(process):
        yield process


def local_store(process: Process) -> LocalBlobStore:
    """A store on the REST process's files, signing as it does."""
    root = Path(process.env["BOTGW_DATA_DIR"]) / "files"
    return LocalBlobStore(root, secret=TEST_SECRET.encode(), public_url=process.url)


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, s3: S3Server, local_rest: Process) -> BlobStore:
    if request.param == "s3":
        return S3BlobStore.from_settings(s3.settings(prefix=f"t{time.time_ns()}"))
    return local_store(local_rest)


def key() -> str:
    return f"med_{time.time_ns()}"


def refused(response: httpx.Response, status: int, code: str) -> None:
    body = response.json()
    assert (response.status_code, body["code"]) == (status, code), body
    assert body["ok"] is False and body["error_code"] == status and body["description"]


async def test_upload_claim_download(store: BlobStore) -> None:
    name = key()
    size = len(CONTENT)
    upload = await store.upload_url(name, content_type="image/png", size=size, expires_in=60)
    assert upload.method == "PUT" and upload.expires_at >= int(time.time()) + 59
    assert upload.headers == {"Content-Type": "image/png", "Content-Length": str(len(CONTENT))}
    assert await store.stat(name) is None
    async with httpx.AsyncClient(timeout=30) as http:
        put = await http.put(upload.url, content=CONTENT, headers=upload.headers)
        assert put.status_code == 200, put.text
        pending = await store.stat(name)
        assert pending is not None
        assert (pending.size, pending.content_type) == (len(CONTENT), "image/png")

        blob = await store.claim(name, size=len(CONTENT))
        assert blob.sha256 == hashlib.sha256(CONTENT).hexdigest()
        assert blob.size == len(CONTENT) and await store.size(blob.sha256) == len(CONTENT)
        assert await store.stat(name) is None  # claimed: the pending upload is gone
        with pytest.raises(ApiError) as again:
            await store.claim(name, size=len(CONTENT))
        assert (again.value.status, again.value.code) == (400, "MEDIA_NOT_UPLOADED")
        assert b"".join([c async for c in store.read(blob.sha256)]) == CONTENT

        url = await store.download_url(
            blob.sha256, expires_in=60, filename="shot 1.png", content_type="image/png"
        )
        got = await http.get(url)
        assert got.status_code == 200 and got.content == CONTENT
        assert got.headers["content-type"] == "image/png"
        disposition = got.headers["content-disposition"]
        assert disposition.startswith("attachment;") and "shot%201.png" in disposition

        # a type that is no plain media type is not served as given
        odd = await store.download_url(
            blob.sha256, expires_in=60, content_type="text/html\r\nX-Evil: 1"
        )
        served = await http.get(odd)
        assert served.status_code == 200 and "x-evil" not in served.headers
        assert served.headers["content-type"] == "application/octet-stream"


async def test_same_content_is_stored_once(store: BlobStore) -> None:
    """A claimed upload and a put of the same bytes are one content."""
    put = await store.put(io.BytesIO(CONTENT + b"once"))
    name = key()
    upload = await store.upload_url(
        name, content_type="application/pdf", size=put.size, expires_in=60
    )
    async with httpx.AsyncClient(timeout=30) as http:
        sent = await http.put(upload.url, content=CONTENT + b"once", headers=upload.headers)
        assert sent.status_code == 200, sent.text
    assert await store.claim(name, size=put.size) == put


async def test_claim_refuses_another_size_and_discards_it(store: BlobStore) -> None:
    name = key()
    with pytest.raises(ApiError) as nothing:
        await store.claim(name, size=5)
    assert nothing.value.code == "MEDIA_NOT_UPLOADED"
    upload = await store.upload_url(name, content_type="text/plain", size=5, expires_in=60)
    assert await _put_anyway(store, upload.url, b"12345") == 200
    with pytest.raises(ApiError) as mismatch:
        await store.claim(name, size=4)  # the caller announced 4: not what came
    assert (mismatch.value.status, mismatch.value.code) == (400, "MEDIA_SIZE_MISMATCH")
    assert await store.stat(name) is None
    await store.discard(name)  # nothing there: no error


async def _put_anyway(store: BlobStore, url: str, body: bytes) -> int:
    async with httpx.AsyncClient(timeout=30) as http:
        headers = {"Content-Type": "text/plain"}
        return (await http.put(url, content=body, headers=headers)).status_code


async def test_arguments_out_of_range_raise(store: BlobStore) -> None:
    bad: list[dict[str, Any]] = [
        {"key": "x", "content_type": "image/png", "size": 1, "expires_in": 60},
        {"key": key(), "content_type": "image/png; x=1", "size": 1, "expires_in": 60},
        {"key": key(), "content_type": "image/png", "size": 0, "expires_in": 60},
        {"key": key(), "content_type": "image/png", "size": 1, "expires_in": 8 * 86_400},
    ]
    for args in bad:
        with pytest.raises(ValueError):
            await store.upload_url(args.pop("key"), **args)
    with pytest.raises(ValueError):
        await store.download_url("../etc/passwd", expires_in=60)


async def test_s3_urls_sign_type_length_and_expiry(s3: S3Server) -> None:
    """What real S3 enforces is in the signature: the type, the length, the expiry."""
    store = S3BlobStore.from_settings(s3.settings())
    upload = await store.upload_url(key(), content_type="image/png", size=42, expires_in=120)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(upload.url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["120"]
    assert set(query["X-Amz-SignedHeaders"][0].split(";")) == {
        "content-length",
        "content-type",
        "host",
    }
    assert urllib.parse.urlsplit(upload.url).path.startswith(f"/{s3.bucket}/media/uploads/")


async def test_s3_public_endpoint_in_urls(s3: S3Server) -> None:
    public = "https://files.example.test"
    env = {**s3.env(), "BOTGW_S3_PUBLIC_ENDPOINT_URL": public}
    store = S3BlobStore.from_settings(Settings.from_env(env))
    upload = await store.upload_url(key(), content_type="image/png", size=1, expires_in=60)
    assert upload.url.startswith(f"{public}/{s3.bucket}/media/uploads/")
    blob = await store.put(io.BytesIO(b"public"))  # the work still goes to the endpoint
    assert await store.size(blob.sha256) == 6


async def test_s3_unreachable_is_503() -> None:
    env = {
        "BOTGW_FILES_URL": "s3://botgw-nowhere",
        "BOTGW_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        "BOTGW_S3_REGION": "us-east-1",
    }
    store = S3BlobStore.from_settings(Settings.from_env(env))
    with pytest.raises(ApiError) as failed:
        await store.size("0" * 64)
    assert (failed.value.status, failed.value.code) == (503, "FILE_STORE_UNAVAILABLE")


async def test_open_blob_store_picks_the_store(s3: S3Server, tmp_path: Path) -> None:
    assert isinstance(open_blob_store(s3.settings(), secret=b"s"), S3BlobStore)
    local = open_blob_store(
        Settings.from_env({"BOTGW_DATA_DIR": str(tmp_path), "BOTGW_PUBLIC_REST_URL": "http://a"}),
        secret=b"s",
    )
    assert isinstance(local, LocalBlobStore) and local.public_url == "http://a"
    assert local.root == tmp_path / "files"


# -- the local store's routes refuse what their token does not allow --------------


async def test_local_upload_refusals_store_nothing(local_rest: Process) -> None:
    store = local_store(local_rest)
    name = key()
    upload = await store.upload_url(name, content_type="image/png", size=10, expires_in=60)
    token = upload.url.rsplit("/", 1)[1]
    expired = store.signer.upload_token(
        UploadGrant(key=name, content_type="image/png", size=10, expires_at=int(time.time()) - 1)
    )
    payload, mac = token.split(".")
    tampered = f"{payload[:-2]}{'A' if payload[-2] != 'A' else 'B'}{payload[-1]}.{mac}"
    png = {"Content-Type": "image/png"}
    async with httpx.AsyncClient(base_url=local_rest.url, timeout=30) as http:
        cases = [
            (f"/files/upload/{tampered}", b"0123456789", png, 403, "URL_INVALID"),
            (f"/files/upload/{token}x", b"0123456789", png, 403, "URL_INVALID"),
            (f"/files/upload/{expired}", b"0123456789", png, 403, "URL_EXPIRED"),
            (
                f"/files/upload/{token}",
                b"0123456789",
                {"Content-Type": "text/html"},
                400,
                "CONTENT_TYPE_MISMATCH",
            ),
            (f"/files/upload/{token}", b"0123456789A", png, 413, "FILE_TOO_LARGE"),
            (f"/files/upload/{token}", b"012345678", png, 400, "MEDIA_SIZE_MISMATCH"),
        ]
        for path, body, headers, status, code in cases:
            refused(await http.put(path, content=body, headers=headers), status, code)
            assert await store.stat(name) is None, code
        # a download token is no upload token, nor the other way round
        download = await store.download_url("0" * 64, expires_in=60)
        refused(
            await http.put(f"/files/upload/{download.rsplit('/', 1)[1]}", content=b"x"),
            403,
            "URL_INVALID",
        )
        refused(await http.get(f"/files/download/{token}"), 403, "URL_INVALID")
        assert not (store.root / "uploads" / name).exists()
        assert (await http.put(upload.url, content=b"0123456789", headers=png)).status_code == 200
        assert await store.stat(name) is not None


async def test_local_download_refusals(local_rest: Process) -> None:
    store = local_store(local_rest)
    blob = await store.put(io.BytesIO(b"<html><script>alert(1)</script></html>"))
    url = await store.download_url(blob.sha256, expires_in=60, content_type="text/html")
    expired = store.signer.download_token(
        DownloadGrant(
            sha256=blob.sha256,
            filename="a",
            content_type="text/html",
            expires_at=int(time.time()) - 1,
        )
    )
    other_secret = LocalBlobStore(store.root, secret=b"another secret", public_url=store.public_url)
    forged = await other_secret.download_url(blob.sha256, expires_in=60)
    async with httpx.AsyncClient(timeout=30) as http:
        got = await http.get(url)
        assert got.status_code == 200 and got.headers["x-content-type-options"] == "nosniff"
        assert got.headers["content-security-policy"].startswith("sandbox")
        assert got.headers["content-disposition"].startswith("attachment;")
        refused(await http.get(f"{local_rest.url}/files/download/{expired}"), 403, "URL_EXPIRED")
        refused(await http.get(forged), 403, "URL_INVALID")
        missing = await store.download_url("f" * 64, expires_in=60)
        refused(await http.get(missing), 404, "FILE_NOT_FOUND")
