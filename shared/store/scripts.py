"""The Lua scripts of the store, and the one registry of them.

Each script is a file ``lua/<name>.lua`` with its KEYS and ARGV named at the top.
A line ``--@include <part>`` stands for the file ``lua/_<part>.lua``, a helper
several scripts share (parts are never run alone). :data:`SCRIPT_NAMES` lists
every script; :func:`register_scripts` makes them all ready to run, by name, for
the sub-stores that call them. A script is run by sha and loaded into Redis the
first time Redis does not know it (at start, and again after a restart).
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from redis.asyncio.client import Redis
from redis.exceptions import NoScriptError

from shared.store.fields import as_text
from shared.store.wire import Wire

__all__ = ["SCRIPT_NAMES", "Script", "lua_source", "register_scripts"]

# every lua/<name>.lua but the included parts lua/_<part>.lua
SCRIPT_NAMES = tuple(
    sorted(
        entry.name.removesuffix(".lua")
        for entry in (resources.files("shared.store") / "lua").iterdir()
        if entry.name.endswith(".lua") and not entry.name.startswith("_")
    )
)


def lua_source(name: str) -> str:
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

    @property
    def sha(self) -> str:
        return str(self._script.sha)

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._wire.call(*self.command(keys=keys, args=args))
        except NoScriptError:  # Redis restarted or was flushed: EVAL loads it again
            return await self._wire.call("EVAL", self._source, len(keys), *keys, *args)

    def command(self, *, keys: list[str], args: list[Any]) -> tuple[Any, ...]:
        """The EVALSHA command of one call, for :meth:`Wire.calls` beside others."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def load(self) -> str:
        """Load the script into Redis (after a NOSCRIPT reply to :meth:`command`);
        returns the sha Redis computed."""
        return as_text(await self._wire.call("SCRIPT", "LOAD", self._source))

    async def queue(self, pipe: Any, *, keys: list[str], args: list[Any]) -> None:
        """Queue a call on a pipeline (the script is loaded on execute if needed)."""
        await self._script(keys=keys, args=args, client=pipe)


def register_scripts(redis: Redis, wire: Wire) -> dict[str, Script]:
    """Every script of :data:`SCRIPT_NAMES`, by name (no round trip: each is loaded
    into Redis when first run)."""
    return {name: Script(redis, lua_source(name), wire) for name in SCRIPT_NAMES}
