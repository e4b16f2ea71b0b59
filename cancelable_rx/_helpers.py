"""Streams, detached mode, thread helpers, wrapping and shielding (a Cancelable mixin)."""

from __future__ import annotations

import contextvars
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar, cast

import anyio
import anyio.lowlevel

from ._current import current
from ._models import OperationStatus
from ._plan import compile_plan
from ._registry import OperationRegistry
from .streaming._iterator import FusedIterator
from .streaming._stream import CancelableStream
from ._state import OperationState

if TYPE_CHECKING:
    from ._cancelable import Cancelable

__all__ = ("HelpersMixin",)

T = TypeVar("T")
R = TypeVar("R")
_PENDING, _RUNNING = 0, 1
_now = time.time
_INF = float("inf")


class HelpersMixin(OperationState):
    """``stream``, ``run_in_thread``, ``wrap``, ``wrapping``, ``shield``."""


    # -- detached mode (cancelable_stream) ----------------------------------------------

    def _begin_detached(self) -> None:
        """Start listening to sources without a scope around the consumer: a detached
        stream opens a scope around each fetch only.  Sources that need tasks cannot
        be used this way (a task group cannot be held across ``yield``)."""
        if self._state != _PENDING:
            raise RuntimeError(f"{self!r} has already been entered; a Cancelable runs once")
        if self._sources:  # refuse before starting; _start() reuses the compiled plan
            self._plan = self._plan or compile_plan(self._sources)
        if self._plan is not None and self._plan.needs_tasks:
            raise TypeError(
                "a detached stream cannot use sources that need polling tasks (conditions, "
                "timeouts inside all-of); iterate op.stream(...) inside `async with op:` instead"
            )
        self._start()
        self._listening = True
        self._listen_all()
        if self._register_globally:
            self._registry = OperationRegistry.get_instance()
            self._registry._on_enter(self)

    def _end_detached(self, completed: bool) -> None:
        self._unlisten_all()
        if self._fired is not None:
            self._finish(OperationStatus.CANCELLED)
        elif self._error is not None:
            self._finish(OperationStatus.FAILED)
        else:
            self._finish(OperationStatus.COMPLETED)

    def stream(
        self,
        async_iter: Any,
        report_interval: int | None = None,
        buffer_partial: bool = True,
        *,
        buffer_size: int = 1000,
    ) -> CancelableStream[Any]:
        """Wrap an async iterable (or a plain iterable, pulled synchronously) as a
        cancelable aiostream ``Stream``; iterate it inside ``async with op:``.

        Cancellation: when the operation is cancelled the stream stops before the next
        item and leaving the block raises the typed error; a checkpoint every 512 items
        lets a CPU-bound source be cancelled.  Progress is emitted every
        ``report_interval`` items (on :attr:`progress`, to ``on_progress`` callbacks
        without ever awaiting them, and to the registry).  With ``buffer_partial`` the
        last ``buffer_size`` items are kept for :attr:`partial_result`.
        """
        return CancelableStream(FusedIterator(cast("Cancelable", self), async_iter, report_interval, buffer_partial, buffer_size))

    # -- helpers ---------------------------------------------------------------------

    async def run_in_thread(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func(*args, **kwargs)`` in a worker thread with this task's context
        variables (``current_operation()`` is this operation there).

        Cancellation: a thread cannot be interrupted; if the operation is cancelled the
        await still waits for ``func`` to return (poll ``current_operation().is_cancelled``
        or the token in long loops), then the cancellation takes effect.
        """
        ctx = contextvars.copy_context()

        def runner() -> T:
            current.set(cast("Cancelable", self))
            return func(*args, **kwargs)

        return await anyio.to_thread.run_sync(ctx.run, runner)

    def wrap(self, operation: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        """Wrap an async callable so each call first checks this operation's cancellation."""
        if not callable(operation):
            raise TypeError(f"`operation` must be an async callable, got {operation!r}")

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
    async def shield(self) -> AsyncIterator[Cancelable]:
        """Run a section protected from cancellation, as a child operation.

        Cancellation: the section runs in a shielded cancel scope; neither this
        operation's sources nor enclosing scopes interrupt it.  The child has
        ``parent_id`` set and appears in ``child_ids`` (status ``SHIELDED`` while it
        runs) but is not cancelled with its parent.  A cancellation that arrived
        meanwhile takes effect at the checkpoint right after the section.
        """
        me = cast("Cancelable", self)
        child = type(me)(name=f"{self.name}_shielded", parent=me, metadata={"shielded": True})
        child._shielded = True
        with anyio.CancelScope(shield=True):
            async with child:
                yield child
        await anyio.lowlevel.checkpoint_if_cancelled()

    def _ipython_display_(self) -> None:
        """``display(op)`` in Jupyter: a progress bar and a Cancel button (ipywidgets),
        or the plain repr without ipywidgets."""
        from IPython.display import display

        try:
            from .jupyter import progress_widget

            display(progress_widget(self))  # type: ignore[arg-type]
        except ImportError:
            display(repr(self))
