"""Bridges between reactivex observables and async iteration, both ways."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import AsyncIterable
from typing import Any, Generic, TypeVar

import anyio
import reactivex
from reactivex import abc
from reactivex.disposable import Disposable

from .._loop import capture

__all__ = ("ObservableIterator", "observe", "to_observable")

T = TypeVar("T")


class ObservableIterator(Generic[T]):
    """An async-iterator view of an observable, with a bounded buffer.

    The subscription is made at construction (no value emitted after that is missed)
    and disposed when iteration ends, on ``aclose()`` or when leaving ``async with``.
    When the consumer falls behind, the oldest buffered values are dropped (counted
    in :attr:`dropped`), so a slow consumer never blocks the producer or grows memory.
    Errors of the observable are raised to the consumer; completion ends iteration.
    Thread-safety: the observable may emit on any thread.
    """

    def __init__(self, observable: reactivex.Observable[T], maxsize: int = 128) -> None:
        if not isinstance(observable, reactivex.Observable):
            raise TypeError(f"`observable` must be a reactivex Observable, got {observable!r}")
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize <= 0:
            raise ValueError(f"`maxsize` must be an int > 0, got {maxsize!r}")
        self._handle = capture()
        self._lock = threading.Lock()
        self._buffer: deque[T] = deque(maxlen=maxsize)
        self._error: BaseException | None = None
        self._done = False
        self._waiter: anyio.Event | None = None
        self.dropped = 0
        self._subscription: abc.DisposableBase | None = observable.subscribe(
            on_next=self._on_next, on_error=self._on_error, on_completed=self._on_completed
        )

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is None:
            return
        if self._handle.in_loop_thread():
            waiter.set()
        else:
            self._handle.run_soon(waiter.set)

    def _on_next(self, value: T) -> None:
        with self._lock:
            if len(self._buffer) == self._buffer.maxlen:
                self.dropped += 1
            self._buffer.append(value)
        self._wake()

    def _on_error(self, error: Exception) -> None:
        self._error = error
        self._wake()

    def _on_completed(self) -> None:
        self._done = True
        self._wake()

    def __aiter__(self) -> ObservableIterator[T]:
        return self

    async def __anext__(self) -> T:
        while True:
            with self._lock:
                if self._buffer:
                    return self._buffer.popleft()
            if self._error is not None:
                self._dispose()
                raise self._error
            if self._done or self._subscription is None:
                self._dispose()
                raise StopAsyncIteration
            self._waiter = anyio.Event()
            with self._lock:
                ready = bool(self._buffer)
            if not ready and self._error is None and not self._done:
                await self._waiter.wait()
            self._waiter = None

    def _dispose(self) -> None:
        sub, self._subscription = self._subscription, None
        if sub is not None:
            sub.dispose()

    async def aclose(self) -> None:
        """Unsubscribe and end iteration (values still buffered are discarded)."""
        self._dispose()
        with self._lock:
            self._buffer.clear()
        self._done = True

    async def __aenter__(self) -> ObservableIterator[T]:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._dispose()


def observe(observable: reactivex.Observable[T], maxsize: int = 128) -> ObservableIterator[T]:
    """``async for value in observe(obs, maxsize=...)`` (call from async code)."""
    return ObservableIterator(observable, maxsize)


def to_observable(source: AsyncIterable[T]) -> reactivex.Observable[T]:
    """An observable view of an async iterable (a stream, a generator...).

    Each subscription (made on the event loop thread) iterates the source in a
    background task of that loop and emits its items, then completes (or errors).
    Disposing the subscription cancels the iteration, from any thread.
    """
    if not hasattr(source, "__aiter__"):
        raise TypeError(f"`source` must be an async iterable, got {source!r}")

    def subscribe(observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None) -> abc.DisposableBase:
        try:
            handle = capture()
        except RuntimeError:
            raise RuntimeError("to_observable(...).subscribe() must be called from the event loop thread") from None
        state: dict[str, Any] = {"scope": None, "disposed": False}

        async def pump() -> None:
            with anyio.CancelScope() as scope:
                state["scope"] = scope
                if state["disposed"]:
                    return
                try:
                    async for item in source:
                        observer.on_next(item)
                except Exception as err:  # delivered to the observer
                    observer.on_error(err)
                    return
                observer.on_completed()

        def cancel() -> None:
            scope = state["scope"]
            if scope is not None:
                scope.cancel()

        def dispose() -> None:
            state["disposed"] = True
            if handle.in_loop_thread():
                cancel()
            else:
                handle.run_soon(cancel)

        handle.spawn(pump)
        return Disposable(dispose)

    return reactivex.create(subscribe)
