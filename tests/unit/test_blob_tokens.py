"""The local store's presigned tokens, and the file store's settings."""

from __future__ import annotations

import pytest

from shared.blob_tokens import DownloadGrant, TokenSigner, UploadGrant
from shared.errors import ApiError
from shared.settings import Settings, SettingsError

UPLOAD = UploadGrant(key="med_12345678", content_type="image/png", size=10, expires_at=1000)
DOWNLOAD = DownloadGrant(
    sha256="a" * 64, filename="x.png", content_type="image/png", expires_at=1000
)


def code_of(signer: TokenSigner, token: str, *, now: float = 999, upload: bool = True) -> str:
    with pytest.raises(ApiError) as refused:
        if upload:
            signer.open_upload(token, now=now)
        else:
            signer.open_download(token, now=now)
    assert refused.value.status == 403
    return refused.value.code


def test_a_token_opens_to_what_was_signed_until_it_expires() -> None:
    signer = TokenSigner(b"secret")
    assert signer.open_upload(signer.upload_token(UPLOAD), now=999) == UPLOAD
    assert signer.open_download(signer.download_token(DOWNLOAD), now=999.9) == DOWNLOAD
    assert code_of(signer, signer.upload_token(UPLOAD), now=1000) == "URL_EXPIRED"
    assert code_of(signer, signer.download_token(DOWNLOAD), now=1001, upload=False) == (
        "URL_EXPIRED"
    )


def test_a_token_is_refused_when_changed_or_signed_by_another_secret() -> None:
    signer = TokenSigner(b"secret")
    token = signer.upload_token(UPLOAD)
    payload, mac = token.split(".")
    other = TokenSigner(b"another").upload_token(UPLOAD)
    bigger = signer.upload_token(
        UploadGrant(key=UPLOAD.key, content_type="image/png", size=10**9, expires_at=1000)
    )
    for bad in (
        other,
        f"{bigger.split('.')[0]}.{mac}",  # another grant under this mac
        payload,
        f"{payload}.",
        f".{mac}",
        "",
        "not a token",
        f"{payload}x.{mac}",
    ):
        assert code_of(signer, bad) == "URL_INVALID", bad


def test_upload_and_download_tokens_are_not_interchangeable() -> None:
    signer = TokenSigner(b"secret")
    assert code_of(signer, signer.download_token(DOWNLOAD)) == "URL_INVALID"
    assert code_of(signer, signer.upload_token(UPLOAD), upload=False) == "URL_INVALID"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("BOTGW_FILES_URL", "s3://"),
        ("BOTGW_FILES_URL", "s3://UPPER/x"),
        ("BOTGW_FILES_URL", "gs://bucket"),
        ("BOTGW_FILES_URL", "/var/files"),
        ("BOTGW_FILES_PUBLIC_URL", "files.example.com"),
        ("BOTGW_S3_ENDPOINT_URL", "minio:9000"),
        ("BOTGW_S3_PUBLIC_ENDPOINT_URL", "ftp://files"),
        ("BOTGW_FILES_URL_SECONDS", "0"),
        ("BOTGW_FILES_URL_SECONDS", "604801"),
    ],
)
def test_a_wrong_file_setting_names_its_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError) as wrong:
        Settings.from_env({variable: value})
    assert str(wrong.value).startswith(f"{variable}={value!r} is not valid: expected")


def test_file_settings() -> None:
    settings = Settings.from_env(
        {
            "BOTGW_FILES_URL": "s3://botgw-files/media",
            "BOTGW_S3_ENDPOINT_URL": "http://minio:9000/",
            "BOTGW_FILES_URL_SECONDS": "60",
        }
    )
    assert settings.files_url == "s3://botgw-files/media"
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert settings.files_url_seconds == 60
    assert Settings.from_env({}).files_url is None
