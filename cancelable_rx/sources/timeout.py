"""TimeoutSource: cancel after a duration."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import anyio

from .._checks import check_timeout
from .._models import CancelationReason
from .base import CancelationSource, Disarm, SourceHost

__all__ = ("TimeoutSource",)


class TimeoutSource(CancelationSource):
    """Fires ``timeout`` seconds after the operation is entered.

    Cancellation: at the top level of an operation, or inside any-of, a timeout is the
    operation's cancel-scope deadline (no timer, no task): combined timeouts take the
    earliest.  Inside all-of it runs as a timer task of the operation.  Either way the
    reason is ``TIMEOUT``.

    With ``grace=`` the timeout is *soft*: when it passes, a stop is requested (the
    operation may finish within ``grace`` more seconds, see ``Cancelable.request_stop``),
    and the operation is cancelled when the grace period ends: a soft deadline and a hard
    one.  A soft timeout runs as a timer task.
    """

    reason = CancelationReason.TIMEOUT

    def __init__(self, timeout: float | timedelta, name: str | None = None, *, grace: float | timedelta | None = None) -> None:
        """``timeout``: seconds (> 0; ``math.inf`` for never) or a ``timedelta``; ``<= 0`` is
        a ValueError (``Cancelable.with_timeout(0)`` cancels at the first checkpoint)."""
        super().__init__(name=name)
        self.timeout_seconds = check_timeout(timeout, allow_zero=False, lead="Timeout must be positive")
        self.grace = check_timeout(grace, "grace") if grace is not None else None
        self.triggered_at: float | None = None
        self._deadline_time: float | None = None

    @classmethod
    def _of(cls, seconds: float) -> TimeoutSource:
        """The source of a checked timeout of the engine (``0`` included: it is the
        operation's, which anyio allows)."""
        source = cls.__new__(cls)
        CancelationSource.__init__(source)
        source.timeout_seconds, source.grace, source.triggered_at, source._deadline_time = seconds, None, None, None
        return source

    @property
    def timeout(self) -> float:  # type: ignore[override]
        """The timeout in seconds (the reference's name of `timeout_seconds`).  It hides
        reactivex's ``timeout`` operator on this class, as the reference names it so."""
        return self.timeout_seconds

    async def start_monitoring(self, scope: Any) -> None:
        """The reference's source API: give ``scope`` (an anyio cancel scope) this timeout as
        its deadline, from now."""
        self.scope = scope
        self._deadline_time = anyio.current_time() + self.timeout_seconds
        scope.deadline = self._deadline_time

    async def stop_monitoring(self) -> None:
        """The reference's source API: ``triggered`` tells whether the deadline passed."""
        if self._deadline_time is not None and anyio.current_time() >= self._deadline_time:
            self.triggered = True

    def _fresh(self) -> TimeoutSource:
        if self.timeout_seconds <= 0:
            return TimeoutSource._of(self.timeout_seconds)
        return TimeoutSource(self.timeout_seconds, self.name, grace=self.grace)

    def default_message(self) -> str:
        return f"Operation timed out after {self.timeout_seconds}s"

    def _needs_background(self, applies_deadlines: bool) -> bool:
        return (self.grace is not None or not applies_deadlines) and math.isfinite(self.timeout_seconds)

    def on_arm(self, host: SourceHost) -> Disarm | None:
        if not math.isfinite(self.timeout_seconds):
            return None
        seconds, grace = self.timeout_seconds, self.grace
        if grace is None:
            if host.applies_deadlines:
                return None  # the operation applies it as its cancel-scope deadline

            async def timer() -> None:
                await anyio.sleep(seconds)
                self.fire()

            host.start_soon(timer)
            return None

        async def soft_timer() -> None:
            await anyio.sleep(seconds)
            message = f"Soft deadline of {seconds:g}s passed: stopping within {grace:g}s"
            host.request_stop(grace, CancelationReason.TIMEOUT, message, self)

        host.start_soon(soft_timer)
        return None
