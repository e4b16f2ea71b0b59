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
    assert op.status is OperationStatus.FAILED and op.context.error == "KeyboardInterrupt"
    assert token.listener_count == 0 and current_operation() is None  # the whole teardown ran


# --- the shared poller of synchronous conditions (sources/_poller.py) ---


async def test_many_sync_conditions_share_the_loop_and_each_fires_its_own_operation() -> None:
    flags = [False] * 50
    ended: list[int] = []

    async def worker(i: int) -> None:
        op = Cancelable.with_condition(lambda: flags[i], check_interval=0.01 if i % 2 else 0.02)
        with pytest.raises(ConditionCancelation):
            async with op:
                await anyio.sleep(5)
        assert op.status is OperationStatus.CANCELLED
        ended.append(i)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(worker, i)
            await anyio.sleep(0.05)
            assert ended == []
            for i in (7, 8, 30):  # one flag at a time: only its operation ends
                flags[i] = True
                while i not in ended:
                    await anyio.sleep(0.005)
            assert sorted(ended) == [7, 8, 30]
            for i in range(50):
                flags[i] = True
    assert sorted(ended) == list(range(50))


async def test_each_interval_is_polled_at_its_own_rate() -> None:
    fast = slow = 0

    def count_fast() -> bool:
        nonlocal fast
        fast += 1
        return False

    def count_slow() -> bool:
        nonlocal slow
        slow += 1
        return False

    with anyio.fail_after(5):
        async with Cancelable.with_condition(count_fast, 0.01), Cancelable.with_condition(count_slow, 0.1):
            await anyio.sleep(0.35)
    assert 2 <= slow <= 1 + 4  # checked when armed, then at most at 0.1, 0.2, 0.3 (0.35: timer slack)
    assert fast >= 10  # of up to 36: the slow interval does not hold the fast one back


async def test_keyboard_interrupt_fails_only_the_operation_whose_condition_raised() -> None:
    def interrupted() -> bool:
        raise KeyboardInterrupt

    other_calls = 0

    def other() -> bool:
        nonlocal other_calls
        other_calls += 1
        return other_calls >= 10

    calls = 0

    def late() -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KeyboardInterrupt
        return False

    survivor = Cancelable.with_condition(other, 0.01)
    victim = Cancelable.with_condition(late, 0.01)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:

            async def run_victim() -> None:
                with pytest.raises(KeyboardInterrupt):
                    async with victim:
                        await anyio.sleep(5)

            tg.start_soon(run_victim)
            with pytest.raises(ConditionCancelation):
                async with survivor:
                    await anyio.sleep(5)
    assert victim.status is OperationStatus.FAILED
    assert survivor.status is OperationStatus.CANCELLED and other_calls == 10
    with pytest.raises(KeyboardInterrupt):  # raised by the first check, at entry
        async with Cancelable.with_condition(interrupted, 0.01):
            await anyio.sleep(5)


async def test_a_slow_sync_condition_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    import time

    calls = 0

    def slow() -> bool:
        nonlocal calls
        calls += 1
        time.sleep(0.02)
        return calls >= 5

    with caplog.at_level(logging.WARNING, logger="cancelable_rx"), anyio.fail_after(5):
        with pytest.raises(ConditionCancelation):
            async with Cancelable.with_condition(slow, 0.005):
                await anyio.sleep(5)
    slow_warnings = [r for r in caplog.records if "took" in r.getMessage()]
    assert len(slow_warnings) == 1 and "make a slow one async" in slow_warnings[0].getMessage()


async def test_a_sync_callable_returning_an_awaitable_is_awaited() -> None:
    state = {"full": False}

    async def db_is_full() -> bool:
        await anyio.lowlevel.checkpoint()
        return state["full"]

    with anyio.fail_after(5), pytest.raises(ConditionCancelation):
        async with Cancelable.with_condition(lambda: db_is_full(), 0.01):  # noqa: PLW0108
            await anyio.sleep(0.05)
            state["full"] = True
            await anyio.sleep(5)


async def test_the_poller_starts_again_after_it_went_idle() -> None:
    for _ in range(3):  # each round: the previous poller ran out of entries and ended
        met = [False]
        with anyio.fail_after(5), pytest.raises(ConditionCancelation):
            async with Cancelable.with_condition(lambda: met[0], 0.005):  # noqa: B023
                await anyio.sleep(0.02)
                met[0] = True
                await anyio.sleep(5)
        await anyio.sleep(0.02)
