"""A real S3-compatible server for tests: moto in server mode, as a subprocess.

:func:`s3_server` starts ``python -m moto.server`` on a free port, waits until it
answers, makes a bucket and stops the server afterwards. Its
:meth:`S3Server.env` are the variables a REST process needs to use the bucket.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from botgw.devstack import wait_http_ok
from botgw.local_redis import free_port
from shared.settings import Settings

__all__ = ["S3Server", "s3_server"]

SCALE = float(os.environ.get("BOTGW_TEST_TIMEOUT_SCALE", "1"))
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """A running moto server and a bucket on it."""

    endpoint_url: str
    bucket: str

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def env(self, prefix: str = "media") -> dict[str, str]:
        """A REST process's variables for this bucket (under ``prefix``)."""
        return {
            "BOTGW_FILES_URL": f"s3://{self.bucket}/{prefix}",
            "BOTGW_S3_ENDPOINT_URL": self.endpoint_url,
            "BOTGW_S3_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def settings(self, prefix: str = "media") -> Settings:
        """Settings for this bucket; the credentials must be in the environment
        (:func:`s3_server` puts them there)."""
        return Settings.from_env(self.env(prefix))


@contextmanager
def s3_server() -> Iterator[S3Server]:
    """A moto S3 server with a fresh bucket; AWS credentials for it are set in
    this process's environment while it runs."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    try:
        url = f"http://127.0.0.1:{port}"
        if not wait_http_ok(f"{url}/moto-api/", 30 * SCALE, lambda: process.poll() is None):
            raise RuntimeError("the moto S3 server did not start")
        os.environ["AWS_ACCESS_KEY_ID"] = ACCESS_KEY
        os.environ["AWS_SECRET_ACCESS_KEY"] = SECRET_KEY
        server = S3Server(endpoint_url=url, bucket=f"botgw-{secrets.token_hex(4)}")
        server.client().create_bucket(Bucket=server.bucket)
        yield server
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        process.terminate()
        process.wait(timeout=10 * SCALE)
