"""The fused stream operator: one class-based async iterator doing all the per-item work.

Per item: a cancel-flag test, a ring-buffer append (when buffering), a progress test and
a checkpoint every ``CHECKPOINT_EVERY`` items (so a CPU-bound source still lets the loop
deliver deadlines and cancellations).  It never holds a cancel scope or a task group
across ``yield``: in an operation's block the operation's own scope surrounds the
consumer; in detached mode (``cancelable_stream``) a scope is opened around each
``await source.__anext__()`` only.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import anyio
import anyio.lowlevel

from .._exceptions import error_for
from .._models import PartialResult

if TYPE_CHECKING:
    from .._cancelable import Cancelable

__all__ = ("CHECKPOINT_EVERY", "DEFAULT_BUFFER_SIZE", "FusedIterator", "check_report_interval")

T = TypeVar("T")
CHECKPOINT_EVERY = 512
DEFAULT_BUFFER_SIZE = 1000
_OPEN, _ENDED = 0, 1
_checkpoint = anyio.lowlevel.checkpoint


def check_report_interval(report_interval: object) -> int | None:
    if report_interval is None:
        return None
    if isinstance(report_interval, bool) or not isinstance(report_interval, int):
        raise TypeError(f"`report_interval` must be an int number of items or None, got {report_interval!r}")
    if report_interval <= 0:
        raise ValueError(f"`report_interval` must be an int > 0 (report every N items), got {report_interval!r}")
    return report_interval


async def _sync_items(iterator: Any) -> Any:
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
        raise TypeError(
            f"`async_iter` must be an async iterable (or an iterable), got {source!r} ({type(source).__name__})"
        )
    return iter(source), True


class FusedIterator(Generic[T]):
    """The iterator behind :class:`CancelableStream` (see the module docstring)."""

    __slots__ = (
        "_op", "_src", "_next", "_sync", "_count", "_buf", "_every", "_next_report",
        "_next_cp", "_state", "_detached", "_started", "_src_closed", "_agen", "stop",
    )  # fmt: skip

    def __init__(
        self,
        op: Cancelable,
        source: object,
        report_interval: int | None,
        buffer_partial: bool,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        detached: bool = False,
    ) -> None:
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int) or buffer_size <= 0:
            raise ValueError(f"`buffer_size` must be an int > 0, got {buffer_size!r}")
        self._op = op
        self._src, self._sync = _resolve_source(source)
        self._next = self._src.__next__ if self._sync else self._src.__anext__
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
        self.stop = False  # set by the operation when it records a cancellation

    # -- in-operation fast path: one async generator frame per item --------------------

    def open_generator(self) -> Any:
        """The async generator used inside an operation's block (about half the
        per-item cost of a class-based ``__anext__``).  It is closed, at the latest,
        when the operation exits."""
        agen = self._agen = self._run()
        return agen

    async def _run(self) -> Any:
        op = self._op
        self._start()
        if op._fired is not None:
            await self._stop_cancelled()
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
            async for item in src:
                # The per-item cancel flag (a slot: the cheapest read): the item fetched
                # when a cancellation is noticed is not delivered.
                if self.stop:
                    self._count = n
                    await self._stop_cancelled()
                n += 1
                if append is not None:
                    append(item)
                if n == mark:
                    self._count = n
                    if n == next_report:
                        next_report += every  # type: ignore[operator]
                        # Inlined op._has_progress_listeners(): nothing is built unless
                        # someone listens.
                        progress = op._progress
                        if (
                            op._progress_callbacks
                            or op._registry is not None
                            or (progress is not None and progress._hub._listeners)
                        ):
                            op._emit_stream_progress(n, item)
                    if n == next_cp:
                        next_cp += CHECKPOINT_EVERY
                        yield item
                        await _checkpoint()  # lets a CPU-bound source be cancelled
                        mark = min(next_cp, next_report) if every is not None else next_cp
                        continue
                    mark = min(next_cp, next_report) if every is not None else next_cp
                yield item
            completed = True
        except BaseException as exc:
            self._count = n
            if not isinstance(exc, GeneratorExit):
                self._fail(exc)
            raise
        finally:
            self._count = n
            self._end(completed)
            await self._close_source()

    # -- protocol ----------------------------------------------------------------------

    def __aiter__(self) -> FusedIterator[T]:
        return self

    async def __aenter__(self) -> FusedIterator[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def __anext__(self) -> T:
        op = self._op
        if not self._started:
            self._start()
        if op._fired is not None:
            await self._stop_cancelled()
        if self._state:
            raise StopAsyncIteration
        try:
            if self._count == self._next_cp:
                self._next_cp += CHECKPOINT_EVERY
                await _checkpoint()
            if self._sync:
                try:
                    item = self._next()
                except StopIteration:
                    raise StopAsyncIteration from None
            else:
                # The class-based path serves detached streams only (cancelable_stream);
                # inside an operation the stream iterates open_generator().
                item = await self._fetch_detached()
        except StopAsyncIteration:
            self._end(True)
            raise
        except BaseException as exc:
            self._fail(exc)
            raise
        n = self._count = self._count + 1
        buf = self._buf
        if buf is not None:
            buf.append(item)
        if n == self._next_report:
            self._next_report = n + self._every  # type: ignore[operator]
            if op._has_progress_listeners():
                op._emit_stream_progress(n, item)
        return item

    # -- lifecycle ---------------------------------------------------------------------

    def _start(self) -> None:
        self._started = True
        op = self._op
        if self._detached:
            op._begin_detached()
        elif op._state != 1:  # not running
            raise RuntimeError(
                "iterate op.stream(...) inside `async with op:` (the operation is "
                f"{op.status.value}); for a standalone cancelable iterator use cancelable_stream()"
            )
        previous = op._stream_it
        if previous is not None and previous is not self:
            previous._end(False)
        op._stream_it = self
        if op._fired is not None:
            self.stop = True

    async def _stop_cancelled(self) -> None:
        op = self._op
        self._end(False)
        fired = op._fired
        assert fired is not None
        if not self._detached:
            await _checkpoint()  # inside the block: the operation's scope delivers it
        raise error_for(fired, op)

    async def _fetch_detached(self) -> T:
        op = self._op
        handle = op._handle
        assert handle is not None
        scope = op._scope = handle.scope_cls(deadline=op._deadline)
        try:
            with scope:
                return await self._next()
        finally:
            op._scope = None
            if scope.cancelled_caught:
                if op._fired is None:
                    op._record(op._timeout_event())
                fired = op._fired
                assert fired is not None
                self._end(False)
                raise error_for(fired, op)

    def _fail(self, exc: BaseException) -> None:
        op = self._op
        if self._detached and op._state == 1 and op._fired is None:
            op._record_exception(exc)  # the same classification as leaving an operation
        self._end(False)

    def _end(self, completed: bool) -> None:
        """Record the partial result once, whatever ended the stream."""
        if self._state:
            return
        self._state = _ENDED
        op = self._op
        op._set_partial(self.snapshot(completed))
        if op._stream_it is self:
            op._stream_it = None
        if self._detached and op._state == 1:
            op._end_detached(completed)

    def snapshot(self, completed: bool = False) -> PartialResult:
        """The partial result as of now."""
        count = self._count
        agen = self._agen
        if agen is not None and not self._state and agen.ag_frame is not None:
            # The generator keeps its count in a local between checkpoints.
            count = agen.ag_frame.f_locals.get("n", count)
        buf = self._buf
        return PartialResult(count, completed, list(buf) if buf is not None else None)

    @property
    def closed(self) -> bool:
        return bool(self._state) and self._src_closed

    async def aclose(self) -> None:
        """End the stream (recording the partial result) and close the source."""
        agen = self._agen
        if agen is not None and agen.ag_frame is not None and not agen.ag_running:
            await agen.aclose()  # its finally records the result and closes the source
        self._end(False)
        await self._close_source()

    async def _close_source(self) -> None:
        if self._src_closed:
            return
        self._src_closed = True
        close = getattr(self._src, "aclose", None)
        if close is not None:
            await close()
        elif self._sync:
            sync_close = getattr(self._src, "close", None)
            if sync_close is not None:
                sync_close()

