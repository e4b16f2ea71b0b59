"""Callbacks and progress of one operation: one object, made on first use.

`Hooks` holds the lifecycle callbacks (start, complete, cancel, error), the progress
callbacks and the progress observable.  It knows nothing of the operation class: the
operation passes what a call needs (its id, its record, its loop).

Every callback is isolated: an exception is logged and never reaches the operation or the
other callbacks.  Callbacks may be sync or async.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ._checks import check_callable
from ._loop import LoopHandle
from ._models import OperationContext, OperationStatus, ProgressEvent
from ._rx import HubObservable

__all__ = (
    "ErrorCallback",
    "ErrorCallbackType",
    "Hooks",
    "ProgressCallback",
    "ProgressCallbackType",
    "ProgressObservable",
    "StatusCallback",
    "StatusCallbackType",
)

logger = logging.getLogger("cancelable_rx")

StatusCallbackType = Callable[[OperationContext], Awaitable[None] | None]
ErrorCallbackType = Callable[[OperationContext, Exception], Awaitable[None] | None]
ProgressCallbackType = Callable[[str, Any, dict[str, Any] | None], Awaitable[None] | None]
# The short names hother-cancelable also exports.
StatusCallback = StatusCallbackType
ErrorCallback = ErrorCallbackType
ProgressCallback = ProgressCallbackType

KINDS = ("start", "complete", "cancel", "error")


class ProgressObservable(HubObservable[ProgressEvent]):
    """The hot observable of an operation's progress events.

    Emitting with no subscriber is a single attribute test.  Subscribers are called on
    the thread that reports (the event loop thread for streams and ``report_progress``);
    an exception in one is logged and isolated.
    """


async def _call_isolated(kind: str, fn: Callable[..., Any], *args: Any) -> None:
    try:
        result = fn(*args)
        if result is not None and inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("cancelable_rx: %s callback %r failed", kind, fn)


async def _await_logged(awaitable: Awaitable[Any], fn: Callable[..., Any]) -> None:
    try:
        await awaitable
    except Exception:
        logger.exception("cancelable_rx: progress callback %r failed", fn)


class _Conflating:
    """Runs one async progress callback in the background, never more than one call at a
    time; while a call runs only the newest pending event is kept (older ones are dropped),
    so a slow callback can never block or grow behind a fast stream."""

    __slots__ = ("fn", "pending", "running")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.pending: tuple[Any, ...] | None = None
        self.running = False

    def submit(self, handle: LoopHandle, args: tuple[Any, ...]) -> None:
        self.pending = args
        if not self.running:
            self.running = True
            handle.spawn(self._drain)

    async def _drain(self) -> None:
        try:
            while self.pending is not None:
                args, self.pending = self.pending, None
                await _call_isolated("progress", self.fn, *args)
        finally:
            self.running = False


class Hooks:
    """Lifecycle callbacks, progress callbacks and the progress observable of one operation.

    Thread-safety: callbacks are registered and called on the operation's loop thread.
    """

    __slots__ = ("_status", "_progress", "_runners", "observable")

    def __init__(self) -> None:
        self._status: dict[str, list[Callable[..., Any]]] | None = None
        self._progress: tuple[Callable[..., Any], ...] = ()  # replaced on add: iterated without a copy
        self._runners: dict[Callable[..., Any], _Conflating] = {}
        self.observable: ProgressObservable | None = None

    # -- lifecycle ---------------------------------------------------------------------

    def add(self, kind: str, callback: Callable[..., Any]) -> None:
        shape = "callback(context, error)" if kind == "error" else "callback(context)"
        check_callable(callback, f"on_{kind} callback", shape + ", sync or async")
        if self._status is None:
            self._status = {k: [] for k in KINDS}
        self._status[kind].append(callback)

    def has(self, kind: str) -> bool:
        return self._status is not None and bool(self._status[kind])

    async def trigger(self, kind: str, context: OperationContext, *extra: Any) -> None:
        """Call every ``kind`` callback with ``(context, *extra)``, in registration order."""
        if self._status is None:
            return
        for fn in list(self._status[kind]):
            await _call_isolated(kind, fn, context, *extra)

    # -- progress ----------------------------------------------------------------------

    def add_progress(self, callback: Callable[..., Any]) -> None:
        check_callable(callback, "on_progress callback", "callback(operation_id, message, metadata), sync or async")
        self._progress += (callback,)
        if inspect.iscoroutinefunction(callback):
            self._runners[callback] = _Conflating(callback)

    def sole_sync_progress(self) -> Callable[..., Any] | None:
        """The progress callback, if it is the only listener and not a coroutine function."""
        progress = self._progress
        if len(progress) == 1 and self.observable is None and progress[0] not in self._runners:
            return progress[0]
        return None

    def progress_observable(self) -> ProgressObservable:
        if self.observable is None:
            self.observable = ProgressObservable()
        return self.observable

    @property
    def listening(self) -> bool:
        """True if a progress report would reach anyone."""
        observable = self.observable
        return bool(self._progress) or (observable is not None and observable.has_subscribers)

    def emit_stream(self, op_id: str, count: int, item: Any, handle: LoopHandle | None) -> None:
        """Progress from a stream: never awaits.  Sync callbacks are called inline
        (isolated); async ones run in the background, conflated (see ``_Conflating``)."""
        message = f"Processed {count} items"
        metadata = {"count": count, "latest_item": item}
        if self.observable is not None:
            self.observable.emit(ProgressEvent(op_id, message, metadata, count))
        runners = self._runners
        for fn in self._progress:
            runner = runners.get(fn)
            if runner is not None:
                if handle is not None:
                    runner.submit(handle, (op_id, message, metadata))
                continue
            try:
                result = fn(op_id, message, metadata)
                if result is not None and inspect.isawaitable(result) and handle is not None:
                    # a sync callable returning an awaitable: await it in the background
                    handle.spawn(_Awaiting(result, fn))
            except Exception:
                logger.exception("cancelable_rx: progress callback %r failed", fn)

    def finish(self, op_id: str, count: int | None, outcome: OperationStatus, message: str) -> None:
        """The operation ended: send the final event (exact ``count``, ``outcome``) on the
        progress observable and complete it.  Progress callbacks get no extra call."""
        observable = self.observable
        if observable is None:
            observable = self.observable = ProgressObservable()  # created completed: late subscribers end at once
        else:
            metadata = {"count": count} if count is not None else None
            observable.emit(ProgressEvent(op_id, message, metadata, count, outcome))
        observable.complete()

    async def report(self, op_id: str, message: Any, metadata: dict[str, Any] | None) -> None:
        """``report_progress``: emit on the observable, then call every progress callback in
        order, awaiting async ones (each isolated)."""
        if self.observable is not None:
            self.observable.emit(ProgressEvent(op_id, message, metadata))
        for fn in self._progress:
            try:
                result = fn(op_id, message, metadata)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("cancelable_rx: progress callback %r failed", fn)


class _Awaiting:
    """``handle.spawn`` target that awaits an awaitable a sync callback returned."""

    __slots__ = ("_awaitable", "_fn")

    def __init__(self, awaitable: Awaitable[Any], fn: Callable[..., Any]) -> None:
        self._awaitable = awaitable
        self._fn = fn

    def __call__(self) -> Awaitable[None]:
        return _await_logged(self._awaitable, self._fn)
