"""The one registry of Lua scripts (every file under ``lua/`` but the parts): every
included part exists and is used, and every script loads into a real Redis."""

from __future__ import annotations

from importlib import resources

import pytest

from shared.store import Store
from shared.store.scripts import SCRIPT_NAMES, lua_source

LUA = resources.files("shared.store") / "lua"
FILES = sorted(
    entry.name.removesuffix(".lua") for entry in LUA.iterdir() if entry.name.endswith(".lua")
)
PARTS = {name.removeprefix("_") for name in FILES if name.startswith("_")}


def _includes(name: str) -> set[str]:
    text = (LUA / f"{name}.lua").read_text()
    return {line.split()[1] for line in text.splitlines() if line.startswith("--@include ")}


def test_every_included_part_exists_and_is_included() -> None:
    included = set().union(*(_includes(name) for name in SCRIPT_NAMES))
    assert included == PARTS
    for name in SCRIPT_NAMES:
        source = lua_source(name)
        assert "--@include" not in source
        for part in _includes(name):
            assert (LUA / f"_{part}.lua").read_text().strip() in source


async def test_the_store_holds_every_script(store: Store) -> None:
    assert sorted(store.scripts) == sorted(SCRIPT_NAMES)


@pytest.mark.parametrize("name", SCRIPT_NAMES)
async def test_each_script_loads_into_redis(store: Store, name: str) -> None:
    script = store.scripts[name]
    assert await script.load() == script.sha  # SCRIPT LOAD compiles it: no syntax error
    assert await store.wire.call("SCRIPT", "EXISTS", script.sha) == [1]
