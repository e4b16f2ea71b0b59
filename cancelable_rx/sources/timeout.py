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
    """

    reason = CancelationReason.TIMEOUT

    def __init__(self, timeout: float | timedelta, name: str | None = None) -> None:
        super().__init__(name)
        self.timeout_seconds = check_timeout(timeout)
        self.triggered_at: float | None = None

    def _fresh(self) -> TimeoutSource:
        return TimeoutSource(self.timeout_seconds, self.name)

    def default_message(self) -> str:
        return f"Operation timed out after {self.timeout_seconds}s"

    def _needs_background(self, applies_deadlines: bool) -> bool:
        return not applies_deadlines and math.isfinite(self.timeout_seconds)

    def on_arm(self, host: SourceHost) -> Disarm | None:
        if host.applies_deadlines or not math.isfinite(self.timeout_seconds):
            return None  # the operation applies it as its cancel-scope deadline
        seconds = self.timeout_seconds

        async def timer() -> None:
            await anyio.sleep(seconds)
            self.fire()

        host.start_soon(timer)
        return None
