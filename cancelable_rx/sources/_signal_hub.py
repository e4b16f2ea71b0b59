"""One process-wide handler per signal number, reference-counted.

The handler only hops to each listener's event loop (through ``LoopHandle.run_soon``,
which is signal-safe): nothing here takes a lock inside the handler, so a signal that
arrives while the main thread holds our lock cannot deadlock.  The listener tuple is
replaced, never mutated, so the handler always reads a consistent snapshot.  The
previous handler is restored when the last listener of a signal unsubscribes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from .._loop import LoopHandle

__all__ = ("check_signal", "subscribe", "unsubscribe", "listener_count")

_UNCATCHABLE = {getattr(signal, n) for n in ("SIGKILL", "SIGSTOP") if hasattr(signal, n)}
_lock = threading.Lock()
_listeners: dict[int, tuple[tuple[LoopHandle, Callable[[], object]], ...]] = {}
_previous: dict[int, Any] = {}


def check_signal(sig: object) -> int:
    """Validate a signal number; return it as int."""
    if isinstance(sig, bool) or not isinstance(sig, int):
        raise TypeError(f"signals must be signal numbers (e.g. signal.SIGTERM), got {sig!r}")
    try:
        signum = signal.Signals(sig)
    except ValueError:
        raise ValueError(f"unknown signal number {sig!r}; expected one of signal.valid_signals()") from None
    if signum in _UNCATCHABLE:
        raise ValueError(f"signal {signum.name} ({int(signum)}) cannot be caught by a process")
    return int(signum)


def require_main_thread(what: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            f"{what} must be used from the main thread: Python only installs signal handlers "
            f"there (current thread: {threading.current_thread().name!r})"
        )


def _handler(signum: int, frame: FrameType | None) -> None:
    for handle, fn in _listeners.get(signum, ()):
        handle.run_soon(fn)


def subscribe(signum: int, handle: LoopHandle, fn: Callable[[], object]) -> None:
    """Run ``fn()`` on ``handle``'s loop each time ``signum`` arrives.  Main thread only."""
    require_main_thread("a signal source")
    with _lock:
        current = _listeners.get(signum, ())
        if not current:
            _previous[signum] = signal.signal(signum, _handler)
        _listeners[signum] = (*current, (handle, fn))


def unsubscribe(signum: int, handle: LoopHandle, fn: Callable[[], object]) -> None:
    """Undo one :func:`subscribe`; the last one restores the previous handler."""
    with _lock:
        current = _listeners.get(signum, ())
        remaining = tuple(e for e in current if not (e[0] is handle and e[1] == fn))
        if len(remaining) == len(current):
            return
        if remaining:
            _listeners[signum] = remaining
            return
        del _listeners[signum]
        previous = _previous.pop(signum)
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)


def listener_count(signum: int) -> int:
    """How many operations listen to ``signum`` (for tests and diagnostics)."""
    return len(_listeners.get(signum, ()))
