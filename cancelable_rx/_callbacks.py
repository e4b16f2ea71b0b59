"""Lifecycle callbacks and progress reporting for Cancelable (a mixin).

Callbacks are subscribers: each is isolated (an exception is logged and never reaches
the operation or the other callbacks) and may be sync or async.
"""

from __future__ import annotations

import inspect
from functools import partial
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._models import OperationContext, ProgressEvent
from ._rx import HubObservable
from ._state import OperationState

if TYPE_CHECKING:
    from ._cancelable import Cancelable

__all__ = (
    "CallbacksMixin",
    "ErrorCallback",
    "ErrorCallbackType",
    "ProgressCallback",
    "StatusCallback",
    "ProgressCallbackType",
    "ProgressObservable",
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

_KINDS = ("start", "complete", "cancel", "error")


class ProgressObservable(HubObservable[ProgressEvent]):
    """The hot observable of an operation's progress events.

    Emitting with no subscriber is a single attribute test.  Subscribers are called on
    the thread that reports (the event loop thread for streams and
    ``report_progress``); an exception in one is logged and isolated.
    """


async def _call_isolated(kind: str, fn: Callable[..., Any], *args: Any) -> None:
    try:
        result = fn(*args)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("cancelable_rx: %s callback %r failed", kind, fn)


def _identity(value: Any) -> Any:
    return value


class _Conflating:
    """Runs one async progress callback in the background, never more than one call at
    a time; while a call runs only the newest pending event is kept (older ones are
    dropped), so a slow callback can never block or grow behind a fast stream."""

    __slots__ = ("fn", "pending", "running")

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.pending: tuple[Any, ...] | None = None
        self.running = False

    def submit(self, handle: Any, args: tuple[Any, ...]) -> None:
        if self.running:
            self.pending = args
            return
        self.running = True
        self.pending = args
        handle.spawn(self._drain)

    async def _drain(self) -> None:
        try:
            while self.pending is not None:
                args, self.pending = self.pending, None
                await _call_isolated("progress", self.fn, *args)
        finally:
            self.running = False


class CallbacksMixin(OperationState):
    """on_start / on_complete / on_cancel / on_error / on_progress and progress events."""



    _status_callbacks: dict[str, list[Callable[..., Any]]] | None
    _progress_callbacks: list[ProgressCallbackType] | None
    _progress: ProgressObservable | None
    _progress_async: dict[Callable[..., Any], _Conflating] | None

    def _add_callback(self, kind: str, callback: Callable[..., Any]) -> Cancelable:
        if not callable(callback):
            raise TypeError(f"on_{kind} callback must be callable, got {callback!r}")
        if self._status_callbacks is None:
            self._status_callbacks = {k: [] for k in _KINDS}
        self._status_callbacks[kind].append(callback)
        return self  # type: ignore[return-value]

    def on_start(self, callback: StatusCallbackType) -> Cancelable:
        """Call ``callback(context)`` (sync or async) when the operation is entered."""
        return self._add_callback("start", callback)

    def on_complete(self, callback: StatusCallbackType) -> Cancelable:
        """Call ``callback(context)`` when the operation completes without cancellation or error."""
        return self._add_callback("complete", callback)

    def on_cancel(self, callback: StatusCallbackType) -> Cancelable:
        """Call ``callback(context)`` when the operation ends cancelled, whatever the source
        (including an enclosing scope's cancellation, recorded with reason ``PARENT``)."""
        return self._add_callback("cancel", callback)

    def on_error(self, callback: ErrorCallbackType) -> Cancelable:
        """Call ``callback(context, error)`` when the body raises an ``Exception`` that is
        not a cancellation."""
        return self._add_callback("error", callback)

    async def _trigger(self, kind: str, *extra: Any) -> None:
        callbacks = self._status_callbacks
        if callbacks is None or not callbacks[kind]:
            return
        ctx = self.context
        for fn in list(callbacks[kind]):
            await _call_isolated(kind, fn, ctx, *extra)

    # -- progress ----------------------------------------------------------------------

    @property
    def progress(self) -> ProgressObservable:
        """Hot observable of this operation's :class:`ProgressEvent` s."""
        if self._progress is None:
            self._progress = ProgressObservable()
        return self._progress

    def on_progress(self, callback: ProgressCallbackType) -> Cancelable:
        """Call ``callback(operation_id, message, metadata)`` (sync or async) on every
        progress report.  Async callbacks are awaited by ``report_progress``."""
        if not callable(callback):
            raise TypeError(f"on_progress callback must be callable, got {callback!r}")
        if self._progress_callbacks is None:
            self._progress_callbacks = []
        self._progress_callbacks.append(callback)
        if inspect.iscoroutinefunction(callback):
            if self._progress_async is None:
                self._progress_async = {}
            self._progress_async[callback] = _Conflating(callback)
        return self  # type: ignore[return-value]

    def _has_progress_listeners(self) -> bool:
        progress = self._progress
        return bool(
            self._progress_callbacks
            or self._registry is not None
            or (progress is not None and progress._hub._listeners)
        )

    def _emit_stream_progress(self, count: int, item: Any) -> None:
        """Progress from a stream: never awaits.  Sync callbacks are called inline
        (isolated); async ones run in the background, conflated (see ``_Conflating``)."""
        op_id = self.id
        message = f"Processed {count} items"
        metadata = {"count": count, "latest_item": item}
        registry = self._registry
        if registry is not None:
            registry._on_progress(self, message, metadata)
        if self._progress is not None:
            self._progress.emit(ProgressEvent(op_id, message, metadata, count))
        callbacks = self._progress_callbacks
        if callbacks:
            runners = self._progress_async or {}
            for fn in callbacks:
                runner = runners.get(fn)
                if runner is not None:
                    runner.submit(self._handle, (op_id, message, metadata))
                    continue
                try:
                    result = fn(op_id, message, metadata)
                    if inspect.isawaitable(result) and self._handle is not None:
                        # a sync callable returning an awaitable: await it in the background
                        self._handle.spawn(partial(_identity, result))
                except Exception:
                    logger.exception("cancelable_rx: progress callback %r failed", fn)

    async def report_progress(self, message: Any, metadata: dict[str, Any] | None = None) -> None:
        """Report progress: emit a :class:`ProgressEvent` on :attr:`progress` and call the
        ``on_progress`` callbacks.  Failing subscribers are logged and isolated."""
        registry = self._registry
        if registry is not None:
            registry._on_progress(self, message, metadata)
        callbacks = self._progress_callbacks
        observable = self._progress
        if not callbacks and observable is None:
            return
        op_id = self.id
        if observable is not None:
            observable.emit(ProgressEvent(op_id, message, metadata))
        for fn in list(callbacks or ()):
            await _call_isolated("progress", fn, op_id, message, metadata)
