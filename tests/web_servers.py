"""Real ASGI servers on 127.0.0.1 for the web tests: uvicorn (asyncio), hypercorn (asyncio
and trio workers), each in a background thread with its own event loop, on a free port.

`Server.call(fn)` runs ``fn()`` on the server's loop thread and returns its result (to
count the tasks left there); `Probe` is where the test apps record their operations, read
by the tests from their own thread with `Probe.wait` (polling under ``anyio.fail_after``).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio

KINDS = ("uvicorn", "hypercorn-asyncio", "hypercorn-trio")


class Server:
    """One server kind serving ``app`` on a free port of 127.0.0.1, in a thread."""

    def __init__(self, app: Any, kind: str) -> None:
        self.app = app
        self.kind = kind
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop: Callable[[], None] | None = None
        self._call: Callable[[Callable[[], Any]], Any] | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"server-{kind}", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Server:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{self.kind} did not start: {self._error!r}")
        deadline = time.monotonic() + 10
        while True:  # accepting connections?
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._stop is not None:
            self._stop()
        self._thread.join(10)
        try:
            self.sock.close()
        except OSError:  # hypercorn closed the descriptor it was given
            pass

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on the server's loop thread; return its result (blocking)."""
        assert self._call is not None
        return self._call(fn)

    async def acall(self, fn: Callable[[], Any]) -> Any:
        """`call` from async code (through a worker thread: the caller may run trio too)."""
        return await anyio.to_thread.run_sync(self.call, fn)

    async def tasks(self) -> int:
        """`task_count` from async code."""
        return int(await anyio.to_thread.run_sync(self.task_count))

    def _main(self) -> None:
        try:
            if self.kind == "uvicorn":
                asyncio.run(self._uvicorn())
            elif self.kind == "hypercorn-asyncio":
                asyncio.run(self._hypercorn_asyncio())
            else:
                import trio

                trio.run(self._hypercorn_trio)
        except BaseException as exc:  # pragma: no cover - reported by start()
            self._error = exc
            self._ready.set()
            raise

    def _asyncio_hooks(self, stop: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()

        def call(fn: Callable[[], Any]) -> Any:
            async def run() -> Any:
                return fn()

            return asyncio.run_coroutine_threadsafe(run(), loop).result(10)

        self._call = call
        self._stop = lambda: loop.call_soon_threadsafe(stop)
        self._ready.set()

    async def _uvicorn(self) -> None:
        import uvicorn

        server = uvicorn.Server(uvicorn.Config(self.app, lifespan="off", log_level="warning", access_log=False))

        def stop() -> None:
            server.should_exit = True

        self._asyncio_hooks(stop)
        await server.serve(sockets=[self.sock])

    def _hypercorn_config(self) -> Any:
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"fd://{self.sock.fileno()}"]
        config.accesslog = None
        config.errorlog = logging.getLogger("hypercorn.error")
        config.graceful_timeout = 1
        # hypercorn closes a connection that stays idle this long, also one whose first request
        # it has not read yet: 1 s was too short for 500 connections set up at once while the
        # whole suite loads the machine ("Server disconnected without sending a response").
        config.keep_alive_timeout = 5.0
        # hypercorn calls listen() again on the socket it is given, with its own backlog (100 by
        # default): 500 clients connecting at once on a loaded machine then overflow the accept
        # queue and some connections are reset ("Server disconnected without sending a response").
        config.backlog = 1024
        return config

    async def _hypercorn_asyncio(self) -> None:
        import hypercorn.asyncio

        stopped = asyncio.Event()
        self._asyncio_hooks(stopped.set)
        await hypercorn.asyncio.serve(self.app, self._hypercorn_config(), shutdown_trigger=stopped.wait)

    async def _hypercorn_trio(self) -> None:
        import hypercorn.trio
        import trio

        stopped = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def call(fn: Callable[[], Any]) -> Any:
            return trio.from_thread.run_sync(fn, trio_token=token)

        self._call = call
        self._stop = lambda: token.run_sync_soon(stopped.set)
        self._ready.set()
        await hypercorn.trio.serve(self.app, self._hypercorn_config(), shutdown_trigger=stopped.wait)

    # -- inspection -----------------------------------------------------------------------

    def task_count(self) -> int:
        """How many tasks the server's loop has now."""
        if self.kind == "hypercorn-trio":
            import trio

            def count() -> int:
                def walk(task: Any) -> int:
                    return 1 + sum(walk(t) for n in task.child_nurseries for t in n.child_tasks)

                return walk(trio.lowlevel.current_root_task())

            return int(self.call(count))
        return int(self.call(lambda: len(asyncio.all_tasks())))


class Probe:
    """What the test apps record, keyed by the ``x-test`` header of each request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.items: dict[str, dict[str, Any]] = {}

    def put(self, key: str, **values: Any) -> None:
        with self._lock:
            self.items.setdefault(key, {}).update(values)

    def get(self, key: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.items.get(key, {}))

    async def wait(self, key: str, check: Callable[[dict[str, Any]], bool], timeout: float = 5) -> dict[str, Any]:
        """Poll until ``check(record)`` holds (under ``anyio.fail_after``)."""
        with anyio.fail_after(timeout):
            while True:
                record = self.get(key)
                if record and check(record):
                    return record
                await anyio.sleep(0.002)


def ended(record: dict[str, Any]) -> bool:
    """The request's operation has ended (its status is final)."""
    op = record.get("op")
    return op is not None and op.status.value in ("completed", "cancelled", "failed")


class LogCapture(logging.Handler):
    """Collects every log record (all loggers) while installed."""

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock2:
            self.records.append(record)

    def texts(self, level: int = logging.WARNING) -> list[str]:
        with self._lock2:
            out = []
            for r in self.records:
                if r.levelno >= level:
                    text = r.getMessage()
                    if r.exc_info and r.exc_info[1] is not None:
                        text += f" | {r.exc_info[1]!r}"
                    out.append(f"{r.name}:{r.levelname}:{text}")
            return out

    def __enter__(self) -> LogCapture:
        root = logging.getLogger()
        self._old = root.level
        root.addHandler(self)
        root.setLevel(min(self._old, self.level) if self._old else self.level)
        return self

    def __exit__(self, *exc: object) -> None:
        root = logging.getLogger()
        root.removeHandler(self)
        root.setLevel(self._old)
