"""Fixtures shared by the end-to-end tests of the readers (getUpdates, webhooks)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import Process, Stack
from tests.e2e.test_webhooks_receiver import Receiver, dispatcher


@pytest.fixture(scope="module")
def hooks(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    """A webhook dispatcher with fast retries, for the tests of one module."""
    process = dispatcher(stack.redis_url, tmp_path_factory.mktemp("hooks"), "webhooks").start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real local HTTP server playing a webhook receiver."""
    server = await Receiver().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def http(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the stack's REST process."""
    async with httpx.AsyncClient(base_url=stack.rest_url, timeout=30) as client:
        yield client
