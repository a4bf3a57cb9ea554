"""The Lua scripts of the store: each in its own file under ``lua/``, run by sha."""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio.client import Redis
from redis.exceptions import NoScriptError

from shared.store.wire import Wire

__all__ = ["Script"]


def _lua_source(name: str) -> str:
    """``lua/<name>.lua`` with each ``--@include <part>`` line replaced by
    ``lua/_<part>.lua`` (helpers several scripts share)."""
    folder = resources.files("shared.store") / "lua"
    lines = []
    for line in (folder / f"{name}.lua").read_text().splitlines():
        if line.startswith("--@include "):
            line = (folder / f"_{line.split()[1]}.lua").read_text().rstrip("\n")
        lines.append(line)
    return "\n".join(lines) + "\n"


class Script:
    """A Lua script run by sha on the store's :class:`Wire`, re-loaded transparently
    after a Redis restart."""

    def __init__(self, redis: Redis, source: str, wire: Wire) -> None:
        self._script = redis.register_script(source)
        self._source = source
        self._wire = wire

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._wire.call(*self.command(keys=keys, args=args))
        except NoScriptError:  # Redis restarted or was flushed: EVAL loads it again
            return await self._wire.call("EVAL", self._source, len(keys), *keys, *args)

    def command(self, *, keys: list[str], args: list[Any]) -> tuple[Any, ...]:
        """The EVALSHA command of one call, for :meth:`Wire.calls` beside others."""
        return ("EVALSHA", self._script.sha, len(keys), *keys, *args)

    async def load(self) -> None:
        """Load the script into Redis (after a NOSCRIPT reply to :meth:`command`)."""
        await self._wire.call("SCRIPT", "LOAD", self._source)

    async def queue(self, pipe: Any, *, keys: list[str], args: list[Any]) -> None:
        """Queue a call on a pipeline (the script is loaded on execute if needed)."""
        await self._script(keys=keys, args=args, client=pipe)
