"""Run a module with its garbage-collector pauses logged: ``python -m bench.gcprobe MOD ARGS``.

Every collection of 5 ms or more is written to stderr as
``GCPAUSE gen<n> <ms> ms`` (the harness reads them back from the server's log
to show what stalls the event loop). Used by ``python -m bench --gc-log``.
"""

from __future__ import annotations

import gc
import re
import runpy
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["pauses"]

THRESHOLD_MS = 5.0
_PAUSE = re.compile(r"^GCPAUSE gen(\d) ([0-9.]+) ms", re.MULTILINE)
_started = [0.0]


def _callback(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    ms = (time.perf_counter() - _started[0]) * 1000
    if ms >= THRESHOLD_MS:
        print(f"GCPAUSE gen{info['generation']} {ms:.1f} ms", file=sys.stderr, flush=True)


def pauses(log: Path) -> list[tuple[int, float]]:
    """(generation, ms) of every logged pause in a log file."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    return [(int(g), float(ms)) for g, ms in _PAUSE.findall(text)]


def main() -> None:
    gc.callbacks.append(_callback)
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
