"""Decorators and wrap helpers (``_decorators.py``), on asyncio and trio."""

from __future__ import annotations

import inspect
import os
import signal

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationToken,
    ConditionCancelation,
    ManualCancelation,
    OperationRegistry,
    SignalCancelation,
    TimeoutCancelation,
    cancelable,
    cancelable_combine,
    cancelable_with_condition,
    cancelable_with_signal,
    cancelable_with_token,
    current_operation,
    ensure_operation,
    with_cancelable,
    with_current_operation,
    with_timeout,
)

pytestmark = pytest.mark.anyio


async def test_cancelable_injects_and_keeps_signature() -> None:
    @cancelable(timeout=5, name="fetch")
    async def fetch(url: str, retries: int = 3, cancelable: Cancelable | None = None) -> tuple[str, str | None]:
        assert cancelable is not None and cancelable is current_operation()
        return url, cancelable.name

    assert list(inspect.signature(fetch).parameters) == ["url", "retries"]
    assert fetch.__name__ == "fetch"
    assert await fetch("u") == ("u", "fetch")


async def test_cancelable_timeout_applies_per_call() -> None:
    @cancelable(timeout=0.02)
    async def slow() -> None:
        await anyio.sleep(5)

    for _ in range(2):  # a fresh operation per call
        with pytest.raises(TimeoutCancelation):
            await slow()


async def test_cancelable_with_token() -> None:
    token = CancelationToken()

    @cancelable_with_token(token)
    async def work(cancelable: Cancelable | None = None) -> None:
        assert cancelable is not None
        await token.cancel(message="stop")
        await anyio.sleep(5)

    with pytest.raises(ManualCancelation, match="stop"):
        await work()


async def test_cancelable_with_condition() -> None:
    @cancelable_with_condition(lambda: True, check_interval=0.01, condition_name="always")
    async def work() -> None:
        await anyio.sleep(5)

    with pytest.raises(ConditionCancelation, match="always"):
        await work()


async def test_cancelable_with_signal() -> None:
    @cancelable_with_signal(signal.SIGUSR1)
    async def work() -> None:
        os.kill(os.getpid(), signal.SIGUSR1)
        await anyio.sleep(5)

    with anyio.fail_after(5), pytest.raises(SignalCancelation):
        await work()


async def test_cancelable_combine_applies_every_source_each_call() -> None:
    token = CancelationToken()
    flag = {"stop": False}

    @cancelable_combine(
        Cancelable.with_timeout(0.05),
        Cancelable.with_token(token),
        Cancelable.with_condition(lambda: flag["stop"], check_interval=0.01),
        name="combo",
    )
    async def work(cancelable: Cancelable | None = None) -> str | None:
        await anyio.sleep(5)
        return None  # pragma: no cover

    assert list(inspect.signature(work).parameters) == []
    with pytest.raises(TimeoutCancelation):  # the timeout applies
        await work()
    flag["stop"] = True
    with pytest.raises(ConditionCancelation):  # the condition applies (fresh per call)
        await work()
    flag["stop"] = False
    await token.cancel()
    with pytest.raises(ManualCancelation):  # the token applies
        await work()


async def test_with_timeout_helper_and_decorator() -> None:
    async def value() -> int:
        await anyio.sleep(0)
        return 7

    assert await with_timeout(5, value()) == 7
    with pytest.raises(TimeoutCancelation):
        await with_timeout(0.01, anyio.sleep(5))

    @with_timeout(0.01)
    async def slow() -> None:
        await anyio.sleep(5)

    with pytest.raises(TimeoutCancelation):
        await slow()


async def test_with_cancelable_and_current_operation() -> None:
    shared = Cancelable(name="shared")

    @with_cancelable(shared, inject=True)
    async def step(x: int, cancelable: Cancelable | None = None) -> tuple[int, bool]:
        return x, cancelable is shared

    @with_current_operation()
    async def peek(operation: Cancelable | None = None) -> Cancelable | None:
        return operation

    assert list(inspect.signature(step).parameters) == ["x"]
    assert list(inspect.signature(peek).parameters) == []
    async with shared:
        assert await step(1) == (1, True)
        assert await peek() is shared
    assert await peek() is None


async def test_ensure_operation_reuses_or_creates() -> None:
    @ensure_operation
    async def work(cancelable: Cancelable | None = None) -> Cancelable | None:
        return cancelable

    async with Cancelable() as outer:
        assert await work() is outer
    created = await work()
    assert created is not None and created is not outer and created.is_completed


async def test_decorator_registers_globally() -> None:
    registry = OperationRegistry.get_instance()
    await registry.clear_all()

    @cancelable(register_globally=True, name="registered")
    async def work() -> None:
        assert [c.name for c in await registry.list_operations()] == ["registered"]

    await work()
    assert [c.name for c in await registry.get_history()] == ["registered"]
    await registry.clear_all()
