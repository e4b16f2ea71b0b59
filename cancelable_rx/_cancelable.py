"""Cancelable: the public face of an operation.

The constructor and its checks, the factories (through one helper), ``combine``,
``add_source``, callbacks and progress, streams, threads, ``wrap``/``wrapping`` and
``shield``.  The lifecycle itself (``async with``, firing, the record) is the engine's
(`Operation`, ``_operation.py``); ``docs/cancellation.md`` is the normative contract.
"""

from __future__ import annotations

import contextvars
import logging
import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import wraps
from inspect import isawaitable
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast, overload

import anyio
import anyio.lowlevel
import reactivex

from ._checks import (
    check_callable,
    check_timeout,
    fail_type,
)
from ._hooks import Hooks, ProgressCallbackType, ProgressObservable, StatusCallbackType
from ._models import CancelationReason, ProgressEvent
from ._operation import PENDING, RUNNING, Operation, current
from ._token import CancelationToken
from .jupyter import progress_widget
from .sources.base import CancelationSource, as_source
from .sources.condition import ConditionSource
from .sources.observable import ObservableSource
from .sources.signal import SignalSource
from .sources.timeout import TimeoutSource
from .streaming._iterator import FusedIterator
from .streaming._stream import CancelableStream

logger = logging.getLogger("cancelable_rx")

__all__ = ("Cancelable", "current_operation")

T = TypeVar("T")
R = TypeVar("R")
_INF = math.inf


class Cancelable(Operation):
    """One cancelable operation: an async context manager around an anyio cancel scope.

    Cancellation: the operation is cancelled by the first of its sources to fire (timeout,
    token, signal, condition, parent, any reactivex observable, or `cancel`); its reason is
    recorded and the body is cancelled at its next checkpoint.  Leaving a cancelled
    operation raises the matching `CancelationError` subclass chained from the backend's
    cancel exception, unless ``suppress_cancelation=True``, in which case the block is left
    quietly (like ``anyio.move_on_after``) and the outcome is read from the operation.  A
    cancellation from an enclosing scope is never converted: the backend exception
    propagates untouched and the operation records reason ``PARENT``.

    Thread-safety: `cancel_sync`, tokens and sources may fire from any thread; the
    operation hops to its own event loop.  The record (``context``) may be read from any
    thread.  Everything else is for the loop thread.

    An operation can be entered once.

    Args:
        operation_id: the id (a UUID4-formatted id is made when first read if None).
        name: a name for logs, the registry and progress views.
        parent: an operation that has not ended: this one becomes its child (cancelled with
            reason ``PARENT`` when the parent is, in any task; it inherits an earlier
            deadline).
        metadata: a dict of your own (str keys), copied into the record.
        register_globally: track it in the process-wide `OperationRegistry` while it runs.
        suppress_cancelation: leave quietly when cancelled by its own sources (keyword-only).
    """

    __slots__ = ()

    if TYPE_CHECKING:  # the constructor is the engine's; its signature, typed for the face

        def __init__(
            self,
            operation_id: str | None = None,
            name: str | None = None,
            parent: Cancelable | None = None,
            metadata: dict[str, Any] | None = None,
            register_globally: bool = False,
            *,
            suppress_cancelation: bool = False,
        ) -> None: ...

    # -- factories ----------------------------------------------------------------------

    @classmethod
    def _made(cls, default_name: str, operation_id: str | None, name: str | None, kwargs: dict[str, Any]) -> Self:
        """The one helper behind every factory: a new operation with a default name."""
        if not kwargs:  # the common case: a direct call is cheaper than unpacking an empty dict
            op = cls(operation_id, name)
        else:
            for soft in ("graceful", "grace"):
                if soft in kwargs:
                    fail_type(
                        soft, "an option of a source that can be soft", kwargs[soft],
                        "use with_signal(..., graceful=) or with_timeout(..., grace=), or op.request_stop(grace)",
                    )
            op = cls(operation_id, name, **kwargs)
        op._default_name = default_name
        return op

    @classmethod
    def with_timeout(
        cls,
        timeout: float | timedelta,
        operation_id: str | None = None,
        name: str | None = None,
        *,
        grace: float | timedelta | None = None,
        **kwargs: Any,
    ) -> Self:
        """An operation cancelled ``timeout`` seconds after it is entered (reason ``TIMEOUT``).

        ``timeout`` is seconds (int/float) or a ``timedelta``; ``0`` cancels at the first
        checkpoint and ``math.inf`` never, as in anyio; negative or NaN is a ValueError.
        The timeout is the cancel scope's deadline: no timer, no task.

        With ``grace=`` (keyword-only) the timeout is soft: when it passes a stop is
        requested (`request_stop`), and the operation is cancelled ``grace`` seconds later
        unless it finished: a soft deadline and a hard one (`TimeoutSource`).
        """
        seconds = check_timeout(timeout)
        op = cls._made("timeout", operation_id, name, kwargs)
        if grace is None:
            op._timeout = seconds
        else:
            op._sources = (TimeoutSource(seconds, grace=grace),)
        return op

    @classmethod
    def with_token(
        cls,
        token: CancelationToken,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """An operation cancelled when ``token`` is cancelled, with the token's reason.

        ``op.token`` is ``token`` itself, so ``op.cancel()`` cancels the shared token (as in
        ``hother-cancelable``) while the operation has not ended; cancelling an ended
        operation changes nothing, its token included.  Entering with a token that is already
        cancelled cancels the operation at once; leaving raises with a message that says so.
        """
        if not isinstance(token, CancelationToken):  # check_instance(), inlined: a hot path
            fail_type("token", "a CancelationToken", token, "e.g. CancelationToken()")
        if kwargs:
            op = cls._made("token_based", operation_id, name, kwargs)
        else:  # _made's common case, inlined: a factory on the hot path
            op = cls(operation_id, name)
            op._default_name = "token_based"
        op._token = token
        return op

    @classmethod
    def with_signal(
        cls,
        *signals: int,
        operation_id: str | None = None,
        name: str | None = None,
        graceful: float | timedelta | None = None,
        **kwargs: Any,
    ) -> Self:
        """An operation cancelled when the process receives one of ``signals`` (reason ``SIGNAL``).

        Main thread only (Python's rule for signal handlers); an unknown or uncatchable
        signal number is a ValueError.  With ``graceful=`` (a grace period) the first signal
        requests a stop and a second one cancels at once.  See `SignalSource`.
        """
        source = SignalSource(*signals, graceful=graceful)
        op = cls._made("signal_based", operation_id, name, kwargs)
        op._sources = (source,)
        return op

    @classmethod
    def with_condition(
        cls,
        condition: Callable[[], bool | Awaitable[bool]],
        check_interval: float = 0.1,
        condition_name: str | None = None,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """An operation cancelled when ``condition()`` (sync or async) returns a truthy value
        (reason ``CONDITION``), polled every ``check_interval`` seconds.  See
        `ConditionSource` for the error policy."""
        source = ConditionSource(condition, check_interval, condition_name)
        op = cls._made("condition_based", operation_id, name, kwargs)
        op._sources = (source,)
        return op

    @classmethod
    def with_observable(
        cls,
        observable: reactivex.Observable[Any],
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """An operation cancelled by the first item of a reactivex ``observable``, with the
        ``reason`` you name.  See `ObservableSource`."""
        source = ObservableSource(observable, reason, message)
        op = cls._made("observable_based", operation_id, name, kwargs)
        op._sources = (source,)
        return op

    def combine(self, *others: Cancelable) -> Self:
        """A new operation cancelled by the first source of any of ``self`` and ``others``.

        All sources are merged (timeouts: the earliest deadline wins); each operation's
        token, if it has one, is listened to with its reason preserved.  The combined
        operation keeps ``self``'s parent.  The originals are not entered.
        """
        for i, other in enumerate(others):
            if not isinstance(other, Cancelable):
                fail_type(f"others[{i}]", "a Cancelable", other, "combine(op1, op2, ...) takes operations")
        combined = type(self)()
        combined._name = f"combined_{self.name}"
        combined._metadata = {"combined": True, "preserve_reason": True}
        combined._parent = self._parent
        combined._register_globally = self._register_globally
        combined._suppress = self._suppress
        sources = tuple(self._sources)  # a copy: a compat operation's list must stay as it is
        timeout = self._timeout
        token = self._token
        tokens = [token] if token is not None else []
        if self._tokens:
            tokens += self._tokens
        for part in others:
            if part._sources:
                sources += tuple(part._sources)
            if part._timeout < timeout:
                timeout = part._timeout
            token = part._token
            if token is not None:
                tokens.append(token)
            if part._tokens:
                tokens += part._tokens
        combined._timeout = timeout
        combined._sources = sources
        if tokens:
            if len(tokens) > 1:  # each token object once (identity, not ==), in order of first appearance
                unique: list[CancelationToken] = []
                for token in tokens:
                    if not any(seen is token for seen in unique):
                        unique.append(token)
                tokens = unique
            combined._tokens = tuple(tokens)
        return combined

    def add_source(self, source: CancelationSource | CancelationToken | reactivex.Observable[Any]) -> Self:
        """Add a cancelation source (any source, composite, token or reactivex Observable).

        Must be called before the operation is entered.  Returns ``self``.
        """
        if self._state != PENDING:
            raise RuntimeError(
                f"add_source() must be called before the operation is entered; {self!r} is {self._status.value}"
            )
        self._sources = (*self._sources, as_source(source, "add_source(source)"))
        self._plan = None
        return self

    # -- callbacks and progress ------------------------------------------------------------

    def _get_hooks(self) -> Hooks:
        hooks = self._hooks
        if hooks is None:
            hooks = self._hooks = Hooks()
        return hooks

    def on_start(self, callback: StatusCallbackType) -> Self:
        """Call ``callback(context)`` (sync or async) when the operation is entered."""
        self._get_hooks().add("start", callback)
        return self

    def on_complete(self, callback: StatusCallbackType) -> Self:
        """Call ``callback(context)`` when the operation completes without cancellation or error."""
        self._get_hooks().add("complete", callback)
        return self

    def on_cancel(self, callback: StatusCallbackType) -> Self:
        """Call ``callback(context)`` when the operation ends cancelled, whatever the source
        (including an enclosing scope's cancellation, recorded with reason ``PARENT``)."""
        self._get_hooks().add("cancel", callback)
        return self

    def on_error(self, callback: Callable[..., Any]) -> Self:
        """Call ``callback(context, error)`` when the body raises an ``Exception`` that is not
        a cancellation."""
        self._get_hooks().add("error", callback)
        return self

    def on_progress(self, callback: ProgressCallbackType) -> Self:
        """Call ``callback(operation_id, message, metadata)`` (sync or async) on every
        progress report.  Async callbacks are awaited by `report_progress`; streams never
        await them (they run in the background, conflated to the newest event)."""
        self._get_hooks().add_progress(callback)
        self._refresh_report()
        return self

    @property
    def progress(self) -> ProgressObservable:
        """Hot observable of this operation's `ProgressEvent` s."""
        hooks = self._get_hooks()
        if hooks.observable is None:
            hooks.progress_observable()
            self._refresh_report()
        return hooks.progress_observable()

    async def report_progress(self, message: Any, metadata: dict[str, Any] | None = None) -> None:
        """Report progress: emit a `ProgressEvent` on `progress` and call the ``on_progress``
        callbacks (async ones awaited, in order).  Failing subscribers are logged and isolated.

        Raises RuntimeError unless the operation is running (report from inside its block).
        """
        if self._quiet:  # running, and nobody listens: the hot path, one slot read
            return
        fn = self._report_one
        if fn is not None:  # running, and one sync callback is the only listener
            try:
                result = fn(self._id or self.id, message, metadata)
                if result is not None and isawaitable(result):
                    await result
            except Exception:
                logger.exception("cancelable_rx: progress callback %r failed", fn)
            return
        await self._report_all(message, metadata)

    async def _report_all(self, message: Any, metadata: dict[str, Any] | None) -> None:
        """`report_progress` when several listen, or the registry does (or the operation is
        not running: the error).  Kept apart so the fast paths' coroutine stays small (its
        frame is made on every report)."""
        if self._state != RUNNING:
            raise RuntimeError(
                f"report_progress() on {self!r}: only a running operation reports progress; "
                "call it inside `async with op:`"
            )
        op_id = self._id or self.id
        hooks = self._hooks
        registry = self._registry
        if registry is not None:
            registry._on_progress(self, message, metadata)
        if hooks is not None:  # Hooks.report, inlined: no third coroutine per report
            observable = hooks.observable
            if observable is not None:
                observable.emit(ProgressEvent(op_id, message, metadata))
            for fn in hooks._progress:
                try:
                    result = fn(op_id, message, metadata)
                    if result is not None and isawaitable(result):
                        await result
                except Exception:
                    logger.exception("cancelable_rx: progress callback %r failed", fn)

    # -- streams ----------------------------------------------------------------------

    @overload
    def stream(
        self,
        async_iter: AsyncIterable[T],
        report_interval: int | None = None,
        buffer_partial: bool = True,
        *,
        buffer_size: int = ...,
    ) -> CancelableStream[T]: ...

    @overload
    def stream(
        self,
        async_iter: Iterable[T],
        report_interval: int | None = None,
        buffer_partial: bool = True,
        *,
        buffer_size: int = ...,
    ) -> CancelableStream[T]: ...

    def stream(
        self,
        async_iter: AsyncIterable[T] | Iterable[T],
        report_interval: int | None = None,
        buffer_partial: bool = True,
        *,
        buffer_size: int = 1000,
    ) -> CancelableStream[T]:
        """Wrap an async iterable (or a plain iterable, pulled synchronously) as a cancelable
        aiostream ``Stream``; iterate it inside ``async with op:``.

        Cancellation: when the operation is cancelled the stream stops before the next item
        and leaving the block raises the typed error; a checkpoint every 512 items lets a
        CPU-bound source be cancelled.  Progress is emitted every ``report_interval`` items
        (on `progress`, to ``on_progress`` callbacks without ever awaiting them, and to the
        registry).  With ``buffer_partial`` the last ``buffer_size`` items are kept for
        `partial_result`.
        """
        return CancelableStream(FusedIterator(self, async_iter, report_interval, buffer_partial, buffer_size))

    # -- threads, wrapping, shielding -----------------------------------------------------

    async def run_in_thread(
        self, func: Callable[..., T], *args: Any, abandon_on_cancel: bool = False, **kwargs: Any
    ) -> T:
        """Run ``func(*args, **kwargs)`` in a worker thread with this task's context variables
        (``current_operation()`` is this operation there).

        Cancellation: a thread cannot be interrupted; if the operation is cancelled the await
        still waits for ``func`` to return, then the cancellation takes effect.  Inside the
        thread, ``current_operation().is_cancelled`` turns True when this operation *or any
        scope enclosing it* is cancelled (a deadline included), and
        ``current_operation().check_cancelation_sync()`` raises then; poll either in long
        loops.  A deadline that passes while the thread runs cancels the operation even if
        the block has no checkpoint after it: leaving raises `TimeoutCancelation`.

        With ``abandon_on_cancel=True`` (keyword-only, as in ``anyio.to_thread.run_sync``) the
        await ends as soon as the operation (or an enclosing scope) is cancelled, and the
        thread is left running in the background: its result or exception is lost, it may go
        on using resources the block has released, and the process cannot stop it.  Use it
        only for work that is safe to abandon (a blocking read whose result nobody needs).
        """
        check_callable(func, "func", "func(*args, **kwargs)")
        ctx = contextvars.copy_context()

        def runner() -> T:
            current.set(self)
            return func(*args, **kwargs)

        return await anyio.to_thread.run_sync(ctx.run, runner, abandon_on_cancel=bool(abandon_on_cancel))

    def wrap(self, operation: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        """Wrap an async callable so each call first checks this operation's cancellation."""
        check_callable(operation, "operation", "an async callable")

        @wraps(operation)
        async def wrapped(*args: Any, **kwargs: Any) -> R:
            await self.check_cancelation()
            return await operation(*args, **kwargs)

        return wrapped

    @asynccontextmanager
    async def wrapping(self) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
        """Yield ``wrap(fn, *args, **kwargs)``: checks cancellation, then awaits ``fn``."""

        async def wrap_fn(fn: Callable[..., Awaitable[R]], *args: Any, **kwargs: Any) -> R:
            await self.check_cancelation()
            return await fn(*args, **kwargs)

        yield wrap_fn

    @asynccontextmanager
    async def shield(self) -> AsyncIterator[Self]:
        """Run a section protected from cancellation, as a child operation.

        Cancellation: the section runs in a shielded cancel scope; neither this operation's
        sources nor enclosing scopes interrupt it.  The child has ``parent_id`` set and
        appears in ``child_ids`` (status ``SHIELDED`` while it runs) but is not cancelled with
        its parent.  A cancellation that arrived meanwhile takes effect at the checkpoint
        right after the section.  Only a running operation can shield (RuntimeError else).
        """
        if self._state != RUNNING:
            raise RuntimeError(f"shield() on {self!r}: only a running operation can shield a section")
        child = type(self)(name=f"{self.name}_shielded", parent=self, metadata={"shielded": True})
        child._shielded = True
        with anyio.CancelScope(shield=True):
            async with child:
                yield child
        await anyio.lowlevel.checkpoint_if_cancelled()

    def _ipython_display_(self) -> None:
        """``display(op)`` in Jupyter: a progress bar and a Cancel button (ipywidgets), or the
        plain repr without ipywidgets."""
        from IPython.display import display  # noqa: PLC0415 - IPython is optional (Jupyter only)

        try:
            display(progress_widget(self))
        except ImportError:
            display(repr(self))


def current_operation() -> Cancelable | None:
    """The innermost operation entered in the current task (or thread, for
    ``run_in_thread``), or None."""
    return cast("Cancelable | None", current.get())
