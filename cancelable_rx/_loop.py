"""The only code that reaches an event loop from another thread.

An operation captures a `LoopHandle` when it is entered.  From any thread (or a signal
handler) `LoopHandle.run_soon` schedules a plain callback on that loop:
``loop.call_soon_threadsafe`` on asyncio, ``TrioToken.run_sync_soon`` on trio.
`LoopHandle.call` runs the callback at once when called on the loop's own thread and
hops otherwise: every "run here or hop" of the package goes through it.  Callbacks run by
a hop never raise into the loop (failures are logged).  Scheduling onto a loop that has
stopped is a silent no-op: the work it served is over.

Nothing here imports trio unless trio is the running backend.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

__all__ = ("LAST", "LoopHandle", "capture", "get_running_loop")

logger = logging.getLogger("cancelable_rx")
_get_ident = threading.get_ident
get_running_loop = _get_running_loop = asyncio._get_running_loop  # C-level, None when no loop runs
_background: set[asyncio.Task[Any]] = set()
_NO_LOOP = "cancelable_rx needs a running asyncio or trio event loop in this thread"
_current_task = asyncio.current_task
# asyncio's bookkeeping of the running task (private, stable since 3.7; None if removed)
_enter_task: Callable[[Any, Any], None] | None = getattr(asyncio.tasks, "_enter_task", None)
_leave_task: Callable[[Any, Any], None] | None = getattr(asyncio.tasks, "_leave_task", None)


def _backend_scope_class(is_trio: bool) -> Any:
    """The running backend's concrete cancel-scope class.

    ``anyio.CancelScope(...)`` looks the backend up (through sniffio) on every call,
    about half the cost of a bare scope.  The concrete class of one scope built through
    the public API can be called directly (anyio's backend classes override ``__new__``
    to skip that lookup; true for anyio 4.x).  If a future anyio stops allowing it, the
    public class is used: correct, only slower.  Called on the loop thread, once per loop.

    On trio, anyio's class only forwards every call to a ``trio.CancelScope`` it wraps
    (anyio 4.x), so trio's own class is used: the same scope, ~0.5 us cheaper to enter
    and leave.  Everything the package uses (``cancel``, ``deadline``, ``shield``,
    ``cancel_called``, ``cancelled_caught``) has the same meaning on both.
    """
    if is_trio:
        return sys.modules["trio"].CancelScope
    cls: Any = type(anyio.CancelScope())
    try:
        with cls(deadline=0.0):
            pass
    except Exception:  # pragma: no cover - depends on anyio's class layout
        return anyio.CancelScope
    return cls


def _asyncio_task_states(cls: Any) -> Any:
    """anyio's table of asyncio tasks to their innermost cancel scope (``_task_states`` of
    the module of ``cls``, anyio 4.x), or None: then `LoopHandle.cancel_scope` always
    cancels in place."""
    states = getattr(sys.modules.get(cls.__module__), "_task_states", None)
    if states is None or not hasattr(states, "get") or _enter_task is None or _leave_task is None:
        return None  # pragma: no cover - depends on anyio's and asyncio's private layout
    return states


def _scope_holds(states: Any, task: Any, scope: Any) -> bool:
    """True if ``task`` runs inside ``scope`` (its innermost anyio scope is ``scope`` or
    nested in it, across task groups): then anyio's delivery treats it as the current task."""
    state = states.get(task)
    inner = state.cancel_scope if state is not None else None
    while inner is not None:
        if inner is scope:
            return True
        inner = inner._parent_scope
    return False


class LoopHandle:
    """A thread-safe handle on one running event loop.

    ``now()`` is the loop clock (what anyio's ``current_time()`` returns) and
    ``scope_cls(deadline=..., shield=...)`` builds anyio cancel scopes for this backend;
    both are for the loop thread only.  Everything else may be called from any thread.
    """

    __slots__ = ("_schedule", "is_trio", "thread_id", "now", "scope_cls", "poller", "_task_states")

    def __init__(self, schedule: Callable[..., Any], now: Callable[[], float], is_trio: bool) -> None:
        self._schedule = schedule
        self.thread_id = _get_ident()
        self.is_trio = is_trio
        self.now = now
        self.scope_cls: Any = _backend_scope_class(is_trio)
        self._task_states: Any = None if is_trio else _asyncio_task_states(self.scope_cls)
        self.poller: object = None  # the loop's condition poller (sources/_poller.py), made on first use

    def in_loop_thread(self) -> bool:
        """True when called on the loop's own thread."""
        return _get_ident() == self.thread_id

    def run_soon(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` on the loop soon.  Thread-safe and safe in signal handlers; never raises."""
        try:
            self._schedule(_guarded, fn)
        except RuntimeError:
            # asyncio: "Event loop is closed"; trio: RunFinishedError (a RuntimeError).
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("loop already closed; dropped callback %r", fn)

    def call(self, fn: Callable[[], object]) -> None:
        """Run ``fn()`` now if called on the loop thread, else hop to the loop (`run_soon`).

        On the loop thread an exception of ``fn`` propagates to the caller; after a hop it
        is logged.
        """
        if _get_ident() == self.thread_id:
            fn()
        else:
            self.run_soon(fn)

    def cancel_scope(self, scope: Any) -> None:
        """Cancel ``scope`` (a scope made by `scope_cls`, entered on this loop); loop thread only.

        The same as ``scope.cancel()``, cheaper on asyncio: anyio's asyncio ``cancel()``
        formats the calling task's repr into its cancel message (about 7 us on CPython
        3.11, two thirds of the whole cancel).  When the calling task runs outside
        ``scope`` and the loop makes plain tasks (no task factory), the cancel runs with
        asyncio's current task cleared for its duration, so anyio formats nothing; its
        delivery is otherwise the same, since it treats the current task specially only
        when that task is inside the scope (it must not be cancelled while it runs), and
        then the cancel runs as is.  The cancel message of the backend's exception then
        does not name the cancelling task.  With a task factory (a monitor, eager tasks)
        the cancel also runs as is: a task class of its own may look for the current task
        in its ``cancel()``, which anyio's delivery calls.
        """
        states = self._task_states
        if states is not None:
            task = _current_task()
            if task is not None and not _scope_holds(states, task, scope):
                loop = task.get_loop()
                if loop.get_task_factory() is None:
                    try:
                        _leave_task(loop, task)  # type: ignore[misc]
                        scope.cancel()
                    finally:  # whatever was raised (a signal handler's error included)
                        try:
                            _enter_task(loop, task)  # type: ignore[misc]
                        except RuntimeError:  # _leave_task did not run: the task is still current
                            pass
                    return
        scope.cancel()

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
        try:
            sys.modules["trio"].lowlevel.spawn_system_task(_run_logged, fn)
        except RuntimeError:  # the run is shutting down ("Nursery is closed to new arrivals")
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("trio run ending; dropped background task %r", fn)
    else:
        task = asyncio.ensure_future(_run_logged(fn))
        _background.add(task)  # keep a strong reference until it finishes
        task.add_done_callback(_background.discard)


LAST: list[tuple[Any, Any]] = [(None, None)]
"""``LAST[0]`` is the last captured (loop or TrioToken, LoopHandle) pair, replaced as a
whole (threads with loops of their own race on it): when ``get_running_loop()`` returns
``LAST[0][0]``, ``LAST[0][1]`` is its handle.  An asyncio fast path callers may inline."""


def capture() -> LoopHandle:
    """The handle of the loop running in this thread (cached per loop).  Async code only."""
    key: Any = _get_running_loop()
    if key is None:
        trio = sys.modules.get("trio")  # trio runs only if it was imported: never import it here
        if trio is None:
            raise RuntimeError(_NO_LOOP)
        try:
            key = trio.lowlevel.current_trio_token()
        except RuntimeError:
            raise RuntimeError(_NO_LOOP) from None
        last = LAST[0]
        if last[0] is key:
            return last[1]
        handle = LoopHandle(key.run_sync_soon, trio.current_time, True)
    else:
        last = LAST[0]
        if last[0] is key:
            return last[1]
        handle = LoopHandle(key.call_soon_threadsafe, key.time, False)
    LAST[0] = (key, handle)
    return handle
