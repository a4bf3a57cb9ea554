"""How a botgw process starts: logging, the event loop, and its main coroutine.

Each process's own module says what it does until it is told to stop (the gateway
drains on its first SIGTERM, the dispatcher gives its leases back); this module
sets up logging for all of them (:mod:`shared.logs`: one JSON object per line, or
text) and picks the event loop (uvloop where it is installed). REST's uvicorn
workers set up their logging the same way in each worker (``rest.serve``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any

from shared import logs

__all__ = ["configure_logging", "run_process"]


def configure_logging(
    process: str, *, level: str, fmt: str = "json", quiet: Sequence[str] = ()
) -> None:
    """Log as ``process`` at ``level`` (``debug`` ... ``critical``) in format ``fmt``
    (``json`` or ``text``); the loggers in ``quiet`` only from warnings up."""
    logs.configure(process, level=level, fmt=fmt, quiet=quiet)


def run_process(main: Coroutine[Any, Any, Any]) -> int:
    """Run a process's main coroutine to its end on the fastest loop available."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
    return 0
