"""Cancelable: the lifecycle of one cancelable operation.

First-source-wins firing, enter, exit and cancel.  The record (_record), streams and
helpers (_helpers), factories (_factories) and callbacks (_callbacks) are mixins over
the shared state (_state); ``docs/cancellation.md`` is the normative contract.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.lowlevel

from ._callbacks import CallbacksMixin
from ._current import current, current_operation
from ._exceptions import CancelationError, error_for
from ._factories import FactoriesMixin
from ._helpers import HelpersMixin
from ._record import RecordMixin
from ._state import OperationState
from ._loop import LoopHandle, capture
from ._models import CancelationReason, CancelEvent, OperationStatus
from ._plan import compile_plan
from ._registry import OperationRegistry
from ._token import CancelationToken, check_reason
from .sources.base import CancelationSource, as_source
from .sources.timeout import TimeoutSource

__all__ = ("Cancelable", "current_operation")

logger = logging.getLogger("cancelable_rx")

_current = current
_FIRE_LOCK = threading.Lock()
_PENDING, _RUNNING, _DONE = 0, 1, 2
_INF = math.inf
_now = time.time
_get_ident = threading.get_ident


class ParentFired:
    """The source of a ``PARENT`` event: which parent, and why it was cancelled."""

    __slots__ = ("parent", "parent_reason")

    def __init__(self, parent: Cancelable, parent_reason: CancelationReason | None) -> None:
        self.parent = parent
        self.parent_reason = parent_reason

    @property
    def parent_id(self) -> str:
        return self.parent.id


class Cancelable(RecordMixin, HelpersMixin, FactoriesMixin, CallbacksMixin, OperationState):
    """One cancelable operation: an async context manager around an anyio cancel scope.

    Cancellation: the operation is cancelled by the first of its sources to fire
    (timeout, token, signal, condition, parent, any reactivex observable, or
    :meth:`cancel`); its reason is recorded and the body is cancelled at its next
    checkpoint.  Leaving a cancelled operation raises the matching
    :class:`CancelationError` subclass chained from the backend's cancel exception,
    unless ``suppress_cancelation=True``, in which case the block is left quietly (like
    ``anyio.move_on_after``) and the outcome is read from the operation.  A cancellation
    from an enclosing scope is never converted: the backend exception propagates
    untouched and the operation records reason ``PARENT``.

    Thread-safety: :meth:`cancel_sync`, tokens and sources may fire from any thread;
    the operation hops to its own event loop.  Everything else is for the loop thread.

    An operation can be entered once.
    """

    def __init__(
        self,
        operation_id: str | None = None,
        name: str | None = None,
        parent: Cancelable | None = None,
        metadata: dict[str, Any] | None = None,
        register_globally: bool = False,
        *,
        suppress_cancelation: bool = False,
    ) -> None:
        if operation_id is not None:
            if not isinstance(operation_id, str):
                raise TypeError(f"`operation_id` must be a str or None, got {operation_id!r}")
            self._id = operation_id
        if name is not None:
            self._name = name
        if parent is not None:
            if not isinstance(parent, Cancelable):
                raise TypeError(f"`parent` must be a Cancelable or None, got {parent!r}")
            self._parent = parent
        if metadata is not None:
            self._metadata = metadata
        if register_globally:
            self._register_globally = True
        if suppress_cancelation:
            self._suppress = True

    # -- sources -----------------------------------------------------------------------

    def add_source(self, source: CancelationSource | Any) -> Cancelable:
        """Add a cancelation source (any source, composite, token or reactivex Observable).

        Must be called before the operation is entered.  Returns ``self``.
        """
        if self._state != _PENDING:
            raise RuntimeError(
                f"add_source() must be called before the operation is entered; {self!r} is {self._status.value}"
            )
        src = as_source(source, "add_source(source)")
        self._sources = [*self._sources, src]
        self._plan = None
        return self

    # -- firing (any thread) ----------------------------------------------------------

    def _record(self, event: CancelEvent) -> bool:
        """Record ``event`` if it is the first; True if it was."""
        with _FIRE_LOCK:
            if self._fired is not None or self._state == _DONE:
                return False
            self._fired = event
            it = self._stream_it
            if it is not None:
                it.stop = True
        if self._state == _RUNNING:
            self._status = OperationStatus.CANCELLED
        ctx = self._ctx
        if ctx is not None:
            ctx.cancel_reason = event.reason
            ctx.cancel_message = event.message
            if self._state == _RUNNING:
                ctx.status = OperationStatus.CANCELLED
        if self._own_token:
            tok = self._token
            if tok is not None and not tok.is_cancelled:
                tok.cancel_sync(event.reason, event.message)
        hub = self._cancellation
        if hub is not None:
            hub._fire_value(event)
        return True

    def _fire(self, event: CancelEvent, propagate: bool = True) -> bool:
        """First source wins: record, cancel the scope (hopping to the loop if needed),
        mirror into the own token, and propagate to children.  Thread-safe."""
        if not self._record(event):
            return False
        if self._state == _RUNNING:
            handle = self._handle
            if handle is not None and _get_ident() != handle.thread_id:
                handle.run_soon(self._cancel_scope)
            else:
                scope = self._scope
                if scope is not None:  # None between items of a detached stream
                    scope.cancel()
        children = self._children
        if propagate and children:
            child_event = self._parent_event(event)
            for child in tuple(children):
                child._fire(child_event)
        return True

    def _cancel_scope(self) -> None:
        scope = self._scope
        if scope is not None and self._state == _RUNNING:
            scope.cancel()

    def _on_event(self, event: CancelEvent) -> None:
        self._fire(event)

    def _on_token(self, token: CancelationToken) -> None:
        self._fire(CancelEvent(token.reason or CancelationReason.MANUAL, token.message, token))

    # -- ArmContext for sources ------------------------------------------------------

    @property
    def handle(self) -> LoopHandle:
        assert self._handle is not None
        return self._handle

    def start_soon(self, fn: Callable[[], Awaitable[Any]]) -> None:
        if self._tg is None:
            raise RuntimeError("internal error: a source needing tasks was armed without a task group")
        self._tg.start_soon(fn)

    # -- enter / exit ----------------------------------------------------------------

    async def __aenter__(self) -> Cancelable:
        if self._state != _PENDING:
            raise RuntimeError(
                f"{self!r} has already been entered; a Cancelable runs once, create a new one for each run"
            )
        needs_tasks = self._start()
        handle = self._handle
        assert handle is not None
        deadline = self._deadline
        parent = self._parent
        self._cv = _current.set(self)
        scope = self._scope = handle.scope_cls(deadline=deadline)
        if needs_tasks or parent is not None or self._token is not None or self._tokens or self._sources:
            self._listening = True
            try:
                if needs_tasks:
                    tg = anyio.create_task_group()
                    await tg.__aenter__()
                    self._tg = tg
                scope.__enter__()
                try:
                    self._listen_all()
                except BaseException:
                    scope.__exit__(None, None, None)
                    raise
            except BaseException:
                await self._teardown()
                self._finish(OperationStatus.FAILED)
                raise
        else:
            scope.__enter__()
        if self._fired is not None:
            self._status = OperationStatus.CANCELLED
            scope.cancel()
        if self._register_globally:
            self._registry = OperationRegistry.get_instance()
            self._registry._on_enter(self)
        if self._status_callbacks is not None:
            await self._trigger("start")
        return self

    def _start(self) -> bool:
        """Start running: capture the loop, compute the deadlines (own and effective),
        set the status.  Returns whether sources need a task group.  Shared by
        ``__aenter__`` and detached streams."""
        self._state = _RUNNING
        self._start_ts = _now()
        handle = self._handle = capture()
        seconds = self._timeout
        needs_tasks = False
        if self._sources:
            plan = self._plan
            if plan is None:
                plan = self._plan = compile_plan(self._sources)
            if plan.timeout is not None and plan.timeout.timeout_seconds < seconds:
                seconds = plan.timeout.timeout_seconds
            needs_tasks = plan.needs_tasks
        deadline = handle.now() + seconds if seconds != _INF else _INF
        self._own_deadline = deadline
        parent = self._parent
        if parent is not None and not self._shielded and parent._deadline < deadline:
            deadline = parent._deadline
        self._deadline = deadline
        self._status = OperationStatus.SHIELDED if self._shielded else OperationStatus.RUNNING
        ctx = self._ctx
        if ctx is not None:
            ctx.status = self._status
            ctx.start_time = datetime.fromtimestamp(self._start_ts, UTC)
        return needs_tasks

    def _listen_all(self) -> None:
        parent = self._parent
        if parent is not None:
            parent._adopt(self)
        tok = self._token
        if tok is not None:
            if tok.is_cancelled and not self._own_token:
                self._fire(
                    CancelEvent(
                        tok.reason or CancelationReason.MANUAL,
                        f"token {tok.id[:8]} was already cancelled before the operation started"
                        + (f": {tok.message}" if tok.message else ""),
                        tok,
                    )
                )
            else:
                tok._listen(self._on_token)
        for extra in self._tokens:
            extra._listen(self._on_token)
        if self._sources:
            assert self._plan is not None
            for src in self._plan.triggers:
                src._listen(self._on_event)
                src._arm(self, True)

    def _adopt(self, child: Cancelable) -> None:
        """Register an entering child (hierarchy, and cancellation unless shielded)."""
        ids = self._child_ids
        if ids is None:
            ids = self._child_ids = set()
        ids.add(child.id)
        if self._ctx is not None:
            self._ctx.child_ids.add(child.id)
        if child._shielded:
            return
        if self._children is None:
            self._children = set()
        self._children.add(child)
        fired = self._fired
        if fired is not None:
            child._fire(self._parent_event(fired))

    def _parent_event(self, event: CancelEvent) -> CancelEvent:
        """What this operation's children receive when it is cancelled with ``event``."""
        return CancelEvent(
            CancelationReason.PARENT,
            f"Parent operation was cancelled ({event.reason.value}): {event.message}",
            ParentFired(self, event.reason),
        )

    def _record_exception(self, exc: BaseException) -> bool:
        """Record why ``exc`` ended the operation: an enclosing cancellation (reason
        PARENT) or a CancelationError raised in the body (its own reason) -> True;
        any other error is kept in ``_error`` -> False."""
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            self._record(CancelEvent(CancelationReason.PARENT, "Cancelled by an enclosing cancel scope", None))
            return True
        if isinstance(exc, CancelationError):
            self._record(CancelEvent(exc.reason, exc.message, exc))
            return True
        self._error = f"{type(exc).__name__}: {exc}"
        return False

    def _unlisten_all(self) -> None:
        """Stop listening to every token, source and parent; never raises."""
        if self._plan is not None:
            for src in self._plan.triggers:
                src._unlisten(self._on_event)
                try:
                    src._disarm()
                except Exception:
                    logger.exception("cancelable_rx: stopping source %r failed", src)
        tok = self._token
        if tok is not None:
            tok._unlisten(self._on_token)
        for extra in self._tokens:
            extra._unlisten(self._on_token)
        parent = self._parent
        if parent is not None and parent._children is not None:
            parent._children.discard(self)

    async def _teardown(self) -> None:
        """Undo everything enter did, in reverse; never raises."""
        self._unlisten_all()
        tg = self._tg
        if tg is not None:
            self._tg = None
            # Stop the pollers; shield so an enclosing cancellation cannot interrupt
            # the (immediate) wait for them.  The body's exception is never passed in:
            # a trio nursery would wrap it into an ExceptionGroup.
            tg.cancel_scope.cancel()
            tg.cancel_scope.shield = True
            await tg.__aexit__(None, None, None)
        self._reset_current()

    def _reset_current(self) -> None:
        if self._cv is not None:
            try:
                _current.reset(self._cv)
            except ValueError:  # exited in another context (e.g. a finalised generator)
                pass
            self._cv = None

    def _finish(self, status: OperationStatus) -> None:
        self._state = _DONE
        self._end_ts = _now()
        self._status = status
        ctx = self._ctx
        if ctx is not None:
            ctx.status = status
            ctx.end_time = datetime.fromtimestamp(self._end_ts, UTC)
            ctx.partial_result = self._partial
            ctx.error = self._error
        registry = self._registry
        if registry is not None:
            registry._on_exit(self)

    def _timeout_source(self) -> TimeoutSource:
        """The timeout that set the own deadline (materialised for plain timeouts)."""
        plan = self._plan
        if plan is not None and plan.timeout is not None and plan.timeout.timeout_seconds <= self._timeout:
            return plan.timeout
        return TimeoutSource(self._timeout)

    def _timeout_event(self) -> CancelEvent:
        handle = self._handle
        if self._own_deadline != _INF and handle is not None and handle.now() >= self._own_deadline:
            src = self._timeout_source()
            return CancelEvent(CancelationReason.TIMEOUT, src.default_message(), src)
        if self._parent is not None:
            return CancelEvent(
                CancelationReason.PARENT,
                "Parent operation's deadline passed",
                ParentFired(self._parent, CancelationReason.TIMEOUT),
            )
        return CancelEvent(CancelationReason.MANUAL, "Operation cancelled", None)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        try:
            # trio's scope returns True for a clean exit too: only an exception is "swallowed".
            swallowed = self._scope.__exit__(exc_type, exc, tb) and exc_type is not None
        finally:
            if self._stream_it is not None:  # a stream left open (e.g. `break` without aclosing)
                with anyio.CancelScope(shield=True):
                    await self._stream_it.aclose()
            if self._tg is not None:
                await self._teardown()
            else:
                if self._listening:
                    self._unlisten_all()
                cv = self._cv  # inlined _reset_current(): this is the hot path
                if cv is not None:
                    self._cv = None
                    try:
                        _current.reset(cv)
                    except ValueError:  # exited in another context (e.g. a finalised generator)
                        pass
        if exc_type is None and self._fired is None:
            self._finish(OperationStatus.COMPLETED)
            if self._status_callbacks is not None:
                await self._trigger("complete")
            return False
        if exc_type is None or swallowed:
            # Our own cancellation (requested, or caught by our scope).
            if self._fired is None:  # caught with nothing recorded: the deadline passed
                event = self._timeout_event()
                self._record(event)
                if isinstance(event.source, CancelationSource):
                    event.source.fire(event.message)
            fired = self._fired
            assert fired is not None
            self._finish(OperationStatus.CANCELLED)
            if self._status_callbacks is not None:
                await self._trigger("cancel")
            if self._suppress:
                return exc_type is not None
            raise error_for(fired, self) from exc
        assert exc is not None
        if self._record_exception(exc):
            # An enclosing cancellation, or a CancelationError from the body: it
            # propagates untouched (the backend exception is not ours to catch).
            self._finish(OperationStatus.CANCELLED)
            if self._status_callbacks is not None:
                await self._trigger("cancel")
            return False
        self._finish(OperationStatus.FAILED)
        if self._status_callbacks is not None and isinstance(exc, Exception):
            await self._trigger("error", exc)
        return False

    # -- cancelling ------------------------------------------------------------------

    async def cancel(
        self,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
        propagate_to_children: bool = True,
    ) -> None:
        """Cancel the operation (first cancellation wins; later calls change nothing).

        The body is cancelled at its next checkpoint; ``is_cancelled`` is True at once.
        With ``propagate_to_children`` every child entered with ``parent=self`` (in any
        task) is cancelled with reason ``PARENT``; without it, only children nested in
        this task's scope stop (structured concurrency makes that unavoidable).  With
        ``with_token(t)``, ``t`` itself is cancelled too.
        """
        reason = check_reason(reason)
        msg = message or f"Operation cancelled ({reason.value})"
        self._fire(CancelEvent(reason, msg, self), propagate=propagate_to_children)
        tok = self._token
        if tok is not None and not tok.is_cancelled:
            await tok.cancel(reason, message)

    def cancel_sync(
        self,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
        propagate_to_children: bool = True,
    ) -> None:
        """Cancel from any thread, or from sync code on the loop.  Never blocks.

        Thread-safety: the scope is cancelled on the operation's own loop
        (``call_soon_threadsafe`` / ``TrioToken.run_sync_soon``); nothing needs starting.
        """
        reason = check_reason(reason)
        msg = message or f"Operation cancelled ({reason.value})"
        self._fire(CancelEvent(reason, msg, self), propagate=propagate_to_children)
        tok = self._token
        if tok is not None and not tok.is_cancelled:
            tok.cancel_sync(reason, message)

    async def check_cancelation(self) -> None:
        """If the operation is cancelled, stop here: inside the block this is a checkpoint
        that delivers the pending cancellation; elsewhere it raises the typed error."""
        if self.is_cancelled:
            await anyio.lowlevel.checkpoint()
            assert self._fired is not None
            raise error_for(self._fired, self)

    def __repr__(self) -> str:
        label = self.name or "operation"
        return f"<Cancelable {label!r} {self._status.value}>"
