"""ConditionSource: cancel when a polled predicate becomes true."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from inspect import CO_COROUTINE
from types import FunctionType

import anyio

from .._checks import check_condition, check_optional_str
from .._checks import check_interval as _check_interval
from .._loop import capture
from .._models import CancelationReason
from ._poller import Entry, poller_for
from .base import CancelationSource, Disarm, SourceHost

__all__ = ("ConditionSource", "ResourceConditionSource")

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
        if type(condition) is FunctionType:  # inspect.iscoroutinefunction, without its unwrapping cost
            self._async = bool(condition.__code__.co_flags & CO_COROUTINE) or (
                bool(condition.__dict__) and inspect.iscoroutinefunction(condition)  # wrapped or marked
            )
        else:
            self._async = inspect.iscoroutinefunction(condition)
        interval = _check_interval(check_interval)
        condition_name = check_optional_str(condition_name, "condition_name")
        super().__init__(name=name or condition_name)
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
        armed = _Armed(self, host)
        condition = self.condition
        try:  # checked once when the operation starts
            result = condition()
            done = bool(result) and armed.hit(result)
        except BaseException as exc:  # noqa: BLE001 - the policy of the class docstring
            done = armed.failed(exc)
        if done:
            return None
        armed.poller.add(self.check_interval, armed)
        return armed.disarm


class ResourceConditionSource(ConditionSource):
    """Fires when memory, CPU or disk usage (percent, from ``psutil``) exceeds a threshold.

    A threshold left None is not checked.  The check is async: the CPU sample (0.1 s) runs
    in a worker thread, so the loop never blocks.  Needs ``psutil`` (``pip install psutil``),
    imported when the first check runs.
    """

    def __init__(
        self,
        memory_threshold: float | None = None,
        cpu_threshold: float | None = None,
        disk_threshold: float | None = None,
        check_interval: float = 5.0,
        name: str | None = None,
    ) -> None:
        self.memory_threshold = memory_threshold
        self.cpu_threshold = cpu_threshold
        self.disk_threshold = disk_threshold
        limits = [f"{what}>{limit}%" for what, limit in
                  (("memory", memory_threshold), ("cpu", cpu_threshold), ("disk", disk_threshold)) if limit]
        super().__init__(
            self._check_resources, check_interval, f"resource_check({', '.join(limits)})", name or "resource_monitor"
        )

    def _fresh(self) -> ResourceConditionSource:
        return ResourceConditionSource(
            self.memory_threshold, self.cpu_threshold, self.disk_threshold, self.check_interval, self.name
        )

    async def _check_resources(self) -> bool:
        """True if a usage exceeds its threshold."""
        import psutil  # type: ignore[import-untyped,unused-ignore]  # noqa: PLC0415 - optional, only this source

        if self.memory_threshold and psutil.virtual_memory().percent > self.memory_threshold:
            return True
        if self.cpu_threshold:
            cpu = await anyio.to_thread.run_sync(lambda: psutil.cpu_percent(interval=0.1))
            if cpu > self.cpu_threshold:
                return True
        return bool(self.disk_threshold and psutil.disk_usage("/").percent > self.disk_threshold)


class _Armed(Entry):
    """A sync condition armed for one operation: an entry of its loop's poller."""

    __slots__ = ("source", "host", "handle", "poller", "awaiting")

    def __init__(self, source: ConditionSource, host: SourceHost) -> None:
        super().__init__(source.condition)
        self.source = source
        self.host = host
        self.handle = handle = capture()
        self.poller = poller_for(handle)
        self.awaiting = False  # a callable that returned an awaitable: one evaluation at a time

    def disarm(self) -> None:
        self.poller.discard(self.source.check_interval, self)

    def hit(self, result: object) -> bool:
        if inspect.isawaitable(result):  # e.g. `lambda: db_is_full()` with an async db_is_full
            if self.awaiting:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
            else:
                self.awaiting = True
                self.handle.spawn(lambda: self._settle(result))
            return False
        self.source.fire()
        return True

    def failed(self, exc: BaseException) -> bool:
        if isinstance(exc, Exception):
            self.source._failed()
            return False
        self.host.fail(exc)  # KeyboardInterrupt...: it fails this operation only
        return True

    async def _settle(self, result: Awaitable[object]) -> None:
        try:
            if await result:
                self.source.fire()
        except Exception:
            self.source._failed()
        except BaseException as exc:
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                self.host.fail(exc)
            raise
        finally:
            self.awaiting = False
