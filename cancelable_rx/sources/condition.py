"""ConditionSource: cancel when a polled predicate becomes true."""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Awaitable, Callable

import anyio

from .._models import CancelationReason
from .base import ArmContext, CancelationSource

__all__ = ("ConditionSource", "check_interval_value")

logger = logging.getLogger("cancelable_rx")
Condition = Callable[[], bool | Awaitable[bool]]


def check_interval_value(check_interval: object) -> float:
    if isinstance(check_interval, bool) or not isinstance(check_interval, (int, float)):
        raise TypeError(f"`check_interval` must be a number of seconds, got {check_interval!r}")
    if not (math.isfinite(check_interval) and check_interval > 0):
        raise ValueError(f"`check_interval` must be a finite number of seconds > 0, got {check_interval!r}")
    return float(check_interval)


class ConditionSource(CancelationSource):
    """Fires when ``condition()`` returns a truthy value.

    The condition (sync or async) is checked once when the operation starts and then
    every ``check_interval`` seconds, in a task of the operation, on the event loop
    thread: a sync condition must be quick.

    Error policy: a condition that raises is logged (WARNING with traceback the first
    time, DEBUG after) and counts as *not met*; polling goes on.  It never crashes the
    loop or the operation.
    """

    reason = CancelationReason.CONDITION

    def __init__(
        self,
        condition: Condition,
        check_interval: float = 0.1,
        condition_name: str | None = None,
        name: str | None = None,
    ) -> None:
        if not callable(condition):
            raise TypeError(f"`condition` must be a callable returning bool (or an awaitable of bool), got {condition!r}")
        super().__init__(name or condition_name)
        self.condition = condition
        self.check_interval = check_interval_value(check_interval)
        self.condition_name = condition_name or getattr(condition, "__name__", None)
        self.errors = 0
        self._scope: anyio.CancelScope | None = None

    def _fresh(self) -> ConditionSource:
        return ConditionSource(self.condition, self.check_interval, self.condition_name, self.name)

    def default_message(self) -> str:
        if self.condition_name:
            return f"Operation cancelled: {self.condition_name} condition met"
        return "Operation cancelled: condition met"

    def _needs_tasks(self, deadline_ok: bool) -> bool:
        return True

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
        with anyio.CancelScope() as scope:
            self._scope = scope
            while not self._fired:
                if await self._evaluate():
                    self.fire()
                    return
                await anyio.sleep(self.check_interval)

    def _start(self, ctx: ArmContext, deadline_ok: bool) -> None:
        ctx.start_soon(self._poll)

    def _stop(self) -> None:
        scope, self._scope = self._scope, None
        if scope is not None:
            scope.cancel()
