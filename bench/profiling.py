"""Where the server spends its time: py-spy attached to it during a workload.

``python -m bench --profile DIR`` records the system under test during the first
repetition of each botgw workload (py-spy, sampling at 200 Hz, not stopping the
process) and writes ``<label>.txt`` (collapsed stacks, for flame graphs) and
``<label>.top.txt`` (the functions with the most samples, by self and by
inclusive time). py-spy is not a dependency: ``pip install py-spy``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from bench.procs import Child, Processes

__all__ = ["Profiler", "top_functions"]


def _py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def top_functions(collapsed: Path, count: int = 25) -> str:
    """The ``count`` functions with most samples, self and inclusive, as text."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, n_text = line.rpartition(" ")
        if not n_text.isdigit():
            continue
        n = int(n_text)
        total += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    if not total:
        return "no samples\n"
    out = [f"{total} samples", "", "self:"]
    out += [f"{n / total * 100:5.1f}%  {f}" for f, n in own.most_common(count)]
    out += ["", "inclusive:"]
    out += [f"{n / total * 100:5.1f}%  {f}" for f, n in inclusive.most_common(count * 2)]
    return "\n".join(out) + "\n"


class Profiler:
    def __init__(self, procs: Processes, out_dir: Path | None) -> None:
        self.procs = procs
        self.out_dir = out_dir
        self.tool = _py_spy() if out_dir is not None else None
        self.done: set[str] = set()
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)

    @property
    def enabled(self) -> bool:
        return self.tool is not None

    @contextlib.asynccontextmanager
    async def record(self, child: Child, label: str) -> AsyncIterator[bool]:
        """Profile ``child`` inside the block, once per label; yields whether it does."""
        if self.tool is None or self.out_dir is None or label in self.done:
            yield False
            return
        self.done.add(label)
        out = self.out_dir / f"{label}.txt"
        spy = self.procs.spawn(
            f"py-spy-{label}",
            [
                self.tool,
                "record",
                "-p",
                str(child.pid),
                "-f",
                "raw",
                "-o",
                str(out),
                "-r",
                "200",
                "--nonblocking",
            ],
            role="tool",
        )
        await asyncio.sleep(0.3)
        try:
            yield True
        finally:
            if spy.alive():
                spy.proc.send_signal(signal.SIGINT)
                for _ in range(100):
                    if not spy.alive():
                        break
                    await asyncio.sleep(0.1)
            self.procs.stop(spy)
            if out.exists():
                (self.out_dir / f"{label}.top.txt").write_text(top_functions(out))
