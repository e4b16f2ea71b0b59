"""TimeoutSource: cancel after a duration."""

from __future__ import annotations

import math
from datetime import timedelta

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
        super().__init__(name)
        self.timeout_seconds = check_timeout(timeout)
        self.grace = check_timeout(grace, "grace") if grace is not None else None
        self.triggered_at: float | None = None

    def _fresh(self) -> TimeoutSource:
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
