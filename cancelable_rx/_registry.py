"""OperationRegistry: a live, observable view of every registered operation.

State is guarded by one ``threading.Lock``: the async methods and their ``*_sync``
twins read and write the same structures, so every method is safe from any thread and
no bridge needs starting.  Lifecycle changes are emitted on :attr:`OperationRegistry.events`
(a hot observable); statistics and history are derived from the same transitions.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Optional

from ._models import CancelationReason, OperationContext, OperationStatus
from ._rx import HubObservable

if TYPE_CHECKING:
    from ._cancelable import Cancelable

__all__ = ("DEFAULT_MAX_HISTORY", "LifecycleEvent", "LifecycleKind", "OperationRegistry")

logger = logging.getLogger("cancelable_rx")
DEFAULT_MAX_HISTORY = 1000
_TERMINAL = (OperationStatus.COMPLETED, OperationStatus.CANCELLED, OperationStatus.FAILED, OperationStatus.TIMEOUT)


class LifecycleKind(str, Enum):
    """What happened to an operation."""

    REGISTERED = "registered"
    STARTED = "started"
    PROGRESS = "progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    UNREGISTERED = "unregistered"


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One lifecycle transition of a registered operation.

    ``reason`` is set for ``CANCELLED``, ``error`` for ``FAILED``, ``message`` and
    ``metadata`` for ``PROGRESS``.  ``operation`` is the live :class:`Cancelable`.
    """

    kind: LifecycleKind
    operation_id: str
    name: str | None
    status: OperationStatus
    timestamp: datetime
    reason: CancelationReason | None = None
    error: str | None = None
    message: Any = None
    metadata: dict[str, Any] | None = None
    operation: Any = field(default=None, repr=False, compare=False)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"`limit` must be a non-negative int or None, got {limit!r}")


def _check_since(since: datetime | None) -> None:
    if since is None:
        return
    if not isinstance(since, datetime):
        raise TypeError(f"`since` must be a datetime or None, got {since!r}")
    if since.tzinfo is None or since.utcoffset() is None:
        raise ValueError(
            f"`since` must be timezone-aware (e.g. datetime.now(UTC) - timedelta(minutes=5)), got naive {since!r}"
        )


def _check_pattern(name_pattern: str | None) -> None:
    if name_pattern is not None and not isinstance(name_pattern, str):
        raise TypeError(f"`name_pattern` must be a str (substring of the name) or None, got {name_pattern!r}")


def _check_status(status: OperationStatus | None) -> None:
    if status is not None and not isinstance(status, OperationStatus):
        raise TypeError(f"`status` must be an OperationStatus or None, got {status!r}")


class OperationRegistry:
    """Singleton registry of cancelable operations.

    Operations entered with ``register_globally=True`` (or passed to :meth:`register`)
    are live until they end; then they move to a bounded history (``max_history``,
    default 1000 entries; oldest dropped first) so a long-running service does not grow.

    Thread-safety: every method, async or ``*_sync``, may be called from any thread.
    Cancelling goes through each operation's own loop (``cancel_sync`` semantics).
    """

    _instance: OperationRegistry | None = None
    _instance_lock = threading.Lock()

    def __init__(self, max_history: int = DEFAULT_MAX_HISTORY) -> None:
        if isinstance(max_history, bool) or not isinstance(max_history, int) or max_history < 0:
            raise ValueError(f"`max_history` must be a non-negative int, got {max_history!r}")
        self._lock = threading.Lock()
        self._operations: dict[str, Cancelable] = {}
        self._history: deque[Cancelable] = deque(maxlen=max_history)
        self._counts: Counter[str] = Counter()
        self.events: HubObservable[LifecycleEvent] = HubObservable()

    @classmethod
    def get_instance(cls) -> OperationRegistry:
        """The process-wide registry."""
        inst = cls._instance
        if inst is None:
            with cls._instance_lock:
                if cls._instance is None:
                    cls._instance = cls()
                inst = cls._instance
        return inst

    @property
    def max_history(self) -> int:
        return self._history.maxlen or 0

    @max_history.setter
    def max_history(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"`max_history` must be a non-negative int, got {value!r}")
        with self._lock:
            self._history = deque(self._history, maxlen=value)

    # -- events ------------------------------------------------------------------------

    def _emit(self, kind: LifecycleKind, op: Cancelable, **extra: Any) -> None:
        self.events.emit(
            LifecycleEvent(kind, op.id, op.name, op.status, datetime.now(UTC), operation=op, **extra)
        )

    def _add(self, op: Cancelable) -> bool:
        op_id = op.id
        with self._lock:
            if op_id in self._operations:
                return False
            self._operations[op_id] = op
            self._counts["registered"] += 1
        op._registry = self
        return True

    # -- hooks called by Cancelable (on its loop thread) ------------------------------

    def _on_enter(self, op: Cancelable) -> None:
        added = self._add(op)
        if self.events._hub._listeners:
            if added:
                self._emit(LifecycleKind.REGISTERED, op)
            self._emit(LifecycleKind.STARTED, op)

    def _on_progress(self, op: Cancelable, message: Any, metadata: dict[str, Any] | None) -> None:
        if self.events._hub._listeners:
            self._emit(LifecycleKind.PROGRESS, op, message=message, metadata=metadata)

    def _on_exit(self, op: Cancelable) -> None:
        status = op.status
        with self._lock:
            self._counts[status.value] += 1
            if status is OperationStatus.CANCELLED and op.cancel_reason is not None:
                self._counts["reason:" + op.cancel_reason.value] += 1
            removed = self._operations.pop(op.id, None) is not None
            if removed:
                self._history.append(op)
        if self.events._hub._listeners:
            if status is OperationStatus.COMPLETED:
                self._emit(LifecycleKind.COMPLETED, op)
            elif status is OperationStatus.CANCELLED:
                self._emit(LifecycleKind.CANCELLED, op, reason=op.cancel_reason)
            else:
                self._emit(LifecycleKind.FAILED, op, error=op.context.error)
            if removed:
                self._emit(LifecycleKind.UNREGISTERED, op)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "operation %s ended: %s",
                op.id,
                status.value,
                extra={
                    "operation_id": op.id,
                    "operation_name": op.name,
                    "cancel_reason": op.cancel_reason.value if op.cancel_reason else None,
                },
            )

    # -- reference API: async -------------------------------------------------------

    async def register(self, operation: Cancelable) -> None:
        """Register ``operation``.  It leaves the live set for history when it ends."""
        from ._cancelable import Cancelable

        if not isinstance(operation, Cancelable):
            raise TypeError(f"`operation` must be a Cancelable, got {operation!r}")
        if self._add(operation) and self.events._hub._listeners:
            self._emit(LifecycleKind.REGISTERED, operation)

    async def unregister(self, operation_id: str) -> None:
        """Move an operation from the live set to history (unknown ids: no-op)."""
        self._unregister(operation_id)

    def _unregister(self, operation_id: str) -> None:
        with self._lock:
            op = self._operations.pop(operation_id, None)
            if op is not None:
                self._history.append(op)
        if op is not None and self.events._hub._listeners:
            self._emit(LifecycleKind.UNREGISTERED, op)

    async def get_operation(self, operation_id: str) -> Optional[Cancelable]:  # noqa: UP045 - reference spelling
        """The live operation with this id, or None."""
        return self.get_operation_sync(operation_id)

    async def list_operations(
        self,
        status: OperationStatus | None = None,
        parent_id: str | None = None,
        name_pattern: str | None = None,
    ) -> list[OperationContext]:
        """Contexts of live operations, filtered by status, parent id and name substring."""
        return self.list_operations_sync(status, parent_id, name_pattern)

    async def cancel_operation(
        self,
        operation_id: str,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """Cancel a live operation.  True if found, False for an unknown id."""
        op = self.get_operation_sync(operation_id)
        if op is None:
            return False
        await op.cancel(reason, message)
        return True

    async def cancel_all(
        self,
        status: OperationStatus | None = None,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> int:
        """Cancel every live operation (with ``status``, if given).  Returns how many."""
        ops = self._matching(status)
        for op in ops:
            await op.cancel(reason, message)
        return len(ops)

    async def get_history(
        self,
        limit: int | None = None,
        status: OperationStatus | None = None,
        since: datetime | None = None,
    ) -> list[OperationContext]:
        """Ended operations, oldest first; ``limit`` keeps the newest N."""
        return self.get_history_sync(limit, status, since)

    async def cleanup_completed(self, older_than: timedelta | None = None, keep_failed: bool = True) -> int:
        """Move live operations that already ended to history.  Returns how many.

        ``older_than`` keeps those that ended more recently; ``keep_failed`` keeps failed
        ones live for inspection.
        """
        if older_than is not None and not isinstance(older_than, timedelta):
            raise TypeError(f"`older_than` must be a timedelta or None, got {older_than!r}")
        cutoff = datetime.now(UTC) - older_than if older_than is not None else None
        with self._lock:
            ops = list(self._operations.values())
        moved = 0
        for op in ops:
            st = op.status
            if st not in _TERMINAL or (keep_failed and st is OperationStatus.FAILED):
                continue
            end = op.context.end_time
            if cutoff is not None and end is not None and end > cutoff:
                continue
            self._unregister(op.id)
            moved += 1
        return moved

    async def get_statistics(self) -> dict[str, Any]:
        """Counts of live and ended operations (see :meth:`get_statistics_sync`)."""
        return self.get_statistics_sync()

    async def clear_all(self) -> None:
        """Forget every live operation, the history and the counters (for tests)."""
        with self._lock:
            for op in self._operations.values():
                op._registry = None
            self._operations.clear()
            self._history.clear()
            self._counts.clear()

    # -- reference API: sync, any thread ------------------------------------------------

    def get_operation_sync(self, operation_id: str) -> Optional[Cancelable]:  # noqa: UP045
        """Thread-safe :meth:`get_operation`."""
        with self._lock:
            return self._operations.get(operation_id)

    def _matching(
        self,
        status: OperationStatus | None = None,
        parent_id: str | None = None,
        name_pattern: str | None = None,
    ) -> list[Cancelable]:
        _check_status(status)
        _check_pattern(name_pattern)
        with self._lock:
            ops = list(self._operations.values())
        if status is not None:
            ops = [op for op in ops if op.status is status]
        if parent_id is not None:
            ops = [op for op in ops if op.parent is not None and op.parent.id == parent_id]
        if name_pattern is not None:
            ops = [op for op in ops if op.name is not None and name_pattern in op.name]
        return ops

    def list_operations_sync(
        self,
        status: OperationStatus | None = None,
        parent_id: str | None = None,
        name_pattern: str | None = None,
    ) -> list[OperationContext]:
        """Thread-safe :meth:`list_operations`."""
        return [op.context for op in self._matching(status, parent_id, name_pattern)]

    def get_history_sync(
        self,
        limit: int | None = None,
        status: OperationStatus | None = None,
        since: datetime | None = None,
    ) -> list[OperationContext]:
        """Thread-safe :meth:`get_history`."""
        _check_limit(limit)
        _check_status(status)
        _check_since(since)
        with self._lock:
            ops = list(self._history)
        contexts = [op.context for op in ops]
        if status is not None:
            contexts = [c for c in contexts if c.status is status]
        if since is not None:
            contexts = [c for c in contexts if c.end_time is not None and c.end_time > since]
        if limit is not None:
            contexts = contexts[-limit:] if limit else []
        return contexts

    def get_statistics_sync(self) -> dict[str, Any]:
        """Thread-safe statistics: live counts by status, history counts by status, the
        average duration of completed history entries, and lifetime totals (including
        cancellations by reason), derived from lifecycle transitions."""
        with self._lock:
            live = list(self._operations.values())
            history = list(self._history)
            counts = dict(self._counts)
        durations = [d for op in history if op.status is OperationStatus.COMPLETED and (d := _duration(op)) is not None]
        return {
            "active_operations": len(live),
            "active_by_status": dict(Counter(op.status.value for op in live)),
            "history_size": len(history),
            "history_by_status": dict(Counter(op.status.value for op in history)),
            "average_duration_seconds": sum(durations) / len(durations) if durations else 0.0,
            "total_completed": counts.get("completed", 0),
            "total_cancelled": counts.get("cancelled", 0),
            "total_failed": counts.get("failed", 0),
            "total_registered": counts.get("registered", 0),
            "cancelled_by_reason": {k[7:]: v for k, v in counts.items() if k.startswith("reason:")},
        }

    def cancel_operation_sync(
        self,
        operation_id: str,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> None:
        """Cancel from any thread; returns at once (the operation hops to its loop)."""
        op = self.get_operation_sync(operation_id)
        if op is not None:
            op.cancel_sync(reason, message)

    def cancel_all_sync(
        self,
        status: OperationStatus | None = None,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> None:
        """Cancel every live operation (with ``status``, if given) from any thread."""
        for op in self._matching(status):
            op.cancel_sync(reason, message)


def _duration(op: Cancelable) -> float | None:
    start, end = op._start_ts, op._end_ts
    return end - start if start is not None and end is not None else None

