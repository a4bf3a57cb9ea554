"""The Lua scripts of the store, and the one registry of them.

Each script is a file ``lua/<name>.lua`` with its KEYS and ARGV named at the top.
A line ``--@include <part>`` stands for the file ``lua/_<part>.lua``, a helper
several scripts share (parts are never run alone). :data:`SCRIPT_NAMES` lists
every script; :func:`register_scripts` makes them all ready to run, by name, for
the sub-stores that call them. A script is run by sha and loaded into Redis the
first time Redis does not know it (at start, and again after a restart).
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

from shared.store.client import Client, Pipeline
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

# scripts whose writes need not survive a failover: reads, rate buckets, leases
VOLATILE = frozenset(
    {"count_after", "poll_current", "rate_limit", "lease", "dispatchers", "live_reader"}
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
    after a Redis restart (or on a cluster node that has not seen it yet)."""

    def __init__(self, source: str, wire: Wire, *, volatile: bool = False) -> None:
        self._source = source
        self._wire = wire
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        if volatile:  # nothing it writes must wait for replicas
            wire.volatile_scripts.add(self.sha.encode())

    @property
    def source(self) -> str:
        return self._source

    async def __call__(self, *, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._wire.call(*self.command(keys=keys, args=args))
        except NoScriptError:  # Redis restarted or was flushed: EVAL loads it again
            return await self._wire.call("EVAL", self._source, len(keys), *keys, *args)

    def command(self, *, keys: list[str], args: list[Any]) -> tuple[Any, ...]:
        """The EVALSHA command of one call, for :meth:`Wire.calls` beside others."""
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    async def load(self) -> str:
        """Load the script into every primary (after a NOSCRIPT reply to
        :meth:`command`); returns the sha Redis computed."""
        shas = await self._wire.each_primary(("SCRIPT", "LOAD", self._source))
        return as_text(shas[0])

    async def queue(self, pipe: Pipeline, *, keys: list[str], args: list[Any]) -> None:
        """Queue a call on a pipeline (EVAL instead if Redis lost the script)."""
        pipe.execute_command(*self.command(keys=keys, args=args))


def register_scripts(wire: Wire, client: Client) -> dict[str, Script]:
    """Every script of :data:`SCRIPT_NAMES`, by name (no round trip: each is loaded
    into Redis when first run). On a cluster, scripts publish on shard channels."""
    scripts = {}
    for name in SCRIPT_NAMES:
        source = lua_source(name)
        if wire.sharded:
            source = source.replace("redis.call('PUBLISH'", "redis.call('SPUBLISH'")
        scripts[name] = script = Script(source, wire, volatile=name in VOLATILE)
        client.sources[script.sha] = source
    return scripts
