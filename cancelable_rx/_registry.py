"""OperationRegistry: a live, observable view of every registered operation.

State is guarded by one ``threading.Lock``: the async methods and their ``*_sync``
twins read and write the same structures, so every method is safe from any thread and
no bridge needs starting.  One write takes no lock: while nobody subscribes to
`OperationRegistry.events`, an operation entering with ``register_globally=True`` adds
itself to the live set in one dict operation (atomic), and every reader copies the live
set in one operation too.  Lifecycle changes are emitted on `OperationRegistry.events`
(a hot observable); statistics and history are derived from the same transitions.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any, Optional, Protocol

from ._checks import (
    check_aware_datetime,
    check_instance,
    check_non_negative_int,
    check_optional_str,
    check_reason,
    check_status,
    check_str,
    fail_type,
    fail_value,
)
from ._logs import DEBUG, debug_cached, logger
from ._models import (
    TERMINAL_STATUSES,
    CancelationReason,
    EndedRecord,
    OperationContext,
    OperationStatus,
    StopRequest,
    new_id,
)
from ._rx import HubObservable

__all__ = ("DEFAULT_MAX_HISTORY", "LifecycleEvent", "LifecycleKind", "OperationRegistry", "Registrable")

DEFAULT_MAX_HISTORY = 1000


class Registrable(Protocol):
    """What the registry needs from an operation (a ``Cancelable``).

    The operation calls the registry's ``_on_enter``/``_on_progress``/``_on_exit`` on its
    loop thread, and holds the registry it belongs to in ``_registry``.
    """

    _registry: OperationRegistry | None
    _quiet: bool
    _report_one: Callable[..., Any] | None
    _id: str | None  # (read by the hot paths once ``id`` has been made)
    _status: OperationStatus  # (what ``status`` returns)

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def status(self) -> OperationStatus: ...
    @property
    def context(self) -> OperationContext: ...
    @property
    def cancel_reason(self) -> CancelationReason | None: ...
    @property
    def parent_id(self) -> str | None: ...
    @property
    def stop_request(self) -> StopRequest | None: ...

    def _history_record(self, keep_buffers: bool) -> EndedRecord | tuple[Any, ...]: ...

    async def cancel(
        self, reason: CancelationReason = ..., message: str | None = ..., propagate_to_children: bool = ...
    ) -> None: ...

    def cancel_sync(
        self, reason: CancelationReason = ..., message: str | None = ..., propagate_to_children: bool = ...
    ) -> None: ...


def _check_operation(operation: object) -> Registrable:
    cls = type(operation)
    if not (callable(getattr(cls, "cancel_sync", None)) and hasattr(cls, "context") and hasattr(cls, "id")):
        fail_type("operation", "a Cancelable", operation, "register the operation itself, e.g. register(op)")
    return operation  # type: ignore[return-value]


def _check_operation_id(operation_id: object) -> str:
    return check_str(operation_id, "operation_id", "pass the operation's id, e.g. op.id")


def _record_of(op: Registrable) -> OperationContext | None:
    """The operation's record if it was built (its reader may have edited it), else None."""
    return getattr(op, "_ctx", None)


def _status_of(op: Registrable) -> OperationStatus:
    """The status the registry goes by: the record's (users may set ``op.context.status``, as
    in the reference), or the operation's own when no record was built."""
    ctx = _record_of(op)
    return ctx.status if ctx is not None else op.status


_COMPLETED, _CANCELLED, _FAILED = OperationStatus.COMPLETED, OperationStatus.CANCELLED, OperationStatus.FAILED


class LifecycleKind(str, Enum):  # noqa: UP042 - like OperationStatus
    """What happened to an operation."""

    REGISTERED = "registered"
    STARTED = "started"
    PROGRESS = "progress"
    STOPPING = "stopping"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    FAILED = "failed"
    UNREGISTERED = "unregistered"


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One lifecycle transition of a registered operation.

    ``reason`` is set for ``CANCELLED`` and ``STOPPING``, ``error`` for ``FAILED``,
    ``message`` for ``PROGRESS`` and ``STOPPING``, ``metadata`` for ``PROGRESS``.  ``operation`` is the live `Cancelable`.
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


class OperationRegistry:
    """Singleton registry of cancelable operations.

    Operations entered with ``register_globally=True`` are live until they end; then they
    move to a bounded history (``max_history``, default 1000 entries; oldest dropped first)
    so a long-running service does not grow.  Operations passed to `register` stay listed
    after they end, until `unregister` or `cleanup_completed` (as in the reference).  In
    history an operation keeps its record; the buffered items of a stream's partial result
    are released (``keep_partial_buffers=True`` keeps them); history holds nothing of the
    operation itself.

    Thread-safety: every method, async or ``*_sync``, may be called from any thread.
    Cancelling goes through each operation's own loop (``cancel_sync`` semantics).
    """

    _instance: OperationRegistry | None = None
    _instance_lock = threading.Lock()

    def __init__(self, max_history: int = DEFAULT_MAX_HISTORY, *, keep_partial_buffers: bool = False) -> None:
        check_non_negative_int(max_history, "max_history", "e.g. max_history=1000")
        self.keep_partial_buffers = bool(keep_partial_buffers)
        """Keep the buffered items of streams' partial results in history (default False: an
        operation that leaves the live set keeps its `PartialResult`'s ``count`` and
        ``completed``, and its ``buffer`` is released)."""
        # An RLock for `_on_exit`'s interrupt-safe release (see there; nothing re-enters it).
        self._lock = threading.RLock()
        self._operations: dict[str, Registrable] = {}
        # EndedRecords, or the flat tuples operations leave at exit (`_records` turns them
        # into EndedRecords when the history is read)
        self._history: deque[EndedRecord | tuple[Any, ...]] = deque(maxlen=max_history)
        # Lifetime counts, written under the lock (plain ints: the hot paths add to them).
        # ``_left`` counts the operations that left the live set, so the number ever
        # registered is ``len(_operations) + _left``: entering may add an operation
        # without the lock (see `_on_enter`).
        self._left = self._completed = self._cancelled = self._failed = 0
        self._by_reason: dict[str, int] = {}
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
        check_non_negative_int(value, "max_history", "e.g. registry.max_history = 1000")
        with self._lock:
            self._history = deque(self._history, maxlen=value)

    @property
    def _history_limit(self) -> int:
        """The reference's name of `max_history`."""
        return self.max_history

    @_history_limit.setter
    def _history_limit(self, value: int) -> None:
        self.max_history = value

    def _records(self) -> list[EndedRecord]:
        """The history as EndedRecords, oldest first (under the lock).  The flat tuples left
        by exits are made into records once, in place, so a record built from one (and
        perhaps edited by its reader) is the one read next time."""
        history = self._history
        records = [EndedRecord.of(entry) for entry in history]
        if any(type(entry) is tuple for entry in history):
            history.clear()
            history.extend(records)
        return records

    # -- events ------------------------------------------------------------------------

    def _emit(self, kind: LifecycleKind, op: Registrable, **extra: Any) -> None:
        self.events.emit(
            LifecycleEvent(kind, op.id, op.name, op.status, datetime.now(UTC), operation=op, **extra)
        )

    def _add(self, op: Registrable, registering: bool = False) -> bool:
        """List ``op`` under the lock; False if its id is listed already.

        ``registering`` (`register`): also False if the operation ended meanwhile; it may end
        between `register`'s check and this lock, and its exit has then already removed
        it, so it would stay listed for good.  Not for an entering operation: one cancelled
        before or while it entered has a terminal status and must still be listed (its exit
        moves it to history).
        """
        op_id = op.id
        with self._lock:
            if op_id in self._operations or (registering and _status_of(op) in TERMINAL_STATUSES):
                return False
            self._operations[op_id] = op
        op._registry = self
        op._quiet = False  # its progress reports now reach the registry's subscribers:
        op._report_one = None  # the operation's report fast paths are off
        return True

    # -- hooks called by the operation (on its loop thread) ------------------------------

    def _on_enter(self, op: Registrable) -> None:
        """``op`` entered with ``register_globally=True`` (on its loop thread).

        With nobody subscribed to `events` this takes no lock: adding is one atomic dict
        operation (``setdefault``: an operation already listed under the id, passed to
        `register` first or another one given the same id, stays listed), the count of
        registrations is derived (``_left``), and every reader copies the live set in one
        operation.  With subscribers, adding and deciding to announce ``REGISTERED`` happen
        under the lock, as in `register`: an operation that another thread registers at the
        same moment is announced once.  The operation has set its ``_registry`` already.
        """
        op._quiet = False  # its progress reports now reach the registry's subscribers:
        op._report_one = None  # the operation's report fast paths are off
        if self.events._listeners:  # (has_subscribers, without the property call)
            if self._add(op):
                self._emit(LifecycleKind.REGISTERED, op)
            self._emit(LifecycleKind.STARTED, op)
        else:
            op_id = op._id
            if op_id is None:  # (the `id` property, inlined: the hot path)
                op_id = op._id = new_id()
            self._operations.setdefault(op_id, op)

    def _on_stop(self, op: Registrable) -> None:
        """A stop was requested (phase one): the operation is ``STOPPING``."""
        if self.events.has_subscribers:
            stop = op.stop_request
            self._emit(
                LifecycleKind.STOPPING, op, reason=stop.reason if stop is not None else None,
                message=stop.message if stop is not None else None,
            )

    def _on_progress(self, op: Registrable, message: Any, metadata: dict[str, Any] | None) -> None:
        if self.events.has_subscribers:
            self._emit(LifecycleKind.PROGRESS, op, message=message, metadata=metadata)

    def _on_exit(self, op: Registrable, leave: bool) -> None:
        """``op`` ended; with ``leave`` (``register_globally``) it moves to history now, else
        (registered with `register`) it stays listed until `unregister` or `cleanup_completed`,
        as in the reference package."""
        status = op._status
        ops = self._operations
        op_id = op._id or op.id
        lock = self._lock
        # Not `with` (about 80 ns more on every registered exit) and not acquire() before a
        # try (an interrupt delivered as acquire() returns would leave the lock held, and
        # every later registered exit waiting for it): acquire() inside the try, and on any
        # exception an RLock's release(), which releases only a hold of this thread (an
        # interrupt inside a blocked acquire() leaves the lock to its holder).
        try:
            lock.acquire()
            if status is _COMPLETED:
                self._completed += 1
            elif status is _CANCELLED:
                self._cancelled += 1
                reason = op.cancel_reason
                if reason is not None:
                    by_reason = self._by_reason
                    by_reason[reason.value] = by_reason.get(reason.value, 0) + 1
            elif status is _FAILED:
                self._failed += 1
            # (only its own entry: another operation given the same id may be the one listed)
            removed = leave and ops.get(op_id) is op
            if removed:
                del ops[op_id]
                self._left += 1
                self._history.append(op._history_record(self.keep_partial_buffers))  # _to_history, inlined
        except BaseException:
            try:
                lock.release()
            except RuntimeError:  # this thread did not hold it
                pass
            raise
        else:
            lock.release()
        if self.events._listeners:
            if status is _COMPLETED:
                self._emit(LifecycleKind.COMPLETED, op)
            elif status is _CANCELLED:
                self._emit(LifecycleKind.CANCELLED, op, reason=op.cancel_reason)
            else:
                self._emit(LifecycleKind.FAILED, op, error=op.context.error)
            if removed:
                self._emit(LifecycleKind.UNREGISTERED, op)
        if debug_cached(DEBUG) is not False and logger.isEnabledFor(DEBUG):  # (see _logs)
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

    async def register(self, operation: Registrable) -> None:
        """Register ``operation``.  It leaves the live set for history when it ends."""
        _check_operation(operation)
        if _status_of(operation) in TERMINAL_STATUSES:
            fail_value("operation", "an operation that has not ended", operation, "register it before or while it runs")
        if self._add(operation, registering=True) and self.events.has_subscribers:
            self._emit(LifecycleKind.REGISTERED, operation)

    async def unregister(self, operation_id: str) -> None:
        """Move an operation from the live set to history (unknown ids: no-op)."""
        self._unregister(operation_id)

    def _to_history(self, op: Registrable) -> None:
        """Keep ``op``'s record in the bounded history (under the lock): a copy, without the
        buffered items of its partial result unless ``keep_partial_buffers``."""
        self._history.append(op._history_record(self.keep_partial_buffers))

    def _unregister(self, operation_id: str) -> None:
        with self._lock:
            op = self._operations.pop(operation_id, None)
            if op is not None:
                self._left += 1
                self._to_history(op)
        if op is not None and self.events.has_subscribers:
            self._emit(LifecycleKind.UNREGISTERED, op)

    async def get_operation(self, operation_id: str) -> Optional[Registrable]:  # noqa: UP045 - reference spelling
        """The live operation with this id, or None."""
        return self.get_operation_sync(operation_id)

    async def list_operations(
        self,
        status: OperationStatus | None = None,
        parent_id: str | None = None,
        name_pattern: str | None = None,
    ) -> list[OperationContext]:
        """Records (``op.context``) of live operations, filtered by status (the record's),
        parent id and name substring (case-insensitive)."""
        return self.list_operations_sync(status, parent_id, name_pattern)

    async def cancel_operation(
        self,
        operation_id: str,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """Cancel a live operation.  True if found, False for an unknown id."""
        reason = check_reason(reason)
        op = self.get_operation_sync(operation_id)
        if op is None:
            logger.debug("cancel_operation: no live operation %s", operation_id)
            return False
        await op.cancel(reason, message)
        return True

    async def cancel_all(
        self,
        status: OperationStatus | None = None,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> int:
        """Cancel every live operation (with ``status``, its record's, if given).  Returns
        how many were cancelled: one whose ``cancel`` raises is logged and skipped, and the
        others are still cancelled."""
        reason = check_reason(reason)
        count = 0
        for op in self._matching(status):
            try:
                await op.cancel(reason, message or "Bulk cancelation")
            except Exception:
                logger.exception("cancelable_rx: cancelling operation %s failed", op.id)
            else:
                count += 1
        return count

    async def get_history(
        self,
        limit: int | None = None,
        status: OperationStatus | None = None,
        since: datetime | None = None,
    ) -> list[OperationContext]:
        """Ended operations, oldest first; ``status`` keeps those that ended so, ``since``
        those that ended at or after that time (an aware datetime), ``limit`` the newest N."""
        return self.get_history_sync(limit, status, since)

    async def cleanup_completed(self, older_than: timedelta | None = None, keep_failed: bool = True) -> int:
        """Move live operations that already ended to history.  Returns how many.

        ``older_than`` keeps those that ended more recently; ``keep_failed`` keeps failed
        ones live for inspection.  Status and end time are read from each operation's
        record (``op.context``), as in the reference.
        """
        if older_than is not None:
            check_instance(older_than, timedelta, "older_than", "a timedelta or None", "e.g. timedelta(minutes=5)")
        cutoff = datetime.now(UTC) - older_than if older_than is not None else None
        with self._lock:
            ops = list(self._operations.values())
        moved = 0
        for op in ops:
            st = _status_of(op)
            if st not in TERMINAL_STATUSES or (keep_failed and st is OperationStatus.FAILED):
                continue
            end = op.context.end_time
            if cutoff is not None and end is not None and end > cutoff:
                continue
            self._unregister(op.id)
            moved += 1  # as the reference: an operation removed meanwhile by another caller counts
        return moved

    async def get_statistics(self) -> dict[str, Any]:
        """Counts of live and ended operations (see `get_statistics_sync`)."""
        return self.get_statistics_sync()

    async def clear_all(self) -> None:
        """Forget every live operation, the history and the counters (for tests)."""
        with self._lock:
            ops = list(self._operations.values())  # (one operation: an operation may be entering)
            self._operations.clear()
            for op in ops:
                op._registry = None
            self._history.clear()
            self._left = self._completed = self._cancelled = self._failed = 0
            self._by_reason.clear()

    # -- reference API: sync, any thread ------------------------------------------------

    def get_operation_sync(self, operation_id: str) -> Optional[Registrable]:  # noqa: UP045
        """Thread-safe `get_operation`."""
        _check_operation_id(operation_id)
        with self._lock:
            return self._operations.get(operation_id)

    def _matching(
        self,
        status: OperationStatus | None = None,
        parent_id: str | None = None,
        name_pattern: str | None = None,
    ) -> list[Registrable]:
        check_status(status)
        check_optional_str(parent_id, "parent_id", "pass an operation id, e.g. parent.id")
        check_optional_str(name_pattern, "name_pattern", "a substring of the operation names")
        with self._lock:
            ops = list(self._operations.values())
        if status is not None:
            ops = [op for op in ops if _status_of(op) is status]
        if parent_id is not None:
            ops = [op for op in ops if op.parent_id == parent_id]
        if name_pattern:
            pattern = name_pattern.lower()
            ops = [op for op in ops if op.name is not None and pattern in op.name.lower()]
        return ops

    def list_operations_sync(
        self,
        status: OperationStatus | None = None,
        parent_id: str | None = None,
        name_pattern: str | None = None,
    ) -> list[OperationContext]:
        """Thread-safe `list_operations`."""
        return [op.context for op in self._matching(status, parent_id, name_pattern)]

    def get_history_sync(
        self,
        limit: int | None = None,
        status: OperationStatus | None = None,
        since: datetime | None = None,
    ) -> list[OperationContext]:
        """Thread-safe `get_history`."""
        if limit is not None:
            check_non_negative_int(limit, "limit", "or None for all")
        check_status(status)
        check_aware_datetime(since, "since")
        with self._lock:
            records = self._records()
        contexts = [r.context for r in records]
        if status is not None:
            contexts = [c for c in contexts if c.status is status]
        if since is not None:
            contexts = [c for c in contexts if c.end_time is not None and c.end_time >= since]
        if limit is not None:
            contexts = contexts[-limit:] if limit else []
        return contexts

    def get_statistics_sync(self) -> dict[str, Any]:
        """Thread-safe statistics.  The reference's keys: live counts by status
        (``active_operations``, ``active_by_status``), history counts (``history_size``,
        ``history_by_status``), and over the completed history entries with a duration,
        ``average_duration_seconds`` and their number, ``total_completed``.  Ours: lifetime
        totals derived from lifecycle transitions (``total_cancelled``, ``total_failed``,
        ``total_registered``, ``cancelled_by_reason``, ``lifetime_completed``)."""
        with self._lock:
            live = list(self._operations.values())
            history = self._records()
            registered = len(live) + self._left
            completed, cancelled, failed = self._completed, self._cancelled, self._failed
            by_reason = dict(self._by_reason)
        durations = [
            d for r in history if r.status is OperationStatus.COMPLETED and (d := r.duration_seconds)
        ]
        return {
            "active_operations": len(live),
            "active_by_status": dict(Counter(_status_of(op).value for op in live)),
            "history_size": len(history),
            "history_by_status": dict(Counter(r.status.value for r in history)),
            "average_duration_seconds": sum(durations) / len(durations) if durations else 0.0,
            "total_completed": len(durations),
            "lifetime_completed": completed,
            "total_cancelled": cancelled,
            "total_failed": failed,
            "total_registered": registered,
            "cancelled_by_reason": by_reason,
        }

    def cancel_operation_sync(
        self,
        operation_id: str,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """Cancel from any thread; returns at once (the operation hops to its loop).  True if
        the operation was found, as `cancel_operation` returns."""
        reason = check_reason(reason)
        op = self.get_operation_sync(operation_id)
        if op is None:
            return False
        op.cancel_sync(reason, message)
        return True

    def cancel_all_sync(
        self,
        status: OperationStatus | None = None,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> int:
        """Cancel every live operation (with ``status``, if given) from any thread.  Returns
        how many, as `cancel_all` does (one whose cancel raises is logged and skipped)."""
        reason = check_reason(reason)
        count = 0
        for op in self._matching(status):
            try:
                op.cancel_sync(reason, message or "Bulk cancelation")
            except Exception:
                logger.exception("cancelable_rx: cancelling operation %s failed", op.id)
            else:
                count += 1
        return count

