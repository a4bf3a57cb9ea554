"""The command line of the servers the harness compares botgw with (the ceiling and
the peer): ``--port``, ``--redis-url``, ``--uvloop`` and, where the server has it,
``--compression``; then the server's ``run(args)`` on the loop asked for."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["server_main"]


def server_main(
    description: str | None,
    run: Callable[[argparse.Namespace], Coroutine[Any, Any, None]],
    *,
    compression: bool = False,
) -> None:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    if compression:
        parser.add_argument("--compression", action="store_true")
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.run(run(args))
    else:
        asyncio.run(run(args))
