"""How a botgw process starts: logging, the event loop, and its main coroutine.

Each process's own module says what it does until it is told to stop (the gateway
drains on its first SIGTERM, the dispatcher gives its leases back); this module is
the one place that sets up logging and picks the event loop (uvloop where it is
installed) for all of them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Sequence
from typing import Any

__all__ = ["configure_logging", "run_process"]

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(level: str, quiet: Sequence[str] = ()) -> None:
    """Log at ``level`` (``debug`` ... ``critical``); the loggers in ``quiet`` only
    from warnings up."""
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), format=LOG_FORMAT)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


def run_process(
    main: Coroutine[Any, Any, Any], *, log_level: str, quiet: Sequence[str] = ()
) -> int:
    """Run a process's main coroutine to its end on the fastest loop available."""
    configure_logging(log_level, quiet)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
    return 0
