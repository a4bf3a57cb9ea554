"""The TypeScript agent client (``clients/typescript``) against the real stack.

Runs the package's node:test suites: the unit tests, then the integration tests
with this session's stack described in ``BOTGW_TS_*`` variables
(``clients/typescript/test/integration/stack.ts``): the REST and gateway
addresses, a user and a bot made here, and two gateway processes of their own for
the drain (SIGTERM) and kill (SIGKILL) tests, which the Node side signals while
updates flow. Afterwards the drained worker must have exited cleanly and the
killed one by SIGKILL, so a test that did not do what it says fails here too.

Skipped, saying why, without Node.js 18 or newer (and npm, the first time, for
``npm ci``); ``.ci/run`` installs Debian's ``nodejs`` and ``npm`` when missing.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shared.settings import Settings
from tests.api import create_bot, create_user
from tests.conftest import SCALE, Process, Stack, unique, wait_s

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"
SCHEMA = ROOT / "docs" / "protocol.schema.json"
VECTORS = ROOT / "docs" / "protocol-vectors" / "frames"
INSTALL = "install Node.js 18 or newer (Debian: apt-get install nodejs npm; .ci/run does it)"

# the integration tests that run only where the schema is (one per test file)
SCHEMA_TESTS = 2


def node_problem(package: Path = PACKAGE) -> str | None:
    """Why the JavaScript package at ``package`` (by default the TypeScript client)
    cannot be tested here, or None."""
    node = shutil.which("node")
    if node is None:
        return "node is not installed"
    version = subprocess.run(
        [node, "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout.strip()
    match = re.fullmatch(r"v(\d+)\.(\d+)\.\d+.*", version)
    if match is None or int(match.group(1)) < 18:
        return f"node {version or '(no version)'} is older than 18"
    if not (package / "node_modules").is_dir() and shutil.which("npm") is None:
        return "npm is not installed (needed once for npm ci)"
    return None


def run(command: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    """``command`` in the package directory; its output, or the test fails with it."""
    done = subprocess.run(
        command,
        cwd=PACKAGE,
        env=env,
        capture_output=True,
        text=True,
        timeout=wait_s(timeout),
        check=False,
    )
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {done.returncode}:\n{output[-6000:]}")
    return output


@pytest.fixture(scope="module")
def built() -> Path:
    """The package installed (``npm ci`` once, from package-lock.json) and compiled."""
    problem = node_problem()
    if problem is not None:
        pytest.skip(f"TypeScript client not tested: {problem}; {INSTALL}")
    if not (PACKAGE / "node_modules").is_dir():
        run(["npm", "ci", "--no-audit", "--no-fund"], timeout=600)
    run(["node", "node_modules/typescript/bin/tsc", "-p", "tsconfig.json"], timeout=300)
    return PACKAGE


@dataclass
class Summary:
    """The closing counts of a node:test run (TAP reporter)."""

    passed: int
    failed: int
    skipped: int
    output: str


def node_tests(pattern: str, env: dict[str, str], *, timeout: float) -> Summary:
    files = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.glob(pattern))
    assert files, f"no test files match {pattern} in {PACKAGE}"
    done = subprocess.run(
        ["node", "--test", "--test-reporter=tap", *files],
        cwd=PACKAGE,
        env=env,
        capture_output=True,
        text=True,
        timeout=wait_s(timeout),
        check=False,
    )
    output = done.stdout + done.stderr

    def count(name: str) -> int:
        found = re.findall(rf"^# {name} (\d+)$", output, flags=re.MULTILINE)
        assert found, f"no '# {name}' line in the node:test output:\n{output[-6000:]}"
        return int(found[-1])

    summary = Summary(count("pass"), count("fail"), count("skipped"), output)
    if done.returncode != 0 or summary.failed:
        print(output)  # all of it, in the captured output of the failed test
        failures = "\n".join(
            line for line in output.splitlines() if line.lstrip().startswith("not ok")
        )
        pytest.fail(f"node --test exited {done.returncode}, {summary.failed} failed:\n{failures}")
    return summary


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTGW_")}
    env["BOTGW_TS_TIMEOUT_SCALE"] = str(SCALE)
    env["BOTGW_TS_TRACE"] = "1"  # connection events on stderr, shown if a test fails
    return env


@pytest.mark.timeout(900)
def test_unit_tests_of_the_client(built: Path) -> None:
    summary = node_tests("dist/test/unit/*.test.js", base_env(), timeout=300)
    # the schema and vector checks run wherever the repository has them
    missing = (0 if SCHEMA.exists() else 1) + (0 if VECTORS.is_dir() else 2)
    assert summary.skipped == missing, summary.output[-6000:]
    assert summary.passed >= 30


@pytest.fixture
def own_gateways(stack: Stack) -> Iterator[tuple[Process, Process]]:
    """Two gateway processes the Node side may signal: one to drain, one to kill."""
    drain = stack.new_gateway(
        unique("ts-drain-"), BOTGW_HEARTBEAT_INTERVAL="5", BOTGW_DRAIN_SECONDS="3"
    )
    kill = stack.new_gateway(unique("ts-kill-"), BOTGW_HEARTBEAT_INTERVAL="5")
    for worker in (drain, kill):
        worker.start()
    try:
        for worker in (drain, kill):
            worker.wait_healthy()
        yield drain, kill
    finally:
        for worker in (drain, kill):
            worker.stop()


@pytest.mark.timeout(900)
async def test_the_client_against_the_stack(
    built: Path, stack: Stack, settings: Settings, own_gateways: tuple[Process, Process]
) -> None:
    drain, kill = own_gateways
    assert drain.proc is not None and kill.proc is not None
    user = await create_user(settings, unique("tsu"))
    bot = await create_bot(settings, user, unique("tsb") + "_bot")
    env = base_env()
    env.update(
        BOTGW_TS_REST_URL=stack.rest_url,
        BOTGW_TS_GATEWAY_URL=stack.ws_url,
        BOTGW_TS_USER_TOKEN=user.token,
        BOTGW_TS_BOT_TOKEN=bot.token,
        BOTGW_TS_BOT_USERNAME=bot.username,
        BOTGW_TS_DRAIN_URL=drain.ws_url,
        BOTGW_TS_DRAIN_PID=str(drain.proc.pid),
        BOTGW_TS_KILL_URL=kill.ws_url,
        BOTGW_TS_KILL_PID=str(kill.proc.pid),
    )
    summary = await asyncio.to_thread(
        node_tests, "dist/test/integration/*.test.js", env, timeout=600
    )
    assert summary.skipped == (0 if SCHEMA.exists() else SCHEMA_TESTS), summary.output[-6000:]
    assert summary.passed >= 10
    # the Node side did signal the workers, while its clients were on them
    assert await asyncio.to_thread(drain.proc.wait, wait_s(30)) == 0
    assert await asyncio.to_thread(kill.proc.wait, wait_s(30)) == -signal.SIGKILL
