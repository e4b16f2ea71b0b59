"""Helpers of the Redis tests: worker processes that report JSON lines, unique namespaces,
polling with a bound, and counting a process's open file descriptors."""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from subprocess import PIPE
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "redis_worker.py"


def fresh_namespace() -> str:
    """A namespace of its own for one test (tests share one server per module)."""
    return f"t-{uuid.uuid4().hex[:12]}"


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def eventually(check: Callable[[], Awaitable[bool]] | Callable[[], bool], timeout: float, step: float = 0.01) -> None:
    """Poll ``check()`` until it is true; fail after ``timeout`` seconds."""
    with anyio.fail_after(timeout):
        while True:
            result = check()
            if not isinstance(result, bool):
                result = await result
            if result:
                return
            await anyio.sleep(step)


class Worker:
    """A real process running tests/redis_worker.py with a JSON config."""

    def __init__(self, process: Process) -> None:
        self.process = process
        assert process.stdout is not None
        self._out = BufferedByteReceiveStream(process.stdout)

    @classmethod
    async def start(cls, **config: Any) -> Worker:
        process = await anyio.open_process([sys.executable, str(WORKER), json.dumps(config)], stdout=PIPE,
                                           stderr=None, cwd=ROOT)
        return cls(process)

    async def next(self, timeout: float = 30) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            line = await self._out.receive_until(b"\n", 1 << 24)
        event: dict[str, Any] = json.loads(line)
        return event

    async def expect(self, event: str, timeout: float = 30) -> dict[str, Any]:
        with anyio.fail_after(timeout):
            while True:
                found = await self.next()
                if found.get("event") == event:
                    return found
                assert found.get("event") != "gave up", "the worker gave up"

    async def finish(self, timeout: float = 30) -> int:
        with anyio.fail_after(timeout):
            return await self.process.wait()

    async def aclose(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        with anyio.CancelScope(shield=True):
            await self.process.aclose()
