"""Small reactive primitives with a direct subscribe path, and observable <-> async bridges.

Stock reactivex operators and ``Observable.subscribe()`` cost several microseconds; the
library's own enter/exit path uses `Hub` listeners instead (a locked dict of
callables).  Every class here is still a real ``reactivex.Observable``: users can
``subscribe`` and ``pipe`` them with stock operators.

Thread-safety: ``fire``/``emit`` may be called from any thread; listeners are called in
the firing thread, outside the lock, each isolated (an exception is logged, never
propagated to the firer or to other listeners).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import AsyncIterable, Callable
from typing import Any, Generic, TypeVar

import anyio
import reactivex
from reactivex import abc
from reactivex.disposable import Disposable

from ._checks import check_instance, check_positive_int
from ._loop import capture

__all__ = ("FireOnce", "Hub", "HubObservable", "ObservableIterator", "observe", "to_observable")

logger = logging.getLogger("cancelable_rx")
T = TypeVar("T")
Listener = Callable[[Any], object]


class Hub:
    """A thread-safe set of listener callables.

    ``add``/``discard`` are O(1) and idempotent; ``emit`` snapshots the listeners under
    the lock and calls them outside it.
    """

    __slots__ = ("_lock", "_listeners")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[Listener, None] = {}

    def add(self, fn: Listener) -> None:
        with self._lock:
            self._listeners[fn] = None

    def discard(self, fn: Listener) -> None:
        with self._lock:
            self._listeners.pop(fn, None)

    def __len__(self) -> int:
        return len(self._listeners)

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def emit(self, value: object) -> None:
        if not self._listeners:
            return
        with self._lock:
            listeners = tuple(self._listeners)
        call_all(listeners, value)


def call_all(listeners: tuple[Listener, ...], value: object) -> None:
    """Call each listener with ``value``; log and isolate failures."""
    for fn in listeners:
        try:
            fn(value)
        except Exception:
            logger.exception("cancelable_rx: listener %r failed", fn)


class HubObservable(reactivex.Observable[T], Generic[T]):
    """A hot, multicast observable backed by a `Hub` (a minimal Subject).

    ``emit`` with no subscriber costs one attribute write, one read and one truth test.
    ``latest`` holds the last value emitted (a UI can sample it at its own pace), and
    `aiter` gives a bounded async-iterator view for ``async for`` consumers.  `complete`
    ends it: subscribers get ``on_completed``, later ``emit`` calls are ignored, and a
    subscriber that comes later is completed at once.  It never errors.
    """

    def aiter(self, maxsize: int = 128) -> ObservableIterator[T]:
        """An async iterator over future values, buffering at most ``maxsize`` (the
        oldest are dropped when a slow consumer falls behind).  See `observe`."""
        return ObservableIterator(self, maxsize)

    def __init__(self) -> None:
        super().__init__()
        self._hub = Hub()
        self._listeners = self._hub._listeners  # (the hub's dict, never replaced: one read less per emit)
        self._completions: dict[Listener, Callable[[], object]] = {}
        self.completed = False
        self.latest: T | None = None

    def emit(self, value: T) -> None:
        """Send ``value`` to every subscriber; it also becomes `latest`.  Ignored once the
        observable has completed."""
        if self.completed:
            return
        self.latest = value
        if self._listeners:
            self._hub.emit(value)

    def complete(self) -> None:
        """End the observable: every subscriber gets ``on_completed`` (isolated: a failure is
        logged), and is unsubscribed.  Idempotent."""
        with self._hub._lock:
            if self.completed:
                return
            self.completed = True
            done = tuple(self._completions.values())
            self._completions.clear()
            self._hub._listeners.clear()
        for on_completed in done:
            try:
                on_completed()
            except Exception:
                logger.exception("cancelable_rx: on_completed of %r failed", on_completed)

    @property
    def has_subscribers(self) -> bool:
        return bool(self._listeners)

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        fn = observer.on_next
        with self._hub._lock:
            if not self.completed:
                self._hub._listeners[fn] = None
                self._completions[fn] = observer.on_completed
                return Disposable(lambda: self._unsubscribe(fn))
        observer.on_completed()
        return Disposable()

    def _unsubscribe(self, fn: Listener) -> None:
        with self._hub._lock:
            self._hub._listeners.pop(fn, None)
            self._completions.pop(fn, None)


_FIRE_LOCK = threading.Lock()
"""The lock of every `FireOnce` (held for a few dict operations, never while calling out):
one shared lock instead of one allocated per source."""


class FireOnce(reactivex.Observable[T], Generic[T]):
    """A hot observable that emits exactly one value and completes.

    ``fire(value)`` is idempotent (the first call wins, later calls return False) and
    thread-safe.  Subscribing after it fired replays the value and completes at once,
    so no subscriber can miss it.
    """

    _fire_lock = _FIRE_LOCK

    def __init__(self) -> None:
        # reactivex's Observable.__init__ sets ``_subscribe`` and makes an RLock (``lock``,
        # which some of its operators take on their source); the lock is made on first use
        # (see `lock`), as most sources are never subscribed to through reactivex
        self._subscribe = None
        self._value: T | None = None
        self._fired = False
        self._listeners: dict[Listener, None] = {}

    @property
    def lock(self) -> threading.RLock:  # type: ignore[override]
        """reactivex's per-observable lock, made on first use."""
        lock: threading.RLock | None = self.__dict__.get("_rx_lock")
        if lock is None:
            with _FIRE_LOCK:
                lock = self.__dict__.setdefault("_rx_lock", threading.RLock())
        return lock

    @property
    def triggered(self) -> bool:
        """True once the source has fired."""
        return self._fired

    def _listen(self, fn: Listener) -> None:
        """Call ``fn(value)`` when this fires (at once if it already has)."""
        with self._fire_lock:
            if not self._fired:
                self._listeners[fn] = None
                return
        fn(self._value)

    def _unlisten(self, fn: Listener) -> None:
        with self._fire_lock:
            self._listeners.pop(fn, None)

    def _fire_value(self, value: T) -> bool:
        with self._fire_lock:
            if self._fired:
                return False
            self._fired = True
            self._value = value
            listeners = tuple(self._listeners)
            self._listeners.clear()
        call_all(listeners, value)
        return True

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        def deliver(value: Any) -> None:
            observer.on_next(value)
            observer.on_completed()

        self._listen(deliver)
        return Disposable(lambda: self._unlisten(deliver))


class ObservableIterator(Generic[T]):
    """An async-iterator view of an observable, with a bounded buffer.

    The subscription is made at construction (no value emitted after that is missed)
    and disposed when iteration ends, on ``aclose()`` or when leaving ``async with``.
    When the consumer falls behind, the oldest buffered values are dropped (counted
    in `dropped`), so a slow consumer never blocks the producer or grows memory.
    Errors of the observable are raised to the consumer; completion ends iteration.
    Thread-safety: the observable may emit on any thread.
    """

    def __init__(self, observable: reactivex.Observable[T], maxsize: int = 128) -> None:
        check_instance(observable, reactivex.Observable, "observable", "a reactivex Observable")
        check_positive_int(maxsize, "maxsize", "e.g. maxsize=128")
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
        if waiter is not None:
            self._handle.call(waiter.set)

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
        check_instance(source, AsyncIterable, "source", "an async iterable (a stream, an async generator...)")

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
            handle.call(cancel)

        handle.spawn(pump)
        return Disposable(dispose)

    return reactivex.create(subscribe)
