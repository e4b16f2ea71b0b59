"""Sources written against hother-cancelable's API: ``start_monitoring(scope)`` /
``stop_monitoring()`` / ``trigger_cancelation(message)`` subclasses armed by operations, and
the library's sources driven directly through that API."""

from __future__ import annotations

import logging
import signal
from datetime import timedelta

import anyio
import pytest

from cancelable_rx import (
    AllOfSource,
    AnyOfSource,
    Cancelable,
    CancelationReason,
    CancelationSource,
    CompositeSource,
    ConditionCancelation,
    ManualCancelation,
    OperationStatus,
    SignalSource,
    TimeoutCancelation,
    TimeoutSource,
)

pytestmark = pytest.mark.anyio


class Ticker(CancelationSource):
    """A reference-style source: counts ticks in a task group of its own and triggers at ``limit``."""

    def __init__(self, limit: int, reason: CancelationReason = CancelationReason.CONDITION, name: str | None = None):
        super().__init__(reason, name)
        self.limit = limit
        self.ticks = 0
        self.started = self.stopped = 0

    async def start_monitoring(self, scope: anyio.CancelScope) -> None:
        await super().start_monitoring(scope)
        self.started += 1
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run)

    async def _run(self) -> None:
        while True:
            await anyio.sleep(0.005)
            self.ticks += 1
            if self.ticks >= self.limit:
                await self.trigger_cancelation(f"{self.ticks} ticks")
                return

    async def stop_monitoring(self) -> None:
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        await super().stop_monitoring()
        self.stopped += 1


class Stopless(CancelationSource):
    """A reference-style source whose stop fails."""

    stop_called = False

    async def start_monitoring(self, scope: anyio.CancelScope) -> None:
        self.scope = scope

    async def stop_monitoring(self) -> None:
        self.stop_called = True
        raise RuntimeError("cannot stop")


async def test_a_reference_style_source_cancels_with_its_reason_and_is_stopped() -> None:
    src = Ticker(3)
    assert src.name == "Ticker" and str(src) == "Ticker(reason=condition)" and src.triggered is False
    with anyio.fail_after(5), pytest.raises(ConditionCancelation, match="3 ticks") as info:
        async with Cancelable().add_source(src) as op:
            await anyio.sleep(10)
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.CONDITION
    assert info.value.message == "3 ticks"
    assert (src.started, src.stopped) == (1, 1) and src.triggered and src.scope is not None


async def test_a_reference_style_source_is_stopped_when_the_body_ends_first() -> None:
    src = Ticker(10_000, CancelationReason.MANUAL, name="slow")
    async with Cancelable().add_source(src) as op:
        await anyio.sleep(0.02)
    assert op.status is OperationStatus.COMPLETED and (src.started, src.stopped) == (1, 1)
    assert str(src) == "slow(reason=manual)" and not src.triggered


async def test_reference_style_sources_compose_with_library_sources() -> None:
    fast, slow = Ticker(2, CancelationReason.MANUAL), Ticker(10_000)
    with anyio.fail_after(5), pytest.raises(ManualCancelation):
        async with Cancelable().add_source(fast | slow | TimeoutSource(5)):
            await anyio.sleep(10)
    assert fast.stopped == slow.stopped == 1
    both = Ticker(2) & TimeoutSource(0.05)
    with anyio.fail_after(5), pytest.raises(TimeoutCancelation):  # all-of: the timeout completes the set
        async with Cancelable().add_source(both):
            await anyio.sleep(10)
    assert both.triggered_source is both.sources[1] and both.triggered_sources == set(both.sources)


async def test_the_cancel_callback_runs_sync_or_async_and_its_errors_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[CancelationReason, str]] = []

    async def record(reason: CancelationReason, message: str) -> None:
        seen.append((reason, message))

    src = Ticker(1)
    src.set_cancel_callback(record)
    with pytest.raises(ConditionCancelation):
        async with Cancelable().add_source(src):
            await anyio.sleep(5)
    assert seen == [(CancelationReason.CONDITION, "1 ticks")]

    def broken(reason: CancelationReason, message: str) -> None:
        raise RuntimeError("callback broke")

    other = Ticker(1)
    other.set_cancel_callback(broken)
    with caplog.at_level(logging.ERROR, "cancelable_rx"), pytest.raises(ConditionCancelation):
        async with Cancelable().add_source(other):
            await anyio.sleep(5)
    assert "callback broke" in caplog.text


async def test_a_source_may_cancel_its_scope_or_give_it_a_deadline() -> None:
    class ScopeUser(CancelationSource):
        def __init__(self, how: str) -> None:
            super().__init__(CancelationReason.TIMEOUT)
            self.how = how

        async def start_monitoring(self, scope: anyio.CancelScope) -> None:
            self.scope = scope
            if self.how == "deadline":
                scope.deadline = anyio.current_time() + 0.02
            else:
                scope.cancel()

        async def stop_monitoring(self) -> None:
            pass

    for how in ("deadline", "cancel"):
        with anyio.fail_after(5), pytest.raises(TimeoutCancelation):
            async with Cancelable().add_source(ScopeUser(how)) as op:
                await anyio.sleep(10)
        assert op.cancel_reason is CancelationReason.TIMEOUT


async def test_a_source_whose_start_fails_fails_the_operation() -> None:
    class Broken(CancelationSource):
        async def start_monitoring(self, scope: anyio.CancelScope) -> None:
            raise RuntimeError("cannot watch")

        async def stop_monitoring(self) -> None:
            pass

    with anyio.fail_after(5), pytest.raises(RuntimeError, match="cannot watch"):
        async with Cancelable().add_source(Broken(CancelationReason.MANUAL)) as op:
            await anyio.sleep(10)
    assert op.status is OperationStatus.FAILED and op.context.error == "cannot watch"


async def test_library_sources_follow_the_reference_api_when_driven_directly() -> None:
    timeout = TimeoutSource(timedelta(milliseconds=30))
    assert timeout.timeout == pytest.approx(0.03) and timeout.name == "TimeoutSource"
    scope = anyio.CancelScope()
    await timeout.start_monitoring(scope)
    with scope:
        await anyio.sleep(5)
    assert scope.cancelled_caught
    await timeout.stop_monitoring()
    assert timeout.triggered

    fired: list[str] = []
    composite = CompositeSource([Ticker(2, CancelationReason.SIGNAL, name="t"), TimeoutSource(10)])
    composite.set_cancel_callback(lambda reason, message: fired.append(message))
    assert composite.name == "composite" and AnyOfSource(TimeoutSource(1)).name == "any_of"
    assert AllOfSource([TimeoutSource(1)]).name == "all_of"
    scope = anyio.CancelScope()
    await composite.start_monitoring(scope)
    with anyio.fail_after(5):
        while not scope.cancel_called:
            await anyio.sleep(0.005)
    await anyio.sleep(0.01)
    await composite.stop_monitoring()
    assert composite.triggered_source is composite.sources[0] and composite.reason is CancelationReason.SIGNAL
    assert fired == ["2 ticks"] and composite.sources[0].stopped == 1


async def test_a_composite_started_directly_and_stopped_at_once_starts_and_stops_every_part(
    caplog: pytest.LogCaptureFixture,
) -> None:
    for kind in (CompositeSource, AllOfSource):
        parts = [Ticker(10_000, name="a"), Ticker(10_000, name="b")]
        composite = kind(list(parts))
        caplog.clear()
        await composite.start_monitoring(anyio.CancelScope())
        await composite.stop_monitoring()  # at once: no checkpoint of ours in between
        assert [(p.started, p.stopped) for p in parts] == [(1, 1), (1, 1)]
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    # a part whose stop fails is logged; the composite's stop returns
    stopless = Stopless(CancelationReason.MANUAL)
    composite = CompositeSource([stopless])
    await composite.start_monitoring(anyio.CancelScope())
    await composite.stop_monitoring()
    assert stopless.stop_called and "stop_monitoring() of Stopless" in caplog.text


async def test_a_source_is_stopped_exactly_when_it_was_started() -> None:
    quick = Ticker(10_000)
    async with Cancelable().add_source(quick) as op:
        pass  # no checkpoint: the operation leaves before its monitoring task began
    assert op.status is OperationStatus.COMPLETED and (quick.started, quick.stopped) == (0, 0)
    slow = Ticker(10_000)
    async with Cancelable().add_source(slow):
        await anyio.sleep(0.01)
    assert (slow.started, slow.stopped) == (1, 1)


async def test_reference_argument_checks_keep_their_wording() -> None:
    with pytest.raises(ValueError, match="At least one source is required"):
        CompositeSource([])
    with pytest.raises(ValueError, match="Timeout must be positive"):
        TimeoutSource(0)
    with pytest.raises(TypeError, match="Signal must be an integer"):
        SignalSource("SIGINT")  # type: ignore[arg-type]
    assert SignalSource().signals == (signal.SIGINT, signal.SIGTERM)
    assert Cancelable.with_timeout(0) is not None  # an operation's zero timeout stays valid (as in anyio)
