"""Child processes of a benchmark run: start, pin, account CPU, always stop.

Every process the harness starts is registered in one :class:`Processes` group.
Children run in their own session (a Ctrl-C in the terminal reaches only the
harness, which then stops them in order) and get SIGTERM from the kernel if the
harness itself dies, so nothing outlives a run.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil  # type: ignore[import-untyped, unused-ignore]

__all__ = [
    "Child",
    "CpuSample",
    "Pinning",
    "Processes",
    "loadavg",
]

_PR_SET_PDEATHSIG = 1
# children run from the repository root, so ``python -m bench.x`` and
# ``python -m botgw`` import this checkout whatever the caller's directory
ROOT = Path(__file__).resolve().parents[1]


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the harness goes away."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def loadavg() -> float:
    """The 1-minute load average (0.0 where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return 0.0


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the system under test and the load generators may use."""

    server: frozenset[int]
    load: frozenset[int]

    @classmethod
    def detect(cls, enabled: bool = True) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2:
            every = frozenset(cpus)
            return cls(server=every, load=every)
        return cls(server=frozenset(cpus[:1]), load=frozenset(cpus[1:]))

    @property
    def apart(self) -> bool:
        return not (self.server & self.load)

    def describe(self) -> str:
        if not self.apart:
            return "not pinned (one CPU set for everything)"
        return (
            f"server under test on CPU {','.join(map(str, sorted(self.server)))}, load "
            f"generators on CPU {','.join(map(str, sorted(self.load)))}, Redis unpinned"
        )


@dataclass
class CpuSample:
    """CPU seconds of a process between two points in time."""

    name: str
    role: str
    seconds: float


@dataclass
class Child:
    """One child process with its role (``server``, ``redis``, ``load``) and log."""

    name: str
    role: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen[bytes]
    ps: psutil.Process
    _cpu_mark: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def cpu_seconds(self) -> float:
        try:
            times = self.ps.cpu_times()
        except psutil.Error:
            return self._cpu_mark
        return float(times.user + times.system)

    def rss(self) -> int:
        return int(self.ps.memory_info().rss)

    def tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Processes:
    """The group of children of one run; ``stop_all`` ends every one of them."""

    run_dir: Path
    pinning: Pinning
    children: list[Child] = field(default_factory=list)

    def spawn(
        self,
        name: str,
        args: Sequence[str],
        *,
        role: str,
        env: dict[str, str] | None = None,
        stdin: int | None = None,
        stdout: int | None = None,
    ) -> Child:
        """Start ``args`` pinned by role; stdout/stderr go to a log unless piped."""
        log_path = self.run_dir / f"{name}.log"
        log = log_path.open("ab")
        try:
            proc = subprocess.Popen(
                list(args),
                env=env,
                stdin=stdin if stdin is not None else subprocess.DEVNULL,
                stdout=stdout if stdout is not None else log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                cwd=ROOT,
            )
        finally:
            log.close()
        cpus = {"server": self.pinning.server, "load": self.pinning.load}.get(role)
        if cpus is not None:  # Redis floats: it serves both sides
            with contextlib.suppress(OSError):
                os.sched_setaffinity(proc.pid, cpus)
        child = Child(name, role, list(args), log_path, proc, psutil.Process(proc.pid))
        self.children.append(child)
        return child

    def python(
        self,
        name: str,
        module_args: Sequence[str],
        *,
        role: str,
        env: dict[str, str] | None = None,
    ) -> Child:
        """Start ``python -m <module_args...>`` with this interpreter."""
        return self.spawn(name, [sys.executable, "-m", *module_args], role=role, env=env)

    def stop(self, child: Child, *, timeout: float = 10.0) -> None:
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                child.proc.send_signal(signal.SIGTERM)
            try:
                child.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
                child.proc.wait()
        for stream in (child.proc.stdin, child.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        if child in self.children:
            self.children.remove(child)

    def stop_all(self) -> None:
        """Stop load generators first, then servers, then Redis."""
        order = {"tool": 0, "load": 1, "server": 2, "redis": 3}
        for child in sorted(self.children, key=lambda c: order.get(c.role, 0)):
            self.stop(child)

    def cpu_marks(self) -> dict[int, float]:
        return {c.pid: c.cpu_seconds() for c in self.children}

    def cpu_since(self, marks: dict[int, float]) -> list[CpuSample]:
        out = []
        for child in self.children:
            start = marks.get(child.pid)
            if start is not None:
                out.append(CpuSample(child.name, child.role, child.cpu_seconds() - start))
        return out

    @contextlib.contextmanager
    def scoped(self) -> Iterator[list[Child]]:
        """Children started inside the block are stopped when it ends."""
        before = set(id(c) for c in self.children)
        started: list[Child] = []
        try:
            yield started
        finally:
            for child in reversed(list(self.children)):
                if id(child) not in before:
                    self.stop(child)


def wait_http_ok(child: Child, url: str, *, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200, failing early if the child exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited at start:\n{child.tail()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not answer {url} in {timeout} s:\n{child.tail()}")
