"""ConditionSource: cancel when a polled predicate becomes true."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable

import anyio

from .._checks import check_condition, check_optional_str
from .._checks import check_interval as _check_interval
from .._loop import capture
from .._models import CancelationReason
from ._poller import Entry, poller_for
from .base import CancelationSource, Disarm, SourceHost

__all__ = ("ConditionSource",)

logger = logging.getLogger("cancelable_rx")
Condition = Callable[[], bool | Awaitable[bool]]


class ConditionSource(CancelationSource):
    """Fires when ``condition()`` returns a truthy value (``None`` counts as not met).

    The condition (sync or async, taking no arguments) is checked once when the operation
    starts and then every ``check_interval`` seconds, on the event loop thread.  Sync
    conditions share one poller per event loop (no task per operation: arming and
    disarming are O(1)), so a sync condition must be quick: one that takes longer than
    its interval is reported once at WARNING.  An async condition runs in a task of its own
    operation, so one that blocks stalls no other operation.

    Error policy: a condition that raises an ``Exception`` is logged (WARNING with the
    traceback the first time, DEBUG after) and counts as *not met*; polling goes on.  A
    ``BaseException`` that is not a cancellation (``KeyboardInterrupt``, ``SystemExit``)
    fails the operation that armed it, and only that one: leaving it raises that exception
    itself, status ``FAILED``.
    """

    reason = CancelationReason.CONDITION

    def __init__(
        self,
        condition: Condition,
        check_interval: float = 0.1,
        condition_name: str | None = None,
        name: str | None = None,
    ) -> None:
        self.condition = check_condition(condition)
        self._async = inspect.iscoroutinefunction(condition)
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
            self._failed()
            return False

    async def _poll(self) -> None:
        while not self._fired:
            if await self._evaluate():
                self.fire()
                return
            await anyio.sleep(self.check_interval)

    def _needs_background(self, applies_deadlines: bool) -> bool:
        return self._async  # a sync condition goes to the loop's shared poller

    def _failed(self) -> None:
        self.errors += 1
        level = logging.WARNING if self.errors == 1 else logging.DEBUG
        logger.log(level, "condition %r raised; treated as not met", self.condition_name, exc_info=True)

    def on_arm(self, host: SourceHost) -> Disarm | None:
        if self._async:
            host.start_soon(self._poll)
            return None
        condition = self.condition
        handle = capture()
        awaiting = [False]  # a callable that returned an awaitable: one evaluation at a time

        async def settle(result: Awaitable[bool]) -> None:
            try:
                if await result:
                    self.fire()
            except Exception:
                self._failed()
            except BaseException as exc:
                if not isinstance(exc, anyio.get_cancelled_exc_class()):
                    host.fail(exc)
                raise
            finally:
                awaiting[0] = False

        def check() -> bool:
            """One check, on the loop thread; True when the entry is done."""
            if self._fired:
                return True
            try:
                result = condition()
            except Exception:
                self._failed()
                return False
            except BaseException as exc:  # KeyboardInterrupt...: it fails this operation only
                host.fail(exc)
                return True
            if result:
                if inspect.isawaitable(result):  # e.g. `lambda: db_is_full()` with an async db_is_full
                    if awaiting[0]:
                        close = getattr(result, "close", None)
                        if close is not None:
                            close()
                    else:
                        awaiting[0] = True
                        handle.spawn(lambda: settle(result))
                    return False
                self.fire()
                return True
            return False

        if check():  # checked once when the operation starts
            return None
        poller = poller_for(handle)
        entry = Entry(check)
        interval = self.check_interval
        poller.add(interval, entry)
        return lambda: poller.discard(interval, entry)
