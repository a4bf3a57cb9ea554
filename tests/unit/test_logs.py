"""Log lines (shared/logs.py): the JSON and text lines and their context, the
collapsing of repeated records (on a clock the test moves), what a process that
configured its logging writes for warnings, library loggers and crashes, and the
request id REST answers with."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rest.app import create_app
from shared import logs
from shared.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def lines() -> Iterator[tuple[logging.Logger, Callable[[], list[dict[str, Any]]]]]:
    """A logger of its own writing JSON lines to a buffer, and the lines so far."""
    buffer = io.StringIO()
    handler = logs.LineHandler(buffer, logs.JsonFormatter("rest"), window=10.0)
    logger = logging.getLogger(f"botgw.test.{os.urandom(4).hex()}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    try:
        yield logger, read
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_a_line_has_the_fields_and_leaves_out_what_is_unknown(
    lines: tuple[logging.Logger, Callable[[], list[dict[str, Any]]]],
) -> None:
    logger, read = lines
    logger.warning("backend error: %s", "timeout")
    [line] = read()
    assert list(line) == ["ts", "level", "process", "pid", "logger", "message"]
    assert TS.fullmatch(line["ts"])
    assert line["level"] == "warning"
    assert line["process"] == "rest"
    assert line["pid"] == os.getpid()
    assert line["logger"] == logger.name
    assert line["message"] == "backend error: timeout"


def test_the_context_bound_given_or_of_the_scope_is_in_the_line(
    lines: tuple[logging.Logger, Callable[[], list[dict[str, Any]]]],
) -> None:
    logger, read = lines
    session: dict[str, Any] = {"connection_id": "c0ffee", "bot_id": None, "consumer": None}

    def run() -> None:
        logs.bind(request_id="req-1", bot_id=17)
        logger.info("bound")
        logger.info("given", extra={"bot_id": 18, "consumer": "alpha"})
        logs.bind(request_id=None, bot_id=None)
        logs.bind_scope(lambda: session)
        logger.info("scope before identify")
        session.update(bot_id=19, consumer="beta")  # read when the record is made
        logger.info("scope after identify")

    contextvars.copy_context().run(run)
    logger.info("outside")  # nothing bound here: the context stayed in its own
    bound, given, before, after, outside = read()
    assert (bound["request_id"], bound["bot_id"]) == ("req-1", 17)
    assert "consumer" not in bound and "connection_id" not in bound
    assert (given["request_id"], given["bot_id"], given["consumer"]) == ("req-1", 18, "alpha")
    assert before["connection_id"] == "c0ffee" and "bot_id" not in before
    assert (after["bot_id"], after["consumer"]) == (19, "beta")
    assert not set(logs.CONTEXT_FIELDS) & set(outside)


def test_a_traceback_goes_in_exc_and_a_bad_template_still_makes_a_line(
    lines: tuple[logging.Logger, Callable[[], list[dict[str, Any]]]],
) -> None:
    logger, read = lines
    try:
        raise RuntimeError("a defect")
    except RuntimeError:
        logger.exception("unexpected error on %s", "/bot/getMe")
    [failed] = read()
    assert failed["message"] == "unexpected error on /bot/getMe"
    assert "Traceback" in failed["exc"] and "RuntimeError: a defect" in failed["exc"]
    bad = _record("two values %s %s", "only one", level=logging.ERROR)
    message = json.loads(logs.JsonFormatter("rest").format(bad))["message"]
    assert "two values" in message and "only one" in message


def test_the_text_format_is_a_readable_line_with_time_and_level() -> None:
    formatter = logs.TextFormatter("gateway")
    record = logging.LogRecord(
        "botgw.gateway", logging.ERROR, __file__, 1, "closed %s", ("x",), None
    )
    record.connection_id = "ab12"
    text = formatter.format(record)
    head = text.splitlines()[0]
    assert TS.match(head)
    assert f" ERROR    gateway[{os.getpid()}] botgw.gateway: closed x" in head
    assert head.endswith("[connection_id=ab12]")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(message: str, *args: object, level: int = logging.WARNING, name: str = "a") -> Any:
    return logging.LogRecord(name, level, __file__, 1, message, args, None)


def test_repeated_records_are_collapsed_into_one_line_with_their_count() -> None:
    clock = FakeClock()
    summaries: list[logging.LogRecord] = []
    repeats = logs.RepeatFilter(summaries.append, window=10.0, clock=clock)

    assert repeats.filter(_record("backend error: %s", "timeout"))
    clock.now += 1
    # the same logger, level and template: counted, whatever the arguments
    assert [repeats.filter(_record("backend error: %s", f"e{n}")) for n in range(3)] == [
        False,
        False,
        False,
    ]
    # another logger, another level or another template is another kind
    assert repeats.filter(_record("backend error: %s", "x", name="b"))
    assert repeats.filter(_record("backend error: %s", "x", level=logging.ERROR))
    assert repeats.filter(_record("commit failed: %s", "x"))
    repeats.flush_due()
    assert summaries == []  # the window is not over

    clock.now += 9
    repeats.flush_due()
    [summary] = summaries
    assert summary.repeated == 3  # type: ignore[attr-defined]
    assert summary.getMessage() == "repeated 3 times in 10 s: backend error: e2"
    assert (summary.name, summary.levelno) == ("a", logging.WARNING)
    # the kinds seen once end with nothing to say; the next of the first passes again
    assert repeats.filter(_record("backend error: %s", "again"))
    assert len(summaries) == 1


def test_a_window_is_closed_by_the_next_record_and_at_the_end() -> None:
    clock = FakeClock()
    summaries: list[logging.LogRecord] = []
    repeats = logs.RepeatFilter(summaries.append, window=10.0, clock=clock)
    repeats.filter(_record("lost %s", 1))
    repeats.filter(_record("lost %s", 2))
    clock.now += 10
    assert repeats.filter(_record("something else"))  # closes the window first
    assert [s.repeated for s in summaries] == [1]  # type: ignore[attr-defined]
    repeats.filter(_record("something else"))
    repeats.flush_all()  # the process stops: what is counted is written
    assert [s.getMessage() for s in summaries][1:] == ["repeated 1 times in 10 s: something else"]


def test_debug_records_are_never_collapsed() -> None:
    repeats = logs.RepeatFilter(lambda _: None, clock=FakeClock())
    assert all(repeats.filter(_record("frame %s", n, level=logging.DEBUG)) for n in range(5))


def test_a_summary_line_is_json_with_the_count_and_no_context(
    lines: tuple[logging.Logger, Callable[[], list[dict[str, Any]]]],
) -> None:
    logger, read = lines
    logs.bind(request_id="r-9")
    try:
        for _ in range(4):
            logger.warning("wake-up subscription lost (%s); re-subscribing", "reset")
    finally:
        logs.bind(request_id=None)
    handler = logger.handlers[0]
    assert isinstance(handler, logs.LineHandler)
    handler.repeats.flush_all()
    first, summary = read()
    assert first["request_id"] == "r-9"
    assert summary["repeated"] == 3 and "request_id" not in summary
    assert summary["message"].startswith("repeated 3 times in 10 s: wake-up subscription lost")


def test_a_request_id_is_taken_when_well_formed_and_made_otherwise() -> None:
    assert logs.request_id_from(b"4bf92f3577b34da6a3ce929d0e0e4736") == (
        "4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert logs.request_id_from("trace:1/2+3=4_5.6-7") == "trace:1/2+3=4_5.6-7"
    for bad in (None, b"", b"has space", b"x" * 129, "\u00e9t\u00e9".encode(), b"a\r\nb"):
        made = logs.request_id_from(bad)
        assert re.fullmatch(r"[0-9a-f]{16}", made), bad
    assert logs.request_id_from(None) != logs.request_id_from(None)


def test_the_log_settings() -> None:
    assert Settings.from_env({}).log_format == "json"
    assert Settings.from_env({"BOTGW_LOG_FORMAT": " Text "}).log_format == "text"
    with pytest.raises(SettingsError, match="BOTGW_LOG_FORMAT"):
        Settings.from_env({"BOTGW_LOG_FORMAT": "xml"})
    # the drain's grace covers the longest long poll, unless set
    assert Settings.from_env({}).rest_drain_grace == 65.0
    assert Settings.from_env({"BOTGW_LONG_POLL_MAX_TIMEOUT": "20"}).rest_drain_grace == 25.0
    assert Settings.from_env({"BOTGW_REST_DRAIN_SECONDS": "3"}).rest_drain_grace == 3.0


_PROGRAM = """
import logging, warnings, threading
from shared import logs
logs.configure("gateway", level="info")
logging.getLogger("uvicorn.error").info("Started server process [%d]", 1)
logging.getLogger("websockets.server").warning("connection rejected")
warnings.warn("a deprecated call", UserWarning)
thread = threading.Thread(target=lambda: 1 / 0, name="worker-thread")
thread.start()
thread.join()
raise RuntimeError("a crash")
"""


def test_a_configured_process_writes_only_json_lines() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROGRAM],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 1
    assert done.stdout == ""
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert all(line["process"] == "gateway" for line in lines)
    by_logger = {line["logger"]: line for line in lines}
    assert by_logger["uvicorn.error"]["message"] == "Started server process [1]"
    assert by_logger["websockets.server"]["level"] == "warning"
    assert "a deprecated call" in by_logger["py.warnings"]["message"]
    crashes = [line for line in lines if line["level"] == "critical"]
    assert [c["message"] for c in crashes] == [
        "uncaught exception in thread worker-thread",
        "uncaught exception",
    ]
    assert "ZeroDivisionError" in crashes[0]["exc"] and "a crash" in crashes[1]["exc"]


async def test_rest_answers_with_the_request_id_it_was_given_or_made() -> None:
    # the app without its lifespan (no Redis): the routes that need none
    app = create_app(Settings.from_env({}))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://rest") as client:
        given = await client.get("/healthz", headers={"X-Request-Id": "lb-7f3a"})
        made = await client.get("/no/such/route", headers={"X-Request-Id": "not ok"})
    assert given.status_code == 200 and given.headers["x-request-id"] == "lb-7f3a"
    assert made.status_code == 404
    assert re.fullmatch(r"[0-9a-f]{16}", made.headers["x-request-id"])
