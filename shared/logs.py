"""Log lines: one JSON object per line, about the request, bot, consumer or
connection at hand, with repeated records collapsed into a count.

A line (``BOTGW_LOG_FORMAT=json``, the default)::

    {"ts": "2024-05-01T12:00:00.123Z", "level": "warning", "process": "rest",
     "pid": 4242, "logger": "botgw.rest", "message": "backend error: ...",
     "request_id": "5f0c...", "bot_id": 17, "consumer": "default"}

``ts`` is UTC with milliseconds; ``request_id``, ``bot_id``, ``consumer`` and
``connection_id`` are there when known, ``exc`` holds a traceback, ``stack`` a
stack, ``repeated`` the count of a summary line (below). ``BOTGW_LOG_FORMAT=text``
writes the same as a readable line, for development.

Where the context comes from, in this order: fields given to the call
(``extra={"bot_id": ...}``); this module's context variables, set with
:func:`bind` (REST sets the request id for each request, the bot id and consumer
once the call knows them); a *scope*, a function bound with :func:`bind_scope`
that reads them when a record is made (the gateway binds one per connection, so
the tasks of a connection log its current bot and consumer).

Repeated records: a record with the logger, level and message template of one
logged less than ``window`` seconds ago is not written but counted; when the window
ends, one line says how many there were (``"repeated 375 times in 10 s: ..."``,
field ``repeated``). So an outage that fails every request writes two lines per
kind of error every ten seconds, not one per request. Debug records are never
collapsed.

:func:`configure` installs all of it on the root logger of a process, with
uvicorn's, websockets' and Python's warnings routed through the same handler.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

__all__ = [
    "CONTEXT_FIELDS",
    "FORMATS",
    "REQUIRED_FIELDS",
    "JsonFormatter",
    "LineHandler",
    "RepeatFilter",
    "TextFormatter",
    "bind",
    "bind_scope",
    "configure",
    "new_request_id",
    "request_id_from",
]

FORMATS = ("json", "text")
# what every line has, and what it has when known
REQUIRED_FIELDS = ("ts", "level", "process", "pid", "logger", "message")
CONTEXT_FIELDS = ("request_id", "bot_id", "consumer", "connection_id")

_request_id: ContextVar[str | None] = ContextVar("botgw_request_id", default=None)
_bot_id: ContextVar[int | None] = ContextVar("botgw_bot_id", default=None)
_consumer: ContextVar[str | None] = ContextVar("botgw_consumer", default=None)
_connection_id: ContextVar[str | None] = ContextVar("botgw_connection_id", default=None)
_scope: ContextVar[Callable[[], Mapping[str, Any]] | None] = ContextVar(
    "botgw_log_scope", default=None
)
_VARS: dict[str, ContextVar[Any]] = {
    "request_id": _request_id,
    "bot_id": _bot_id,
    "consumer": _consumer,
    "connection_id": _connection_id,
}

_UNSET: Any = object()


def bind(
    *,
    request_id: str | None = _UNSET,
    bot_id: int | None = _UNSET,
    consumer: str | None = _UNSET,
    connection_id: str | None = _UNSET,
) -> None:
    """Set the fields given (None clears one) for what this task logs from now on,
    and for the tasks it starts."""
    if request_id is not _UNSET:
        _request_id.set(request_id)
    if bot_id is not _UNSET:
        _bot_id.set(bot_id)
    if consumer is not _UNSET:
        _consumer.set(consumer)
    if connection_id is not _UNSET:
        _connection_id.set(connection_id)


def bind_scope(fields: Callable[[], Mapping[str, Any]] | None) -> None:
    """Log, from this task and the tasks it starts, the fields ``fields()`` returns
    when a record is made (values of None are left out); for a context whose bot or
    consumer is learnt later, in another task."""
    _scope.set(fields)


# a request id a client sends is taken as it is if it looks like one
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/-]{1,128}")


def new_request_id() -> str:
    return os.urandom(8).hex()


def request_id_from(header: bytes | str | None) -> str:
    """The request id of a request: its ``X-Request-Id`` if well-formed (1-128
    letters, digits or ``._:+=/-``), else a new one."""
    if header:
        text = header.decode("latin-1") if isinstance(header, bytes) else header
        if _REQUEST_ID.fullmatch(text):
            return text
    return new_request_id()


def _context(record: logging.LogRecord) -> dict[str, Any]:
    """The context fields of ``record``: given to the call, bound, or of the scope."""
    given = record.__dict__
    found: dict[str, Any] = {}
    scope: Mapping[str, Any] | None = None
    for name in CONTEXT_FIELDS:
        if name in given:
            value = given[name]
        else:
            value = _VARS[name].get()
            if value is None:
                if scope is None:
                    reader = _scope.get()
                    try:
                        scope = reader() if reader is not None else {}
                    except Exception:  # a scope that fails must not lose the line
                        scope = {}
                value = scope.get(name)
        if value is not None:
            found[name] = value
    return found


def _timestamp(created: float) -> str:
    whole = int(created)
    millis = int((created - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # arguments that do not fit the template: keep both
        return f"{record.msg!r} % {record.args!r}"


class JsonFormatter(logging.Formatter):
    """A record as one JSON object on one line."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process_name = process

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """Everything a line says about ``record``, in the order it is written."""
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "process": self.process_name,
            "pid": record.process,
            "logger": record.name,
            "message": _message(record),
        }
        line.update(_context(record))
        repeated = record.__dict__.get("repeated")
        if repeated is not None:
            line["repeated"] = repeated
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return line

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), ensure_ascii=False, default=str)


class TextFormatter(JsonFormatter):
    """A record as a readable line (a traceback on the lines after it)."""

    def format(self, record: logging.LogRecord) -> str:
        line = self.fields(record)
        head = (
            f"{line['ts']} {line['level'].upper():<8} {line['process']}[{line['pid']}] "
            f"{line['logger']}: {line['message']}"
        )
        context = " ".join(f"{name}={line[name]}" for name in CONTEXT_FIELDS if name in line)
        if context:
            head = f"{head}  [{context}]"
        tail = [text for text in (line.get("exc"), line.get("stack")) if text]
        return "\n".join([head, *tail])


@dataclass(slots=True)
class _Window:
    ends: float
    count: int = 0
    last: logging.LogRecord | None = None


class RepeatFilter(logging.Filter):
    """Collapses records that repeat one logged less than ``window`` seconds ago.

    The first record of a kind (logger, level, message template) passes and opens
    a window; the same kind within it is counted instead; when the window is over,
    ``emit`` gets one summary record with the count (field ``repeated``), and the
    next record of that kind passes again. Windows are closed by the next record of
    any kind, by :meth:`flush_due` (call it now and then) and by :meth:`flush_all`.
    ``clock`` is monotonic seconds.
    """

    def __init__(
        self,
        emit: Callable[[logging.LogRecord], None],
        *,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        min_level: int = logging.INFO,
    ) -> None:
        super().__init__()
        self.emit = emit
        self.window = window
        self.clock = clock
        self.min_level = min_level
        # by kind, in the order they were opened: with one window length for all,
        # also the order in which they end
        self._windows: dict[tuple[str, int, str], _Window] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.min_level or "repeated" in record.__dict__:
            return True
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        kind = (record.name, record.levelno, template)
        now = self.clock()
        with self._lock:
            due = self._take_due(now)
            window = self._windows.get(kind)
            if window is None:
                self._windows[kind] = _Window(ends=now + self.window)
                passed = True
            else:
                window.count += 1
                window.last = record
                passed = False
        self._emit(due)
        return passed

    def flush_due(self) -> None:
        """Write the summaries of the windows that are over."""
        with self._lock:
            due = self._take_due(self.clock())
        self._emit(due)

    def flush_all(self) -> None:
        """Write the summaries of every window (the process is stopping)."""
        with self._lock:
            due = [w for w in self._windows.values() if w.count]
            self._windows.clear()
        self._emit(due)

    def _take_due(self, now: float) -> list[_Window]:
        due: list[_Window] = []
        while self._windows:
            kind, window = next(iter(self._windows.items()))
            if window.ends > now:
                break
            del self._windows[kind]
            if window.count:
                due.append(window)
        return due

    def _emit(self, windows: Iterable[_Window]) -> None:
        for window in windows:
            last = window.last
            assert last is not None
            summary = logging.LogRecord(
                last.name,
                last.levelno,
                last.pathname,
                last.lineno,
                "repeated %d times in %g s: %s",
                (window.count, self.window, _message(last)),
                None,
            )
            summary.repeated = window.count
            # many requests and bots: none of them is this line's
            for name in CONTEXT_FIELDS:
                setattr(summary, name, None)
            self.emit(summary)


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes formatted records to a stream, repeated ones collapsed; a thread
    writes the summaries of windows that ended while nothing was logged."""

    def __init__(self, stream: IO[str], formatter: logging.Formatter, *, window: float) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self.repeats = RepeatFilter(self._write, window=window)
        self.addFilter(self.repeats)
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="log-repeats", daemon=True)
        self._ticker.start()

    def _write(self, record: logging.LogRecord) -> None:
        self.acquire()
        try:
            self.emit(record)
        finally:
            self.release()

    def _tick(self) -> None:
        while not self._stopped.wait(1.0):
            self.repeats.flush_due()

    def close(self) -> None:
        if not self._stopped.is_set():
            self._stopped.set()
            self.repeats.flush_all()
        super().close()


def _log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("botgw").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "?"
    logging.getLogger("botgw").critical(
        "uncaught exception in thread %s",
        name,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )


def configure(
    process: str,
    *,
    level: str = "info",
    fmt: str = "json",
    quiet: Iterable[str] = (),
    stream: IO[str] | None = None,
    window: float = 10.0,
) -> None:
    """Make every log record of this process one line on ``stream`` (stderr).

    ``process`` names the process in each line; ``level`` is ``debug`` ...
    ``critical``; the loggers in ``quiet`` log from warnings up. Replaces the root
    logger's handlers (calling it again reconfigures); uvicorn's and websockets'
    loggers, Python's warnings and uncaught exceptions go through the same handler.
    """
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
    formatter = JsonFormatter(process) if fmt == "json" else TextFormatter(process)
    handler = LineHandler(stream or sys.stderr, formatter, window=window)
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # libraries that bring handlers of their own write through ours instead
    for name in ("uvicorn", "uvicorn.error", "websockets"):
        library = logging.getLogger(name)
        for old in library.handlers[:]:
            library.removeHandler(old)
        library.propagate = True
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
