"""Sources as observables and their composition, on asyncio and trio."""

from __future__ import annotations

import logging
import threading

import anyio
import pytest
import reactivex
from reactivex import operators as ops
from reactivex.subject import Subject

from cancelable_rx import (
    AllOfSource,
    AnyOfSource,
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationToken,
    CancelEvent,
    CompositeSource,
    ConditionCancelation,
    ConditionSource,
    ManualCancelation,
    ObservableSource,
    TimeoutCancelation,
    TimeoutSource,
    TokenSource,
    all_of,
    any_of,
)

pytestmark = pytest.mark.anyio


def test_source_is_a_hot_fire_once_observable() -> None:
    src = ConditionSource(lambda: False)
    seen: list[object] = []
    done: list[bool] = []
    src.subscribe(seen.append, on_completed=lambda: done.append(True))
    assert src.fire("first") is True
    assert src.fire("second") is False
    assert len(seen) == 1 and done == [True]
    event = seen[0]
    assert isinstance(event, CancelEvent) and event.reason is CancelationReason.CONDITION
    assert event.message == "first" and event.source is src
    late: list[object] = []
    src.subscribe(late.append)  # subscribing after the fact replays the event
    assert late == seen


def test_sources_pipe_through_stock_operators() -> None:
    src = TimeoutSource(1)
    reasons: list[str] = []
    src.pipe(ops.map(lambda e: e.reason.value)).subscribe(reasons.append)
    src.fire()
    assert reasons == ["timeout"]


def test_dispose_is_idempotent() -> None:
    src = TokenSource(CancelationToken())
    seen: list[object] = []
    sub = src.subscribe(seen.append)
    sub.dispose()
    sub.dispose()
    src.fire()
    assert seen == []


def test_operators_build_composites() -> None:
    a, b, c = TimeoutSource(1), TimeoutSource(2), ConditionSource(lambda: False)
    anyof = a | b | c
    assert isinstance(anyof, AnyOfSource) and anyof.sources == [a, b, c]
    allof = a & c
    assert isinstance(allof, AllOfSource) and allof.sources == [a, c]
    assert isinstance(any_of(a, b), AnyOfSource) and isinstance(all_of([a, b]), AllOfSource)
    assert isinstance(anyof, CompositeSource)
    token = CancelationToken()
    mixed = a | token | reactivex.never()
    assert isinstance(mixed.sources[1], TokenSource) and isinstance(mixed.sources[2], ObservableSource)


@pytest.mark.parametrize("bad", [3, "x", None, object()])
def test_operators_reject_non_sources(bad: object) -> None:
    with pytest.raises(TypeError, match="must be a CancelationSource, a CancelationToken or a reactivex Observable"):
        TimeoutSource(1) | bad  # type: ignore[operator]
    with pytest.raises(TypeError, match="add_source"):
        Cancelable().add_source(bad)


def test_composite_needs_sources() -> None:
    with pytest.raises(ValueError, match="At least one source is required"):
        AnyOfSource()


async def test_add_source_after_enter_is_an_error() -> None:
    async with Cancelable() as op:
        with pytest.raises(RuntimeError, match="before the operation is entered"):
            op.add_source(TimeoutSource(1))


async def test_any_of_timeout_via_add_source_fires_on_time() -> None:
    start = anyio.current_time()
    op = Cancelable().add_source(AnyOfSource([TimeoutSource(5), TimeoutSource(0.05), ConditionSource(lambda: False, 0.01)]))
    with pytest.raises(TimeoutCancelation) as info:
        async with op:
            await anyio.sleep(5)
    assert anyio.current_time() - start < 2
    assert info.value.timeout_seconds == 0.05


async def test_timeout_source_observers_see_the_deadline() -> None:
    src = TimeoutSource(0.02)
    seen: list[CancelEvent] = []
    src.subscribe(seen.append)
    with pytest.raises(TimeoutCancelation):
        async with Cancelable().add_source(src):
            await anyio.sleep(5)
    assert len(seen) == 1 and seen[0].reason is CancelationReason.TIMEOUT


async def test_all_of_waits_for_every_part() -> None:
    flag = False
    start = anyio.current_time()
    src = TimeoutSource(0.02) & ConditionSource(lambda: flag, 0.01, "flag")

    async def set_flag_later() -> None:
        nonlocal flag
        await anyio.sleep(0.2)
        flag = True

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(set_flag_later)
            with pytest.raises(ConditionCancelation) as info:
                async with Cancelable().add_source(src):
                    await anyio.sleep(0.1)
                    assert src.fired_count == 1  # the timeout alone is not enough
                    await anyio.sleep(5)
    assert anyio.current_time() - start >= 0.2
    assert info.value.reason is CancelationReason.CONDITION  # the last part completed it


async def test_all_of_timeout_last_is_timeout() -> None:
    token = CancelationToken()
    await token.cancel()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable().add_source(TokenSource(token) & TimeoutSource(0.05)):
            await anyio.sleep(5)


async def test_observable_source_first_item_cancels_from_another_thread() -> None:
    subject: Subject[int] = Subject()
    entered = threading.Event()

    def emitter() -> None:
        entered.wait(5)
        subject.on_next(42)

    thread = threading.Thread(target=emitter)
    thread.start()
    with anyio.fail_after(5), pytest.raises(CancelationError) as info:
        async with Cancelable.with_observable(subject, CancelationReason.CONDITION, "quota hit"):
            entered.set()
            await anyio.sleep_forever()
    thread.join(5)
    assert info.value.reason is CancelationReason.CONDITION and info.value.message == "quota hit"


async def test_observable_error_cancels_with_error_reason() -> None:
    with pytest.raises(CancelationError) as info:
        async with Cancelable.with_observable(reactivex.throw(RuntimeError("feed died"))):
            await anyio.sleep(5)
    assert info.value.reason is CancelationReason.ERROR and "feed died" in info.value.message


async def test_observable_subscription_is_disposed_at_exit() -> None:
    subject: Subject[int] = Subject()
    async with Cancelable().add_source(subject):
        assert len(subject.observers) == 1
    assert subject.observers == []


async def test_token_source_uses_token_reason() -> None:
    token = CancelationToken()
    with pytest.raises(ManualCancelation, match="by token"):
        async with Cancelable().add_source(TimeoutSource(5) | TokenSource(token)):
            await token.cancel(message="by token")
            await anyio.sleep(5)
    assert token.listener_count == 0


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


@pytest.mark.parametrize(
    ("kwargs", "exc", "pattern"),
    [
        ({"condition": 42}, TypeError, r"`condition` must be a callable.*got 42"),
        ({"condition": bool, "check_interval": 0}, ValueError, r"`check_interval` must be a finite number of seconds > 0, got 0"),
        ({"condition": bool, "check_interval": -0.5}, ValueError, r"got -0.5"),
        ({"condition": bool, "check_interval": float("inf")}, ValueError, r"got inf"),
        ({"condition": bool, "check_interval": "1"}, TypeError, r"got '1'"),
    ],
)
def test_bad_condition_arguments(kwargs: dict[str, object], exc: type[Exception], pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        Cancelable.with_condition(**kwargs)  # type: ignore[arg-type]


def test_bad_observable_arguments() -> None:
    with pytest.raises(TypeError, match="reactivex Observable"):
        Cancelable.with_observable([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`reason` must be a CancelationReason.*got 'soon'"):
        ObservableSource(reactivex.never(), reason="soon")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`reason` must be a CancelationReason.*got 3"):
        ObservableSource(reactivex.never(), reason=3)  # type: ignore[arg-type]


async def test_condition_poller_stops_at_exit() -> None:
    calls = 0

    def count() -> bool:
        nonlocal calls
        calls += 1
        return False

    async with Cancelable.with_condition(count, check_interval=0.01):
        await anyio.sleep(0.05)
    after_exit = calls
    await anyio.sleep(0.05)
    assert calls == after_exit > 0


async def test_operation_cancellation_is_a_hot_observable() -> None:
    op = Cancelable.with_timeout(0.02, suppress_cancelation=True)
    early: list[CancelEvent] = []
    op.cancellation.subscribe(early.append)
    async with op:
        await anyio.sleep(1)
    late: list[CancelEvent] = []
    op.cancellation.subscribe(late.append)  # replayed to a late subscriber
    assert len(early) == 1 and early == late and early[0].reason is CancelationReason.TIMEOUT


async def test_parent_source_links_operations_in_other_tasks() -> None:
    from cancelable_rx import ParentCancelation, ParentSource

    leader = Cancelable.with_timeout(0.05, name="leader", suppress_cancelation=True)
    follower_error: list[BaseException] = []
    ready = anyio.Event()

    async def follower() -> None:
        try:
            async with Cancelable(name="follower").add_source(ParentSource(leader) | TimeoutSource(5)):
                ready.set()
                await anyio.sleep_forever()
        except CancelationError as err:
            follower_error.append(err)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follower)
            await ready.wait()
            async with leader:
                await anyio.sleep(1)
    [err] = follower_error
    assert isinstance(err, ParentCancelation)
    assert err.parent_id == leader.id and err.parent_reason is CancelationReason.TIMEOUT
    assert "leader" in err.message


def test_parent_source_rejects_non_operations() -> None:
    from cancelable_rx import ParentSource

    with pytest.raises(TypeError, match="`operation` must be a Cancelable"):
        ParentSource("op")  # type: ignore[arg-type]
