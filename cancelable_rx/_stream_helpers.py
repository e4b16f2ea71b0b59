"""The reference's stream helpers: `CancelableAsyncIterator` and `chunked_cancelable_stream`.

Both work on an operation that is running (inside ``async with op:``).  ``op.stream(...)``
(a `CancelableStream`) is the richer tool; these keep code written for
``hother-cancelable`` working.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Generic, TypeVar

from ._cancelable import Cancelable
from ._checks import check_instance, check_positive_int
from ._models import PartialResult

__all__ = ("MAX_PARTIAL_BUFFER", "CancelableAsyncIterator", "chunked_cancelable_stream")

T = TypeVar("T")
MAX_PARTIAL_BUFFER = 1000
"""How many of the last items a buffered iterator keeps."""


class CancelableAsyncIterator(AsyncIterator[T], Generic[T]):
    """An async iterator over ``iterator`` that stops when ``cancelable`` is cancelled.

    Each step first checks the operation's token (``token.check_async()``: a pending
    cancellation of the current scope takes effect, else the typed error is raised), counts
    the item, keeps the last `MAX_PARTIAL_BUFFER` items when ``buffer_partial``, and every
    ``report_interval`` items reports progress (``{"count", "latest_item"}`` as metadata).
    When it ends (exhausted, cancelled, or failed) with ``buffer_partial``, the operation's
    partial result records the count, the buffer and whether it completed.

    Cancellation: never holds a scope across its own ``__anext__``; the caller's cancellation
    propagates untouched.  Thread-safety: loop thread only.
    """

    def __init__(
        self,
        iterator: AsyncIterator[T],
        cancelable: Cancelable,
        report_interval: int | None = None,
        buffer_partial: bool = False,
    ) -> None:
        check_instance(cancelable, Cancelable, "cancelable", "a Cancelable", "iterate inside `async with op:`")
        if report_interval is not None:
            check_positive_int(report_interval, "report_interval", "or None for no progress reports")
        self._iterator = iterator
        self._cancelable = cancelable
        self._report_interval = report_interval
        self._count = 0
        self._buffer: list[T] | None = [] if buffer_partial else None
        self._completed = False

    def __aiter__(self) -> CancelableAsyncIterator[T]:
        return self

    async def __anext__(self) -> T:
        op = self._cancelable
        await op.token.check_async()
        try:
            item = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._completed = True
            self._record(True)
            raise
        except BaseException:
            self._record(False)
            raise
        self._count += 1
        buffer = self._buffer
        if buffer is not None:
            buffer.append(item)
            if len(buffer) > MAX_PARTIAL_BUFFER:
                del buffer[: len(buffer) - MAX_PARTIAL_BUFFER]
        interval = self._report_interval
        if interval and self._count % interval == 0:
            await op.report_progress(f"Processed {self._count} items", {"count": self._count, "latest_item": item})
        return item

    def _record(self, completed: bool) -> None:
        if self._buffer is not None:
            partial: PartialResult[Any] = PartialResult(self._count, completed, list(self._buffer))
            self._cancelable._detach_stream(self, partial)

    async def aclose(self) -> None:
        """Close the wrapped iterator (if it can be closed)."""
        close = getattr(self._iterator, "aclose", None)
        if close is not None:
            await close()


async def chunked_cancelable_stream(
    stream: AsyncIterator[T], chunk_size: int, cancelable: Cancelable
) -> AsyncIterator[list[T]]:
    """Yield ``stream``'s items in lists of ``chunk_size`` (the last may be shorter),
    through ``cancelable.stream(stream)``; a progress report follows each chunk.

    Cancellation: as ``op.stream``: no scope is held across ``yield``; a cancelled operation
    ends the stream at its next item.
    """
    check_positive_int(chunk_size, "chunk_size", "e.g. chunk_size=100")
    chunk: list[T] = []
    async for item in cancelable.stream(stream):
        chunk.append(item)
        if len(chunk) >= chunk_size:
            yield chunk
            chunk = []
            await cancelable.report_progress(f"Processed chunk of {chunk_size} items")
    if chunk:
        yield chunk
        await cancelable.report_progress(f"Processed final chunk of {len(chunk)} items")
