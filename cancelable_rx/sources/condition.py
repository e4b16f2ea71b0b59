"""ConditionSource: cancel when a polled predicate becomes true."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

import anyio

from .._checks import check_condition, check_optional_str
from .._checks import check_interval as _check_interval
from .._models import CancelationReason
from .base import CancelationSource, Disarm, SourceHost

__all__ = ("ConditionSource",)

logger = logging.getLogger("cancelable_rx")
Condition = Callable[[], bool | Awaitable[bool]]


class ConditionSource(CancelationSource):
    """Fires when ``condition()`` returns a truthy value (``None`` counts as not met).

    The condition (sync or async, taking no arguments) is checked once when the operation
    starts and then every ``check_interval`` seconds, on the event loop thread: a sync
    condition must be quick.

    Error policy: a condition that raises an ``Exception`` is logged (WARNING with the
    traceback the first time, DEBUG after) and counts as *not met*; polling goes on.  A
    ``BaseException`` that is not a cancellation (``KeyboardInterrupt``, ``SystemExit``)
    fails the operation: leaving it raises that exception itself, status ``FAILED``.
    """

    reason = CancelationReason.CONDITION
    needs_background = True

    def __init__(
        self,
        condition: Condition,
        check_interval: float = 0.1,
        condition_name: str | None = None,
        name: str | None = None,
    ) -> None:
        self.condition = check_condition(condition)
        interval = _check_interval(check_interval)
        condition_name = check_optional_str(condition_name, "condition_name")
        super().__init__(name or condition_name)
        self.check_interval = interval
        self.condition_name = condition_name or getattr(condition, "__name__", None)
        self.errors = 0

    def _fresh(self) -> ConditionSource:
        return ConditionSource(self.condition, self.check_interval, self.condition_name, self.name)

    def default_message(self) -> str:
        if self.condition_name:
            return f"Operation cancelled: {self.condition_name} condition met"
        return "Operation cancelled: condition met"

    async def _evaluate(self) -> bool:
        try:
            result = self.condition()
            if inspect.isawaitable(result):
                result = await result
            return bool(result)
        except Exception:
            self.errors += 1
            level = logging.WARNING if self.errors == 1 else logging.DEBUG
            logger.log(level, "condition %r raised; treated as not met", self.condition_name, exc_info=True)
            return False

    async def _poll(self) -> None:
        while not self._fired:
            if await self._evaluate():
                self.fire()
                return
            await anyio.sleep(self.check_interval)

    def on_arm(self, host: SourceHost) -> Disarm | None:
        host.start_soon(self._poll)
        return None
