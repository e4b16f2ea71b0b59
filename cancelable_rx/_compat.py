"""The compatibility face: `Cancelable` leaving as ``hother-cancelable`` does, and the
helpers that build operations (decorators, `cancelable_stream`) building that class.

The public module is ``cancelable_rx.compat`` (it re-exports this and everything shared
with the main face); see its docstring and ``docs/migration.md``.  Nothing here is on the
main face's path: the main classes and functions never refer to this module.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import AsyncIterable, Awaitable, Callable
from datetime import timedelta
from typing import Any, Self, TypeVar, overload

import anyio
import anyio.lowlevel

from . import _decorators as _d
from ._cancelable import Cancelable as _MainCancelable
from ._checks import check_instance
from ._exceptions import CancelationError
from ._standalone import cancelable_stream as _main_cancelable_stream
from ._token import CancelationToken
from .streaming._stream import CancelableStream

__all__ = (
    "MIGRATION_PAGE",
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
    "with_timeout",
)

T = TypeVar("T")
R = TypeVar("R")

MIGRATION_PAGE = "docs/migration.md"
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
