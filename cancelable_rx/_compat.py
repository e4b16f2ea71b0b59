"""The compatibility face: `Cancelable` leaving as ``hother-cancelable`` does, and the
helpers that build operations (decorators, `cancelable_stream`) building that class.

The public module is ``cancelable_rx.compat`` (it re-exports this and everything shared
with the main face); see its docstring and ``docs/migration.md``.  Nothing here is on the
main face's path: the main classes and functions never refer to this module.
"""

from __future__ import annotations

import functools
import inspect
import logging
import threading
import warnings
import weakref
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Self, TypeVar, overload

import anyio
import anyio.lowlevel

from . import _decorators as _d
from ._cancelable import Cancelable as _MainCancelable
from ._checks import check_callable, check_instance, check_positive_int
from ._exceptions import CancelationError
from ._hooks import KINDS
from ._loop import LoopHandle, capture
from ._models import CancelationReason, CancelEvent, OperationStatus
from ._operation import PENDING, RUNNING, Operation
from ._standalone import cancelable_stream as _main_cancelable_stream
from ._token import CancelationToken
from .streaming._stream import CancelableStream

__all__ = (
    "MIGRATION_PAGE",
    "AnyioBridge",
    "Cancelable",
    "CompatWarning",
    "cancelable",
    "cancelable_combine",
    "cancelable_method",
    "cancelable_stream",
    "cancelable_with_condition",
    "cancelable_with_signal",
    "cancelable_with_token",
    "ensure_operation",
    "call_soon_threadsafe",
    "with_timeout",
)

T = TypeVar("T")
R = TypeVar("R")

MIGRATION_PAGE = "docs/migration.md"
logger = logging.getLogger("cancelable_rx")
_warned = threading.Event()


class CompatWarning(UserWarning):
    """Emitted once per process, the first time a `cancelable_rx.compat.Cancelable` lets the
    backend's cancel exception out (the reference's behaviour).  The one-line fix: catch
    ``CancelationError`` (``except CancelationError:``) and import from ``cancelable_rx``.
    Silence it with ``warnings.filterwarnings("ignore", category=CompatWarning)``."""


def _warn_once() -> None:
    if _warned.is_set():
        return
    _warned.set()
    warnings.warn(
        CompatWarning(
            "cancelable_rx.compat: a cancelled operation re-raised the backend's cancel exception, as "
            "hother-cancelable does; that exception silently ends the sibling tasks of an enclosing task "
            "group. The fix is one line: catch the typed error (`except CancelationError:`) and import "
            f"from cancelable_rx instead of cancelable_rx.compat. See {MIGRATION_PAGE}."
        ),
        stacklevel=4,
    )


async def _backend_cancel() -> BaseException:
    """A cancel exception made by the backend itself, for a place where no cancel scope of
    the operation caught one (its check outside the block, a stream stopped between two
    fetches): a scope of our own is cancelled and its checkpoint's exception kept.  Never
    constructs one (trio forbids it)."""
    with anyio.CancelScope() as scope:
        scope.cancel()
        try:
            await anyio.lowlevel.checkpoint()
        except anyio.get_cancelled_exc_class() as exc:
            return exc
    raise AssertionError("unreachable: a cancelled scope's checkpoint raises")  # pragma: no cover


# -- the reference's private attributes ------------------------------------------------------
#
# The reference's tests (and some of its users) read and write attributes its documented API
# does not have.  Where the engine has the same state under another shape, the compat
# operation shows it in the reference's shape, live: writing through the view changes what
# the operation does, as writing the reference's attribute changes what the reference does.
# The main face has none of this (its state lives in slots only).

_SOURCES_SLOT: Any = Operation.__dict__["_sources"]  # the engine's slots, under the views below
_CHILDREN_SLOT: Any = Operation.__dict__["_children"]


class _SourceList(list[Any]):
    """``op._sources`` on the compat face: the reference's list of sources.  Appending to it
    before entering adds a source (as ``add_source`` does, without its argument check); the
    engine reads it when the operation is entered."""

    __slots__ = ()

    def __radd__(self, other: object) -> Any:  # a tuple of sources + this list (the main face's combine)
        if isinstance(other, tuple):
            return other + tuple(self)
        return NotImplemented


class _ChildSet(weakref.WeakSet[Any]):
    """``op._children`` on the compat face: as in the reference, a weak set of the
    operation's children, from their construction (``parent=op``) or added by hand, until
    they end.  The engine's own bookkeeping of live children goes through it (``children[c]
    = None`` / ``del children[c]``), so a child added by hand is cancelled with the parent
    (``cancel(propagate_to_children=True)``), before or while it runs."""

    def __setitem__(self, child: Any, _value: None) -> None:
        self.add(child)

    def __delitem__(self, child: Any) -> None:
        self.discard(child)

    def __iter__(self) -> Iterator[Any]:
        # A snapshot (tuple() of a set is atomic): a cancel from another thread may iterate
        # while the loop adds a child.
        refs: set[weakref.ref[Any]] = self.data  # type: ignore[attr-defined]
        for ref in tuple(refs):
            child = ref()
            if child is not None:
                yield child


class Cancelable(_MainCancelable):
    """`cancelable_rx.Cancelable`, leaving a cancelled operation as ``hother-cancelable`` does.

    Cancellation: an operation cancelled by its own sources re-raises, on leaving, the
    backend's cancel exception its scope caught (``asyncio.CancelledError`` /
    ``trio.Cancelled``); one cancelled without a checkpoint after the cancel ends its block
    normally.  `check_cancelation` raises the backend's cancel exception too, as the
    reference's ``token.check_async()`` does.  ``suppress_cancelation=True``, callbacks, the
    record (``CANCELLED`` with its reason) and every other behaviour are the main face's.

    As in the reference, an operation has its own token from the start (``op.token``, also
    readable as ``op._token``), and instances have a ``__dict__``: tests may patch a method on
    one operation (``patch.object(op, "cancel", ...)``).  The main face keeps its state in
    slots only; this class costs the main face nothing.

    Thread-safety: as the main face.
    """

    # No __slots__: instances get a __dict__ (instance patching, as with the reference).

    def __init__(
        self,
        operation_id: str | None = None,
        name: str | None = None,
        parent: _MainCancelable | None = None,
        metadata: dict[str, Any] | None = None,
        register_globally: bool = False,
        *,
        suppress_cancelation: bool = False,
    ) -> None:
        super().__init__(
            operation_id, name, parent, metadata, register_globally, suppress_cancelation=suppress_cancelation
        )
        self.token  # noqa: B018 - the reference's operations make their token eagerly (op._token)
        if parent is not None and isinstance(parent, Cancelable):
            parent._children.add(self)  # the reference's parents hold their children from construction

    @classmethod
    def with_token(
        cls,
        token: CancelationToken,
        operation_id: str | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> Self:
        """`cancelable_rx.Cancelable.with_token`: ``op.token`` (and ``op._token``) is ``token``."""
        op = super().with_token(token, operation_id, name, **kwargs)
        op._own_token = False  # the eager own token made by __init__ is replaced by the caller's
        return op

    # -- the reference's private attributes, live (see the module's section above) -------------

    @property  # type: ignore[override]
    def _sources(self) -> _SourceList:
        sources: _SourceList = _SOURCES_SLOT.__get__(self, Operation)
        return sources

    @_sources.setter
    def _sources(self, value: Iterable[Any]) -> None:
        try:
            current = _SOURCES_SLOT.__get__(self, Operation)
        except AttributeError:  # the engine's __init__ sets it first
            current = None
        if isinstance(current, _SourceList):
            if current is not value:
                current[:] = value  # in place: a list read before add_source() sees the source
        else:
            _SOURCES_SLOT.__set__(self, _SourceList(value))

    @property  # type: ignore[override]
    def _children(self) -> _ChildSet:
        children = _CHILDREN_SLOT.__get__(self, Operation)
        if children is None:
            children = _ChildSet()
            _CHILDREN_SLOT.__set__(self, children)
        made: _ChildSet = children
        return made

    @_children.setter
    def _children(self, value: Iterable[Any] | None) -> None:
        if value is None or isinstance(value, _ChildSet):
            _CHILDREN_SLOT.__set__(self, value)  # None: made on first use
        else:
            _CHILDREN_SLOT.__set__(self, _ChildSet(value))

    @property
    def _parent_ref(self) -> weakref.ref[Operation] | None:
        """The reference's weak reference to the parent (``op.parent``, as a weakref)."""
        parent = self._parent
        return weakref.ref(parent) if parent is not None else None

    @_parent_ref.setter
    def _parent_ref(self, ref: Callable[[], Operation | None] | None) -> None:
        """Give an operation not entered yet a parent (``weakref.ref(parent)``), as the
        reference's tests do; ``None`` removes it.  Entering links it to the parent."""
        if self._state != PENDING:
            raise RuntimeError(f"_parent_ref of {self!r}: set the parent before the operation is entered")
        parent = ref() if ref is not None else None
        if parent is not None:
            check_instance(parent, Operation, "_parent_ref()", "a weak reference to a Cancelable, or None")
        self._parent = parent

    @property
    def _status_callbacks(self) -> dict[str, list[Callable[..., Any]]]:
        """The reference's dict of callback lists (``start``, ``complete``, ``cancel``,
        ``error``): the operation's own, so appending to a list (or replacing one) registers
        callbacks as ``on_start()`` ... do."""
        hooks = self._get_hooks()
        status = hooks._status
        if status is None:
            status = hooks._status = {kind: [] for kind in KINDS}
        return status

    @_status_callbacks.setter
    def _status_callbacks(self, value: dict[str, list[Callable[..., Any]]]) -> None:
        check_instance(value, dict, "_status_callbacks", "a dict of callback lists")
        unknown = set(value) - set(KINDS)
        if unknown:
            raise ValueError(f"_status_callbacks: unknown kinds {sorted(unknown)}; the kinds are {list(KINDS)}")
        for kind in KINDS:
            value.setdefault(kind, [])
        self._get_hooks()._status = value

    @property
    def _shields(self) -> list[Any]:
        """The reference's list of the shield scopes open in this operation (``shield()``
        adds its scope while the section runs); whatever is still in it when the operation
        ends is cancelled."""
        shields: list[Any] | None = self.__dict__.get("_shields")
        if shields is None:
            shields = self.__dict__["_shields"] = []
        return shields

    @property
    def _cancellables_to_link(self) -> list[_MainCancelable] | None:
        """The reference's operations whose tokens this one links when it is entered (set by
        ``combine``); None if there are none."""
        return self.__dict__.get("_cancellables_to_link")

    @_cancellables_to_link.setter
    def _cancellables_to_link(self, value: list[_MainCancelable] | None) -> None:
        self.__dict__["_cancellables_to_link"] = value

    async def _collect_all_tokens(self, cancelables: Iterable[_MainCancelable], result: list[CancelationToken]) -> None:
        """The reference's step: every token of ``cancelables`` and of the operations they
        link, recursively, appended once to ``result``."""
        for part in cancelables:
            token = part._token
            if token is not None and token not in result:
                result.append(token)
            nested = getattr(part, "_cancellables_to_link", None)
            if nested is not None:
                await self._collect_all_tokens(nested, result)

    async def _safe_link_tokens(self) -> None:
        """The reference's step: before the operation is entered, listen to every token of the
        operations it links (`_cancellables_to_link`) too; once entered, nothing to do."""
        parts = self._cancellables_to_link
        if self._state != PENDING or not parts:
            return
        tokens: list[CancelationToken] = []
        await self._collect_all_tokens(parts, tokens)
        known = {id(t) for t in self._tokens}
        known.add(id(self._token))
        extra = tuple(t for t in tokens if id(t) not in known)
        if extra:
            self._tokens = (*self._tokens, *extra)

    def combine(self, *others: _MainCancelable) -> Self:
        """`cancelable_rx.Cancelable.combine`; the combined operation also keeps the parts in
        the reference's `_cancellables_to_link` (entering links any token they hold then)."""
        combined = super().combine(*others)
        combined._cancellables_to_link = [self, *others]
        return combined

    async def __aenter__(self) -> Self:
        if self.__dict__.get("_cancellables_to_link"):
            await self._safe_link_tokens()
        return await super().__aenter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        try:
            return await super().__aexit__(exc_type, exc, tb)
        finally:
            shields = self.__dict__.get("_shields")
            if shields:  # left open (the reference's tests add scopes by hand): cancelled, as there
                for scope in tuple(shields):
                    scope.cancel()

    @asynccontextmanager
    async def shield(self) -> AsyncIterator[Self]:
        """`cancelable_rx.Cancelable.shield`; the section's shielded scope is in `_shields`
        while it runs, as in the reference."""
        if self._state != RUNNING:
            raise RuntimeError(f"shield() on {self!r}: only a running operation can shield a section")
        child = type(self)(name=f"{self.name}_shielded", parent=self, metadata={"shielded": True})
        child._shielded = True
        shields = self._shields
        with anyio.CancelScope(shield=True) as scope:
            shields.append(scope)
            try:
                async with child:
                    yield child
            finally:
                if scope in shields:
                    shields.remove(scope)
        await anyio.lowlevel.checkpoint_if_cancelled()

    def __del__(self) -> None:
        """The reference's finalizer, which its tests also call by hand: the operation leaves
        its parent's `_children` (collection does that by itself: the set is weak).  Nothing
        else: the record, the token and the parent link stay as they are."""
        try:
            parent = self._parent
            children = _CHILDREN_SLOT.__get__(parent, Operation) if isinstance(parent, Cancelable) else None
            if children is not None:
                children.discard(self)
        except Exception:  # a finalizer never raises (e.g. an __init__ that failed half-way)
            pass

    async def report_progress(self, message: Any, metadata: dict[str, Any] | None = None) -> None:
        """`cancelable_rx.Cancelable.report_progress`; outside the block (before entering,
        after leaving) the progress callbacks still run, as in the reference, instead of the
        main face's RuntimeError."""
        if self._state == RUNNING:
            await super().report_progress(message, metadata)
            return
        hooks = self._hooks
        if hooks is not None:
            await hooks.report(self.id, message, metadata)

    def _timeout_event(self) -> CancelEvent:
        """The engine's explanation of a scope cancelled with nothing recorded; as in the
        reference, a source that says it ``triggered`` (one that set the flag without firing,
        e.g. a test's stand-in) gives its reason when no deadline explains it."""
        event = super()._timeout_event()
        if event.source is None and event.reason is CancelationReason.MANUAL:
            for source in self._sources:
                if getattr(source, "triggered", False) is True and isinstance(
                    getattr(source, "reason", None), CancelationReason
                ):
                    return CancelEvent(source.reason, f"Cancelled by {type(source).__name__}", source)
        return event

    async def check_cancelation(self) -> None:
        """If the operation is cancelled, raise the backend's cancel exception, as the
        reference's ``token.check_async()`` does: inside the block the pending cancellation
        takes effect at a checkpoint; elsewhere (before entering, after leaving) the
        backend's exception is raised all the same."""
        if self.is_cancelled:
            await anyio.lowlevel.checkpoint()
            _warn_once()
            raise await _backend_cancel()

    async def _leave(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        swallowed: bool,
        raised: BaseException | None,
        cleanup: BaseException | None,
    ) -> bool:
        try:
            return await super()._leave(exc_type, exc, swallowed, raised, cleanup)
        except CancelationError:
            if not (exc_type is None or swallowed) or self._suppress or self._failure is not None:
                raise
            # Our own cancellation: let the exception the scope caught go on (returning False
            # re-raises it, never a new one); a block that raised nothing ends normally.
            _warn_once()
            return False

    def _clean_end_error(self) -> BaseException | None:
        """A detached stream that ended cleanly on its side stays a clean end when the
        operation was decided cancelled, as a compat block that raised nothing ends normally;
        a source's failure is still raised."""
        return self._failure if self._status is OperationStatus.FAILED else None

    async def _fetch_detached(self, fetch: Callable[[], Awaitable[T]], checkpoint: bool) -> T:
        """The main face's fetch of a detached stream, keeping the backend's cancel exception
        the fetch's scope caught: the compat stream raises it instead of the typed error."""
        cancelled = anyio.get_cancelled_exc_class()

        async def watched() -> T:
            try:
                if checkpoint:
                    await anyio.lowlevel.checkpoint()
                return await fetch()
            except cancelled as exc:
                self.__dict__["_compat_caught"] = exc
                raise

        return await super()._fetch_detached(watched, False)


# -- cancelable_stream ---------------------------------------------------------------------


class _CompatCursor:
    """The iterator of a compat detached stream: the main face's, except that the stream's
    own cancellation reaches the consumer as the backend's cancel exception."""

    __slots__ = ("_cursor", "_op")

    def __init__(self, cursor: Any, op: Cancelable) -> None:
        self._cursor = cursor
        self._op = op

    def __aiter__(self) -> _CompatCursor:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._cursor.__anext__()
        except CancelationError as err:
            op = self._op
            if getattr(err, "_op", None) is not op or op._failure is not None:
                raise
            caught = op.__dict__.pop("_compat_caught", None)
            _warn_once()
            raise caught if caught is not None else await _backend_cancel()  # noqa: B904 - chained to err

    async def aclose(self) -> None:
        await self._cursor.aclose()


class _CompatStream(CancelableStream[T]):
    """`CancelableStream` of the compat `cancelable_stream` (see `_CompatCursor`)."""

    def __aiter__(self) -> Any:
        cursor = super().__aiter__()
        op = self._iterator._op
        return _CompatCursor(cursor, op) if isinstance(op, Cancelable) else cursor


def _stream_operation(
    timeout: float | timedelta | None,
    token: CancelationToken | None,
    operation_id: str | None,
    name: str | None,
) -> Cancelable:
    """The stream's own operation (as `cancelable_rx.cancelable_stream` makes it)."""
    if token is not None:
        check_instance(token, CancelationToken, "token", "a CancelationToken or None")
    if timeout is not None and token is not None:
        op = Cancelable.with_timeout(timeout).combine(Cancelable.with_token(token))
        op._id = operation_id  # combine() names its operation; the caller's id and name win
        op._name = name or "stream_timeout_token"
        return op
    if timeout is not None:
        return Cancelable.with_timeout(timeout, operation_id=operation_id, name=name or "stream_timeout")
    if token is not None:
        return Cancelable.with_token(token, operation_id=operation_id, name=name or "stream_token")
    return Cancelable(operation_id=operation_id, name=name or "stream")


def cancelable_stream(
    stream: AsyncIterable[T],
    timeout: float | timedelta | None = None,
    token: CancelationToken | None = None,
    report_interval: int | None = None,
    on_progress: Callable[[int, T], Any] | None = None,
    buffer_partial: bool = False,
    operation_id: str | None = None,
    name: str | None = None,
    *,
    operation: _MainCancelable | None = None,
) -> CancelableStream[T]:
    """`cancelable_rx.cancelable_stream` with a compat operation: when the timeout passes or
    the token is cancelled, the consumer gets the backend's cancel exception (as with the
    reference), not the typed error.  A scope still surrounds each fetch only (never the
    consumer's code); ``stream.operation`` records the reason and the partial result.
    ``operation=`` takes an operation you made, as on the main face (a compat one raises
    the backend's cancel exception, a main-face one the typed error)."""
    if operation is None:  # our own operation: the main face's recipe, with this face's class
        operation = _stream_operation(timeout, token, operation_id, name)
        timeout = token = operation_id = name = None
    made = _main_cancelable_stream(
        stream, timeout, token, report_interval, on_progress, buffer_partial, operation_id, name, operation=operation
    )
    return _CompatStream(made._iterator)


# -- decorators: the main face's, building compat operations --------------------------------


def cancelable(
    timeout: float | timedelta | None = None,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> _d.Decorator[R]:
    """`cancelable_rx.cancelable`, running each call in a compat `Cancelable`."""
    return _d.cancelable_for(Cancelable, timeout, operation_id, name, register_globally, inject_param)


def cancelable_method(
    timeout: float | timedelta | None = None,
    name: str | None = None,
    register_globally: bool = False,
) -> _d.Decorator[R]:
    """`cancelable_rx.cancelable_method`, running each call in a compat `Cancelable`."""
    return _d.cancelable_method_for(Cancelable, timeout, name, register_globally)


def cancelable_with_token(
    token: CancelationToken,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> _d.Decorator[R]:
    """`cancelable_rx.cancelable_with_token`, running each call in a compat `Cancelable`."""
    return _d.cancelable_with_token_for(Cancelable, token, operation_id, name, register_globally, inject_param)


def cancelable_with_signal(
    *signals: int,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> _d.Decorator[R]:
    """`cancelable_rx.cancelable_with_signal`, running each call in a compat `Cancelable`."""
    return _d.cancelable_with_signal_for(Cancelable, signals, operation_id, name, register_globally, inject_param)


def cancelable_with_condition(
    condition: Callable[[], bool | Awaitable[bool]],
    check_interval: float = 0.1,
    condition_name: str | None = None,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> _d.Decorator[R]:
    """`cancelable_rx.cancelable_with_condition`, running each call in a compat `Cancelable`."""
    return _d.cancelable_with_condition_for(
        Cancelable, condition, check_interval, condition_name, operation_id, name, register_globally, inject_param
    )


def cancelable_combine(
    *cancelables: _MainCancelable,
    operation_id: str | None = None,
    name: str | None = None,
    register_globally: bool = False,
    inject_param: str | None = "cancelable",
) -> _d.Decorator[R]:
    """`cancelable_rx.cancelable_combine`, running each call in a compat `Cancelable`."""
    return _d.cancelable_combine_for(Cancelable, cancelables, operation_id, name, register_globally, inject_param)


@overload
def with_timeout(
    timeout: float | timedelta, coro: None = None, operation_id: str | None = None, name: str | None = None
) -> _d.Decorator[Any]: ...
@overload
def with_timeout(
    timeout: float | timedelta, coro: Awaitable[T], operation_id: str | None = None, name: str | None = None
) -> Awaitable[T]: ...


def with_timeout(
    timeout: float | timedelta,
    coro: Awaitable[T] | None = None,
    operation_id: str | None = None,
    name: str | None = None,
) -> Any:
    """`cancelable_rx.with_timeout`, with a compat `Cancelable` (a timeout re-raises the
    backend's cancel exception, as with the reference)."""
    return _d.with_timeout_for(Cancelable, timeout, coro, operation_id, name)


def ensure_operation(func: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """`cancelable_rx.ensure_operation`; a new operation is a compat `Cancelable`."""
    return _d.ensure_operation_for(Cancelable, func)


# -- AnyioBridge: the reference's design ----------------------------------------------------


class AnyioBridge:
    """``hother-cancelable``'s bridge, as it is built there: a memory object stream of
    ``buffer_size`` callbacks and a worker task (`start` runs it) that calls them one at a
    time, in order, awaiting an awaitable one returns before the next; callbacks submitted
    before `start` wait in ``_pending_callbacks``; a full stream drops the callback with a
    warning.  Its attributes are the reference's (``_send_stream``, ``_receive_stream``,
    ``_worker``, ``_started``, ``_pending_callbacks``).  One change: a callback submitted
    from another thread than the bridge's loop hops to the loop before it enters the stream
    (an anyio stream is not thread-safe).

    The main face's `cancelable_rx.AnyioBridge` has the same public API without stream or
    worker (each callback hops on its own); cancelling from a thread needs neither.

    Thread-safety: `call_soon_threadsafe` from any thread; `start`, `stop` on the loop.
    """

    _instance: AnyioBridge | None = None
    _lock = threading.Lock()

    def __init__(self, buffer_size: int = 1000) -> None:
        check_positive_int(buffer_size, "buffer_size", "e.g. AnyioBridge(buffer_size=1000)")
        self._buffer_size = buffer_size
        self._send_stream: Any = None
        self._receive_stream: Any = None
        self._started = False
        self._handle: LoopHandle | None = None
        self._pending_callbacks: deque[Callable[[], Any]] = deque()
        self._pending_lock = threading.Lock()

    @classmethod
    def get_instance(cls) -> AnyioBridge:
        """The process-wide bridge of this face (made on first use, thread-safe)."""
        if cls._instance is None:
            with cls._lock:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    @property
    def is_started(self) -> bool:
        return self._started

    async def start(self) -> None:
        """Open the stream, move the pending callbacks into it and run the worker until the
        stream is closed (`stop`) or the task is cancelled.  A second `start` while started
        logs a warning and returns."""
        if self._started:
            logger.warning("AnyioBridge already started: ignoring a second start()")
            return
        self._handle = capture()
        self._send_stream, self._receive_stream = anyio.create_memory_object_stream(self._buffer_size)
        with self._pending_lock:
            while self._pending_callbacks:
                callback = self._pending_callbacks.popleft()
                try:
                    self._send_stream.send_nowait(callback)
                except anyio.WouldBlock:
                    logger.warning("AnyioBridge: stream full while starting, callback %r dropped", callback)
        self._started = True
        await self._worker()

    async def _worker(self) -> None:
        """Call the stream's callbacks one at a time until the stream ends."""
        try:
            while True:
                callback = await self._receive_stream.receive()
                try:
                    result = callback()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("AnyioBridge: callback %r failed", callback)
                await anyio.lowlevel.checkpoint()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            pass
        except Exception:
            logger.exception("AnyioBridge: the worker failed")

    def call_soon_threadsafe(self, callback: Callable[..., Any], *args: Any) -> None:
        """Schedule ``callback(*args)`` on the bridge's loop, from any thread (queued until
        `start`)."""
        check_callable(callback, "callback", "callback(*args), sync or async")
        item = functools.partial(callback, *args) if args else callback
        if not self._started:
            with self._pending_lock:
                self._pending_callbacks.append(item)
            return
        handle = self._handle
        if handle is not None and not handle.in_loop_thread():
            handle.run_soon(lambda: self._send(item))
        else:
            self._send(item)

    def _send(self, item: Callable[[], Any]) -> None:
        stream = self._send_stream
        if stream is None:  # stopped meanwhile: wait for the next start
            with self._pending_lock:
                self._pending_callbacks.append(item)
            return
        try:
            stream.send_nowait(item)
        except anyio.WouldBlock:
            logger.warning("AnyioBridge: stream full (%d callbacks), callback %r dropped", self._buffer_size, item)
        except Exception:
            logger.exception("AnyioBridge: could not schedule callback %r", item)

    async def stop(self) -> None:
        """Close the stream (the worker ends, `start` returns); later callbacks wait for the
        next `start`."""
        for stream in (self._send_stream, self._receive_stream):
            if stream is not None:
                try:
                    await stream.aclose()
                except Exception as exc:
                    logger.warning("AnyioBridge: closing %r failed: %s", stream, exc)
        self._started = False
        self._send_stream = None
        self._receive_stream = None


def call_soon_threadsafe(callback: Callable[..., Any], *args: Any) -> None:
    """Schedule ``callback(*args)`` through this face's process-wide `AnyioBridge`."""
    AnyioBridge.get_instance().call_soon_threadsafe(callback, *args)
