"""ConditionSource (``sources/condition.py``): polled predicates, sync and async, their
error policy and the poller's lifetime; on asyncio and trio."""

from __future__ import annotations

import logging

import anyio
import pytest

from cancelable_rx import Cancelable, CancelationToken, ConditionCancelation, OperationStatus, current_operation

pytestmark = pytest.mark.anyio


async def test_async_condition() -> None:
    calls = 0

    async def cond() -> bool:
        nonlocal calls
        calls += 1
        await anyio.lowlevel.checkpoint()
        return calls >= 3

    with anyio.fail_after(5), pytest.raises(ConditionCancelation, match="cond condition met"):
        async with Cancelable.with_condition(cond, check_interval=0.01):
            await anyio.sleep_forever()
    assert calls == 3


async def test_condition_that_raises_is_logged_and_not_met(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    def flaky() -> bool:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise RuntimeError("sensor offline")
        return True

    with caplog.at_level(logging.WARNING, logger="cancelable_rx"):
        with anyio.fail_after(5), pytest.raises(ConditionCancelation):
            async with Cancelable.with_condition(flaky, check_interval=0.01, condition_name="sensor"):
                await anyio.sleep_forever()
    assert calls == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "sensor" in warnings[0].getMessage()


# test_checks.py has a condition of the wrong type and check_interval 0 and "1"; these
# are the values it does not cover.
@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"condition": 42}, TypeError, r"`condition` must be a callable.*got 42"),
        ({"condition": bool, "check_interval": -0.5}, ValueError, r"got -0.5"),
        ({"condition": bool, "check_interval": float("inf")}, ValueError, r"got inf"),
    ],
)
def test_bad_condition_arguments(kwargs: dict[str, object], exc: type[Exception], pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        Cancelable.with_condition(**kwargs)  # type: ignore[arg-type]


async def test_condition_poller_stops_at_exit() -> None:
    calls = 0
    polled = anyio.Event()

    def count() -> bool:
        nonlocal calls
        calls += 1
        if calls == 3:
            polled.set()
        return False

    with anyio.fail_after(5):
        async with Cancelable.with_condition(count, check_interval=0.01):
            await polled.wait()  # the poller is running
    after_exit = calls
    await anyio.sleep(0.05)  # the window in which a poller still running would be called again
    assert calls == after_exit > 0


async def test_keyboard_interrupt_in_a_condition_comes_out_as_itself() -> None:
    calls = 0

    def interrupted() -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return False

    token = CancelationToken()
    op = Cancelable.with_condition(interrupted, 0.005).combine(Cancelable.with_token(token))
    with anyio.fail_after(5), pytest.raises(KeyboardInterrupt):
        async with op:
            await anyio.sleep(5)
    assert op.status is OperationStatus.FAILED and op.context.error == "KeyboardInterrupt: "
    assert token.listener_count == 0 and current_operation() is None  # the whole teardown ran
