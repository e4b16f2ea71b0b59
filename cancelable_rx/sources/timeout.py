"""TimeoutSource: cancel after a duration."""

from __future__ import annotations

import math
from datetime import timedelta

import anyio

from .._models import CancelationReason
from .base import ArmContext, CancelationSource

__all__ = ("TimeoutSource", "check_timeout")


def check_timeout(timeout: object, name: str = "timeout") -> float:
    """Validate a timeout: a non-negative number of seconds or a timedelta.

    ``0`` cancels at the first checkpoint and ``math.inf`` never fires, as in anyio.
    """
    if isinstance(timeout, timedelta):
        seconds = timeout.total_seconds()
    elif isinstance(timeout, (int, float)) and not isinstance(timeout, bool):
        seconds = float(timeout)
    else:
        raise TypeError(f"`{name}` must be a number of seconds or a timedelta, got {timeout!r}")
    if math.isnan(seconds) or seconds < 0:
        raise ValueError(f"`{name}` must be a number of seconds >= 0 (or math.inf), got {timeout!r}")
    return seconds


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

    def _needs_tasks(self, deadline_ok: bool) -> bool:
        return not deadline_ok and math.isfinite(self.timeout_seconds)

    def _start(self, ctx: ArmContext, deadline_ok: bool) -> None:
        if deadline_ok or not math.isfinite(self.timeout_seconds):
            return  # the operation applies it as its scope deadline
        seconds = self.timeout_seconds

        async def timer() -> None:
            await anyio.sleep(seconds)
            self.fire()

        ctx.start_soon(timer)
