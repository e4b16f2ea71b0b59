"""Compatibility helpers for code written against ``hother-cancelable``'s thread bridge.

cancelable_rx never needs a bridge: operations and tokens capture their own loop and
``cancel_sync`` works from any thread with nothing started.  These names keep existing
code working: `AnyioBridge` schedules arbitrary callbacks from threads onto the
loop that started it, and `ThreadSafeRegistry` is a synchronous facade over the
registry.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any, Optional, cast

import anyio

from ._cancelable import Cancelable
from ._checks import check_callable, check_positive_int
from ._loop import LoopHandle, capture
from ._models import CancelationReason, OperationContext, OperationStatus
from ._registry import OperationRegistry

__all__ = ("AnyioBridge", "ThreadSafeRegistry", "call_soon_threadsafe")

logger = logging.getLogger("cancelable_rx")


class AnyioBridge:
    """Run callbacks from any thread on the event loop that runs `start`.

    The reference's lifecycle: start it in a task group (``tg.start_soon(bridge.start)``;
    `start` returns when `stop` is called, or when cancelled) and ``await bridge.stop()`` at
    teardown.  Callbacks submitted before it starts (or after it stopped) are queued (at most
    ``buffer_size``; the oldest is dropped, with a warning, beyond that) and run when it
    starts.  Coroutine functions, and callbacks returning an awaitable, run as tasks;
    failures are logged.  Cancelling from a thread never needs it (``cancel_sync`` hops to
    the operation's loop on its own).

    Thread-safety: `call_soon_threadsafe` from any thread; `start` and `stop` on the loop.
    """

    _instance: AnyioBridge | None = None
    _instance_lock = threading.Lock()

    def __init__(self, buffer_size: int = 1000) -> None:
        check_positive_int(buffer_size, "buffer_size", "e.g. AnyioBridge(buffer_size=1000)")
        self._lock = threading.Lock()
        self._handle: LoopHandle | None = None
        self._stopped: anyio.Event | None = None
        self._pending: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._buffer_size = buffer_size

    @classmethod
    def get_instance(cls) -> AnyioBridge:
        """The process-wide bridge (made on first use)."""
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @property
    def is_started(self) -> bool:
        """True from `start` until `stop` (or until `start` is cancelled)."""
        return self._handle is not None

    async def start(self) -> None:
        """Bind to the current loop, run the queued callbacks, and serve until `stop` is
        called or the task is cancelled.  Calling it while started logs a warning and
        returns (as in the reference)."""
        with self._lock:
            if self._handle is not None:
                logger.warning("AnyioBridge already started: ignoring a second start()")
                return
            handle = self._handle = capture()
            stopped = self._stopped = anyio.Event()
            pending, self._pending = list(self._pending), deque()
        for callback, args in pending:
            self._dispatch(handle, callback, args)
        try:
            await stopped.wait()
        finally:
            with self._lock:
                if self._stopped is stopped:
                    self._handle = None
                    self._stopped = None

    async def stop(self) -> None:
        """Stop serving: `start` returns; later callbacks are queued until it starts again.
        Idempotent; a no-op when not started."""
        with self._lock:
            handle, stopped = self._handle, self._stopped
            self._handle = None
            self._stopped = None
        if stopped is not None and handle is not None:
            handle.call(stopped.set)

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Schedule ``callback(*args)`` on the bridge's loop, from any thread."""
        check_callable(callback, "callback", "callback(*args), sync or async")
        with self._lock:
            handle = self._handle
            if handle is None:
                if len(self._pending) >= self._buffer_size:
                    dropped = self._pending.popleft()
                    logger.warning("AnyioBridge not started: dropped queued callback %r", dropped[0])
                self._pending.append((callback, args))
                return
        self._dispatch(handle, callback, args)

    @staticmethod
    def _dispatch(handle: LoopHandle, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        if inspect.iscoroutinefunction(callback):
            handle.spawn(lambda: callback(*args))
        else:
            handle.run_soon(lambda: _run_callback(handle, callback, args))


def _run_callback(handle: LoopHandle, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
    """Run a sync callback on the loop; an awaitable it returns runs as a task (a lambda
    returning a coroutine, as reference users write)."""
    result = callback(*args)
    if inspect.isawaitable(result):
        awaitable = result

        async def run() -> None:
            await awaitable

        handle.spawn(run)


def call_soon_threadsafe(callback: Callable[..., Any], *args: Any) -> None:
    """Schedule ``callback(*args)`` through the global `AnyioBridge`."""
    AnyioBridge.get_instance().call_soon_threadsafe(callback, *args)


class ThreadSafeRegistry:
    """Synchronous, thread-safe facade over an `OperationRegistry`."""

    _instance: ThreadSafeRegistry | None = None
    _instance_lock = threading.Lock()

    def __init__(self, registry: OperationRegistry | None = None) -> None:
        self._given = registry

    @property
    def _registry(self) -> OperationRegistry:
        """The registry it fronts: the one given, else the process-wide one (looked up on
        each call, so it follows ``OperationRegistry.get_instance()``)."""
        return self._given if self._given is not None else OperationRegistry.get_instance()

    @classmethod
    def get_instance(cls) -> ThreadSafeRegistry:
        """The process-wide facade (made on first use, thread-safe)."""
        inst = cls._instance
        if inst is None:
            with cls._instance_lock:
                if cls._instance is None:
                    cls._instance = cls()
                inst = cls._instance
        return inst

    def get_operation(self, operation_id: str) -> Optional[Cancelable]:  # noqa: UP045
        return cast("Cancelable | None", self._registry.get_operation_sync(operation_id))

    def list_operations(
        self,
        status: OperationStatus | None = None,
        parent_id: str | None = None,
        name_pattern: str | None = None,
    ) -> list[OperationContext]:
        return self._registry.list_operations_sync(status, parent_id, name_pattern)

    def get_statistics(self) -> dict[str, Any]:
        return self._registry.get_statistics_sync()

    def get_history(
        self, limit: int | None = None, status: OperationStatus | None = None, since: datetime | None = None
    ) -> list[OperationContext]:
        return self._registry.get_history_sync(limit, status, since)

    def cancel_operation(
        self, operation_id: str, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None
    ) -> bool:
        """Cancel from any thread; True if the operation was found."""
        return self._registry.cancel_operation_sync(operation_id, reason, message)

    def cancel_all(
        self,
        status: OperationStatus | None = None,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> int:
        """Cancel every live operation (with ``status``) from any thread; returns how many."""
        return self._registry.cancel_all_sync(status, reason, message)
