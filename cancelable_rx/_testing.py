"""Test helpers of the reference API (``hother.cancelable.utils.testing``).

`MockCancelationToken` records its cancels and can cancel itself later; `OperationRecorder`
records an operation's lifecycle through its callbacks; `CancelationScenario` scripts
delays and cancels against an operation; the functions time and drive test operations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
from pydantic import Field

from ._cancelable import Cancelable
from ._exceptions import CancelationError
from ._loop import capture
from ._models import CancelationReason, OperationContext, OperationStatus
from ._token import CancelationToken

__all__ = (
    "CancelationScenario",
    "MockCancelationToken",
    "OperationRecorder",
    "assert_cancelation_within",
    "create_slow_stream",
    "run_with_timeout_test",
    "sample_async_operation",
)

T = TypeVar("T")


class MockCancelationToken(CancelationToken):
    """A `CancelationToken` that records every ``cancel`` call (``cancel_history``: time,
    reason, message) and can cancel itself after a delay (`schedule_cancel`)."""

    cancel_history: list[dict[str, Any]] = Field(default_factory=list)

    def __init__(self, **data: Any) -> None:
        super().__init__(**data)

    async def cancel(self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None) -> bool:
        self.cancel_history.append({"time": datetime.now(UTC), "reason": reason, "message": message})
        return await super().cancel(reason, message)

    async def schedule_cancel(
        self, delay: float, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None
    ) -> None:
        """Cancel this token ``delay`` seconds from now, in a background task of the current
        loop (returns at once)."""

        async def later() -> None:
            await anyio.sleep(delay)
            await self.cancel(reason, message)

        capture().spawn(later)

    def get_cancel_count(self) -> int:
        """How many times ``cancel`` was called (the first one cancels; later ones record)."""
        return len(self.cancel_history)


class OperationRecorder:
    """Records what operations attached to it go through: progress, status changes and
    errors, as dicts ``{"time", "operation_id", "event_type", "data"}`` in `events`."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.operations: dict[str, OperationContext] = {}

    async def record_event(self, operation_id: str, event_type: str, data: dict[str, Any] | None = None) -> None:
        self.events.append(
            {"time": datetime.now(UTC), "operation_id": operation_id, "event_type": event_type, "data": data or {}}
        )

    def attach_to_cancellable(self, cancelable: Cancelable) -> Cancelable:
        """Record ``cancelable``'s progress (``progress``), status changes
        (``status_<status>``) and errors (``error``); returns it."""
        self.operations[cancelable.id] = cancelable.context

        async def on_progress(op_id: str, message: Any, meta: dict[str, Any] | None) -> None:
            await self.record_event(op_id, "progress", {"message": message, "meta": meta})

        async def on_status(ctx: OperationContext) -> None:
            await self.record_event(ctx.id, f"status_{ctx.status.value}", ctx.log_context())

        async def on_error(ctx: OperationContext, error: Exception) -> None:
            await self.record_event(ctx.id, "error", {"error_type": type(error).__name__, "error_message": str(error)})

        return (
            cancelable.on_progress(on_progress).on_start(on_status).on_complete(on_status).on_cancel(on_status)
            .on_error(on_error)
        )

    def get_events_for_operation(self, operation_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["operation_id"] == operation_id]

    def get_events_by_type(self, event_type: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event_type"] == event_type]

    def assert_event_occurred(self, operation_id: str, event_type: str, timeout: float = 1.0) -> dict[str, Any]:
        """The latest ``event_type`` event of the operation; AssertionError if none."""
        found = [e for e in self.get_events_for_operation(operation_id) if e["event_type"] == event_type]
        if not found:
            raise AssertionError(f"Event '{event_type}' not found for operation {operation_id}")
        return found[-1]

    def assert_final_status(self, operation_id: str, expected_status: OperationStatus) -> None:
        ctx = self.operations.get(operation_id)
        if ctx is None:
            raise AssertionError(f"Operation {operation_id} not found")
        if ctx.status != expected_status:
            raise AssertionError(f"Expected status {expected_status.value}, got {ctx.status.value}")


async def create_slow_stream(
    items: list[T], delay: float = 0.1, cancelable: Cancelable | None = None
) -> AsyncIterator[T]:
    """Yield ``items`` with ``delay`` seconds between them, checking ``cancelable``'s token
    before each one."""
    for i, item in enumerate(items):
        if i:
            await anyio.sleep(delay)
        if cancelable is not None:
            await cancelable.token.check_async()
        yield item


async def run_with_timeout_test(coro: Awaitable[Any], expected_timeout: float, tolerance: float = 0.1) -> None:
    """Await ``coro`` and assert that it timed out (a cancellation, ``TimeoutError`` or a
    `CancelationError`) about ``expected_timeout`` seconds later (± ``tolerance``)."""
    start = anyio.current_time()
    try:
        await coro
    except (anyio.get_cancelled_exc_class(), TimeoutError, CancelationError):
        elapsed = anyio.current_time() - start
        if abs(elapsed - expected_timeout) > tolerance:
            raise AssertionError(
                f"Timeout occurred after {elapsed:.2f}s, expected {expected_timeout:.2f}s ± {tolerance:.2f}s"
            ) from None
        return
    raise AssertionError("Expected timeout but operation completed")


@asynccontextmanager
async def assert_cancelation_within(min_time: float, max_time: float) -> AsyncIterator[MockCancelationToken]:
    """Yield a token the block must see cancelled between ``min_time`` and ``max_time``
    seconds after entering (checked on leaving: AssertionError otherwise)."""
    token = MockCancelationToken()
    start = anyio.current_time()
    try:
        yield token
    finally:
        if not token.is_cancelled:
            raise AssertionError("Expected cancelation but none occurred")
        elapsed = anyio.current_time() - start
        if elapsed < min_time:
            raise AssertionError(f"Cancelation occurred too early: {elapsed:.2f}s < {min_time:.2f}s")
        if elapsed > max_time:
            raise AssertionError(f"Cancelation occurred too late: {elapsed:.2f}s > {max_time:.2f}s")


class CancelationScenario:
    """A scripted test: steps (delays, cancels of the operation's token) run beside an
    operation; assertions (progress messages seen, final status) are checked after."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.steps: list[dict[str, Any]] = []
        self.assertions: list[dict[str, Any]] = []

    def add_delay(self, duration: float) -> CancelationScenario:
        self.steps.append({"type": "delay", "duration": duration})
        return self

    def add_cancelation(
        self, reason: CancelationReason = CancelationReason.MANUAL, message: str | None = None
    ) -> CancelationScenario:
        self.steps.append({"type": "cancel", "reason": reason, "message": message})
        return self

    def add_progress_check(self, expected_message: str, timeout: float = 1.0) -> CancelationScenario:
        self.assertions.append({"type": "progress", "message": expected_message, "timeout": timeout})
        return self

    def add_status_check(self, expected_status: OperationStatus) -> CancelationScenario:
        self.assertions.append({"type": "status", "status": expected_status})
        return self

    async def run(self, operation: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> OperationRecorder:
        """Run ``operation(*args, **kwargs)`` in an operation cancelled by a token that the
        steps drive; returns the recorder.  Its cancellation ends the operation quietly."""
        recorder = OperationRecorder()
        token = MockCancelationToken()
        op = recorder.attach_to_cancellable(Cancelable.with_token(token, name=f"scenario_{self.name}"))

        async def steps() -> None:
            for step in self.steps:
                if step["type"] == "delay":
                    await anyio.sleep(step["duration"])
                elif step["type"] == "cancel":
                    await token.cancel(step["reason"], step["message"])

        async with anyio.create_task_group() as tg:
            tg.start_soon(steps)
            try:
                async with op:
                    await operation(*args, **kwargs)
            except CancelationError:
                pass
        for check in self.assertions:
            if check["type"] == "progress":
                seen = [e["data"]["message"] for e in recorder.get_events_by_type("progress")]
                if check["message"] not in seen:
                    raise AssertionError(f"Expected progress message '{check['message']}' not found")
            elif check["type"] == "status":
                recorder.assert_final_status(op.id, check["status"])
        return recorder


async def sample_async_operation(duration: float = 1.0, cancelable: Cancelable | None = None) -> str:
    """Sleep ``duration`` seconds in two halves, reporting progress on ``cancelable`` at the
    start, the middle and the end; returns ``"success"``."""
    if cancelable is not None:
        await cancelable.report_progress("Operation started")
    await anyio.sleep(duration / 2)
    if cancelable is not None:
        await cancelable.report_progress("Operation 50% complete")
    await anyio.sleep(duration / 2)
    if cancelable is not None:
        await cancelable.report_progress("Operation completed")
    return "success"
