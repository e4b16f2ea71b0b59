"""The fused stream operator: all the per-item work of a cancelable stream in one place.

Per item: a cancel-flag test, a ring-buffer append (when buffering), a progress test and a
checkpoint every ``CHECKPOINT_EVERY`` items (so a CPU-bound source still lets the loop
deliver deadlines and cancellations).  It never holds a cancel scope or a task group
across ``yield``: inside an operation's block the operation's own scope surrounds the
consumer; in detached mode (``cancelable_stream``) the operation opens a scope around each
fetch only.

It talks to its operation through the engine's stream port only (listed in
``_operation``'s docstring and ``docs/architecture.md``).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.lowlevel
from aiostream.aiter_utils import AsyncIteratorContext

from .._checks import check_positive_int, fail_type
from .._models import OperationStatus, PartialResult
from .._operation import SOFT_STOP

if TYPE_CHECKING:
    from .._operation import Operation

__all__ = ("CHECKPOINT_EVERY", "DEFAULT_BUFFER_SIZE", "FusedIterator", "check_report_interval")

T = TypeVar("T")
CHECKPOINT_EVERY = 512
DEFAULT_BUFFER_SIZE = 1000
_OPEN, _ENDED = 0, 1
logger = logging.getLogger("cancelable_rx")
_checkpoint = anyio.lowlevel.checkpoint


def check_report_interval(report_interval: object) -> int | None:
    if report_interval is None:
        return None
    return check_positive_int(report_interval, "report_interval", "report progress every N items, or None")


async def _sync_items(iterator: Iterator[T]) -> AsyncIterator[T]:
    for item in iterator:
        yield item


def _resolve_source(source: object) -> tuple[Any, bool]:
    """Return (iterator, is_sync).  Async iterables are preferred; plain iterables are
    accepted and pulled synchronously (documented)."""
    if hasattr(source, "__anext__"):
        return source, False
    if hasattr(source, "__aiter__"):
        return source.__aiter__(), False
    if isinstance(source, (str, bytes)) or not hasattr(source, "__iter__"):
        fail_type("async_iter", "an async iterable (or an iterable)", source, "e.g. an async generator")
    return iter(source), True


class FusedIterator(Generic[T]):
    """The iterator behind `CancelableStream` (see the module docstring)."""

    __slots__ = (
        "_op", "_src", "_sync", "_count", "_buf", "_every", "_next_report", "_next_cp",
        "_state", "_detached", "_started", "_src_closed", "_agen", "_context", "_ending", "_due",
        "stop",
    )  # fmt: skip

    def __init__(
        self,
        op: Operation,
        source: object,
        report_interval: int | None,
        buffer_partial: bool,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        detached: bool = False,
    ) -> None:
        check_positive_int(buffer_size, "buffer_size", "e.g. buffer_size=1000")
        self._op = op
        self._src, self._sync = _resolve_source(source)
        self._count = 0
        self._buf: deque[T] | None = deque(maxlen=buffer_size) if buffer_partial else None
        self._every = check_report_interval(report_interval)
        self._next_report = self._every if self._every is not None else -1
        self._next_cp = CHECKPOINT_EVERY
        self._state = _OPEN
        self._detached = detached
        self._started = False
        self._src_closed = False
        self._agen: Any = None
        self._context = False  # an aiostream streamer this iterator entered (and exits on close)
        # a detached stream that ended: what ended it (and whether that is the operation's own
        # error), decided once its source is closed; then its status callbacks run
        self._ending: tuple[BaseException | None, bool] | None = None
        self._due: tuple[OperationStatus, BaseException | None] | None = None
        # set by the operation: True when it records a cancellation, SOFT_STOP on a stop request
        self.stop: bool | str = False

    # -- in an operation's block: one async generator frame per item ---------------------

    def open_generator(self) -> AsyncIterator[T]:
        """The async generator used inside an operation's block (about half the per-item cost
        of a class-based ``__anext__``).  The operation holds it and closes it, at the
        latest, when it exits."""
        agen = self._agen = self._run()
        return agen

    async def _run(self) -> AsyncIterator[T]:
        op = self._op
        op._attach_stream(self)
        self._started = True
        buf = self._buf
        append = buf.append if buf is not None else None
        every = self._every
        next_report = self._next_report
        mark = CHECKPOINT_EVERY if every is None or every > CHECKPOINT_EVERY else every
        next_cp = CHECKPOINT_EVERY
        n = 0
        completed = False
        src = self._src if not self._sync else _sync_items(self._src)
        try:
            await self._enter_context()
            if self.stop:  # stopped before the first item: the source is still closed below
                if self.stop is SOFT_STOP:
                    return
                await self._stop_cancelled()
            async for item in src:
                # The per-item flag (a slot: the cheapest read).  A cancellation: the item
                # fetched when it is noticed is not delivered.  A stop request: that item is
                # the last one delivered, then the stream ends cleanly.
                if self.stop:
                    self._count = n
                    if self.stop is SOFT_STOP:
                        n += 1
                        if append is not None:
                            append(item)
                        self._count = n
                        yield item
                        return
                    await self._stop_cancelled()
                n += 1
                if append is not None:
                    append(item)
                if n == mark:
                    self._count = n
                    if n == next_report:
                        next_report += every  # type: ignore[operator]
                        if op._progress_listening():  # nothing is built unless someone listens
                            op._emit_progress(n, item)
                    if n == next_cp:
                        next_cp += CHECKPOINT_EVERY
                        yield item
                        await _checkpoint()  # lets a CPU-bound source be cancelled
                        mark = min(next_cp, next_report) if every is not None else next_cp
                        continue
                    mark = min(next_cp, next_report) if every is not None else next_cp
                yield item
            completed = True
        finally:
            self._count = n
            self._end(completed)
            await self._close_source()

    async def _stop_cancelled(self) -> None:
        self._end(False)
        await _checkpoint()  # inside the block: the operation's scope delivers it
        raise self._op._stop_error()

    # -- detached (cancelable_stream): a scope around each fetch --------------------------

    def open_detached(self) -> _DetachedCursor[T]:
        """The iterator of a detached stream.  Dropping it (a plain ``break``) ends the
        operation and closes the source; see `_DetachedCursor`."""
        return _DetachedCursor(self)

    def _fetcher(self) -> Callable[[], Awaitable[T]]:
        if not self._sync:
            return self._src.__anext__
        nxt = self._src.__next__

        async def fetch_sync() -> T:
            try:
                return nxt()
            except StopIteration:
                raise StopAsyncIteration from None

        return fetch_sync

    async def next_detached(self, cursor: object = None) -> T:
        """The next item of a detached stream.  ``cursor`` (the iterator the consumer holds)
        is kept alive by this call while it runs: dropping it mid-fetch cannot end the
        operation under the fetch."""
        op = self._op
        if not self._started:
            self._started = True
            try:
                op._begin_detached()  # (a source that cannot be armed: the operation ended FAILED)
            except BaseException:
                self._state = _ENDED  # the stream never ran: later requests end at once
                try:
                    with anyio.CancelScope(shield=True):
                        await self._close_source()
                except Exception:  # the arming error is the one to see
                    logger.exception("cancelable_rx: closing the source of a stream that could not start failed")
                raise
            op._attach_stream(self)
            self._agen = self._fetcher()
            try:
                if op._hooks is not None:
                    await op._trigger("start")  # (errors are logged; a BaseException gets here)
                await self._enter_context()
            except BaseException as exc:  # end it as leaving a block would: failed, source closed
                self._end(False, exc)
                with anyio.CancelScope(shield=True):
                    await self._close_source()
                raise
        if self._state:
            raise StopAsyncIteration
        if self.stop is SOFT_STOP:  # a stop request: end cleanly, before fetching again
            self._end(False)
            await self._close_source()
            # unless its grace period ran out while the consumer worked: decided cancelled
            self._raise_if_decided(op)
            raise StopAsyncIteration
        if self.stop:
            error = op._stop_error()
            self._end(False, error, own=True)
            with anyio.CancelScope(shield=True):
                await self._close_source()
            raise self._decided(op, error, True) or StopAsyncIteration()
        n = self._count
        checkpoint = n == self._next_cp
        if checkpoint:
            self._next_cp += CHECKPOINT_EVERY
        try:
            item: T = await op._fetch_detached(self._agen, checkpoint)
        except StopAsyncIteration:
            pass  # the source ran out: ended below, outside this handler
        except BaseException as exc:
            own = exc is op._failure or getattr(exc, "_op", None) is op
            self._end(False, exc, own=own)
            with anyio.CancelScope(shield=True):
                await self._close_source()
            decided = self._decided(op, exc, own)
            if decided is None:
                raise StopAsyncIteration from None
            if decided is not exc:
                raise decided  # noqa: B904 - chained to exc as leaving a block chains it
            raise
        else:
            n = self._count = n + 1
            buf = self._buf
            if buf is not None:
                buf.append(item)
            if n == self._next_report:
                self._next_report = n + self._every  # type: ignore[operator]
                if op._progress_listening():
                    op._emit_progress(n, item)
            return item
        # Seal first: a cancel from another thread after this line no longer counts.  One
        # recorded before it (also during the last fetch), or a deadline that passed in a
        # last fetch that never reached a checkpoint, is never a silent end.
        self._end(True)
        await self._close_source()
        self._raise_if_decided(op)
        raise StopAsyncIteration

    @staticmethod
    def _raise_if_decided(op: Operation) -> None:
        """A detached stream ended cleanly on its side and its outcome is decided: raise
        what leaving a block that raised nothing would (`Operation._clean_end_error`)."""
        error = op._clean_end_error()
        if error is not None:
            raise error

    @staticmethod
    def _decided(op: Operation, exc: BaseException, own: bool) -> BaseException | None:
        """A detached stream that ``exc`` ended is sealed and its source closed: what the
        consumer gets, by the decided outcome, as leaving a block with ``exc`` would give:
        a source's failure (also one that landed from another thread just before the
        seal), chained to ``exc``; None (a quiet end) for the operation's own cancellation
        under ``suppress_cancelation``; else ``exc`` itself."""
        failure = op._failure
        if failure is not None and failure is not exc and op._status is OperationStatus.FAILED:
            if failure.__context__ is None:
                failure.__context__ = exc
            return failure
        if own and op._suppress and failure is None and op._status is OperationStatus.CANCELLED:
            return None
        return exc

    def abandon(self) -> None:
        """The consumer dropped a detached stream before it ended: end the operation and close
        the source, soon, on the loop (errors logged).  Always scheduled, never run inline: it
        is called from a finalizer, which may run anywhere (even inside a locked section)."""
        if self._state or not self._started:
            return
        handle = self._op._handle
        if handle is None:  # pragma: no cover - started streams always have a loop
            return
        handle.run_soon(self._abandon_on_loop)

    def _abandon_on_loop(self) -> None:
        if self._state:
            return
        self._end(False, decide_now=True)  # nobody is left to see what closing raises (it is logged)
        handle = self._op._handle
        if handle is not None:
            handle.spawn(self._close_source)

    # -- lifecycle ------------------------------------------------------------------------

    def _end(
        self, completed: bool, exc: BaseException | None = None, own: bool = False, decide_now: bool = False
    ) -> None:
        """Record the partial result once, whatever ended the stream.  For a detached stream,
        end its operation (``own`` says ``exc`` is the operation's own stop): sealed now, its
        outcome decided by `_close_source` once the source is closed (what closing raises
        counts, as in a block), or at once with ``decide_now``."""
        if self._state:
            return
        self._state = _ENDED
        op = self._op
        op._detach_stream(self, self.snapshot(completed))
        if self._detached:
            if decide_now:
                status = op._end_detached(exc, own)
                if status is not None and op._hooks is not None:
                    self._due = (status, exc)
            elif op._seal_detached():
                self._ending = (exc, own)

    def snapshot(self, completed: bool = False) -> PartialResult[T]:
        """The partial result as of now."""
        count = self._count
        agen = self._agen
        if not self._detached and agen is not None and not self._state and agen.ag_frame is not None:
            # The generator keeps its count in a local between checkpoints.
            count = agen.ag_frame.f_locals.get("n", count)
        buf = self._buf
        return PartialResult(count, completed, list(buf) if buf is not None else None)

    @property
    def ended(self) -> bool:
        return bool(self._state)

    @property
    def closed(self) -> bool:
        return bool(self._state) and self._src_closed

    async def aclose(self) -> None:
        """End the stream (recording the partial result) and close the source."""
        agen = self._agen
        if not self._detached and agen is not None and agen.ag_frame is not None and not agen.ag_running:
            await agen.aclose()  # its finally records the result and closes the source
        self._end(False)
        await self._close_source()

    async def _enter_context(self) -> None:
        """An aiostream ``Stream`` gives a streamer that must be iterated inside its context
        (aiostream warns otherwise): enter it here; `_close_source` exits it."""
        src = self._src
        if isinstance(src, AsyncIteratorContext) and src._state == AsyncIteratorContext._STANDBY:
            await src.__aenter__()
            self._context = True

    async def _close_source(self) -> None:
        """Close the source (once); then, for a detached stream that ended, run its
        operation's status callbacks (also when closing raised)."""
        cleanup: BaseException | None = None
        try:
            if self._src_closed:
                return
            self._src_closed = True
            if self._context:  # exiting an aiostream streamer closes its generator
                await self._src.__aexit__(None, None, None)
                return
            close = getattr(self._src, "aclose", None)
            if close is not None:
                await close()
            elif self._sync:
                sync_close = getattr(self._src, "close", None)
                if sync_close is not None:
                    sync_close()
        except BaseException as err:
            cleanup = err
            raise
        finally:
            ending = self._ending
            if ending is not None:
                self._ending = None
                exc, own = ending
                status = self._op._decide_detached(exc, own, cleanup)
                if self._op._hooks is not None:
                    self._due = (status, cleanup if cleanup is not None else exc)
            due = self._due
            if due is not None:
                self._due = None
                await self._op._run_end_callbacks(*due)


class _DetachedCursor(Generic[T]):
    """The async iterator of a detached stream.

    Nothing of the library keeps it: when a consumer leaves the loop early (``break``,
    ``return``) and drops it, `FusedIterator.abandon` ends the operation (recording the
    partial result and releasing its sources and tokens) and closes the source, at the
    loop's next turn.  ``aclosing(...)`` closes the source before going on.
    """

    __slots__ = ("_it",)

    def __init__(self, it: FusedIterator[T]) -> None:
        self._it = it

    def __aiter__(self) -> _DetachedCursor[T]:
        return self

    def __anext__(self) -> Awaitable[T]:
        return self._it.next_detached(self)

    async def aclose(self) -> None:
        await self._it.aclose()

    def __del__(self) -> None:
        self._it.abandon()
