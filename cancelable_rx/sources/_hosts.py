"""A `SourceHost` whose background work runs as tasks of the loop, not of a task group.

Used where no task group can be held open: stream operators and detached streams (which
must never hold a task group across ``yield``).  Work started with `start_soon` runs in a
background task of the loop, inside a cancel scope that `close` cancels.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio

from .._loop import LoopHandle
from .._models import CancelationReason

__all__ = ("BackgroundHost", "run_source_work")

logger = logging.getLogger("cancelable_rx")


async def run_source_work(fn: Callable[[], Awaitable[object]], fail: Callable[[BaseException], None]) -> None:
    """Await ``fn()``; any exception except the backend's cancellation goes to ``fail``.

    The one place that decides what a failure of a source's background work means.
    """
    try:
        await fn()
    except anyio.get_cancelled_exc_class():
        raise
    except BaseException as exc:  # KeyboardInterrupt included: it must reach the operation
        fail(exc)


class BackgroundHost:
    """Runs the background work of sources as loop tasks; `close` cancels them.

    ``on_fail(exc)`` receives failures of that work (see `SourceHost.fail`).
    Thread-safety: `run_soon`, `call` and `fail` from any thread; the rest on the loop.
    """

    __slots__ = ("_handle", "_on_fail", "_on_stop", "_scopes", "_closed")
    applies_deadlines = True  # its users (operators, detached streams) apply timeouts as deadlines

    def __init__(
        self,
        handle: LoopHandle,
        on_fail: Callable[[BaseException], None],
        on_stop: Callable[[float, CancelationReason, str | None, object], None] | None = None,
    ) -> None:
        self._handle = handle
        self._on_fail = on_fail
        self._on_stop = on_stop
        self._scopes: list[anyio.CancelScope] = []
        self._closed = False

    def run_soon(self, fn: Callable[[], object]) -> None:
        self._handle.run_soon(fn)

    def call(self, fn: Callable[[], object]) -> None:
        self._handle.call(fn)

    def fail(self, exc: BaseException) -> None:
        self._on_fail(exc)

    def request_stop(self, grace: float, reason: CancelationReason, message: str | None, source: object) -> None:
        """A soft source's stop request, passed to ``on_stop`` (ignored without one)."""
        if self._on_stop is not None:
            self._on_stop(grace, reason, message, source)

    def start_soon(self, fn: Callable[[], Awaitable[object]]) -> None:
        async def run() -> None:
            with anyio.CancelScope() as scope:
                if self._closed:
                    return
                self._scopes.append(scope)
                try:
                    await run_source_work(fn, self._on_fail)
                finally:
                    self._scopes.remove(scope)

        self._handle.spawn(run)

    def close(self) -> None:
        """Cancel every piece of background work (idempotent; loop thread)."""
        self._closed = True
        for scope in tuple(self._scopes):
            scope.cancel()
