"""The source interface (``sources/base.py``): hot fire-once observables, arm -> disarm,
the host an operation offers its sources, ``as_source``, the ``|`` / ``&`` operators and
the any-of / all-of composites (with hypothesis properties); on asyncio and trio."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import pytest
import reactivex
from hypothesis import given
from hypothesis import strategies as st
from reactivex import operators as ops

from cancelable_rx import (
    AllOfSource,
    AnyOfSource,
    Cancelable,
    CancelationError,
    CancelationReason,
    CancelationSource,
    CancelationToken,
    CancelEvent,
    CompositeSource,
    ConditionCancelation,
    ConditionSource,
    ManualCancelation,
    ObservableSource,
    OperationStatus,
    SourceHost,
    TimeoutCancelation,
    TimeoutSource,
    TokenSource,
    all_of,
    any_of,
    as_source,
)

pytestmark = pytest.mark.anyio

reasons = st.sampled_from(list(CancelationReason))


class _Host:
    """A minimal source host: token sources need no loop or task to fire by hand."""

    applies_deadlines = True

    def run_soon(self, fn: object) -> None:  # pragma: no cover - never hops here
        raise AssertionError("no hop expected")

    call = run_soon
    fail = run_soon

    def start_soon(self, fn: object) -> None:  # pragma: no cover - never needs tasks here
        raise AssertionError("no task expected")


# -- a source is a hot, fire-once observable --------------------------------------------------


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


# -- arm returns what disarms ----------------------------------------------------------------


def test_arm_returns_a_disarm_callable_and_a_fired_source_arms_nothing() -> None:
    token = CancelationToken()
    src = TokenSource(token)
    disarm = src.arm(_Host())
    assert callable(disarm) and token.listener_count == 1
    disarm()
    assert token.listener_count == 0
    token.cancel_sync(message="after disarm")
    assert not src.triggered  # disarmed: the token no longer reaches the source
    src.fire()
    assert src.arm(_Host()) is None  # a source that has fired arms nothing
    assert CancelationSource().arm(_Host()) is None  # the base hook watches nothing


class _UserSource(CancelationSource):
    """A source written against the interface: background work through the host, fired
    from that work, and a disarm callable."""

    needs_background = True

    def __init__(self, trigger: anyio.Event) -> None:
        super().__init__("user")
        self.trigger = trigger
        self.armed = 0
        self.disarmed = 0
        self.work_ended = False

    def on_arm(self, host: SourceHost) -> Callable[[], None]:
        self.armed += 1

        async def work() -> None:
            try:
                await self.trigger.wait()
                self.fire("user source fired")
                await anyio.sleep_forever()
            finally:
                self.work_ended = True

        host.start_soon(work)

        def disarm() -> None:
            self.disarmed += 1

        return disarm


async def test_a_user_source_is_armed_runs_background_work_and_is_disarmed() -> None:
    quiet = _UserSource(anyio.Event())
    async with Cancelable().add_source(quiet) as op:
        assert quiet.armed == 1 and quiet.disarmed == 0
    assert op.is_completed and quiet.disarmed == 1 and quiet.work_ended

    trigger = anyio.Event()
    firing = _UserSource(trigger)
    with anyio.fail_after(5), pytest.raises(ManualCancelation, match="user source fired"):
        async with Cancelable().add_source(firing):
            trigger.set()
            await anyio.sleep_forever()
    assert firing.disarmed == 1 and firing.work_ended


class _NamedByValue(CancelationSource):
    reason = "condition"  # type: ignore[assignment]  # the str enum's value, as users write it


async def test_a_reason_named_by_its_value_is_the_member_everywhere() -> None:
    # A source class (or instance) naming its reason by value: the operation records the
    # member, so its record, its hooks, its parent and the raised error all agree.
    assert _NamedByValue.reason is CancelationReason.CONDITION
    seen: list[object] = []
    src = _NamedByValue()
    with pytest.raises(ManualCancelation):  # the parent's own cancellation, after the child's
        async with Cancelable(name="parent") as parent:
            with pytest.raises(ConditionCancelation, match="met"):
                async with Cancelable(name="child", parent=parent).add_source(src) as child:
                    child.on_cancel(lambda ctx: seen.append(ctx.cancel_reason))
                    src.fire("met")
                    await anyio.sleep(5)
            assert child.cancel_reason is CancelationReason.CONDITION
            assert child.context.cancel_reason is CancelationReason.CONDITION
            assert seen == [CancelationReason.CONDITION]
            await parent.cancel()  # the ended child is left alone
            await anyio.sleep(5)
    assert child.cancel_reason is CancelationReason.CONDITION

    later = CancelationSource()
    later.reason = "timeout"  # type: ignore[assignment]
    with pytest.raises(TimeoutCancelation):
        async with Cancelable().add_source(later) as op:
            later.fire()
            await anyio.sleep(5)
    assert op.cancel_reason is later.reason is CancelationReason.TIMEOUT


def test_a_reason_that_is_no_member_fails_where_the_class_is_defined() -> None:
    with pytest.raises(ValueError, match=r"`Misnamed.reason` must be a CancelationReason \(timeout, manual.*got 'cancelled'; e\.g\. reason = CancelationReason\.MANUAL"):

        class Misnamed(CancelationSource):
            reason = "cancelled"  # type: ignore[assignment]

    with pytest.raises(ValueError, match=r"got 'TIMEOUT'; reason = CancelationReason\.TIMEOUT"):

        class Shouted(CancelationSource):
            reason = "TIMEOUT"  # type: ignore[assignment]

    with pytest.raises(TypeError, match=r"`Unset.reason` must be a CancelationReason, got None"):

        class Unset(CancelationSource):
            reason = None  # type: ignore[assignment]

    wrong = CancelationSource()
    wrong.reason = 3  # type: ignore[assignment]
    assert str(wrong) == "CancelationSource(reason=3)"  # (loggers call it: it never raises)
    with pytest.raises(TypeError, match=r"`CancelationSource.reason` must be a CancelationReason, got 3"):
        wrong.fire()
    assert not wrong.triggered


async def test_a_reason_may_be_a_property_and_callbacks_see_the_member() -> None:
    class Configured(CancelationSource):
        def __init__(self, reason: str) -> None:
            super().__init__(name="configured")
            self._configured = reason

        @property  # type: ignore[override]
        def reason(self) -> str:
            return self._configured

    src = Configured("signal")
    with pytest.raises(CancelationError) as caught:
        async with Cancelable().add_source(src) as op:
            src.fire()
            await anyio.sleep(5)
    assert caught.value.reason is op.cancel_reason is CancelationReason.SIGNAL

    seen: list[object] = []
    named = CancelationSource()
    named.reason = "timeout"  # type: ignore[assignment]
    named.set_cancel_callback(lambda reason, message: seen.append(reason))
    assert str(named) == "CancelationSource(reason=timeout)"
    await named.trigger_cancelation("now")
    assert seen == [CancelationReason.TIMEOUT] and named.reason is CancelationReason.TIMEOUT


class _FailingSource(CancelationSource):
    """A source that cannot go on watching: ``host.fail`` or an exception in its work."""

    needs_background = True

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def on_arm(self, host: SourceHost) -> None:
        if self.how == "fail":
            host.fail(RuntimeError("sensor gone"))
            return

        async def work() -> None:
            await anyio.lowlevel.checkpoint()
            raise RuntimeError("sensor gone")

        host.start_soon(work)


@pytest.mark.parametrize("how", ["fail", "work raises"])
async def test_a_source_that_fails_fails_the_operation(how: str) -> None:
    with anyio.fail_after(5), pytest.raises(RuntimeError, match="sensor gone"):
        async with Cancelable().add_source(_FailingSource(how)) as op:
            await anyio.sleep_forever()
    assert op.status is OperationStatus.FAILED and op.context.error == "sensor gone"


# -- as_source and the operators -------------------------------------------------------------


def test_as_source_passes_sources_and_wraps_tokens_and_observables() -> None:
    src = TimeoutSource(1)
    assert as_source(src) is src
    token = CancelationToken()
    wrapped = as_source(token)
    assert isinstance(wrapped, TokenSource) and wrapped.token is token
    never = reactivex.never()
    from_observable = as_source(never)
    assert isinstance(from_observable, ObservableSource) and from_observable.observable is never


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


@pytest.mark.parametrize("bad", ["x", None, object()])  # 3 is a row of test_checks.py
def test_operators_reject_non_sources(bad: object) -> None:
    with pytest.raises(TypeError, match="must be a CancelationSource, a CancelationToken or a reactivex Observable"):
        TimeoutSource(1) | bad  # type: ignore[operator]
    with pytest.raises(TypeError, match="add_source"):
        Cancelable().add_source(bad)


# -- all-of ------------------------------------------------------------------------------------


async def test_all_of_waits_for_every_part() -> None:
    flag = False
    timeout_part = TimeoutSource(0.02)
    src = timeout_part & ConditionSource(lambda: flag, 0.01, "flag")
    timeout_fired, checked = anyio.Event(), anyio.Event()
    timeout_part.subscribe(lambda _: timeout_fired.set())
    start = anyio.current_time()

    async def set_flag_later() -> None:
        nonlocal flag
        await checked.wait()
        await anyio.sleep_until(start + 0.2)  # the timeout alone holds for a while: nothing fires
        flag = True

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(set_flag_later)
            with pytest.raises(ConditionCancelation) as info:
                async with Cancelable().add_source(src):
                    await timeout_fired.wait()
                    assert src.fired_count == 1  # the timeout alone is not enough
                    checked.set()
                    await anyio.sleep(5)
    assert anyio.current_time() - start >= 0.2
    assert info.value.reason is CancelationReason.CONDITION  # the last part completed it


async def test_all_of_timeout_last_is_timeout() -> None:
    token = CancelationToken()
    await token.cancel()
    with pytest.raises(TimeoutCancelation):
        async with Cancelable().add_source(TokenSource(token) & TimeoutSource(0.05)):
            await anyio.sleep(5)


# -- properties (hypothesis) -------------------------------------------------------------------


@given(order=st.permutations(range(4)), reasons_=st.lists(reasons, min_size=4, max_size=4))
def test_any_of_fires_once_with_the_first_reason(order: list[int], reasons_: list[CancelationReason]) -> None:
    tokens = [CancelationToken() for _ in range(4)]
    anyof = AnyOfSource(*[TokenSource(t) for t in tokens])
    seen: list[CancelEvent] = []
    anyof._listen(seen.append)
    disarm = anyof.arm(_Host())
    for i in order:
        tokens[i].cancel_sync(reasons_[i], f"token {i}")
    assert disarm is not None
    disarm()
    assert len(seen) == 1
    assert seen[0].reason is reasons_[order[0]] and seen[0].message == f"token {order[0]}"
    assert all(t.listener_count == 0 for t in tokens)


@given(order=st.permutations(range(3)), reasons_=st.lists(reasons, min_size=3, max_size=3))
def test_all_of_fires_exactly_when_the_last_part_fires(order: list[int], reasons_: list[CancelationReason]) -> None:
    tokens = [CancelationToken() for _ in range(3)]
    parts = [TokenSource(t) for t in tokens]
    allof = AllOfSource(*parts)
    seen: list[CancelEvent] = []
    allof._listen(seen.append)
    disarm = allof.arm(_Host())
    for i in order:
        assert seen == []  # not before every part has fired
        tokens[i].cancel_sync(reasons_[i], f"part {i}")
        tokens[i].cancel_sync(CancelationReason.ERROR, "again")  # a part counts once
    assert disarm is not None
    disarm()
    assert len(seen) == 1
    last = order[-1]
    assert seen[0].reason is reasons_[last] and seen[0].source is parts[last]
    assert allof.fired_count == 3


# -- a source shared by operations that run at the same time ----------------------------


@pytest.mark.parametrize("kind", ["token", "any_of", "parent"])
async def test_a_source_shared_by_running_operations_keeps_working_after_one_exits(kind: str) -> None:
    from cancelable_rx import CancelationError, ParentSource, TimeoutSource, TokenSource

    token = CancelationToken()
    watched = Cancelable(name="watched", suppress_cancelation=True)
    if kind == "token":
        shared: object = TokenSource(token)
    elif kind == "any_of":
        shared = TokenSource(token) | TimeoutSource(60)
    else:
        shared = ParentSource(watched)
    first_done, second_entered = anyio.Event(), anyio.Event()
    outcome: list[type[BaseException]] = []

    async def first() -> None:
        async with Cancelable(name="first").add_source(shared):  # type: ignore[arg-type]
            await second_entered.wait()  # both are armed with the same source now
        first_done.set()

    async def second() -> None:
        try:
            async with Cancelable(name="second").add_source(shared):  # type: ignore[arg-type]
                second_entered.set()
                await anyio.sleep(5)
        except CancelationError as err:
            outcome.append(type(err))

    watched_entered = anyio.Event()

    async def watched_task() -> None:
        async with watched:
            watched_entered.set()
            await anyio.sleep_forever()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watched_task)
            await watched_entered.wait()
            tg.start_soon(second)
            tg.start_soon(first)
            await first_done.wait()  # the first operation disarmed its own arming
            if kind == "parent":
                watched.cancel_sync(message="stop")
            else:
                token.cancel_sync(message="stop")
                watched.cancel_sync()
    assert len(outcome) == 1  # the second operation was still stopped by the shared source
