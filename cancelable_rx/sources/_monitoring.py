"""The ``hother-cancelable`` source API on top of the source interface.

Two bridges, both used only by code written against the reference package:

* `MonitorScope` and `monitor`: a *reference-style* source (a subclass that implements
  ``async start_monitoring(scope)`` / ``async stop_monitoring()`` and calls
  ``await self.trigger_cancelation(message)``) armed by an operation.  The operation runs
  ``start_monitoring`` then, when it disarms the source, ``stop_monitoring`` in one
  background task of its own (so a task group a source opens in the one is closed in the
  same task by the other), and hands the source a `MonitorScope`: cancelling it, or
  giving it a deadline, fires the source.
* `DirectArming`: ``await source.start_monitoring(scope)`` called directly on one of the
  library's sources (or a composite): the source is armed for that anyio scope, which is
  cancelled when the source fires; ``stop_monitoring`` disarms it.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel

from .._loop import LoopHandle, capture
from .._models import CancelationReason, CancelEvent

# The source and host types live in sources.base, a layer below: named here as ``Any``.
CancelationSource = Any
SourceHost = Any

__all__ = ("CancelCallback", "DirectArming", "MonitorScope", "monitor", "run_cancel_callback")

logger = logging.getLogger("cancelable_rx")

CancelCallback = Callable[[CancelationReason, str], "None | Awaitable[None]"]
"""``callback(reason, message)``, sync or async (`CancelationSource.set_cancel_callback`)."""


async def run_cancel_callback(source: CancelationSource, callback: CancelCallback, message: str) -> None:
    """Call a source's cancel callback (awaiting it if it is async); an error is logged,
    never raised."""
    try:
        result = callback(source._reason(), message)
        if inspect.isawaitable(result):
            await result
    except Exception:
        logger.exception("cancelable_rx: the cancel callback of %s failed", source)


class MonitorScope:
    """What an operation hands a reference-style source's ``start_monitoring``: it stands
    for the operation's cancel scope.

    ``cancel()`` fires the source (the operation is cancelled with the source's reason);
    ``cancel_called`` is True once the source has fired; setting ``deadline`` (anyio
    clock) fires the source when it passes.  Loop thread only, like an anyio scope.
    """

    def __init__(self, source: CancelationSource) -> None:
        self._source = source
        self._deadline = math.inf
        self._wake = anyio.Event()
        self._disarmed = False
        self._started = False
        self._own: anyio.CancelScope | None = None
        self.shield = False

    @property
    def cancel_called(self) -> bool:
        return bool(self._source._fired)

    @property
    def cancelled_caught(self) -> bool:
        return False

    def cancel(self, reason: str | None = None) -> None:
        self._source.fire(reason)

    @property
    def deadline(self) -> float:
        return self._deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        self._deadline = float(value)
        self._wake.set()

    def disarm(self) -> None:
        """The operation is leaving: end `watch` (or interrupt a ``start_monitoring`` that
        has not returned).  Loop thread."""
        self._disarmed = True
        self._wake.set()
        if not self._started and self._own is not None:
            self._own.cancel()

    async def watch(self) -> None:
        """Wait until disarmed; fire the source when a deadline given to the scope passes."""
        while not self._disarmed:
            wake = self._wake = anyio.Event()
            left = self._deadline - anyio.current_time()
            if left <= 0:
                self._deadline = math.inf
                self._source.fire()
                continue
            with anyio.move_on_after(left):
                await wake.wait()


def monitor(source: CancelationSource, host: SourceHost) -> Callable[[], None]:
    """Arm a reference-style ``source`` for an operation: ``start_monitoring``, then, when the
    operation disarms it, ``stop_monitoring``, both in one background task of the operation
    (a task group the source opens in the one is closed by the other in the same task).
    Returns the disarm.

    Cancellation: the task runs shielded, so ``stop_monitoring`` runs to its end when the
    operation exits (the operation waits for it); a ``start_monitoring`` still running then
    is cancelled, and one that had not begun is not run: a source is stopped exactly when it
    was started.  Start and stop run in the same task and scope, so a task group opened by
    one is closed by the other.  An error raised by ``start_monitoring`` fails the
    operation; one raised by ``stop_monitoring`` is logged.
    """
    scope = MonitorScope(source)

    async def work() -> None:
        with anyio.CancelScope(shield=True) as own:
            scope._own = own
            if scope._disarmed:  # the operation left before this task began
                return
            await source.start_monitoring(scope)
            scope._started = True
            await scope.watch()
            try:
                await source.stop_monitoring()
            except Exception:
                logger.exception("cancelable_rx: stop_monitoring() of %s failed", source)

    host.start_soon(work)
    return scope.disarm


class DirectArming:
    """A library source armed for an anyio scope by a direct ``start_monitoring(scope)``
    (the reference's source API).  A `SourceHost` whose background work runs in a task
    group entered here and exited by `stop`, in the caller's task."""

    applies_deadlines = False  # timeouts run as timers: there is no operation deadline here

    def __init__(self, source: CancelationSource, scope: Any) -> None:
        self._source = source
        self._scope = scope
        self._handle: LoopHandle = capture()
        self._tg: anyio.abc.TaskGroup | None = None
        self._disarm: Callable[[], object] | None = None
        self._spawned = 0
        self._begun = 0

    async def start(self) -> None:
        """Arm the source; return once the background work it started has begun (so the
        reference-style parts of a composite have run their ``start_monitoring`` up to its
        first checkpoint, and a ``stop`` right after stops them).

        Cancellation: a checkpoint, at least once per background task the source starts."""
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        self._source._listen(self._on_fire)
        self._disarm = self._source.arm(self)
        while self._begun < self._spawned:
            await anyio.lowlevel.checkpoint()

    async def stop(self) -> None:
        self._source._unlisten(self._on_fire)
        disarm, self._disarm = self._disarm, None
        if disarm is not None:
            try:
                disarm()
            except Exception:
                logger.exception("cancelable_rx: disarming %s failed", self._source)
        tg, self._tg = self._tg, None
        if tg is not None:
            # Stop the work; shield the (immediate) wait for it from an enclosing cancellation.
            # The task group's own scope is shielded: a scope entered around its exit would
            # not be the innermost one when it exits.
            tg.cancel_scope.cancel()
            tg.cancel_scope.shield = True
            try:
                await tg.__aexit__(None, None, None)
            except Exception:
                logger.exception("cancelable_rx: background work of %s failed", self._source)

    def _on_fire(self, event: CancelEvent) -> None:
        self.call(lambda: self._fired(event))

    def _fired(self, event: CancelEvent) -> None:
        callback = self._source._cancel_callback
        if callback is not None and self._tg is not None:
            self._tg.start_soon(run_cancel_callback, self._source, callback, event.message or "")
        if not self._scope.cancel_called:
            self._scope.cancel()

    # -- SourceHost -----------------------------------------------------------------------

    def run_soon(self, fn: Callable[[], object]) -> None:
        self._handle.run_soon(fn)

    def call(self, fn: Callable[[], object]) -> None:
        self._handle.call(fn)

    def start_soon(self, fn: Callable[[], Awaitable[object]]) -> None:
        if self._tg is None:
            raise RuntimeError(f"{self._source} is not monitoring: call start_monitoring(scope) first")
        self._spawned += 1
        self._tg.start_soon(self._guarded, fn)

    async def _guarded(self, fn: Callable[[], Awaitable[object]]) -> None:
        self._begun += 1
        try:
            await fn()
        except Exception:
            logger.exception("cancelable_rx: monitoring of %s failed", self._source)

    def fail(self, exc: BaseException) -> None:
        logger.error("cancelable_rx: %s cannot go on monitoring: %r", self._source, exc)

    def request_stop(self, grace: float, reason: CancelationReason, message: str | None, source: object) -> None:
        self._source.fire(message, reason)
