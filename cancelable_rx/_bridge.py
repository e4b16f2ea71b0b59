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
from ._checks import check_callable
from ._loop import LoopHandle, capture
from ._models import CancelationReason, OperationContext, OperationStatus
from ._registry import OperationRegistry

__all__ = ("AnyioBridge", "ThreadSafeRegistry", "call_soon_threadsafe")

logger = logging.getLogger("cancelable_rx")


class AnyioBridge:
    """Run callbacks from any thread on the event loop that runs `start`.

    Start it in a task group (``tg.start_soon(bridge.start)``); it runs until cancelled.
    Callbacks submitted before it starts are queued (at most ``max_pending``; the oldest
    is dropped, with a warning, beyond that) and run when it starts.  Coroutine functions
    run as tasks; failures are logged.
    """

    _instance: AnyioBridge | None = None
    _instance_lock = threading.Lock()

    def __init__(self, max_pending: int = 1000) -> None:
        self._lock = threading.Lock()
        self._handle: LoopHandle | None = None
        self._pending: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._max_pending = max_pending

    @classmethod
    def get_instance(cls) -> AnyioBridge:
        with cls._instance_lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    @property
    def is_started(self) -> bool:
        return self._handle is not None

    async def start(self) -> None:
        """Bind to the current loop and serve until cancelled."""
        with self._lock:
            if self._handle is not None:
                raise RuntimeError("AnyioBridge is already started")
            self._handle = capture()
            pending, self._pending = list(self._pending), deque()
        for callback, args in pending:
            self._dispatch(self._handle, callback, args)
        try:
            await anyio.sleep_forever()
        finally:
            with self._lock:
                self._handle = None

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Schedule ``callback(*args)`` on the bridge's loop, from any thread."""
        check_callable(callback, "callback", "callback(*args), sync or async")
        with self._lock:
            handle = self._handle
            if handle is None:
                if len(self._pending) >= self._max_pending:
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
            handle.run_soon(lambda: callback(*args))


def call_soon_threadsafe(callback: Callable[..., Any], *args: Any) -> None:
    """Schedule ``callback(*args)`` through the global `AnyioBridge`."""
    AnyioBridge.get_instance().call_soon_threadsafe(callback, *args)


class ThreadSafeRegistry:
    """Synchronous, thread-safe facade over an `OperationRegistry`."""

    _instance: ThreadSafeRegistry | None = None

    def __init__(self, registry: OperationRegistry | None = None) -> None:
        self._registry = registry if registry is not None else OperationRegistry.get_instance()

    @classmethod
    def get_instance(cls) -> ThreadSafeRegistry:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

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
    ) -> None:
        self._registry.cancel_operation_sync(operation_id, reason, message)

    def cancel_all(
        self,
        status: OperationStatus | None = None,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> None:
        self._registry.cancel_all_sync(status, reason, message)
