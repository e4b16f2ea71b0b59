"""The operation engine: one cancelable run of a block of code.

`Operation` holds an operation's state and does everything that decides its outcome:
first-source-wins firing, arming and disarming sources, deadlines, the parent and its
children, entering and leaving (``async with``), and the record.  The public face
(`cancelable_rx.Cancelable`, in ``_cancelable.py``) adds the constructor, factories,
streams, threads and callbacks on top; nothing in this module knows it.

States: ``PENDING`` -> ``RUNNING`` (entered) -> ``DONE`` (left), once.  Leaving *seals* the
operation before it decides the outcome: from then on no source, token or thread can
record a cancellation, so what leaving does and what the record says always agree.

Thread-safety: `Operation.cancel_sync`, tokens and sources may fire from any thread; the
first event is recorded under one process-wide lock and the cancel scope is only ever
cancelled on the operation's own loop (`LoopHandle.call`).  The record (``context``) may be
read from any thread.  Everything else is for the loop thread.

The stream port (the members ``streaming/`` uses; ``docs/architecture.md`` lists them):
``_attach_stream``, ``_detach_stream``, ``_stop_error``, ``_progress_listening``,
``_emit_progress``, ``_begin_detached``, ``_fetch_detached``, ``_seal_detached``,
``_decide_detached``, ``_end_detached``, ``_trigger``, ``_run_end_callbacks``; read only:
``_hooks``, ``_handle``, ``_failure``, ``_partial``.
"""

from __future__ import annotations

import contextvars
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final, Self, TypeGuard, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

from ._checks import (
    check_instance,
    check_message,
    check_metadata,
    check_reason,
    check_str,
    check_timeout,
    fail_value,
)
from ._exceptions import CancelationError, error_for
from ._hooks import Hooks
from ._loop import LAST, LoopHandle, capture, get_running_loop
from ._models import (
    CancelationReason,
    CancelEvent,
    EndedRecord,
    OperationContext,
    OperationStatus,
    PartialResult,
    StopRequest,
    build_context,
    error_text,
    new_id,
)
from ._plan import Plan, compile_plan
from ._registry import OperationRegistry
from ._rx import FireOnce
from ._token import CancelationToken, LinkedCancelationToken
from .sources._hosts import BackgroundHost, run_source_work
from .sources.base import CancelationSource, Disarm
from .sources.timeout import TimeoutSource

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ("DONE", "PENDING", "RECENT_CHILDREN", "RUNNING", "SOFT_STOP", "Operation", "ParentFired", "current")

logger = logging.getLogger("cancelable_rx")
T = TypeVar("T")

PENDING: Final = 0
RUNNING: Final = 1
DONE: Final = 2
RECENT_CHILDREN: Final = 1000
"""How many ended children a parent's record remembers (besides the live ones)."""

_INF: Final = math.inf
_LOCK = threading.Lock()  # first event wins, the seal, and records built off the loop
_deciding = 0  # threads inside a section that reads the state and may record (under _LOCK)
_get_ident = threading.get_ident
_new_event = tuple.__new__  # CancelEvent(...) on the cancel path: `_new_event(CancelEvent, (reason, message, source))`
_now = time.time
_RUNNING_STATUSES = (OperationStatus.RUNNING, OperationStatus.SHIELDED, OperationStatus.STOPPING)
SOFT_STOP: Final = "soft"
"""The value of a stream's ``stop`` flag for a stop request: end cleanly at the next item
(``True`` is a cancellation: stop with the typed error)."""
_RUNNING = OperationStatus.RUNNING
_CANCELLED = OperationStatus.CANCELLED
_COMPLETED = OperationStatus.COMPLETED
_FAILED = OperationStatus.FAILED
_PENDING = OperationStatus.PENDING
# The token classes whose listen/unlisten the hot path of `with_token` inlines; any other
# class (e.g. a distributed token, which starts listening when first used) goes through its
# methods.  (A set lookup: reading an attribute of a pydantic class runs a slower hook.)
_PLAIN_TOKENS: Final = frozenset({CancelationToken, LinkedCancelationToken})
# What leaving a cancelled block the short way (`Operation.__aexit__`) does not call, or
# calls only when they have something to do (`_ended`, `_announce`).
_SKIPPED_BY_FAST_EXIT: Final = (
    "_leave", "_decide", "_finish", "_timeout_event", "_timeout_source", "_ended", "_announce",
)

current: contextvars.ContextVar[Operation | None] = contextvars.ContextVar(
    "cancelable_rx_current_operation", default=None
)


def _check_cancelled_in_worker() -> None:
    """``anyio.from_thread.check_cancelled()`` where it applies (a worker thread started by
    ``anyio.to_thread.run_sync``, e.g. `Cancelable.run_in_thread`); a no-op elsewhere."""
    try:
        anyio.from_thread.check_cancelled()
    except RuntimeError:  # not an anyio worker thread (NoEventLoopError is a RuntimeError)
        pass


def _thread_sees_cancel() -> bool:
    """In an anyio worker thread: whether the scopes around the task that waits for it are
    cancelled (the operation's own scope, an enclosing one, a deadline)."""
    try:
        _check_cancelled_in_worker()
    except BaseException:  # the backend's cancel exception, built by anyio in this thread
        return True
    return False


def _await_lock() -> None:
    """Wait until no other thread is inside a ``_LOCK`` section (see `Operation._seal`)."""
    with _LOCK:
        pass


class ParentFired:
    """The source of a ``PARENT`` event: which parent, and why it was cancelled."""

    __slots__ = ("parent", "parent_reason")

    def __init__(self, parent: Operation, parent_reason: CancelationReason | None) -> None:
        self.parent = parent
        self.parent_reason = parent_reason

    @property
    def parent_id(self) -> str:
        return self.parent.id


def _precancelled(tok: CancelationToken) -> CancelEvent:
    """The event of a token (given, or combined) that was cancelled before the operation started."""
    return CancelEvent(
        tok.reason or CancelationReason.MANUAL,
        f"token {tok.id[:8]} was already cancelled before the operation started"
        + (f": {tok.message}" if tok.message else ""),
        tok,
    )


_IS_SOURCE: dict[type, bool] = {}


def _is_source(obj: object) -> TypeGuard[CancelationSource]:
    """``isinstance(obj, CancelationSource)``, answered per class from a table: sources and
    tokens have ABCMeta as metaclass, whose isinstance() runs Python code (``<frozen abc>``)
    on the cancel path.  A class's answer never changes."""
    cls = type(obj)
    known = _IS_SOURCE.get(cls)
    if known is None:
        known = _IS_SOURCE[cls] = issubclass(cls, CancelationSource)
    return known


def _source_error(source: object) -> object:
    """The ``error`` a source that failed keeps (an erroring observable), or None.  Tokens
    are not asked: a missing attribute of a pydantic model costs microseconds."""
    return source.error if _is_source(source) else None


class _TaskGroupHost:
    """The `SourceHost` of an operation inside ``async with``: background work runs in
    the operation's task group, which is cancelled when the operation exits."""

    __slots__ = ("_op", "_handle")
    applies_deadlines = True

    def __init__(self, op: Operation, handle: LoopHandle) -> None:
        self._op = op
        self._handle = handle

    def run_soon(self, fn: Callable[[], object]) -> None:
        self._handle.run_soon(fn)

    def call(self, fn: Callable[[], object]) -> None:
        self._handle.call(fn)

    def fail(self, exc: BaseException) -> None:
        self._op._fail(exc)

    def request_stop(self, grace: float, reason: CancelationReason, message: str | None, source: object) -> None:
        self._op._stop_from(grace, reason, message, source)

    def start_soon(self, fn: Callable[[], Awaitable[object]]) -> None:
        tg = self._op._tg
        if tg is None:
            raise RuntimeError(
                "host.start_soon() needs a source with needs_background = True (the operation "
                "opens a task group only for those)"
            )
        tg.start_soon(run_source_work, fn, self._op._fail)


def _unlisten(tok: CancelationToken, op: Operation) -> None:
    """``tok._unlisten(op)``, which never raises here: a token subclass whose hook raises
    is logged, so leaving the operation still runs its whole teardown."""
    try:
        tok._unlisten(op)
    except Exception:
        logger.exception("cancelable_rx: a token's unlisten hook failed (%r)", tok)


class Operation:
    """The engine of one cancelable operation (see the module docstring).

    Its state lives in slots (compact, and the fastest to read and write); ``__init__`` takes
    the configuration the public constructor documents and sets every slot.
    """

    __slots__ = (
        "_id",
        "_name",
        "_default_name",
        "_metadata",
        "_parent",
        "_register_globally",
        "_suppress",
        "_sources",
        "_timeout",
        "_tokens",
        "_token",
        "_own_token",
        "_shielded",
        "_plan",
        "_state",
        "_status",
        "_fired",
        "_failure",
        "_scope",
        "_handle",
        "_tg",
        "_host",
        "_disarms",
        "_cv",
        "_listening",
        "_deadline",
        "_own_deadline",
        "_start_ts",
        "_end_ts",
        "_error",
        "_partial",
        "_stream",
        "_children",
        "_recent",
        "_child_version",
        "_hooks",
        "_registry",
        "_quiet",
        "_report_one",
        "_ctx",
        "_cancellation",
        "_stop",
        "_stop_deadline",
        "_stop_hub",
        "__weakref__",
    )

    _id: str | None
    _name: str | None
    _default_name: str | None
    _metadata: dict[str, Any] | None
    _parent: Operation | None
    _register_globally: bool
    _suppress: bool
    _sources: tuple[CancelationSource, ...]
    _timeout: float  # the earliest plain timeout (with_timeout / combine), seconds
    _tokens: tuple[CancelationToken, ...]  # extra tokens merged by combine()
    _token: CancelationToken | None
    _own_token: bool
    _shielded: bool
    _plan: Plan | None
    _state: int
    _status: OperationStatus
    # True unless a subclass overrides a method that `__aexit__`'s short ways out skip (a
    # cancelled block; a registered operation completing, which skips `_ended`; see
    # `_SKIPPED_BY_FAST_EXIT`; the compatibility face overrides `_leave`).  Decided when the
    # class is made: patch such a method on a class and that class keeps the short ways
    # (set this False too).
    _leave_inline: ClassVar[bool] = True
    _fired: CancelEvent | None
    _failure: BaseException | None
    _scope: Any
    _handle: LoopHandle | None
    _tg: Any
    _host: BackgroundHost | None
    _disarms: list[Disarm] | None
    _cv: contextvars.Token[Operation | None] | None
    _listening: bool
    _deadline: float
    _own_deadline: float
    _start_ts: float | None
    _end_ts: float | None
    _error: str | None
    _partial: Any
    _stream: Any  # the stream iterator attached to this operation (the stream port)
    _children: dict[Operation, None] | None  # live children, in entry order
    _recent: deque[str] | None  # ids of the last RECENT_CHILDREN ended children
    _child_version: int  # counts adoptions and releases (a record built meanwhile re-syncs)
    _hooks: Hooks | None
    _registry: OperationRegistry | None
    _quiet: bool  # running, and no hooks and no registry: report_progress returns at once
    _report_one: Callable[..., Any] | None  # running, and this sync callback is the only listener
    _ctx: OperationContext | None
    _cancellation: FireOnce[CancelEvent] | None
    _stop: StopRequest | None  # the first stop request (phase one), if any
    _stop_deadline: float  # when the grace period ends (loop clock): phase two
    _stop_hub: FireOnce[StopRequest] | None

    def __init__(
        self,
        operation_id: str | None = None,
        name: str | None = None,
        parent: Operation | None = None,
        metadata: dict[str, Any] | None = None,
        register_globally: bool = False,
        *,
        suppress_cancelation: bool = False,
    ) -> None:
        """The operation's configuration (checked here) and its initial state.

        ``parent`` must not have ended; ``metadata`` is copied.  See `Cancelable` for the
        meaning of each parameter.
        """
        # -- configuration
        if operation_id is not None:
            check_str(operation_id, "operation_id", "or None for a generated id")
        self._id = operation_id
        if name is not None:
            check_str(name, "name", "or None")
        self._name = name
        if parent is not None:
            check_instance(parent, Operation, "parent", "a Cancelable or None")
            if parent._state == DONE:
                fail_value("parent", "an operation that has not ended", parent, "create children while the parent runs")
        self._parent = parent
        self._metadata = check_metadata(metadata) if metadata is not None else None
        self._register_globally = True if register_globally else False  # (no call: the hot path)
        self._suppress = True if suppress_cancelation else False
        self._default_name = None
        self._sources = ()
        self._timeout = _INF
        self._tokens = ()
        self._token = None
        self._own_token = False
        self._shielded = False
        # -- run state
        self._plan = None
        self._state = PENDING
        self._status = _PENDING
        self._fired = None
        self._failure = None
        self._scope = None
        self._handle = None
        self._tg = None
        self._host = None
        self._disarms = None
        self._cv = None
        self._listening = False
        self._deadline = _INF
        self._own_deadline = _INF
        self._start_ts = None
        self._end_ts = None
        self._error = None
        self._partial = None
        self._stream = None
        self._children = None
        self._recent = None
        self._child_version = 0
        self._hooks = None
        self._registry = None
        self._quiet = False
        self._report_one = None
        self._ctx = None
        self._cancellation = None
        self._stop = None
        self._stop_deadline = _INF
        self._stop_hub = None

    # -- identity and record ------------------------------------------------------------

    @property
    def id(self) -> str:
        """The operation id (UUID4-formatted unless one was given)."""
        op_id = self._id
        if op_id is None:
            op_id = self._id = new_id()
        return op_id

    @property
    def operation_id(self) -> str:
        """Alias of `id`."""
        return self.id

    @property
    def name(self) -> str | None:
        return self._name if self._name is not None else self._default_name

    @property
    def parent(self) -> Self | None:
        """The parent operation, or None."""
        return self._parent  # type: ignore[return-value]

    @property
    def status(self) -> OperationStatus:
        """``PENDING``, ``RUNNING`` (``SHIELDED``), then ``COMPLETED``, ``CANCELLED`` or ``FAILED``.

        It turns ``CANCELLED`` as soon as a source fires, before the next checkpoint.
        """
        return self._status

    @property
    def is_running(self) -> bool:
        return self._status in _RUNNING_STATUSES

    @property
    def is_completed(self) -> bool:
        return self._status is _COMPLETED

    @property
    def is_cancelled(self) -> bool:
        """True once the operation's cancellation has been requested (before it ends) or it
        ended cancelled.

        Inside the block it turns True as soon as a source fires (before the next
        checkpoint), including a deadline that has passed.  Before the operation is entered it
        is True once its token (own or given) or its parent has been cancelled; reading it
        records that cancellation, and entering then cancels the operation at once.  Once the
        operation has ended it follows the outcome: an operation whose body raised another
        error is ``FAILED``, not cancelled.
        """
        state = self._state
        if state == DONE:
            return self._status is _CANCELLED
        if self._fired is not None:
            return True
        if state == RUNNING:
            handle = self._handle
            if handle is not None and not handle.in_loop_thread():
                return _thread_sees_cancel()
            if self._deadline != _INF and handle is not None and handle.now() >= self._deadline:
                self._record(self._timeout_event())
                return self._fired is not None
        elif state == PENDING:
            return self._check_pending()
        return False

    @property
    def cancel_reason(self) -> CancelationReason | None:
        """Why the operation was cancelled, or None."""
        fired = self._fired
        return fired.reason if fired is not None else None

    @property
    def cancel_message(self) -> str | None:
        fired = self._fired
        return fired.message if fired is not None else None

    @property
    def deadline(self) -> float:
        """The effective deadline (anyio clock) while running; ``math.inf`` if none."""
        return self._deadline

    def remaining(self) -> float:
        """Seconds left until the effective deadline (its own or a parent's): ``math.inf``
        when there is none, ``0.0`` once it has passed; before the operation is entered, its
        own timeout.  Loop thread only (it reads the loop clock).
        """
        if self._state == PENDING:
            return self._timeout
        deadline = self._deadline
        if deadline == _INF:
            return _INF
        handle = self._handle
        assert handle is not None
        return max(0.0, deadline - handle.now())

    @property
    def partial_result(self) -> PartialResult[Any] | None:
        """The `PartialResult` of this operation's stream: live while it runs, final once it
        ended (however it ended).  None if no stream ran."""
        stream = self._stream
        if stream is not None:
            return stream.snapshot()
        return self._partial

    @property
    def context(self) -> OperationContext:
        """The pydantic record of this operation, built on first access and kept in sync.

        Thread-safety: readable from any thread; once the operation has ended the record
        read from any thread shows the final state.
        """
        ctx = self._ctx
        if ctx is not None:
            return ctx
        with _LOCK:
            ctx = self._ctx
            if ctx is None:
                seen = self._progress_mark()
                ctx = self._ctx = self._build_record()
                # The loop writes its state without the lock and syncs a record it can see:
                # a change made while this one was built, before it was visible, is copied now.
                if self._progress_mark() != seen:
                    self._sync_record()
        return ctx

    def _progress_mark(self) -> tuple[object, ...]:
        """What a record build must not miss: the fields the loop writes without the lock."""
        return (
            self._status, self._start_ts, self._end_ts, self._partial, self._error, self._fired, self._child_version,
            self._stop,
        )

    def _build_record(self) -> OperationContext:
        fired = self._fired
        stop = self._stop
        start = self._start_ts
        return build_context(
            {  # every field of OperationContext
                "id": self._id or self.id,
                "name": self._name if self._name is not None else self._default_name,
                "status": self._status,
                "start_time": datetime.fromtimestamp(start if start is not None else _now(), UTC),
                "end_time": datetime.fromtimestamp(self._end_ts, UTC) if self._end_ts is not None else None,
                "cancel_reason": fired.reason if fired is not None else None,
                "cancel_message": fired.message if fired is not None else None,
                "error": self._error,
                "partial_result": self._partial,
                "metadata": self._metadata if self._metadata is not None else {},
                "parent_id": self._parent.id if self._parent is not None else None,
                "child_ids": self._child_id_set() if self._children or self._recent else set(),
                "stop_requested_at": stop.requested_at if stop is not None else None,
                "stop_reason": stop.reason if stop is not None else None,
                "stop_message": stop.message if stop is not None else None,
            }
        )

    def _sync_record(self) -> None:
        """Copy the mutable state into the record, if one was built.  Under ``_LOCK``."""
        ctx = self._ctx
        if ctx is None:
            return
        fired = self._fired
        ctx.status = self._status
        if self._start_ts is not None:
            ctx.start_time = datetime.fromtimestamp(self._start_ts, UTC)
        if self._end_ts is not None:
            ctx.end_time = datetime.fromtimestamp(self._end_ts, UTC)
        ctx.cancel_reason = fired.reason if fired is not None else None
        ctx.cancel_message = fired.message if fired is not None else None
        ctx.partial_result = self._partial
        ctx.error = self._error
        ctx.child_ids = self._child_id_set()
        stop = self._stop
        if stop is not None:
            ctx.stop_requested_at = stop.requested_at
            ctx.stop_reason = stop.reason
            ctx.stop_message = stop.message

    def _child_id_set(self) -> set[str]:
        ids = {child.id for child in tuple(self._children or ())}
        ids.update(self._recent or ())
        return ids

    def _duration(self) -> float | None:
        start, end = self._start_ts, self._end_ts
        if start is None:
            return None
        return (end if end is not None else _now()) - start

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from enter to exit (to now while running); None before it starts."""
        return self._duration()

    @property
    def parent_id(self) -> str | None:
        """The parent's id, or None."""
        return self._parent.id if self._parent is not None else None

    @property
    def cancellation(self) -> FireOnce[CancelEvent]:
        """Hot observable of this operation's cancel event: emits the first `CancelEvent`
        once (replayed to late subscribers) and completes.  Nothing is built until someone
        asks for it."""
        hub = self._cancellation
        if hub is None:
            hub = self._cancellation = FireOnce()
            fired = self._fired
            if fired is not None and (self._state != DONE or self._status is _CANCELLED):
                hub._fire_value(fired)
        return hub

    @property
    def token(self) -> CancelationToken:
        """The operation's token.  Cancelling it cancels the operation; it is cancelled (with
        the same reason) when the operation is.  With ``with_token(t)`` it is ``t``.

        Before the operation is entered, reading it (like `is_cancelled`) first records the
        cancellation that entering would deliver at once: a cancelled token, or a cancelled
        parent (the child's own token is then cancelled with reason ``PARENT``)."""
        tok = self._token
        if tok is None:
            tok = self._token = LinkedCancelationToken()
            self._own_token = True
            if self._state == PENDING:
                self._check_pending()
            fired = self._fired
            if fired is not None:
                tok.cancel_sync(fired.reason, fired.message)
            elif self._state == RUNNING:
                tok._listen(self._on_token, self)
        elif self._state == PENDING and self._fired is None:
            self._check_pending()
        return tok

    def _check_pending(self) -> bool:
        """Before the operation is entered: record the cancellation that entering would
        deliver at once (a token of its own or given, or a cancelled parent), so that
        `is_cancelled`, `check_cancelation` and the token say so already.  True if cancelled.

        Thread-safety: any thread (recording is first-event-wins).
        """
        if self._fired is not None:
            return True
        event: CancelEvent | None = None
        own = self._token if self._own_token else None
        for tok in (self._token, *self._tokens):
            if tok is not None and tok.is_cancelled:
                event = (
                    CancelEvent(tok.reason or CancelationReason.MANUAL, tok.message, tok) if tok is own else _precancelled(tok)
                )
                break
        parent = self._parent
        if event is None and parent is not None and not self._shielded:
            if parent._state == PENDING:
                parent._check_pending()
            fired = parent._fired
            if fired is not None:
                event = parent._parent_event(fired)
        if event is None:
            return False
        # _fire, not _record: the operation may have been entered since its state was read
        # (by another thread); firing then cancels its scope, which recording alone would not,
        # and a parent's later propagation finds the event recorded and does nothing.
        self._fire(event)
        return self._fired is not None

    # -- firing (any thread) ------------------------------------------------------------

    def _record(self, event: CancelEvent) -> bool:
        """Record ``event`` if it is the first and the operation is not sealed; True if it was:
        `_fire` without cancelling the scope or the children.

        Thread-safety: any thread.  Notifications run outside the lock.
        """
        return self._fire(event, False, False)

    def _store_event(self, event: CancelEvent) -> None:
        """Write ``event`` into the state (and the record).  Under ``_LOCK``, or sealed."""
        self._fired = event
        if self._state == RUNNING:
            self._status = _CANCELLED
        stream = self._stream
        if stream is not None:
            stream.stop = True
        if self._ctx is not None:
            self._sync_record()

    def _announce(self, event: CancelEvent) -> None:
        """Mirror a recorded event into the own token and the ``cancellation`` observable.
        (Called only when the operation has either: `_fire`, `_store_sealed`.)"""
        if self._own_token:
            tok = self._token
            if tok is not None and not tok.is_cancelled:
                tok.cancel_sync(event.reason, event.message)
        hub = self._cancellation
        if hub is not None:
            hub._fire_value(event)

    def _fire(self, event: CancelEvent, propagate: bool = True, cancel: bool = True) -> bool:
        """First source wins: record (True if this event was recorded), cancel the scope on
        the loop (unless ``cancel`` is False), propagate to children (with ``propagate``).

        Thread-safety: any thread; the scope is cancelled on the operation's loop.
        Notifications run outside the lock.
        """
        global _deciding
        # A section that reads the state and may record: it counts itself in _deciding,
        # which the seal reads without the lock (see `_seal`).  `with` (not acquire() then
        # try): an interrupt (KeyboardInterrupt) delivered as acquire() returns would leave
        # the lock held, and every later cancel in the process waiting for it.
        with _LOCK:
            _deciding += 1  # (no call and no backward jump: no interrupt lands before the try)
            try:
                if self._fired is not None or self._state == DONE:
                    return False
                self._store_event(event)
            finally:
                _deciding -= 1
        if self._own_token or self._cancellation is not None:
            self._announce(event)
        if cancel and self._state == RUNNING:
            handle = self._handle
            if handle is not None:
                if _get_ident() == handle.thread_id:  # handle.call(self._cancel_scope), inlined
                    scope = self._scope  # None once the block was left
                    if scope is not None:
                        if handle.is_trio:
                            scope.cancel()  # what handle.cancel_scope(scope) does on trio
                        else:
                            handle.cancel_scope(scope)
                else:
                    handle.run_soon(self._cancel_scope)
        children = self._children
        if propagate and children:
            child_event = self._parent_event(event)
            for child in tuple(children):
                if not child._shielded:
                    child._fire(child_event)
        return True

    def _cancel_scope(self) -> None:
        scope = self._scope  # None once the block was left (a hop that lands late does nothing)
        if scope is not None and self._state == RUNNING:
            self._handle.cancel_scope(scope)  # type: ignore[union-attr]  # (set with the scope)

    def _on_event(self, event: CancelEvent) -> None:
        self._fire(event)

    def _on_token(self, token: CancelationToken) -> None:
        """A token this operation listens to was cancelled or asked to stop.  (On the hot
        path of ``with_token`` a plain token's cancel calls `_fire` directly, not this.)"""
        if token.is_cancelled:
            # CancelEvent(...) without the named tuple's Python-level __new__
            self._fire(_new_event(CancelEvent, (token.reason or CancelationReason.MANUAL, token.message, token)))
        else:  # the token's stop request: phase one here too, with what is left of its grace
            stop = token.stop_request
            if stop is not None and self._state == RUNNING:
                self._stop_from(stop.remaining(), stop.reason, stop.message, token)

    def _fail(self, exc: BaseException) -> None:
        """A source cannot go on watching: cancel the scope; leaving raises ``exc`` (FAILED).

        Thread-safety: any thread.
        """
        global _deciding
        with _LOCK:  # a deciding section, as in `_fire`
            _deciding += 1
            try:
                if self._state == DONE or self._failure is not None:
                    return
                self._failure = exc
                stream = self._stream
                if stream is not None:
                    stream.stop = True
            finally:
                _deciding -= 1
        handle = self._handle
        if handle is not None:
            handle.call(self._cancel_scope)

    def _parent_event(self, event: CancelEvent) -> CancelEvent:
        """What this operation's children receive when it is cancelled with ``event``."""
        return CancelEvent(
            CancelationReason.PARENT,
            f"Parent operation was cancelled ({event.reason.value}): {event.message}",
            ParentFired(self, event.reason),
        )

    def _timeout_source(self) -> TimeoutSource:
        """The timeout that set the own deadline (materialised for plain timeouts)."""
        plan = self._plan
        if plan is not None and plan.timeout is not None and plan.timeout.timeout_seconds <= self._timeout:
            return plan.timeout
        return TimeoutSource._of(self._timeout)

    def _timeout_event(self) -> CancelEvent:
        """The event of a deadline that passed: our own timeout, the end of a stop's grace
        period (the earlier of the two, if both passed), or the parent's deadline."""
        handle = self._handle
        now = handle.now() if handle is not None else _INF
        stop = self._stop
        if stop is not None and now >= self._stop_deadline and self._stop_deadline < self._own_deadline:
            return CancelEvent(
                stop.reason, f"{stop.message or 'a stop was requested'} (grace period of {stop.grace:g}s ended)", stop.source
            )
        if self._own_deadline != _INF and now >= self._own_deadline:
            src = self._timeout_source()
            event = CancelEvent(CancelationReason.TIMEOUT, src.default_message(), src)
            if not src._fired and not src._listeners:  # (a plain timeout's, made just now)
                src._fired, src._value = True, event  # fired in place: nobody listens to it
            return event
        if self._parent is not None:
            return CancelEvent(
                CancelationReason.PARENT,
                "Parent operation's deadline passed",
                ParentFired(self._parent, CancelationReason.TIMEOUT),
            )
        return CancelEvent(CancelationReason.MANUAL, "Operation cancelled", None)

    # -- cancelling (public) ------------------------------------------------------------

    async def cancel(
        self,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
        propagate_to_children: bool = True,
    ) -> None:
        """Cancel the operation (the first cancellation wins; later calls change nothing).

        Cancellation: the body is cancelled at its next checkpoint; `is_cancelled` is True at
        once.  With ``propagate_to_children`` every child entered with ``parent=self`` (in any
        task) is cancelled with reason ``PARENT``; without it, only children nested in this
        task's scope stop (structured concurrency makes that unavoidable).  With
        ``with_token(t)``, ``t`` itself is cancelled too.  Cancelling an operation that has
        ended changes nothing.
        """
        event, tok = self._cancel_event(reason, message)
        self._fire(event, propagate=propagate_to_children)
        if tok is not None and not tok.is_cancelled and self._state != DONE:
            await tok.cancel(event.reason, message)

    def cancel_sync(
        self,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
        propagate_to_children: bool = True,
    ) -> None:
        """Cancel from any thread, or from sync code on the loop.  Never blocks.

        Thread-safety: the scope is cancelled on the operation's own loop
        (``call_soon_threadsafe`` / ``TrioToken.run_sync_soon``); nothing needs starting.  A
        request that reaches the operation after its outcome was decided changes nothing.
        """
        event, tok = self._cancel_event(reason, message)
        self._fire(event, propagate=propagate_to_children)
        if tok is not None and not tok.is_cancelled and self._state != DONE:
            tok.cancel_sync(event.reason, message)

    def _cancel_event(self, reason: object, message: object) -> tuple[CancelEvent, CancelationToken | None]:
        checked = check_reason(reason)
        text = check_message(message) or f"Operation cancelled ({checked.value})"
        tok = self._token if not self._own_token else None
        return CancelEvent(checked, text, self), tok

    # -- two-phase: ask to stop, then cancel ----------------------------------------------

    @property
    def stop_requested(self) -> bool:
        """True once a stop was requested (phase one): finish what you are doing and return.

        Reading it never interrupts anything; the operation is cancelled (phase two) only
        when the grace period ends.  Thread-safety: any thread.
        """
        return self._stop is not None

    @property
    def stop_request(self) -> StopRequest | None:
        """The first stop request (reason, message, grace, when, by whom), or None."""
        return self._stop

    @property
    def stop_requests(self) -> FireOnce[StopRequest]:
        """Hot observable that emits the first `StopRequest` once (replayed to late
        subscribers) and completes.  Thread-safety: subscribe from any thread."""
        hub = self._stop_hub
        if hub is None:
            hub = self._stop_hub = FireOnce()
            if self._stop is not None:
                hub._fire_value(self._stop)
        return hub

    async def wait_for_stop(self) -> StopRequest:
        """Wait until a stop is requested (returns at once if one was); the request.

        Cancellation: a checkpoint; if the operation is cancelled meanwhile, the wait is
        cancelled like any other await in the block.
        """
        stop = self._stop
        if stop is not None:
            await anyio.lowlevel.checkpoint()
            return stop
        event = anyio.Event()
        handle = capture()
        hub = self.stop_requests

        def wake(_: object) -> None:
            handle.call(event.set)

        hub._listen(wake)
        try:
            await event.wait()
        finally:
            hub._unlisten(wake)
        assert self._stop is not None
        return self._stop

    async def request_stop(
        self,
        grace: float | timedelta,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """Phase one of a two-phase cancellation: ask the operation to stop within ``grace``
        seconds.  Nothing is interrupted: `stop_requested` turns True, `wait_for_stop` and
        `stop_requests` fire, ``op.stream(...)`` ends cleanly at its next item, children get
        the same request, the status is ``STOPPING``.  Phase two: when the grace period ends
        and the body has not finished, the operation is cancelled with ``reason`` (leaving
        raises the typed error).  A body that returns in time completes (``COMPLETED``, with
        the stop in its record: ``context.stopped_gracefully``).

        A later request may shorten the grace period, never extend it; returns True if this
        call requested or shortened it, False otherwise (and once the operation has ended).
        A stop needs a running operation: before entering it is a RuntimeError (for a token,
        use ``token.request_stop``).  Shielded sections are never interrupted.
        """
        request = self._stop_args(grace, reason, message)
        if request is None:
            return False
        handle = self._handle
        if handle is not None and handle.in_loop_thread():
            return self._apply_stop(request)
        self._request_stop_on_loop(request)
        return True

    def request_stop_sync(
        self,
        grace: float | timedelta,
        reason: CancelationReason = CancelationReason.MANUAL,
        message: str | None = None,
    ) -> bool:
        """Thread-safe `request_stop` (it hops to the operation's loop, like `cancel_sync`).
        Returns False once the operation has ended, True otherwise."""
        request = self._stop_args(grace, reason, message)
        if request is None:
            return False
        self._request_stop_on_loop(request)
        return True

    def _stop_args(self, grace: object, reason: object, message: object) -> StopRequest | None:
        seconds = check_timeout(grace, "grace")
        checked = check_reason(reason)
        text = check_message(message)
        if self._state == PENDING:
            raise RuntimeError(
                f"request_stop() on {self!r}: a stop needs a running operation (enter it first; "
                "to stop operations that have not started yet, use a token's request_stop())"
            )
        if self._state == DONE:
            return None
        return StopRequest(checked, text, seconds, datetime.now(UTC), self)

    def _request_stop_on_loop(self, request: StopRequest) -> None:
        handle = self._handle
        assert handle is not None
        handle.call(lambda: self._apply_stop(request))

    def _stop_from(self, grace: float, reason: CancelationReason, message: str | None, source: object) -> None:
        """A stop request from a source, a token or a parent, from any thread."""
        if self._state != RUNNING:
            return
        self._request_stop_on_loop(StopRequest(reason, message, grace, datetime.now(UTC), source))

    def _apply_stop(self, request: StopRequest) -> bool:
        """Phase one, on the loop thread: record the request (or shorten the grace period)."""
        if self._state != RUNNING:
            return False
        handle = self._handle
        assert handle is not None
        hard = handle.now() + request.grace
        first = self._stop is None
        if not first and hard >= self._stop_deadline:
            return False  # never extended
        self._stop_deadline = hard
        if hard < self._deadline:
            self._deadline = hard
            scope = self._scope
            if scope is not None:  # None between the fetches of a detached stream
                scope.deadline = hard
        if first:
            self._stop = request
            if self._status is _RUNNING:
                self._status = OperationStatus.STOPPING
            stream = self._stream
            if stream is not None and not stream.stop:
                stream.stop = SOFT_STOP
            if self._ctx is not None:
                with _LOCK:
                    self._sync_record()
            registry = self._registry
            if registry is not None:
                registry._on_stop(self)
            hub = self._stop_hub
            if hub is not None:
                hub._fire_value(request)
        children = self._children
        if children:
            for child in tuple(children):
                if not child._shielded:
                    child._stop_from(request.grace, CancelationReason.PARENT, request.message, ParentFired(self, request.reason))
        return True

    def check_cancelation_sync(self) -> None:
        """Raise if the operation is cancelled: the typed error for its own cancellation;
        in a worker thread of `run_in_thread`, the backend's cancel exception (raised by
        ``anyio.from_thread.check_cancelled``) for a cancellation of an enclosing scope, which
        then ends the thread's task the way anyio intends.  For threads and sync code.

        Thread-safety: any thread.
        """
        if self._fired is not None and (self._state != DONE or self._status is _CANCELLED):
            raise self._cancel_error()
        if self._state == PENDING and self._check_pending():
            raise self._cancel_error()
        handle = self._handle
        if self._state == RUNNING and handle is not None and not handle.in_loop_thread():
            _check_cancelled_in_worker()
            if self._fired is not None:  # recorded meanwhile
                raise self._cancel_error()

    async def check_cancelation(self) -> None:
        """If the operation is cancelled, stop here: inside the block this is a checkpoint
        that delivers the pending cancellation; elsewhere it raises the typed error."""
        if self.is_cancelled:
            await anyio.lowlevel.checkpoint()
            raise self._cancel_error()

    def _cancel_error(self) -> CancelationError:
        """The typed error for the recorded event (its context resolves lazily)."""
        fired = self._fired
        assert fired is not None
        return error_for(fired, self)

    # -- children -------------------------------------------------------------------------

    def _adopt(self, child: Operation) -> None:
        """Register an entering child (record, and cancellation unless it is shielded)."""
        children = self._children
        if children is None:
            children = self._children = {}
        children[child] = None
        self._child_version += 1
        if self._ctx is not None:
            with _LOCK:
                self._ctx.child_ids.add(child.id)
        fired = self._fired
        if fired is not None and not child._shielded:
            child._fire(self._parent_event(fired))

    def _release(self, child: Operation) -> None:
        """A child ended: it leaves the live set for the bounded recent set."""
        children = self._children
        if children is None or child not in children:
            return
        del children[child]
        recent = self._recent
        if recent is None:
            recent = self._recent = deque(maxlen=RECENT_CHILDREN)
        self._child_version += 1
        ctx = self._ctx
        if ctx is not None and len(recent) == RECENT_CHILDREN:
            with _LOCK:
                ctx.child_ids.discard(recent[0])
                recent.append(child.id)
        else:
            recent.append(child.id)

    # -- entering -------------------------------------------------------------------------

    def _start(self, handle: LoopHandle) -> float:
        """Start running on ``handle``'s loop: compute the deadlines (own and effective) and
        set the status.  Returns the effective deadline.  Shared by ``__aenter__`` and
        detached streams."""
        self._handle = handle
        self._state = RUNNING
        self._start_ts = _now()
        deadline = _INF
        if self._timeout != _INF or self._sources or self._parent is not None:
            seconds = self._timeout
            if self._sources:
                plan = self._plan
                if plan is None:
                    plan = self._plan = compile_plan(self._sources)
                if plan.timeout is not None and plan.timeout.timeout_seconds < seconds:
                    seconds = plan.timeout.timeout_seconds
            if seconds != _INF:
                deadline = self._own_deadline = handle.now() + seconds
            parent = self._parent
            if parent is not None and not self._shielded and parent._state == RUNNING and parent._deadline < deadline:
                deadline = parent._deadline
            self._deadline = deadline
        if self._shielded:
            self._status = OperationStatus.SHIELDED
        else:
            self._status = _RUNNING
        if self._ctx is not None:
            with _LOCK:
                self._sync_record()
        return deadline

    def _arm(self, host: Any) -> None:
        """Listen to the parent, the tokens and the sources, and arm the sources."""
        parent = self._parent
        if parent is not None:
            parent._adopt(self)
        tok = self._token
        if tok is not None:
            self._listen_token(tok)
        for extra in self._tokens:
            self._listen_extra(extra)
        plan = self._plan
        if plan is not None and plan.triggers:
            stops = self._disarms = []
            on_event = self._on_event
            for src in plan.triggers:
                src._listen(on_event)
                stop = src.arm(host)
                if stop is not None:
                    stops.append(stop)

    def _listen_token(self, tok: CancelationToken) -> None:
        """Listen to the operation's token; a given one already cancelled fires with the
        message that says it was cancelled before the operation started."""
        if tok.is_cancelled and not self._own_token:
            self._fire(_precancelled(tok))
            return
        self._listen_extra(tok)

    def _listen_extra(self, tok: CancelationToken) -> None:
        """Listen to ``tok`` (also a token merged by ``combine``): its cancel fires with its
        own reason and message; a stop already requested on it is applied."""
        tok._listen(self._on_token, self)  # (calls _on_token at once if it is cancelled)
        if not tok.is_cancelled and tok._stop is not None:
            # A stop requested before the operation started, or while it started listening
            # (the request notifies a snapshot of the listeners: read after adding ours).
            self._on_token(tok)

    def _disarm_all(self) -> None:
        """Stop listening to every token and source and disarm the sources; never raises."""
        plan = self._plan
        if plan is not None:
            on_event = self._on_event
            for src in plan.triggers:
                src._unlisten(on_event)
        stops = self._disarms
        if stops:
            self._disarms = None
            for stop in stops:
                try:
                    stop()
                except Exception:
                    logger.exception("cancelable_rx: disarming a source failed (%r)", stop)
        tok = self._token
        if tok is not None:
            _unlisten(tok, self)
        for extra in self._tokens:
            _unlisten(extra, self)

    async def __aenter__(self) -> Self:
        if self._state != PENDING:
            raise RuntimeError(
                f"{self!r} has already been entered; an operation runs once, create a new one for each run"
            )
        last = LAST[0]  # capture() inlined for the asyncio hot path
        handle = last[1] if last[0] is get_running_loop() else None
        if handle is None:
            handle = capture()
        if self._timeout == _INF and not self._sources and self._parent is None:
            # _start(), inlined for an operation without deadlines (the hot path)
            self._handle = handle
            self._state = RUNNING
            self._start_ts = _now()
            self._status = _RUNNING  # (a shielded operation has a parent: not this path)
            if self._ctx is not None:  # built from another thread meanwhile: see `context`
                with _LOCK:
                    self._sync_record()
            scope = self._scope = handle.scope_cls()
        else:
            scope = self._scope = handle.scope_cls(deadline=self._start(handle))
        if self._parent is not None or self._sources:
            self._listening = True
            try:
                plan = self._plan
                if plan is not None and plan.needs_background:
                    tg = anyio.create_task_group()
                    await tg.__aenter__()
                    self._tg = tg
                scope.__enter__()
                try:
                    self._arm(_TaskGroupHost(self, handle) if plan is not None else None)
                except BaseException:
                    scope.__exit__(None, None, None)
                    raise
            except BaseException as err:
                await self._fail_entry(err)
                raise
        else:
            scope.__enter__()
            tok = self._token
            try:
                if tok is not None:  # tokens alone (with_token, combine): the hot path skips _arm()
                    if tok.is_cancelled or tok._stop is not None or type(tok) not in _PLAIN_TOKENS:
                        self._listen_token(tok)  # (also a token class with a listen hook of its own)
                    else:  # tok._listen(self._on_token, self), inlined (the token's protocol: add, then re-read)
                        tok._listeners[self] = None  # (None: the token calls self._fire / _on_token; no bound method per enter)
                        if tok.is_cancelled:
                            tok._listeners.pop(self, None)
                            self._on_token(tok)
                        elif tok._stop is not None:  # a stop requested meanwhile (its snapshot missed us)
                            self._on_token(tok)
                for extra in self._tokens:
                    self._listen_extra(extra)
            except BaseException as err:  # a token subclass whose listen hook raised
                scope.__exit__(None, None, None)
                await self._fail_entry(err)
                raise
        # After the scope is entered: asyncio's deadline timer copies the context when it is
        # scheduled, and a cancelled timer stays in the loop's heap until the loop purges it;
        # it must not keep the operation alive.
        self._cv = current.set(self)
        if self._fired is not None or self._failure is not None:  # cancelled before or while arming
            if self._fired is not None:
                self._status = _CANCELLED
                if self._ctx is not None:
                    with _LOCK:
                        self._sync_record()
            scope.cancel()
        if self._register_globally or self._hooks is not None:
            try:
                if self._register_globally:
                    registry = self._registry = OperationRegistry._instance or OperationRegistry.get_instance()
                    registry._on_enter(self)  # (which turns the report fast paths off)
                hooks = self._hooks
                if hooks is not None:
                    if self._registry is None:
                        self._refresh_report()  # before the start callbacks, which may add listeners
                    await self._trigger("start")
            except BaseException as err:  # e.g. KeyboardInterrupt in a start callback: leave properly
                await self.__aexit__(type(err), err, err.__traceback__)
                raise
        elif self._registry is None:  # (registered with registry.register(): it listens)
            self._quiet = True  # cleared by whatever adds a listener, and at the seal
        return self

    # -- leaving ----------------------------------------------------------------------------

    async def _fail_entry(self, err: BaseException) -> None:
        """Entering failed after the operation started (its scope already left): undo what
        entering did and end it ``FAILED``; the caller re-raises ``err``."""
        self._scope = None
        await self._teardown()
        self._seal()
        self._error = error_text(err)
        self._finish(_FAILED)

    async def _teardown(self) -> None:
        """Undo what entering did, in reverse; never raises."""
        self._disarm_all()
        tg = self._tg
        if tg is not None:
            self._tg = None
            # Stop background work; shield so an enclosing cancellation cannot interrupt the
            # (immediate) wait for it.  The body's exception is never passed in: a trio
            # nursery would wrap it into an ExceptionGroup.
            tg.cancel_scope.cancel()
            tg.cancel_scope.shield = True
            try:
                await tg.__aexit__(None, None, None)
            except BaseException:  # pragma: no cover - work failures go to _fail, not here
                logger.exception("cancelable_rx: background work of a source failed at exit")
        cv = self._cv
        if cv is not None:
            self._cv = None
            try:
                current.reset(cv)
            except ValueError:  # exited in another context (e.g. a finalised generator)
                pass

    def _seal(self) -> None:
        """No event can be recorded after this: the outcome is decided on what is recorded now.

        ``_fire`` (``_record``) and ``_fail`` read the state in a deciding section (under ``_LOCK``), which counts
        itself in ``_deciding`` before it reads.  The seal writes ``DONE``, then reads the
        count: a thread that entered a section before that read is waited for (it may have
        read ``RUNNING``); one that enters after it reads ``DONE`` and records nothing.  The
        common path takes no lock (the interpreter orders these reads and writes).
        """
        self._state = DONE
        self._quiet = False
        self._report_one = None
        if _deciding:
            _await_lock()

    def _finish(self, status: OperationStatus) -> None:
        """Record the final status and the end; notify the parent and the registry."""
        self._status = status
        self._end_ts = _now()
        self._ended()

    def _ended(self) -> None:
        """After the final status and end time are written: sync the record, tell the parent
        and the registry, end the progress observable (a final event, then completion)."""
        if self._ctx is not None:  # a record built meanwhile re-syncs itself (see `context`)
            with _LOCK:
                self._sync_record()
        parent = self._parent
        if parent is not None:
            parent._release(self)
        registry = self._registry
        if registry is not None:
            registry._on_exit(self, self._register_globally)
        hooks = self._hooks
        if hooks is not None:
            partial = self._partial
            count = partial.count if isinstance(partial, PartialResult) else None
            fired = self._fired
            status = self._status
            if status is _CANCELLED and fired is not None:
                message = f"cancelled ({fired.reason.value}): {fired.message}"
            else:
                message = status.value + (f": {self._error}" if self._error else "")
            hooks.finish(self.id, count, status, message)

    async def _close_stream(self) -> BaseException | None:
        """Close a stream left open in the block (e.g. ``break`` without ``aclosing``).

        Returns the error its source's cleanup raised, if any (raised after the teardown)."""
        stream = self._stream
        try:
            with anyio.CancelScope(shield=True):
                await stream.aclose()
        except BaseException as err:  # raised after the whole teardown, never instead of it
            return err
        finally:
            if self._stream is stream:
                self._stream = None
        return None

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        scope = self._scope
        if scope is None or self._state != RUNNING:
            raise RuntimeError(
                f"{self!r} was not entered: __aexit__ without a matching __aenter__; use `async with op:`"
            )
        raised: BaseException | None = None
        try:
            # trio's scope returns True for a clean exit too: only an exception is "swallowed".
            swallowed = scope.__exit__(exc_type, exc, tb) and exc_type is not None
        except BaseException as err:  # the scope replaced the exception (e.g. split a group)
            exc_type, exc, swallowed, raised = type(err), err, False, err
        # An exited anyio scope keeps its host task (and through it the task's frames): an
        # ended operation, which a copied context or a history may keep, must not keep them.
        self._scope = None
        cleanup: BaseException | None = None
        if self._stream is not None:
            cleanup = await self._close_stream()
        if self._tg is not None:
            await self._teardown()
        else:
            if self._listening:
                self._disarm_all()
            else:
                tok = self._token
                if tok is not None:
                    if type(tok) in _PLAIN_TOKENS:
                        tok._listeners.pop(self, None)  # tok._unlisten(self), inlined
                    else:
                        _unlisten(tok, self)
                for extra in self._tokens:
                    _unlisten(extra, self)
            cv = self._cv  # inlined from _teardown: this is the hot path
            if cv is not None:
                try:
                    current.reset(cv)
                except ValueError:  # exited in another context (e.g. a finalised generator)
                    pass
        # The seal (inlined from _seal: the hot path).
        self._state = DONE
        self._quiet = False
        self._report_one = None
        if _deciding:
            _await_lock()
        if (
            exc_type is None
            and self._fired is None
            and self._failure is None
            and cleanup is None
            and (self._deadline == _INF or self._handle.now() < self._deadline)  # type: ignore[union-attr]
        ):
            self._status = _COMPLETED  # _finish(COMPLETED), inlined: the hot path
            self._end_ts = _now()
            if self._ctx is not None or self._parent is not None or self._hooks:
                self._ended()
                if self._hooks is not None:
                    await self._trigger("complete")
            else:
                registry = self._registry  # (read once: clear_all() may unset it from another thread)
                if registry is not None:  # registered, and nothing else to tell
                    if self._leave_inline:  # _ended(), inlined (the hot path of a registered operation)
                        registry._on_exit(self, self._register_globally)
                    else:
                        self._ended()
            return False
        if (
            swallowed
            and self._failure is None
            and cleanup is None
            and self._hooks is None
            and not self._suppress
            and self._leave_inline
        ):
            # _leave() for the usual cancelled blocks, inlined (the path of every cancel and
            # every timeout; as _decide + _finish do): the scope caught the operation's own
            # cancellation, recorded from a token or a parent (not a source, whose error the
            # typed error would chain: `_is_source`'s table, filled by the first such exit
            # through `_leave`), or a plain timeout's deadline passed with nothing recorded.
            fired = self._fired
            if fired is None:
                if self._plan is None and self._stop is None and self._handle.now() >= self._own_deadline:  # type: ignore[union-attr]
                    fired = self._seal_plain_timeout()
            elif _IS_SOURCE.get(type(fired.source)) is not False:
                fired = None
            if fired is not None:
                self._status = _CANCELLED
                self._end_ts = _now()
                if self._ctx is not None or self._parent is not None or self._registry is not None:
                    self._ended()
                raise error_for(fired, self) from exc
        return await self._leave(exc_type, exc, swallowed, raised, cleanup)

    def _seal_plain_timeout(self) -> CancelEvent:
        """Record, in a sealed operation without a plan or a stop request, the event of its
        own deadline that passed with nothing recorded, as `_decide` does through
        `_timeout_event`: the timeout's source is made and fired in place (nobody listens
        to it)."""
        src = TimeoutSource._of(self._timeout)
        event: CancelEvent = _new_event(CancelEvent, (CancelationReason.TIMEOUT, src.default_message(), src))
        src._fired, src._value = True, event
        self._store_sealed(event)
        return event

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._leave_inline = all(getattr(cls, name) is getattr(Operation, name) for name in _SKIPPED_BY_FAST_EXIT)

    def _decide(self, exc: BaseException | None, own: bool) -> OperationStatus:
        """Record why a sealed operation ended and set its final status (the one classifier,
        for blocks and detached streams alike).

        ``exc`` is what ended it (None: a clean end; ``GeneratorExit``: a detached stream
        closed by its consumer, which is a clean end too); ``own`` says ``exc`` is the
        operation's own cancellation (caught by its scope, or its typed error).
        """
        failure = self._failure
        if failure is not None:  # a source could not go on watching
            self._error = error_text(failure)
            self._finish(_FAILED)
            return _FAILED
        fired = self._fired
        if exc is None or own or isinstance(exc, GeneratorExit):
            if fired is None:
                handle = self._handle
                caught = own or (self._deadline != _INF and handle is not None and handle.now() >= self._deadline)
                if not caught:
                    self._finish(_COMPLETED)
                    return _COMPLETED
                # caught with nothing recorded, or ended past its deadline: the deadline passed
                fired = self._timeout_event()
                self._store_sealed(fired)
                src = fired.source
                if _is_source(src) and not src._fired:
                    src.fire(fired.message)
            # A source that fired because it failed (an erroring observable) keeps its error.
            cause = _source_error(fired.source)
            if isinstance(cause, BaseException):
                self._error = error_text(cause)
            self._finish(_CANCELLED)
            return _CANCELLED
        if isinstance(exc, anyio.get_cancelled_exc_class()):
            # An enclosing cancellation: it propagates untouched (it is not ours to catch).
            if fired is None:
                self._store_sealed(CancelEvent(CancelationReason.PARENT, "Cancelled by an enclosing cancel scope", None))
            self._finish(_CANCELLED)
            return _CANCELLED
        if isinstance(exc, CancelationError):
            # A typed cancellation raised in the body (a token's check(), a nested operation).
            if fired is None:
                self._store_sealed(CancelEvent(exc.reason, exc.message, exc))
            self._finish(_CANCELLED)
            return _CANCELLED
        self._error = error_text(exc)  # the body's error wins over a pending cancel
        self._finish(_FAILED)
        return _FAILED

    async def _leave(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        swallowed: bool,
        raised: BaseException | None,
        cleanup: BaseException | None,
    ) -> bool:
        """Leave a sealed operation that did not simply complete: decide, run the callbacks,
        then raise what leaving raises."""
        own = exc_type is None or swallowed  # leaving raises the typed error if it was cancelled
        if cleanup is not None and self._failure is None:
            # the stream's source failed to close: that error ends the operation
            self._error = error_text(cleanup)
            self._finish(_FAILED)
            status = _FAILED
        else:
            status = self._decide(exc, swallowed)
        if status is _COMPLETED:
            await self._trigger("complete")
            return False
        if status is _CANCELLED:
            if self._hooks is not None:
                await self._trigger("cancel")
            if own:
                if self._suppress:
                    return exc_type is not None
                fired = self._fired
                assert fired is not None
                cause = _source_error(fired.source)
                raise error_for(fired, self) from (cause if isinstance(cause, BaseException) else exc)
        else:
            error = self._failure if self._failure is not None else cleanup if cleanup is not None else exc
            await self._trigger("error", error)
            if error is not exc and error is not None:
                if exc is not None and error.__context__ is None:
                    error.__context__ = exc
                raise error
        if raised is not None:
            raise raised
        return False

    def _store_sealed(self, event: CancelEvent) -> None:
        """Record the event that explains how a sealed operation ended (loop thread)."""
        with _LOCK:
            self._store_event(event)
        if self._own_token or self._cancellation is not None:
            self._announce(event)

    def _refresh_report(self) -> None:
        """Set the fast paths of ``report_progress`` from who listens now (loop thread):
        ``_quiet`` if nobody does, ``_report_one`` if one sync callback is the only listener.
        Called on entry and when a progress listener is added; the registry (when it adopts
        the operation) and the seal turn both off."""
        hooks = self._hooks
        if self._state == RUNNING and self._registry is None:
            if hooks is None or (not hooks._progress and hooks.observable is None):
                self._quiet, self._report_one = True, None
            else:
                self._quiet, self._report_one = False, hooks.sole_sync_progress()
        else:
            self._quiet, self._report_one = False, None

    async def _trigger(self, kind: str, error: BaseException | None = None) -> None:
        hooks = self._hooks
        if hooks is None or not hooks.has(kind):
            return
        with anyio.CancelScope(shield=True):  # callbacks run to the end: the outcome is decided
            if kind == "error":
                if isinstance(error, Exception):
                    await hooks.trigger(kind, self.context, error)
            else:
                await hooks.trigger(kind, self.context)

    # -- the stream port --------------------------------------------------------------------

    def _attach_stream(self, stream: Any) -> None:
        """Make ``stream`` the operation's stream (it must be running); the previous one ends.
        Its ``stop`` flag is set when the operation records a cancellation."""
        if self._state != RUNNING:
            raise RuntimeError(
                "iterate op.stream(...) inside `async with op:` (the operation is "
                f"{self._status.value}); for a standalone cancelable iterator use cancelable_stream()"
            )
        previous = self._stream
        if previous is not None and previous is not stream:
            previous._end(False)
        self._stream = stream
        if self._fired is not None:
            stream.stop = True
        elif self._stop is not None:
            stream.stop = SOFT_STOP

    def _detach_stream(self, stream: Any, partial: Any) -> None:
        """``stream`` ended with ``partial`` (a `PartialResult`)."""
        self._partial = partial
        if self._stream is stream:
            self._stream = None
        if self._ctx is not None:
            with _LOCK:
                self._sync_record()

    def _history_record(self, keep_buffers: bool) -> EndedRecord | tuple[Any, ...]:
        """What the registry's history keeps (see `EndedRecord`).  Without ``keep_buffers``
        a stream's partial result keeps its count and completion, not its buffered items.
        A record that was built (and perhaps edited by its reader) is copied; otherwise the
        fields are copied into a flat tuple (``EndedRecord.FIELDS``; then the duration so far,
        for an operation still running) and the record is built when first read."""
        partial = self._partial
        if partial is not None and not keep_buffers and isinstance(partial, PartialResult) and partial.buffer is not None:
            partial = PartialResult(partial.count, partial.completed, None)
        ctx = self._ctx
        if ctx is not None:  # a copy of the record as its reader sees it (values are not copied)
            with _LOCK:
                copy = ctx.model_copy(
                    update={"partial_result": partial, "child_ids": set(ctx.child_ids), "metadata": dict(ctx.metadata)}
                )
            return EndedRecord(copy.status, copy.duration_seconds, context=copy)
        fired = self._fired
        start, end = self._start_ts, self._end_ts
        metadata = self._metadata
        values = (  # in the order of EndedRecord.FIELDS (see EndedRecord.of)
            self._id or self.id,
            self._name if self._name is not None else self._default_name,
            self._status,
            start,
            end,
            fired.reason if fired is not None else None,
            fired.message if fired is not None else None,
            dict(metadata) if metadata else None,
            self._parent.id if self._parent is not None else None,
            self._child_id_set() if self._children or self._recent else None,
            partial,
            self._error,
        )
        if end is None and start is not None:  # still running (unregistered): its duration so far
            return (*values, _now() - start)
        return values

    def _progress_listening(self) -> bool:
        hooks = self._hooks
        return self._registry is not None or (hooks is not None and hooks.listening)

    def _emit_progress(self, count: int, item: Any) -> None:
        """Progress from a stream: never awaits."""
        registry = self._registry
        if registry is not None:
            registry._on_progress(self, f"Processed {count} items", {"count": count, "latest_item": item})
        hooks = self._hooks
        if hooks is not None:
            hooks.emit_stream(self.id, count, item, self._handle)

    def _begin_detached(self) -> None:
        """Start without a scope around the consumer: a detached stream opens a scope around
        each fetch only (`_fetch_detached`), and background work runs as loop tasks."""
        if self._state != PENDING:
            raise RuntimeError(f"{self!r} has already been entered; an operation runs once")
        handle = capture()
        self._start(handle)
        self._listening = True
        host = None
        if self._plan is not None:
            host = self._host = BackgroundHost(handle, self._fail, self._stop_from)
        try:
            self._arm(host)
        except BaseException as err:  # a source that cannot be armed: end it failed, as entering a block does
            self._seal_detached()
            self._error = error_text(err)
            self._finish(_FAILED)
            raise
        if self._register_globally:
            registry = self._registry = OperationRegistry.get_instance()
            registry._on_enter(self)

    async def _fetch_detached(self, fetch: Callable[[], Awaitable[T]], checkpoint: bool) -> T:
        """Await ``fetch()`` inside a cancel scope with the operation's deadline, so a
        cancellation reaches it; ``checkpoint`` first lets a source that never awaits be
        cancelled.  Raises the typed error when the operation is cancelled."""
        handle = self._handle
        assert handle is not None
        scope = self._scope = handle.scope_cls(deadline=self._deadline)
        try:
            with scope:
                if checkpoint:
                    await anyio.lowlevel.checkpoint()
                return await fetch()
        finally:
            self._scope = None
            if scope.cancelled_caught:
                if self._fired is None and self._failure is None:
                    self._record(self._timeout_event())
                raise self._stop_error()
        raise AssertionError("unreachable")  # pragma: no cover - the scope caught a cancellation

    def _end_detached(self, exc: BaseException | None, own: bool = False) -> OperationStatus | None:
        """A detached stream ended and its source is closed (or closes later, on its own):
        `_seal_detached` then `_decide_detached`.  Returns the final status (None if it had
        already ended); the stream then runs the status callbacks (`_run_end_callbacks`)."""
        if not self._seal_detached():
            return None
        return self._decide_detached(exc, own, None)

    def _seal_detached(self) -> bool:
        """A detached stream ended: release the sources and tokens and seal (no later event
        counts).  False if the operation was not running.  The outcome is decided once the
        source is closed (`_decide_detached`), as leaving a block closes its stream first."""
        if self._state != RUNNING:
            return False
        self._disarm_all()
        if self._host is not None:
            self._host.close()
        self._seal()
        return True

    def _decide_detached(self, exc: BaseException | None, own: bool, cleanup: BaseException | None) -> OperationStatus:
        """Decide a sealed detached stream's outcome: ``exc`` ended it (``own``: it is the
        operation's typed error, raised by `_fetch_detached`), ``cleanup`` is what closing
        its source raised.  Same classifier as a block: a close that fails makes it
        ``FAILED``; a close interrupted by an enclosing cancellation makes it ``CANCELLED``."""
        if cleanup is not None and self._failure is None and not isinstance(cleanup, anyio.get_cancelled_exc_class()):
            self._error = error_text(cleanup)
            self._finish(_FAILED)
            return _FAILED
        if cleanup is not None:
            return self._decide(cleanup, False)
        return self._decide(exc, own)

    async def _run_end_callbacks(self, status: OperationStatus, exc: BaseException | None) -> None:
        """Run the callbacks of ``status`` for an operation that ended outside a block (a
        detached stream), as leaving a block runs them: shielded, to their end."""
        if status is _COMPLETED:
            await self._trigger("complete")
        elif status is _CANCELLED:
            await self._trigger("cancel")
        else:
            await self._trigger("error", self._failure if self._failure is not None else exc)

    def _clean_end_error(self) -> BaseException | None:
        """What the consumer of a detached stream gets when the stream ended on its side
        without an error (its source ran out, or a stop request ended it at an item
        boundary) but the operation, once its source was closed, was decided otherwise: a
        cancel recorded before the seal (another thread's, a passed deadline or stop grace
        period). As leaving a block that raised nothing: the failure of a source, else the
        typed error, unless ``suppress_cancelation`` (None: the end stays clean). The compat
        face overrides it (its blocks end normally then)."""
        status = self._status
        if status is _FAILED:
            return self._failure
        if status is not _CANCELLED or self._suppress:
            return None
        error = self._cancel_error()
        cause = _source_error(self._fired.source)  # type: ignore[union-attr]  # (decided CANCELLED: recorded)
        if isinstance(cause, BaseException):
            error.__cause__ = cause
        return error

    def _stop_error(self) -> BaseException:
        """What a stream raises when it stops for the operation: the failure of a source, if
        one failed, else the typed error of the recorded cancellation."""
        failure = self._failure
        return failure if failure is not None else self._cancel_error()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name or 'operation'!r} {self._status.value}>"
