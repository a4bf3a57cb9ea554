"""Settings: ``BOTGW_`` environment variables, read once into a frozen object.

Build them in ``main`` with :meth:`Settings.from_env` and pass them down; nothing
reads the environment at import time. A bad value raises :class:`SettingsError`
naming the variable and the expected form.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from shared.redis_url import parse_redis_url

__all__ = ["Settings", "SettingsError"]


class SettingsError(ValueError):
    """A ``BOTGW_`` variable has a value that cannot be used."""


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text.strip())
        if not lo <= value <= hi:
            raise ValueError
        return value

    parse.__doc__ = f"an integer from {lo} to {hi}"
    return parse


def _float(lo: float, hi: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text.strip())
        if not lo <= value <= hi:
            raise ValueError
        return value

    parse.__doc__ = f"a number from {lo} to {hi}"
    return parse


def _bool(text: str) -> bool:
    """one of 1, 0, true, false, yes, no, on, off"""
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError


def _str(text: str) -> str:
    """a non-empty string"""
    if not text.strip():
        raise ValueError
    return text.strip()


def _delays(text: str) -> tuple[float, ...]:
    """comma-separated seconds, e.g. 5,15,45"""
    values = tuple(float(part) for part in text.split(",") if part.strip())
    if not values or any(v < 0 or v > 86400 for v in values):
        raise ValueError
    return values


def _networks(text: str) -> tuple[str, ...]:
    """comma-separated host names, IP addresses or CIDR networks"""
    items = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    for item in items:
        if "/" in item:
            ipaddress.ip_network(item, strict=False)
    return items


def _redis_url(text: str) -> str:
    """a Redis URL"""
    text = text.strip()
    parse_redis_url(text)  # its ValueError names the variable and says what is wrong
    return text


def _log_format(text: str) -> str:
    """json or text"""
    value = text.strip().lower()
    if value not in ("json", "text"):
        raise ValueError
    return value


def _http_url(text: str) -> str:
    """an http:// or https:// URL"""
    value = text.strip().rstrip("/")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError
    return value


_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def _files_url(text: str) -> str:
    """s3://<bucket>[/<prefix>], a bucket of 3-63 lowercase letters, digits, dots, dashes"""
    value = text.strip()
    parts = urllib.parse.urlsplit(value)
    if parts.scheme != "s3" or not _BUCKET_RE.match(parts.netloc) or parts.query:
        raise ValueError
    return value


def _setting(default: Any, parse: Callable[[str], Any]) -> Any:
    return field(default=default, metadata={"parse": parse})


@dataclass(frozen=True, slots=True)
class Settings:
    """Every knob of botgw. Field ``name`` is read from ``BOTGW_NAME``."""

    redis_url: str | None = _setting(None, _redis_url)
    redis_timeout: float = _setting(2.0, _float(0.05, 600))
    redis_wait_replicas: int = _setting(0, _int(0, 64))
    data_dir: str = _setting(".data", _str)
    rest_host: str = _setting("127.0.0.1", _str)
    rest_port: int = _setting(8080, _int(0, 65535))
    # a request's line and headers must arrive within this many seconds of its
    # first byte (of the connection, for its first request); a body may pause
    # for at most rest_body_timeout between two reads
    rest_header_timeout: float = _setting(10.0, _float(0.05, 3600))
    rest_body_timeout: float = _setting(30.0, _float(0.05, 3600))
    rest_keepalive_timeout: int = _setting(75, _int(1, 3600))
    # connections (or running requests) per worker before new requests get 503 (0: no cap)
    rest_max_connections: int = _setting(4096, _int(0, 10_000_000))
    # /metrics on a port of its own (unset: not served there); host: the REST host
    rest_metrics_port: int | None = _setting(None, _int(1, 65535))
    rest_metrics_host: str | None = _setting(None, _str)
    rest_metrics_on_api_port: bool = _setting(False, _bool)
    # SIGTERM: how long the requests in flight may take to finish before they are
    # cut (unset: the long-poll maximum plus 5 s, see rest_drain_grace)
    rest_drain_seconds: float | None = _setting(None, _float(0.0, 3600))
    gateway_host: str = _setting("127.0.0.1", _str)
    gateway_port: int = _setting(8081, _int(0, 65535))
    public_rest_url: str | None = _setting(None, _str)
    public_gateway_url: str | None = _setting(None, _str)
    secret: str | None = _setting(None, _str)
    retention_seconds: int = _setting(86_400, _int(60, 30 * 86_400))
    log_maxlen: int = _setting(100_000, _int(100, 100_000_000))
    # chat history: the most messages kept per chat, and for how long (0: no bound)
    chat_history_max_messages: int = _setting(100_000, _int(0, 100_000_000))
    chat_history_retention_days: int = _setting(365, _int(0, 36_500))
    heartbeat_interval: float = _setting(30.0, _float(0.05, 3600))
    identify_timeout: float = _setting(10.0, _float(0.05, 600))
    drain_seconds: float = _setting(10.0, _float(0.0, 3600))
    ws_max_frame_bytes: int = _setting(65_536, _int(1024, 16 * 1024 * 1024))
    ws_max_frames_per_second: float = _setting(50.0, _float(1, 100_000))
    ws_send_buffer_bytes: int = _setting(1 << 20, _int(4096, 1 << 30))
    ws_max_connections_per_bot: int = _setting(100, _int(1, 1_000_000))
    ws_identify_per_minute: int = _setting(120, _int(1, 1_000_000))
    ws_compression: bool = _setting(False, _bool)
    # sockets that have not identified yet, per peer address (0: no cap) and per worker
    ws_max_unidentified_per_peer: int = _setting(64, _int(0, 10_000_000))
    ws_max_unidentified: int = _setting(10_000, _int(1, 10_000_000))
    # how often open sockets' tokens are all compared with the stored ones (a safety
    # net: rotations and revocations are announced, and announcements lost with a
    # pub/sub connection are made up for when it is back)
    ws_credentials_recheck_seconds: float = _setting(60.0, _float(0.05, 3600))
    backlog_interval_seconds: float = _setting(10.0, _float(0.1, 3600))
    rate_global_per_second: float = _setting(30.0, _float(0.01, 1_000_000))
    rate_private_per_second: float = _setting(1.0, _float(0.01, 1_000_000))
    rate_private_burst: int = _setting(3, _int(1, 1_000_000))
    rate_group_per_minute: float = _setting(20.0, _float(0.01, 1_000_000))
    # users (client API): writing calls per user, and messages per chat from all users
    client_rate_per_second: float = _setting(10.0, _float(0.01, 1_000_000))
    client_rate_burst: int = _setting(20, _int(1, 1_000_000))
    client_chat_rate_per_second: float = _setting(30.0, _float(0.01, 1_000_000))
    client_chat_rate_burst: int = _setting(60, _int(1, 1_000_000))
    max_photo_bytes: int = _setting(10 * 1024 * 1024, _int(1024, 1 << 34))
    max_document_bytes: int = _setting(50 * 1024 * 1024, _int(1024, 1 << 34))
    files_dir: str | None = _setting(None, _str)
    webhook_timeout: float = _setting(5.0, _float(0.05, 120))
    webhook_retry_delays: tuple[float, ...] = _setting((5.0, 15.0, 45.0), _delays)
    webhook_allow: tuple[str, ...] = _setting((), _networks)
    long_poll_max_timeout: float = _setting(60.0, _float(0, 3600))
    # one JSON object per log line, or a readable line (development)
    log_format: str = _setting("json", _log_format)
    # file storage: unset, files are in files_dir (one replica, or a shared volume);
    # s3://bucket/prefix, in an S3-compatible bucket every replica shares
    files_url: str | None = _setting(None, _files_url)
    # the base URL of the local store's presigned links (unset: public_rest_url,
    # else http://rest_host:rest_port)
    files_public_url: str | None = _setting(None, _http_url)
    # how long a presigned upload or download URL is valid
    files_url_seconds: int = _setting(900, _int(1, 7 * 86_400))
    # S3: the endpoint (unset: AWS), the endpoint in presigned URLs (unset: the
    # same), the region; credentials from the AWS_* variables or boto3's chain
    s3_endpoint_url: str | None = _setting(None, _http_url)
    s3_public_endpoint_url: str | None = _setting(None, _http_url)
    s3_region: str | None = _setting(None, _str)
    # gateway: how often the head of every quiet feed is looked at (a safety net for
    # wake-ups; one lost with a pub/sub connection is made up for when it is back)
    ws_wakeup_sweep_seconds: float = _setting(30.0, _float(0.05, 3600))
    # gateway: how long a worker's live-reader lease lasts unrenewed (renewed every
    # third of it); unset: three heartbeat intervals, at least 30 s
    ws_reader_ttl_seconds: float | None = _setting(None, _float(0.3, 86_400))
    # Ed25519 sign-in (/client/auth/*): how long a challenge may be answered, the
    # name signed into it (unset: the host of public_rest_url, else the Host
    # header the challenge was asked under), and the challenges a minute one key
    # and one client address may ask for (bursts of as many)
    auth_challenge_ttl_seconds: int = _setting(120, _int(10, 3600))
    auth_audience: str | None = _setting(None, _str)
    auth_key_per_minute: int = _setting(10, _int(1, 1_000_000))
    auth_peer_per_minute: int = _setting(60, _int(1, 1_000_000))
    # the system bot acts for a user only on a message or button press of theirs
    # this recent; its own process reads its token from system_bot_token
    system_bot_window_seconds: int = _setting(300, _int(10, 3600))
    system_bot_token: str | None = _setting(None, _str)
    # the system bot deletes the messages that show a token this long after (0: keeps them)
    system_bot_token_message_seconds: int = _setting(600, _int(0, 30 * 86_400))

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Read ``BOTGW_*`` variables; ``overrides`` win over the environment."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            var = "BOTGW_" + f.name.upper()
            if f.name in overrides:
                values[f.name] = overrides[f.name]
                continue
            raw = environ.get(var)
            if raw is None or raw == "":
                continue
            parse = f.metadata["parse"]
            try:
                values[f.name] = parse(raw)
            except ValueError as exc:
                if str(exc).startswith(var):  # the parser said it all
                    raise SettingsError(str(exc)) from None
                expected = (parse.__doc__ or "a valid value").strip()
                raise SettingsError(f"{var}={raw!r} is not valid: expected {expected}") from None
        return cls(**values)

    @property
    def rest_drain_grace(self) -> float:
        """How long a draining REST worker lets its requests finish: the setting, or
        enough for the longest long poll a client may ask for, and a margin."""
        if self.rest_drain_seconds is not None:
            return self.rest_drain_seconds
        return self.long_poll_max_timeout + 5.0

    @property
    def files_path(self) -> str:
        return self.files_dir or f"{self.data_dir}/files"
