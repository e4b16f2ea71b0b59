"""The only code that reaches an event loop from another thread.

An operation captures a :class:`LoopHandle` when it is entered.  From any thread (or a
signal handler) :meth:`LoopHandle.run_soon` schedules a plain callback on that loop:
``loop.call_soon_threadsafe`` on asyncio, ``TrioToken.run_sync_soon`` on trio.  The
scheduled callback never raises into the loop: failures are logged.  Scheduling onto a
loop that has already stopped is a silent no-op (the operation it served is over).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ("LoopHandle", "capture")

logger = logging.getLogger("cancelable_rx")
_get_ident = threading.get_ident
_get_running_loop = asyncio._get_running_loop  # C-level, no exception when absent
_background: set[asyncio.Task[Any]] = set()


def _scope_classes() -> tuple[Any, Any]:
    """The backends' CancelScope classes, to skip anyio's per-call backend lookup.

    ``anyio.CancelScope()`` resolves the backend through sniffio on every call (about
    half the cost of a bare scope).  We resolve it once per loop instead.  This reaches
    into ``anyio._backends``: if that layout changes, fall back to ``anyio.CancelScope``.
    """
    import anyio

    asyncio_scope: Any = anyio.CancelScope
    trio_scope: Any = anyio.CancelScope
    try:
        from anyio._backends import _asyncio

        asyncio_scope = _asyncio.CancelScope
    except Exception:  # pragma: no cover - depends on anyio's private layout
        pass
    try:
        from anyio._backends import _trio

        trio_scope = _trio.CancelScope
    except Exception:  # pragma: no cover - trio not installed or layout changed
        pass
    return asyncio_scope, trio_scope


class LoopHandle:
    """A thread-safe handle on one running event loop.

    ``now()`` is the loop clock (anyio's ``current_time``), ``scope_cls`` builds anyio
    cancel scopes for this backend.  Both are for the loop thread only.
    """

    __slots__ = ("_schedule", "is_trio", "thread_id", "_token", "now", "scope_cls")

    def __init__(self, schedule: Callable[..., Any], thread_id: int, is_trio: bool, token: Any) -> None:
        self._schedule = schedule
        self.thread_id = thread_id
        self.is_trio = is_trio
        self._token = token
        asyncio_scope, trio_scope = _scope_classes()
        if is_trio:
            import trio

            self.now: Callable[[], float] = trio.current_time
            self.scope_cls: Any = trio_scope
        else:
            self.now = token.time
            self.scope_cls = asyncio_scope

    def in_loop_thread(self) -> bool:
        """True when called on the loop's own thread."""
        return _get_ident() == self.thread_id

    def run_soon(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on the loop soon.  Thread-safe and safe in signal handlers."""
        try:
            self._schedule(_guarded, fn)
        except RuntimeError:
            # asyncio: "Event loop is closed"; trio: RunFinishedError (a RuntimeError).
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("loop already closed; dropped callback %r", fn)

    def spawn(self, fn: Callable[[], Awaitable[object]]) -> None:
        """Start ``await fn()`` as a background task on the loop, from any thread.

        Exceptions of the task are logged, never raised into the loop.
        """
        self.run_soon(lambda: _start_task(self, fn))


def _guarded(fn: Callable[[], object]) -> None:
    try:
        fn()
    except Exception:
        logger.exception("cancelable_rx: callback scheduled on the loop failed")


async def _run_logged(fn: Callable[[], Awaitable[object]]) -> None:
    try:
        await fn()
    except Exception:
        logger.exception("cancelable_rx: background callback failed")


def _start_task(handle: LoopHandle, fn: Callable[[], Awaitable[object]]) -> None:
    if handle.is_trio:
        import trio

        trio.lowlevel.spawn_system_task(_run_logged, fn)
    else:
        task = asyncio.ensure_future(_run_logged(fn))
        _background.add(task)  # keep a strong reference until it finishes
        task.add_done_callback(_background.discard)


_last: tuple[Any, LoopHandle | None] = (None, None)  # (loop or TrioToken, its handle)


def capture() -> LoopHandle:
    """The handle of the loop running in this thread (cached per loop).  Async code only."""
    global _last
    key: Any = _get_running_loop()
    if key is None:
        trio = sys.modules.get("trio")
        if trio is None:
            raise RuntimeError("cancelable_rx needs a running asyncio or trio event loop in this thread")
        try:
            key = trio.lowlevel.current_trio_token()
        except RuntimeError:
            raise RuntimeError("cancelable_rx needs a running asyncio or trio event loop in this thread") from None
    last_key, handle = _last
    if last_key is key and handle is not None:
        return handle
    if hasattr(key, "run_sync_soon"):
        handle = LoopHandle(key.run_sync_soon, _get_ident(), True, key)
    else:
        handle = LoopHandle(key.call_soon_threadsafe, _get_ident(), False, key)
    _last = (key, handle)
    return handle

