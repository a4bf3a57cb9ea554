"""REST's limits and metrics, against real ``botgw rest`` processes.

Slow and stalled clients are closed while others are served, requests over the
connection cap get ``503 OVERLOADED``, ``/metrics`` is on its own bind (on the API
port only when asked for), every API error is counted under bounded labels, and
the dev stack tells each child every port it chose.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from botgw.local_redis import LocalRedis, free_port
from rest.methods import BOT_METHODS, CLIENT_METHODS, MANAGE_METHODS
from shared.settings import Settings
from tests.api import BotAccount, create_bot, create_user
from tests.conftest import Process, process_env, rest_process, unique, wait_s

# every deadline of the processes under test is a multiple of this
HEADER_TIMEOUT = wait_s(2.0)
BODY_TIMEOUT = wait_s(1.0)

REQUESTS = "botgw_rest_requests_total"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Rest:
    """One ``botgw rest`` process and where its metrics are."""

    process: Process
    metrics_url: str

    @property
    def url(self) -> str:
        return self.process.url


def _start_rest(
    redis: LocalRedis, tmp: Path, name: str, *, workers: int = 1, **env: str
) -> Process:
    process = rest_process(redis.url, tmp, name, "--workers", str(workers), **env)
    process.start()
    try:
        process.wait_healthy()
    except BaseException:
        process.kill()
        raise
    return process


@pytest.fixture(scope="module")
def limited(redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rest]:
    """REST with short deadlines and /metrics on a port of its own."""
    metrics_port = free_port()
    process = _start_rest(
        redis_server,
        tmp_path_factory.mktemp("hardening"),
        "rest-limited",
        BOTGW_REST_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        BOTGW_REST_BODY_TIMEOUT=str(BODY_TIMEOUT),
        BOTGW_REST_METRICS_PORT=str(metrics_port),
    )
    try:
        yield Rest(process, f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        process.stop()


@pytest.fixture
async def bot(settings: Settings) -> BotAccount:
    owner = await create_user(settings, unique("hard"))
    return await create_bot(settings, owner, unique("hard") + "_bot")


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=wait_s(10)) as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def requests(samples: Samples, api: str, method: str, status: int) -> float:
    labels = (("api", api), ("method", method), ("status", str(status)))
    return samples.get((REQUESTS, labels), 0.0)


def timings(samples: Samples, api: str, method: str, kind: int) -> float:
    labels = (("api", api), ("method", method), ("status", f"{kind}xx"))
    return samples.get(("botgw_rest_request_duration_seconds_count", labels), 0.0)


def closed(samples: Samples, reason: str) -> float:
    return samples.get(("botgw_rest_connections_closed_total", (("reason", reason),)), 0.0)


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    """What the server sent until it closed the connection."""
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except ConnectionError:
        pass
    return data


async def _trickle(writers: list[asyncio.StreamWriter], head: bytes, stop: asyncio.Event) -> None:
    """One more byte of a never-ending header on every socket, each second."""
    sent = 1  # the first byte went with the connect
    while not stop.is_set():
        await asyncio.sleep(1.0)
        byte = head[sent : sent + 1] or b"a"
        sent += 1
        for writer in writers:
            if not writer.is_closing():
                try:
                    writer.write(byte)
                except ConnectionError:
                    writer.close()


async def test_slow_headers_are_closed_while_others_are_served(
    limited: Rest, bot: BotAccount
) -> None:
    before = await scrape(limited.metrics_url)
    head = b"GET /healthz HTTP/1.1\r\nhost: rest\r\nx-slow: "
    slow: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(300):
        reader, writer = await asyncio.open_connection("127.0.0.1", limited.process.port)
        writer.write(head[:1])
        slow.append((reader, writer))
    # and sockets that never send a byte
    silent = [await asyncio.open_connection("127.0.0.1", limited.process.port) for _ in range(20)]
    answers = [asyncio.create_task(_read_all(reader)) for reader, _ in slow]
    silences = [asyncio.create_task(_read_all(reader)) for reader, _ in silent]
    stop = asyncio.Event()
    writers = [writer for _, writer in slow]
    trickle = asyncio.create_task(_trickle(writers, head, stop))
    try:
        # meanwhile, a normal client is served, on new connections each time
        for _ in range(10):
            async with httpx.AsyncClient(base_url=limited.url, timeout=wait_s(10)) as http:
                me = await http.get("/bot/getMe", headers={"Authorization": f"Bot {bot.token}"})
                assert me.status_code == 200 and me.json()["result"]["username"] == bot.username
        still_open = sum(not task.done() for task in answers)
        assert still_open > 0, "the slow sockets were closed before the normal client was served"

        _, pending = await asyncio.wait([*answers, *silences], timeout=wait_s(30))
        assert not pending, f"{len(pending)} slow sockets are still open"
    finally:
        stop.set()
        await trickle
        for _, writer in [*slow, *silent]:
            writer.close()
    # the slow ones had started a request: they are told why; the silent ones are not
    for task in answers:
        assert task.result().startswith(b"HTTP/1.1 408 "), task.result()[:100]
    assert all(task.result() == b"" for task in silences)
    after = await scrape(limited.metrics_url)
    assert closed(after, "header_timeout") - closed(before, "header_timeout") == 320


async def test_a_stalled_body_is_closed_and_a_slow_steady_one_is_not(
    limited: Rest, bot: BotAccount
) -> None:
    before = await scrape(limited.metrics_url)
    body = json.dumps({"chat_id": "1", "text": "x" * 40}).encode()
    # the first bytes of the body, then nothing
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.process.port)
    writer.write(
        f"POST /bot/sendMessage HTTP/1.1\r\nhost: rest\r\nauthorization: Bot {bot.token}\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n".encode()
        + body[:10]
    )
    answer = await asyncio.wait_for(_read_all(reader), timeout=wait_s(30))
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    after = await scrape(limited.metrics_url)
    assert closed(after, "body_timeout") - closed(before, "body_timeout") == 1

    # a body that keeps coming, in pauses shorter than the deadline, takes longer
    # than the deadline in all and is read to the end
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.process.port)
    writer.write(
        f"POST /bot/getMe HTTP/1.1\r\nhost: rest\r\nauthorization: Bot {bot.token}\r\n"
        f"content-type: application/json\r\ncontent-length: 8\r\nconnection: close\r\n\r\n".encode()
    )
    for byte in b'{"a": 1}':  # 8 pauses of a quarter of the deadline: twice it in all
        await asyncio.sleep(BODY_TIMEOUT / 4)
        writer.write(bytes([byte]))
    answer = await asyncio.wait_for(_read_all(reader), timeout=wait_s(30))
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
    assert bot.username.encode() in answer


async def test_metrics_are_on_their_own_bind_only(limited: Rest) -> None:
    async with httpx.AsyncClient(timeout=wait_s(10)) as http:
        on_api = await http.get(f"{limited.url}/metrics")
        assert on_api.status_code == 404 and on_api.json()["code"] == "NOT_FOUND"
        own = await http.get(limited.metrics_url)
    assert own.status_code == 200
    assert own.headers["content-type"].startswith("text/plain")
    assert "botgw_rest_requests_total" in own.text
    assert "botgw_rest_connections_closed_total" in own.text


async def test_every_api_error_is_counted(limited: Rest, bot: BotAccount) -> None:
    before = await scrape(limited.metrics_url)
    telegram_token = bot.token.removeprefix("bot_")
    auth = {"Authorization": f"Bot {bot.token}"}
    async with httpx.AsyncClient(base_url=limited.url, timeout=wait_s(10)) as http:
        # native: bad parameters, a bad token, an unknown method, a wrong HTTP method
        bad = await http.post("/bot/sendMessage", json={"text": "no chat"}, headers=auth)
        assert bad.status_code == 400
        unauthorized = await http.post("/bot/getMe", headers={"Authorization": "Bot 1:nope"})
        assert unauthorized.status_code == 401
        assert (await http.post("/bot/noSuchMethod", headers=auth)).status_code == 404
        assert (await http.put("/bot/getMe", headers=auth)).status_code == 405
        assert (await http.post("/client/getMe")).status_code == 401
        assert (await http.get("/bot/file/nothing/here", headers=auth)).status_code == 404
        # no route at all
        assert (await http.get("/nowhere")).status_code == 404
        # the Telegram dialect: a bad token, an unknown method, a wrong HTTP method
        assert (await http.post("/bot1:nope/getMe")).status_code == 401
        assert (await http.post(f"/bot{telegram_token}/getme")).status_code == 200
        assert (await http.put(f"/bot{telegram_token}/sendMessage")).status_code == 405
        assert (await http.get(f"/file/bot{telegram_token}/nothing")).status_code == 404
        # and successes, for comparison
        assert (await http.post("/bot/getMe", headers=auth)).status_code == 200
    after = await scrape(limited.metrics_url)
    classes: Counter[tuple[str, str, int]] = Counter()
    for api, method, status in (
        ("bot", "sendMessage", 400),
        ("bot", "getMe", 401),
        ("bot", "other", 404),
        ("bot", "getMe", 405),
        ("client", "getMe", 401),
        ("bot", "file", 404),
        ("other", "other", 404),
        ("telegram", "getMe", 401),
        ("telegram", "getMe", 200),
        ("telegram", "sendMessage", 405),
        ("telegram", "file", 404),
        ("bot", "getMe", 200),
    ):
        counted = requests(after, api, method, status) - requests(before, api, method, status)
        assert counted == 1, (api, method, status)
        classes[(api, method, status // 100)] += 1
    for (api, method, kind), expected in classes.items():  # and timed, by status class
        timed = timings(after, api, method, kind) - timings(before, api, method, kind)
        assert timed == expected, (api, method, kind)


async def test_method_labels_stay_bounded(limited: Rest, bot: BotAccount) -> None:
    telegram_token = bot.token.removeprefix("bot_")
    names = [f"m{secrets.token_hex(6)}" for _ in range(1000)]
    before = await scrape(limited.metrics_url)
    async with httpx.AsyncClient(base_url=limited.url, timeout=wait_s(10)) as http:
        for name in names[:500]:
            assert (await http.post(f"/bot/{name}")).status_code == 401
        for name in names[500:]:
            assert (await http.post(f"/bot{telegram_token}/{name}")).status_code == 404
    after = await scrape(limited.metrics_url)
    assert requests(after, "bot", "other", 401) - requests(before, "bot", "other", 401) == 500
    assert (
        requests(after, "telegram", "other", 404) - requests(before, "telegram", "other", 404)
        == 500
    )
    # the names were counted, none of them became a series
    methods = {dict(labels)["method"] for name, labels in after if name == REQUESTS}
    assert not methods & set(names)
    assert methods <= {*BOT_METHODS, *CLIENT_METHODS, *MANAGE_METHODS, "file", "other"}


@pytest.fixture(scope="module")
def capped(redis_server: LocalRedis, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rest]:
    """REST that holds at most 4 connections, with /metrics on the API port."""
    process = _start_rest(
        redis_server,
        tmp_path_factory.mktemp("capped"),
        "rest-capped",
        BOTGW_REST_MAX_CONNECTIONS="4",
        BOTGW_REST_HEADER_TIMEOUT=str(wait_s(60)),
        BOTGW_REST_METRICS_ON_API_PORT="1",
    )
    try:
        yield Rest(process, f"{process.url}/metrics")
    finally:
        process.stop()


async def _held_connection(port: int) -> asyncio.StreamWriter:
    """A keep-alive connection that made one request and stays open."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nhost: rest\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=wait_s(10))
    assert head.startswith(b"HTTP/1.1 200 "), head
    return writer


async def test_over_the_connection_cap_is_503_overloaded(capped: Rest, bot: BotAccount) -> None:
    before = await scrape(capped.metrics_url)
    held = [await _held_connection(capped.process.port) for _ in range(4)]
    try:
        async with httpx.AsyncClient(base_url=capped.url, timeout=wait_s(10)) as http:
            refused = await http.get("/bot/getMe", headers={"Authorization": f"Bot {bot.token}"})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["connection"] == "close"
        body = refused.json()
        assert body["ok"] is False and body["code"] == "OVERLOADED"
    finally:
        for writer in held:
            writer.close()
            await writer.wait_closed()
    # once those are gone, requests are served again
    deadline = time.monotonic() + wait_s(10)
    async with httpx.AsyncClient(base_url=capped.url, timeout=wait_s(10)) as http:
        while True:
            me = await http.get("/bot/getMe", headers={"Authorization": f"Bot {bot.token}"})
            if me.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    assert me.status_code == 200
    after = await scrape(capped.metrics_url)
    assert closed(after, "overloaded") - closed(before, "overloaded") >= 1
    assert requests(after, "bot", "getMe", 503) - requests(before, "bot", "getMe", 503) >= 1


async def test_several_workers_report_one_sum(redis_server: LocalRedis, tmp_path: Path) -> None:
    metrics_port = free_port()
    process = _start_rest(
        redis_server, tmp_path, "rest-workers", workers=2, BOTGW_REST_METRICS_PORT=str(metrics_port)
    )
    try:
        url = f"http://127.0.0.1:{process.port}"
        for _ in range(40):  # a new connection each: the workers share them out
            async with httpx.AsyncClient(base_url=url, timeout=wait_s(10)) as http:
                assert (await http.post("/bot/getMe")).status_code == 401
        samples = await scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert requests(samples, "bot", "getMe", 401) == 40
    finally:
        process.stop()


# -- the dev stack ---------------------------------------------------------------


@pytest.fixture
def dev_stack(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    log = tmp_path / "run.log"
    env = {k: v for k, v in process_env("redis://unused").items() if not k.startswith("BOTGW_")}
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "botgw",
                "run",
                "--rest-port",
                str(free_port()),
                "--gateway-port",
                str(free_port()),
                "--data-dir",
                str(tmp_path / "data"),
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, tmp_path / "data" / "demo.json", log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=wait_s(30))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


async def _ready_banner(proc: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + wait_s(60)
    while time.monotonic() < deadline:
        text = log.read_text()
        if proc.poll() is not None:
            raise AssertionError(f"botgw run exited: {text[-3000:]}")
        if "Stop with Ctrl-C" in text:
            return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"botgw run never became ready: {log.read_text()[-3000:]}")


async def _socket_request(ws_url: str, token: str, method: str) -> dict[str, object]:
    async with websockets.connect(
        ws_url, additional_headers={"Authorization": f"Bot {token}"}
    ) as ws:
        assert json.loads(await ws.recv())["op"] == "hello"
        await ws.send(json.dumps({"op": "identify"}))
        while json.loads(await asyncio.wait_for(ws.recv(), timeout=wait_s(20)))["op"] != "ready":
            pass
        await ws.send(json.dumps({"op": "request", "id": "r1", "method": method, "params": {}}))
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=wait_s(20)))
            if frame["op"] == "result":
                assert frame["id"] == "r1"
                return dict(frame)


async def test_the_dev_stack_tells_every_child_its_ports(
    dev_stack: tuple[subprocess.Popen[bytes], Path, Path],
) -> None:
    proc, demo_file, log = dev_stack
    banner = await _ready_banner(proc, log)
    demo = json.loads(demo_file.read_text())
    # a request over the socket reaches this stack's REST, not the default port
    answer = await _socket_request(demo["gateway_url"], demo["bot_token"], "getMe")
    assert answer["ok"] is True, answer
    assert answer["result"]["username"] == "demo_bot"  # type: ignore[index]
    # REST's metrics have a port of their own, printed in the banner
    match = re.search(r"metrics\s+(http://\S+/metrics) \(REST\)", banner)
    assert match is not None, banner
    samples = await scrape(match.group(1))
    assert requests(samples, "bot", "getMe", 200) >= 1
    async with httpx.AsyncClient(timeout=wait_s(10)) as http:
        assert (await http.get(f"{demo['rest_url']}/metrics")).status_code == 404
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=wait_s(30)) == 0
