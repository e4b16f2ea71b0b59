"""Piping on both backends: the ``Stream`` class of `cancelable_rx.ops` and the guard that
refuses, on trio, the aiostream operators that call asyncio directly.

Fourteen stock aiostream operators fail on trio with errors that name neither the operator
nor a way out ("There is no current event loop in thread 'MainThread'", "trio.run received
unrecognized yield message None").  Every stream of this package (`CancelableStream`, the
results of `cancelable_rx.ops`, and whatever is piped from them) checks what is piped into
it: such an operator raises, on trio, a ``RuntimeError`` naming it and the operator of
`cancelable_rx.ops` to use instead - at the ``|`` when a trio loop is running there, else
when the pipeline is iterated.  On asyncio nothing changes.

The operator is identified from aiostream's ``pipe`` function (the operator and its
arguments are in its closure): ``map`` with a synchronous function, a sequential
``concat(task_limit=1)`` and the like work on trio and are let through.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from aiostream.core import BaseStream, Stream, Streamer, streamcontext

from .._loop import get_running_loop

__all__ = ("GuardedStream", "PipeStream", "on_trio", "pipe_guarded", "in_ops", "publish", "trio_error", "unsafe_on_trio")

T = TypeVar("T")
X = TypeVar("X")

_ALWAYS = frozenset({"merge", "ziplatest", "switch", "switchmap", "timeout", "spaceout", "delay", "cycle"})


def on_trio() -> bool | None:
    """True when trio runs in this thread, False for asyncio, None when no loop runs."""
    if get_running_loop() is not None:
        return False
    trio = sys.modules.get("trio")  # never import trio here
    if trio is None:
        return None
    try:
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None
    return True


def _cell(cells: dict[str, Any], name: str, default: Any) -> Any:
    cell = cells.get(name)
    try:
        return default if cell is None else cell.cell_contents
    except ValueError:  # pragma: no cover - an empty cell
        return default


def unsafe_on_trio(func: object) -> str | None:
    """The name of the aiostream operator ``func`` pipes in (``stream | func``) when that
    operator, with these arguments, cannot run on trio; else None."""
    code = getattr(func, "__code__", None)
    closure = getattr(func, "__closure__", None)
    if code is None or not closure:
        return None
    cells = dict(zip(code.co_freevars, closure, strict=False))
    op = _cell(cells, "operator_instance", None)
    if op is None or not type(op).__module__.startswith("aiostream."):
        return None
    name = type(op).__name__
    args: tuple[Any, ...] = _cell(cells, "args", ())
    kwargs: dict[str, Any] = _cell(cells, "kwargs", {})
    concurrent = kwargs.get("task_limit") != 1
    if name in _ALWAYS:
        return name
    if name == "zip":
        return name if args else None
    if name == "smap":
        return name if args[1:] else None
    if name in ("map", "starmap"):
        if name == "starmap" and len(args) > 2:
            concurrent = args[2] != 1
        is_async = bool(args) and inspect.iscoroutinefunction(args[0])
        more = name == "map" and bool(args[1:])
        return name if more or (is_async and concurrent) else None
    if name in ("amap", "flatmap", "concatmap"):
        return name if args[1:] or concurrent else None
    if name in ("flatten", "concat"):
        limit = args[0] if args else kwargs.get("task_limit")
        return name if limit != 1 else None
    return None


def trio_error(name: str) -> RuntimeError:
    return RuntimeError(
        f"aiostream's `{name}` cannot run on trio (it calls asyncio directly); use "
        f"cancelable_rx.ops.{name}, which has the same signature and runs on asyncio and trio: "
        f"`xs | ops.{name}.pipe(...)` with `from cancelable_rx import ops`"
    )


def pipe_guarded(stream: BaseStream[Any], func: Callable[[Any], X]) -> X:
    """``stream | func``, refusing on trio an aiostream operator that cannot run there."""
    unsafe = unsafe_on_trio(func)
    if unsafe is not None and on_trio():
        raise trio_error(unsafe)
    result = func(stream)
    if unsafe is None and (isinstance(result, PipeStream) or type(result) is not Stream):
        return result
    guarded: Any = GuardedStream(result, unsafe)  # type: ignore[arg-type]
    return guarded


async def _entered(streamer: Streamer[T]) -> AsyncIterator[T]:
    async with streamer:
        async for item in streamer:
            yield item


class GuardedStream(Stream[T]):
    """What piping an aiostream operator into one of our streams returns: that operator's
    stream, refused on trio when it cannot run there (see the module docstring); what is
    piped into it is checked in turn.  Like `PipeStream`, ``async for`` works on it
    directly (and ``op.stream(...)`` of it): the aiostream streamer is entered for you."""

    def __init__(self, inner: Stream[T], unsafe: str | None) -> None:
        self._inner = inner
        self._unsafe = unsafe
        BaseStream.__init__(self, lambda: inner)

    def __aiter__(self) -> AsyncIterator[T]:  # type: ignore[override]  # a bare iterator, on purpose
        if self._unsafe is not None and on_trio():
            raise trio_error(self._unsafe)
        return _entered(self._inner.__aiter__())

    def stream(self) -> Streamer[T]:
        """``async with xs.stream() as it: async for x in it`` (aiostream style)."""
        return streamcontext(self.__aiter__())

    def __or__(self, func: Callable[[Any], X]) -> X:
        return pipe_guarded(self, func)


class PipeStream(Stream[T]):
    """The stream an operator of `cancelable_rx.ops` returns: an aiostream ``Stream``.

    Like every aiostream stream it pipes (``xs | ops.map.pipe(f, task_limit=4)``), can be
    iterated many times, sliced and awaited, and ``async with xs.stream() as it`` closes
    it on leaving.  Unlike a stock one, ``async for x in xs`` works directly (no "iterated
    outside of its context" warning; leaving the loop early closes it when it is dropped,
    ``aclosing`` closes it at once), and so does ``op.stream(xs)``.  An aiostream
    operator that cannot run on trio is refused there with an error naming ours.
    """

    def __init__(self, factory: Callable[[], AsyncIterator[T]]) -> None:
        # Not aiostream's generator of iterators, which keeps the first one alive: an
        # iterator left by a `break` must be collectable (its finalizer closes it).
        self._first: AsyncIterator[T] | None = factory()
        self._factory = factory

    def __aiter__(self) -> AsyncIterator[T]:  # type: ignore[override]  # the bare iterator, on purpose
        first = self._first
        if first is not None:
            self._first = None
            return first
        return self._factory()

    def stream(self) -> Streamer[T]:
        """``async with xs.stream() as it: async for x in it`` (aiostream style)."""
        return streamcontext(self.__aiter__())

    def __or__(self, func: Callable[[Any], X]) -> X:
        return pipe_guarded(self, func)


OpT = TypeVar("OpT")


def publish(operator: OpT) -> OpT:
    """Make an operator built with aiostream's ``operator``, ``pipable_operator`` or
    ``sources_operator`` return a `PipeStream` (its ``.pipe`` and ``.raw`` are aiostream's).

    Its arguments are checked at the call, by the operator itself (with the package's
    messages): the operator's function runs at once (aiostream builds the first iterator
    when the stream is made), so an operator that checks its arguments before returning its
    generator fails where the mistake is.
    """
    cls: Any = type(operator)
    original = cls.__call__
    original_func = operator.original  # type: ignore[attr-defined]

    def __call__(self: object, *args: Any, **kwargs: Any) -> PipeStream[Any]:
        return PipeStream(functools.partial(original_func, *args, **kwargs))

    for attr in ("__signature__", "__doc__", "__qualname__", "__name__"):
        if hasattr(original, attr):
            setattr(__call__, attr, getattr(original, attr))
    __call__.__module__ = cls.__module__
    cls.__call__ = __call__
    return operator


def in_ops(func: OpT) -> OpT:
    """Report ``cancelable_rx.ops`` as the module of an operator's function (before
    aiostream's decorator reads it for the operator's name and repr)."""
    func.__module__ = "cancelable_rx.ops"
    return func
