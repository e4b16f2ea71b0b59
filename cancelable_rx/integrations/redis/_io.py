"""Where the package's Redis connections run, and the bridge that awaits their work from
any loop.

redis-py's asyncio client is asyncio-only and bound to the loop that made it.  Each
piece of Redis work runs on a *home* loop (`home`):

* on asyncio, the caller's own loop: no thread and no hop, so a cancel announced by Redis
  cancels the listening operations directly on their loop (a hop between threads costs
  more than the whole Redis round trip on a small machine);
* on trio (or from a thread without a loop), the package's I/O thread: one asyncio loop
  in a daemon thread, started on first use.  Results hop back through the caller's
  `LoopHandle` (`wait`), so the caller's loop never blocks.

`run_at` runs a coroutine on a home loop from anywhere (awaiting it directly when the
caller runs on that loop).  The I/O thread is stopped at interpreter exit (its
connections closed first), and a forked child starts a fresh one on first use (the
parent's loop and sockets are left untouched).

Thread-safety: every function may be called from any thread; `wait` and `run_at` from
an event loop (asyncio or trio).
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio

from cancelable_rx._loop import capture

__all__ = ("IoThread", "call_soon", "get", "home", "on_shutdown", "run_at", "submit", "wait")

logger = logging.getLogger("cancelable_rx.redis")
T = TypeVar("T")
_SHUTDOWN_WAIT = 2.0  # seconds the interpreter's exit waits for connections to close


class IoThread:
    """An asyncio loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._main, name="cancelable_rx-redis-io", daemon=True)
        self.thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    def in_thread(self) -> bool:
        return threading.get_ident() == self.thread.ident

    def stop(self) -> None:
        """Run the shutdown hooks on the loop (bounded), then stop it and wait for the thread."""
        if not self.thread.is_alive():
            return

        async def shutdown() -> None:
            for hook in list(_shutdown_hooks):
                try:
                    await hook()
                except Exception:
                    logger.debug("cancelable_rx: a shutdown hook of the Redis I/O thread failed", exc_info=True)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(_SHUTDOWN_WAIT)
        except Exception:
            logger.debug("cancelable_rx: the Redis I/O thread did not shut down cleanly", exc_info=True)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(_SHUTDOWN_WAIT)


_lock = threading.Lock()
_current: IoThread | None = None
_shutdown_hooks: list[Callable[[], Awaitable[object]]] = []
_orphans: list[object] = []  # what a forked child inherited: kept alive, never closed


def get() -> IoThread:
    """The process's I/O thread (started on first use)."""
    io = _current
    if io is not None and io.pid == os.getpid():
        return io
    with _lock:
        io = _current
        if io is None or io.pid != os.getpid():
            io = _start()
    return io


def _start() -> IoThread:
    global _current
    io = _current = IoThread()
    return io


def on_shutdown(hook: Callable[[], Awaitable[object]]) -> None:
    """Run ``await hook()`` on the I/O loop when the interpreter exits (before it stops)."""
    _shutdown_hooks.append(hook)


def _after_fork_in_child() -> None:
    global _current
    if _current is not None:
        _orphans.append(_current)  # its loop's thread does not exist here; never touch its sockets
    _current = None


def _at_exit() -> None:
    io = _current
    if io is not None and io.pid == os.getpid():
        io.stop()


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)


def home() -> asyncio.AbstractEventLoop:
    """The loop the caller's Redis work runs on: its own on asyncio, else the I/O thread's."""
    loop = asyncio._get_running_loop()
    return loop if loop is not None else get().loop


def submit(coro: Coroutine[Any, Any, T], loop: asyncio.AbstractEventLoop | None = None) -> concurrent.futures.Future[T]:
    """Run ``coro`` on ``loop`` (default: the I/O thread's); the returned future is
    thread-safe.  RuntimeError if that loop is closed."""
    try:
        return asyncio.run_coroutine_threadsafe(coro, loop if loop is not None else get().loop)
    except RuntimeError:
        coro.close()
        raise


def call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., object], *args: Any) -> None:
    """Call ``fn(*args)`` on ``loop`` soon, from any thread (a no-op once it is closed)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: what it served is gone
        pass


_asyncio_scope: Any = None


def _asyncio_scope_class() -> Any:
    """anyio's asyncio cancel-scope class, called directly (``anyio.CancelScope()`` looks
    the backend up on every call: about half the cost of a scope; see `_loop`)."""
    global _asyncio_scope
    _asyncio_scope = capture().scope_cls
    return _asyncio_scope


async def run_at(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], *, shield: bool = False) -> T:
    """Run ``coro`` on ``loop`` and return its result: awaited directly when the caller runs
    on ``loop``, else through `submit` and `wait`.

    Cancellation: if the caller is cancelled, the work is cancelled too, unless ``shield``:
    then the work runs to its end (it must bound itself) and the caller's cancellation
    takes effect when it returns.
    """
    if asyncio._get_running_loop() is loop:
        if not shield:
            return await coro
        scope_cls = _asyncio_scope or _asyncio_scope_class()
        with scope_cls(shield=True):  # no task, no extra loop iteration: the hot path
            result = await coro
        return result
    future = submit(coro, loop)
    if not shield:
        return await wait(future)
    with anyio.CancelScope(shield=True):
        result = await wait(future, cancel_on_abort=False)
    return result


async def wait(future: concurrent.futures.Future[T], *, cancel_on_abort: bool = True) -> T:
    """Await a future of the I/O loop from the caller's loop (asyncio or trio), never blocking it.

    Cancellation: if the caller is cancelled while waiting, the I/O work is cancelled too,
    unless ``cancel_on_abort`` is False (then it runs to its end; its result is dropped).
    """
    if not future.done():
        handle = capture()
        done = anyio.Event()

        def wake(_: concurrent.futures.Future[T]) -> None:
            handle.run_soon(done.set)

        future.add_done_callback(wake)
        try:
            await done.wait()
        except BaseException:
            if cancel_on_abort:
                future.cancel()
            raise
    return future.result()
