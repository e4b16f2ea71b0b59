"""Small reactive primitives with a direct subscribe path.

Stock reactivex operators and ``Observable.subscribe()`` cost several microseconds; the
library's own enter/exit path uses :class:`Hub` listeners instead (a locked dict of
callables).  Every class here is still a real ``reactivex.Observable``: users can
``subscribe`` and ``pipe`` them with stock operators.

Thread-safety: ``fire``/``emit`` may be called from any thread; listeners are called in
the firing thread, outside the lock, each isolated (an exception is logged, never
propagated to the firer or to other listeners).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import reactivex
from reactivex import abc
from reactivex.disposable import Disposable

__all__ = ("FireOnce", "Hub", "HubObservable")

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
    """A hot, multicast observable backed by a :class:`Hub` (a minimal Subject).

    ``emit`` with no subscriber costs one attribute write, one read and one truth test.
    ``latest`` holds the last value emitted (a UI can sample it at its own pace), and
    :meth:`aiter` gives a bounded async-iterator view for ``async for`` consumers.
    """

    def aiter(self, maxsize: int = 128) -> Any:
        """An async iterator over future values, buffering at most ``maxsize`` (the
        oldest are dropped when a slow consumer falls behind).  See
        :func:`cancelable_rx.streaming.observe`."""
        from .streaming.bridges import observe

        return observe(self, maxsize=maxsize)

    def __init__(self) -> None:
        super().__init__()
        self._hub = Hub()
        self.latest: T | None = None

    def emit(self, value: T) -> None:
        """Send ``value`` to every subscriber; it also becomes :attr:`latest`."""
        self.latest = value
        if self._hub._listeners:
            self._hub.emit(value)

    @property
    def has_subscribers(self) -> bool:
        return bool(self._hub._listeners)

    def _subscribe_core(
        self, observer: abc.ObserverBase[T], scheduler: abc.SchedulerBase | None = None
    ) -> abc.DisposableBase:
        fn = observer.on_next
        self._hub.add(fn)
        return Disposable(lambda: self._hub.discard(fn))


class FireOnce(reactivex.Observable[T], Generic[T]):
    """A hot observable that emits exactly one value and completes.

    ``fire(value)`` is idempotent (the first call wins, later calls return False) and
    thread-safe.  Subscribing after it fired replays the value and completes at once,
    so no subscriber can miss it.
    """

    def __init__(self) -> None:
        super().__init__()
        self._fire_lock = threading.Lock()
        self._value: T | None = None
        self._fired = False
        self._listeners: dict[Listener, None] = {}

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
