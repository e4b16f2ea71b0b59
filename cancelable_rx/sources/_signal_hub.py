"""One process-wide handler per signal number, reference-counted.

The handler only hops to each listener's event loop (``run_soon`` of the arming host,
which is signal-safe): nothing here takes a lock inside the handler, so a signal that
arrives while the main thread holds our lock cannot deadlock.  The listener tuple is
replaced, never mutated, so the handler always reads a consistent snapshot.  The previous
handler is restored when the last listener of a signal unsubscribes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ("listener_count", "require_main_thread", "subscribe", "unsubscribe")

RunSoon = Callable[[Callable[[], object]], None]
_lock = threading.Lock()
_listeners: dict[int, tuple[tuple[RunSoon, Callable[[], object]], ...]] = {}
_previous: dict[int, Any] = {}


def require_main_thread(what: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            f"{what} must be used from the main thread: Python only installs signal handlers "
            f"there (current thread: {threading.current_thread().name!r})"
        )


def _handler(signum: int, frame: FrameType | None) -> None:
    for run_soon, fn in _listeners.get(signum, ()):
        run_soon(fn)


def subscribe(signum: int, run_soon: RunSoon, fn: Callable[[], object]) -> None:
    """Call ``run_soon(fn)`` each time ``signum`` arrives.  Main thread only."""
    require_main_thread("a signal source")
    with _lock:
        current = _listeners.get(signum, ())
        if not current:
            _previous[signum] = signal.signal(signum, _handler)
        _listeners[signum] = (*current, (run_soon, fn))


def unsubscribe(signum: int, fn: Callable[[], object]) -> None:
    """Undo one `subscribe` (matched by ``fn``); the last one restores the previous handler."""
    with _lock:
        current = _listeners.get(signum, ())
        remaining = tuple(e for e in current if e[1] is not fn)
        if len(remaining) == len(current):
            return
        if remaining:
            _listeners[signum] = remaining
            return
        del _listeners[signum]
        previous = _previous.pop(signum)
        signal.signal(signum, previous if previous is not None else signal.SIG_DFL)


def listener_count(signum: int) -> int:
    """How many armed sources listen to ``signum`` (for tests and diagnostics)."""
    return len(_listeners.get(signum, ()))
