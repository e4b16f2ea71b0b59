"""CancelableStream: the aiostream ``Stream`` returned by ``Cancelable.stream``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from aiostream.core import BaseStream, Stream, streamcontext

from .._models import PartialResult
from ._iterator import FusedIterator
from ._piping import pipe_guarded

if TYPE_CHECKING:
    from .._operation import Operation

__all__ = ("CancelableStream",)

T = TypeVar("T")
X = TypeVar("X")


class CancelableStream(Stream[T]):
    """An aiostream ``Stream`` over one source, bound to one operation.

    ``async for x in stream`` works directly (no aiostream context warning); it can be
    piped (``stream | pipe.map(f) | pipe.take(n)``) and used with ``aclosing``.

    Cancellation: when the operation is cancelled the stream stops before the next item
    and the typed `CancelationError` reaches the consumer (it never ends silently as if
    complete).  Whatever ends it, the operation records a `PartialResult` and the source
    is closed (at the latest when the operation exits; for `cancelable_stream`, as soon as
    the consumer leaves the loop).

    A stream is single-use: a second iteration raises RuntimeError.
    """

    def __init__(self, iterator: FusedIterator[T]) -> None:
        self._iterator = iterator
        self._used = False
        BaseStream.__init__(self, lambda: self)

    def __aiter__(self) -> Any:
        if self._used:
            raise RuntimeError("a cancelable stream can be iterated once; call op.stream(...) again with a new source")
        self._used = True
        it = self._iterator
        return it.open_detached() if it._detached else it.open_generator()

    def stream(self) -> Any:
        """``async with s.stream() as it: async for x in it`` (aiostream style)."""
        return streamcontext(self.__aiter__())

    def __or__(self, func: Callable[[Any], X]) -> X:
        """Pipe an operator: ``stream | pipe.filter(f)``.  On trio, an aiostream operator
        that calls asyncio directly is refused with an error naming the operator of
        `cancelable_rx.ops` to use instead (see ``_piping``)."""
        return pipe_guarded(self, func)

    async def aclose(self) -> None:
        """End the stream now (records the partial result, closes the source)."""
        self._used = True
        await self._iterator.aclose()

    @property
    def operation(self) -> Operation:
        """The operation the stream belongs to."""
        return self._iterator._op

    @property
    def partial_result(self) -> PartialResult[T]:
        """What the stream has produced so far (live)."""
        it = self._iterator
        partial = it._op._partial
        return it.snapshot(it.ended and partial is not None and partial.completed)
