"""How a botgw process starts: logging, the event loop, and its main coroutine.

Each process's own module says what it does until it is told to stop (the gateway
drains on its first SIGTERM, the dispatcher gives its leases back); this module
sets up logging for all of them (:mod:`shared.logs`: one JSON object per line, or
text) and picks the event loop (uvloop where it is installed). REST's uvicorn
workers set up their logging the same way in each worker (``rest.serve``).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Coroutine, Sequence
from typing import Any

from shared import logs

__all__ = ["configure_logging", "raise_open_files_limit", "run_process"]

log = logging.getLogger("botgw")

# below this many open files a server cannot hold the connections it is sized for
_FEW_FILES = 4096


def configure_logging(
    process: str, *, level: str, fmt: str = "json", quiet: Sequence[str] = ()
) -> None:
    """Log as ``process`` at ``level`` (``debug`` ... ``critical``) in format ``fmt``
    (``json`` or ``text``); the loggers in ``quiet`` only from warnings up."""
    logs.configure(process, level=level, fmt=fmt, quiet=quiet)


def raise_open_files_limit() -> int:
    """Raise this process's soft limit of open files to its hard limit; the new limit.

    Every connection is a file: at a soft limit of 1 024 (a common default) a server
    holding a thousand long polls or sockets cannot accept one more, and the
    accept loop stalls with EMFILE instead of serving. The hard limit is what an
    operator set for the process, so it is taken whole; a low one is logged.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (OSError, ValueError):
            pass  # e.g. above the kernel's nr_open: keep what we have
    if soft < _FEW_FILES:
        log.warning(
            "this process may open only %d files (connections included); raise its "
            "hard limit (ulimit -Hn, LimitNOFILE=, the container's nofile ulimit)",
            soft,
        )
    return soft


def run_process(main: Coroutine[Any, Any, Any]) -> int:
    """Run a process's main coroutine to its end on the fastest loop available."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
    return 0
