"""The Redis I/O thread: one asyncio event loop per process that runs every Redis
connection of the package, and the bridge that awaits its work from any loop.

redis-py's asyncio client is asyncio-only and bound to the loop that made it.  So the
package runs its clients on a loop of its own, in a daemon thread started on first use,
and callers on asyncio *or* trio submit coroutines to it (`submit`) and await the result
without blocking their loop (`wait`: the result hops back through the caller's
`LoopHandle`).  Notifications go the same way: the I/O thread never runs user code, it
only hops (tokens' listeners are the operations' thread-safe hooks).

The thread is stopped at interpreter exit (connections closed first), and a forked child
starts a fresh one on first use (the parent's loop and sockets are left untouched).

Thread-safety: `submit`, `call_soon` and `wait` may be used from any thread except the
I/O thread itself (`wait` from an event loop: asyncio or trio).
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

__all__ = ("IoThread", "call_soon", "get", "on_shutdown", "submit", "wait")

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


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Run ``coro`` on the I/O loop; the returned future is thread-safe."""
    return asyncio.run_coroutine_threadsafe(coro, get().loop)


def call_soon(fn: Callable[..., object], *args: Any) -> None:
    """Call ``fn(*args)`` on the I/O loop soon, from any thread (a no-op once it stopped)."""
    try:
        get().loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: the interpreter is exiting
        pass


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
