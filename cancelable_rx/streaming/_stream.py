"""CancelableStream: the aiostream ``Stream`` returned by ``Cancelable.stream``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from aiostream.core import BaseStream, Stream, streamcontext

from ._iterator import FusedIterator

if TYPE_CHECKING:
    from .._cancelable import Cancelable
    from .._models import PartialResult

__all__ = ("CancelableStream",)

T = TypeVar("T")


class CancelableStream(Stream[T]):
    """An aiostream ``Stream`` over one source, bound to one operation.

    ``async for x in stream`` works directly (no aiostream context warning); it can be
    piped (``stream | pipe.map(f) | pipe.take(n)``) and used with ``aclosing``.

    Cancellation: when the operation is cancelled the stream stops before the next
    item and the typed :class:`CancelationError` reaches the consumer (it never ends
    silently as if complete).  Whatever ends it, the operation records a
    :class:`PartialResult` and the source is closed (at the latest when the operation
    exits).

    A stream is single-use: a second iteration raises RuntimeError.
    """

    def __init__(self, iterator: FusedIterator[T]) -> None:
        self._iterator = iterator
        self._used = False
        BaseStream.__init__(self, lambda: self)

    def __aiter__(self) -> Any:
        if self._used:
            raise RuntimeError(
                "a cancelable stream can be iterated once; call op.stream(...) again with a new source"
            )
        self._used = True
        it = self._iterator
        return it if it._detached else it.open_generator()

    def stream(self) -> Any:
        """``async with s.stream() as it: async for x in it`` (aiostream style)."""
        return streamcontext(self.__aiter__())

    async def aclose(self) -> None:
        """End the stream now (records the partial result, closes the source)."""
        self._used = True
        await self._iterator.aclose()

    @property
    def operation(self) -> Cancelable:
        return self._iterator._op

    @property
    def partial_result(self) -> PartialResult:
        """What the stream has produced so far (live)."""
        return self._iterator.snapshot(self._iterator._state == 1 and self._op_completed())

    def _op_completed(self) -> bool:
        partial = self._iterator._op._partial
        return bool(partial is not None and partial.completed)
