"""``cancelable_stream(..., operation=op)``: a stream run under an operation the caller made
(not entered), with the detached cursor semantics of every ``cancelable_stream``; on
asyncio and trio."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import AsyncIterator

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    CancelationReason,
    CancelationToken,
    ManualCancelation,
    OperationRegistry,
    OperationStatus,
    TimeoutCancelation,
    cancelable_stream,
    compat,
)

pytestmark = pytest.mark.anyio


class Source:
    """An async generator source that records whether it was closed."""

    def __init__(self, n: int, delay: float = 0.0) -> None:
        self.n, self.delay, self.closed = n, delay, False

    async def gen(self) -> AsyncIterator[int]:
        try:
            for i in range(self.n):
                if self.delay:
                    await anyio.sleep(self.delay)
                yield i
        finally:
            self.closed = True


async def test_the_stream_runs_the_given_operation_to_completion() -> None:
    op = Cancelable(name="rows")
    counts: list[int] = []
    s = cancelable_stream(
        Source(5).gen(), operation=op, buffer_partial=True, report_interval=2, on_progress=lambda n, _: counts.append(n)
    )
    assert s.operation is op and op.status is OperationStatus.PENDING  # started by the first item request
    assert [x async for x in s] == [0, 1, 2, 3, 4]
    assert op.status is OperationStatus.COMPLETED and op.name == "rows"
    assert op.partial_result is not None
    assert (op.partial_result.count, op.partial_result.completed, op.partial_result.buffer) == (5, True, [0, 1, 2, 3, 4])
    assert counts == [2, 4]


async def test_the_given_operations_timeout_counts_from_the_first_item_and_stops_the_stream() -> None:
    op = Cancelable.with_timeout(0.1, name="slow feed")
    src = Source(1000, delay=0.01)
    s = cancelable_stream(src.gen(), operation=op)
    await anyio.sleep(0.15)  # longer than the timeout, before the stream starts: nothing runs yet
    seen = 0
    start = anyio.current_time()
    with anyio.fail_after(5), pytest.raises(TimeoutCancelation):
        async for _ in s:
            seen += 1
    assert 0.05 < anyio.current_time() - start < 2
    assert seen > 0
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.TIMEOUT
    assert op.partial_result is not None and op.partial_result.count == seen
    assert src.closed


async def test_a_source_added_to_the_given_operation_interrupts_a_pending_fetch() -> None:
    token = CancelationToken()
    op = Cancelable(name="feed").add_source(token)
    src = Source(10, delay=10)  # each item takes 10 s: the cancel lands inside the fetch

    async def cancel_soon() -> None:
        await anyio.sleep(0.05)
        await token.cancel(message="client left")

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_soon)
            with pytest.raises(ManualCancelation, match="client left"):
                async for _ in cancelable_stream(src.gen(), operation=op):
                    pass  # pragma: no cover
    assert op.status is OperationStatus.CANCELLED and op.cancel_message is not None
    assert "client left" in op.cancel_message
    assert src.closed


async def test_a_child_of_a_running_operation_inherits_its_deadline() -> None:
    async with Cancelable.with_timeout(30, name="request") as request:
        op = Cancelable(name="body", parent=request)
        left = [op.remaining() async for _ in cancelable_stream(Source(3).gen(), operation=op)]
        assert all(0 < seconds <= 30 for seconds in left)  # the parent's deadline, not inf
        assert op.status is OperationStatus.COMPLETED and op.parent is request


async def test_a_plain_break_ends_the_given_operation_and_closes_the_source() -> None:
    op = Cancelable()
    src = Source(100)
    async for item in cancelable_stream(src.gen(), operation=op, buffer_partial=True):
        if item == 2:
            break  # no aclosing
    with anyio.fail_after(5):
        while not src.closed:  # ended and closed in the background, on the loop
            await anyio.lowlevel.checkpoint()
    assert op.status is OperationStatus.COMPLETED
    assert op.partial_result is not None and op.partial_result.buffer == [0, 1, 2]
    assert not op.partial_result.completed


async def test_the_given_operation_is_tracked_by_the_registry_while_it_streams() -> None:
    registry = OperationRegistry.get_instance()
    op = Cancelable(name="tracked stream 7f3a", register_globally=True)
    seen_running = []
    async for _ in cancelable_stream(Source(3).gen(), operation=op):
        seen_running.append([o.id for o in registry.list_operations_sync(name_pattern="tracked stream 7f3a")])
    assert seen_running == [[op.id]] * 3
    assert registry.list_operations_sync(name_pattern="tracked stream 7f3a") == []
    assert op.remaining() == math.inf and op.status is OperationStatus.COMPLETED


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 1}, {"token": CancelationToken()}, {"operation_id": "x"}, {"name": "x"}],
    ids=["timeout", "token", "operation_id", "name"],
)
async def test_configuring_both_the_stream_and_the_given_operation_is_refused(kwargs: dict[str, object]) -> None:
    param = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"`{param}` must be None when operation= is given"):
        cancelable_stream(Source(1).gen(), operation=Cancelable(), **kwargs)  # type: ignore[arg-type]


async def test_an_operation_runs_once() -> None:
    async with Cancelable() as entered:
        with pytest.raises(ValueError, match="has not been entered"):
            cancelable_stream(Source(1).gen(), operation=entered)
    op = Cancelable()
    assert [x async for x in cancelable_stream(Source(2).gen(), operation=op)] == [0, 1]
    with pytest.raises(ValueError, match="has not been entered"):
        cancelable_stream(Source(2).gen(), operation=op)  # already streamed (and ended)


async def test_operation_must_be_a_cancelable() -> None:
    with pytest.raises(TypeError, match="`operation` must be a Cancelable or None"):
        cancelable_stream(Source(1).gen(), operation=CancelationToken())  # type: ignore[arg-type]


class Calls:
    """Status callbacks that record (kind, status seen, error) in the order they ran; the
    async ones await a checkpoint, so a callback that is not awaited would not finish."""

    def __init__(self, op: Cancelable) -> None:
        self.seen: list[tuple[str, OperationStatus, object]] = []
        op.on_start(self.start).on_complete(self.complete).on_cancel(self.cancel).on_error(self.error)

    def start(self, ctx: object) -> None:
        self.seen.append(("start", ctx.status, None))  # type: ignore[attr-defined]

    async def complete(self, ctx: object) -> None:
        await anyio.lowlevel.checkpoint()
        self.seen.append(("complete", ctx.status, None))  # type: ignore[attr-defined]

    async def cancel(self, ctx: object) -> None:
        await anyio.lowlevel.checkpoint()
        self.seen.append(("cancel", ctx.status, ctx.cancel_reason))  # type: ignore[attr-defined]

    def error(self, ctx: object, err: BaseException) -> None:
        self.seen.append(("error", ctx.status, err))  # type: ignore[attr-defined]


async def test_status_callbacks_run_when_the_stream_completes() -> None:
    op = Cancelable()
    calls = Calls(op)
    items = [i async for i in cancelable_stream(Source(3).gen(), operation=op)]
    assert items == [0, 1, 2]
    assert calls.seen == [("start", OperationStatus.RUNNING, None), ("complete", OperationStatus.COMPLETED, None)]


async def test_status_callbacks_run_before_the_typed_error_of_a_cancelled_stream() -> None:
    op = Cancelable.with_timeout(0.05)
    calls = Calls(op)
    with pytest.raises(TimeoutCancelation):
        async for _ in cancelable_stream(Source(100, delay=0.02).gen(), operation=op):
            pass
    assert calls.seen == [
        ("start", OperationStatus.RUNNING, None),
        ("cancel", OperationStatus.CANCELLED, CancelationReason.TIMEOUT),
    ]


async def test_status_callbacks_run_for_a_source_that_raises() -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise KeyError("boom")

    op = Cancelable()
    calls = Calls(op)
    with pytest.raises(KeyError):
        async for _ in cancelable_stream(failing(), operation=op):
            pass
    assert [kind for kind, _, _ in calls.seen] == ["start", "error"]
    kind, status, err = calls.seen[1]
    assert status is OperationStatus.FAILED and isinstance(err, KeyError)


async def test_status_callbacks_run_for_a_stream_left_by_a_plain_break() -> None:
    op = Cancelable()
    calls = Calls(op)
    src = Source(100)
    async for item in cancelable_stream(src.gen(), operation=op):
        if item == 1:
            break  # no aclosing: ended on the loop, callbacks included
    with anyio.fail_after(5):
        while len(calls.seen) < 2:
            await anyio.lowlevel.checkpoint()
    assert calls.seen == [("start", OperationStatus.RUNNING, None), ("complete", OperationStatus.COMPLETED, None)]
    assert src.closed


class ClosingFails:
    """An async iterator whose ``aclose()`` raises, as a source that cannot release what it holds."""

    def __init__(self, n: int) -> None:
        self.i, self.n = 0, n

    def __aiter__(self) -> ClosingFails:
        return self

    async def __anext__(self) -> int:
        await anyio.lowlevel.checkpoint()
        if self.i >= self.n:
            raise StopAsyncIteration
        self.i += 1
        return self.i

    async def aclose(self) -> None:
        raise RuntimeError("close failed")


@pytest.mark.parametrize("ending", ["exhausted", "cancelled"])
async def test_a_source_that_fails_to_close_fails_the_stream_as_in_a_block(ending: str) -> None:
    """The outcome is decided once the source is closed, as leaving a block closes its stream
    first: the consumer, the status and the callbacks all see the failed close."""
    outcomes = []
    for detached in (True, False):
        token = CancelationToken()
        op = Cancelable.with_token(token)
        calls = Calls(op)
        with pytest.raises(RuntimeError, match="close failed"):
            if detached:
                async for item in cancelable_stream(ClosingFails(5), operation=op):
                    if ending == "cancelled" and item == 2:
                        token.cancel_sync()
            else:
                async with op:
                    async for item in op.stream(ClosingFails(5)):
                        if ending == "cancelled" and item == 2:
                            token.cancel_sync()
        assert op.status is OperationStatus.FAILED and not op.is_cancelled
        assert op.context.error is not None and "close failed" in op.context.error
        kinds = [kind for kind, _, _ in calls.seen]
        assert kinds[-1] == "error" and "complete" not in kinds and "cancel" not in kinds
        outcomes.append((op.status, kinds[1:]))
    assert outcomes[0] == outcomes[1]  # detached and in a block: the same outcome


async def test_a_base_exception_in_a_start_callback_fails_the_stream_and_closes_the_source() -> None:
    class Stop(BaseException):
        pass

    def stop(ctx: object) -> None:
        raise Stop

    op = Cancelable()
    op.on_start(stop)
    src = Source(10)
    with pytest.raises(Stop):
        async for _ in cancelable_stream(src.gen(), operation=op):
            pass
    assert op.status is OperationStatus.FAILED  # not left running, nor completed later
    for _ in range(3):
        await anyio.sleep(0)
    assert op.status is OperationStatus.FAILED
    assert op.deadline == math.inf and op.context.end_time is not None


async def test_aclosing_a_stream_whose_source_fails_to_close_fails_it_before_going_on() -> None:
    from contextlib import aclosing

    op = Cancelable()
    calls = Calls(op)
    with pytest.raises(RuntimeError, match="close failed"):
        async with aclosing(cancelable_stream(ClosingFails(10), operation=op)) as stream:
            async for item in stream:
                if item == 2:
                    break
    assert op.status is OperationStatus.FAILED  # decided, and the callbacks ran, before this line
    assert [kind for kind, _, _ in calls.seen] == ["start", "error"]


async def test_a_stream_whose_operation_cannot_arm_a_source_fails_and_releases_its_token() -> None:
    from cancelable_rx.sources.base import CancelationSource

    class CannotArm(CancelationSource):
        def arm(self, host: object) -> None:
            raise RuntimeError("arm failed")

    token = CancelationToken()
    op = Cancelable.with_token(token).add_source(CannotArm())
    gen = Source(3).gen()
    cursor = aiter(cancelable_stream(gen, operation=op))
    with pytest.raises(RuntimeError, match="arm failed"):
        await anext(cursor)
    assert op.status is OperationStatus.FAILED and "arm failed" in (op.context.error or "")
    assert token.listener_count == 0  # released, as leaving a block that failed to enter
    assert gen.ag_frame is None  # the stream owns its source: closed on every ending (never started)
    with pytest.raises(StopAsyncIteration):  # asked again: the stream has ended
        await anext(cursor)


async def test_a_cancel_landing_as_the_source_runs_out_is_never_a_silent_end() -> None:
    """Forced interleaving: another thread cancels the token after the last fetch found the
    source exhausted, before the operation is sealed.  The consumer and the operation agree:
    the typed error, status cancelled (a cancel after the seal would change neither)."""
    import sys
    import threading

    from cancelable_rx import _operation as engine

    token = CancelationToken()
    op = Cancelable.with_token(token)
    calls = Calls(op)
    detach = engine.Operation._detach_stream.__code__
    armed = False

    def cancel_from_a_thread_at_the_end(frame: object, event: str, arg: object) -> None:
        nonlocal armed
        if event == "call" and frame.f_code is detach and armed:  # type: ignore[attr-defined]
            armed = False
            thread = threading.Thread(target=token.cancel_sync, kwargs={"message": "late"})
            thread.start()
            thread.join()

    seen = []
    sys.settrace(cancel_from_a_thread_at_the_end)
    try:
        with pytest.raises(ManualCancelation, match="late"):
            async for item in cancelable_stream(Source(3).gen(), operation=op):
                seen.append(item)
                if item == 2:
                    armed = True  # the next fetch finds the source exhausted
    finally:
        sys.settrace(None)
    assert seen == [0, 1, 2]
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.MANUAL
    assert [kind for kind, _, _ in calls.seen] == ["start", "cancel"]
    assert token.listener_count == 0


class RunsOutPastItsDeadline:
    """Two items, then a last fetch that blocks (no checkpoint) until the deadline has
    passed and reports the end: the cancellation is never delivered inside the fetch."""

    def __init__(self, block_for: float) -> None:
        self.i, self.block_for = 0, block_for

    def __aiter__(self) -> RunsOutPastItsDeadline:
        return self

    async def __anext__(self) -> int:
        if self.i == 2:
            time.sleep(self.block_for)
            raise StopAsyncIteration
        self.i += 1
        return self.i


def _make(face: str, **kw: object) -> Cancelable:
    """A 0.05 s operation of ``face``: the main face, the same with suppress_cancelation,
    or the compat face (whose blocks end normally when the operation's own cancel ends them)."""
    if face == "compat":
        return compat.Cancelable.with_timeout(0.05, **kw)  # type: ignore[return-value]
    return Cancelable.with_timeout(0.05, suppress_cancelation=face == "suppress", **kw)  # type: ignore[arg-type]


async def _consume(op: Cancelable, detached: bool, source: object, stop_at: int | None) -> tuple[list[int], str | None]:
    """Iterate ``source`` under ``op`` (detached, or in its block); at item ``stop_at``,
    request a stop with a 0.02 s grace period, then work past it without a checkpoint."""
    items: list[int] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", compat.CompatWarning)  # (once per process: not what is compared)
            await _iterate(op, detached, source, stop_at, items)
    except BaseException as exc:  # noqa: BLE001 - what the consumer observes is the result
        return items, type(exc).__name__
    return items, None


async def _iterate(op: Cancelable, detached: bool, source: object, stop_at: int | None, items: list[int]) -> None:
    if detached:
        async for item in cancelable_stream(source, operation=op):  # type: ignore[arg-type]
            items.append(item)
            if item == stop_at:
                await op.request_stop(0.02)
                time.sleep(0.1)
    else:
        async with op:
            async for item in op.stream(source):  # type: ignore[arg-type]
                items.append(item)
                if item == stop_at:
                    await op.request_stop(0.02)
                    time.sleep(0.1)


@pytest.mark.parametrize("face", ["main", "suppress", "compat"])
@pytest.mark.parametrize("case", ["runs out past its deadline", "grace passes while the consumer works"])
async def test_a_detached_stream_decided_cancelled_after_a_clean_end_ends_as_its_block_would(
    face: str, case: str
) -> None:
    """The source ran out, or a stop request ended the stream, but only after the deadline
    (or the stop's grace period) had passed: the operation is decided cancelled.  The
    consumer then sees what leaving a block sees: the typed error on the main face, a clean
    end with suppress_cancelation or on the compat face; the same record and callbacks."""
    seen = {}
    for detached in (True, False):
        op = _make(face)
        calls = Calls(op)
        if case == "runs out past its deadline":
            source: object = RunsOutPastItsDeadline(0.1)
            stop_at = None
        else:
            source = Source(10).gen()
            stop_at = 1
        items, raised = await _consume(op, detached, source, stop_at)
        kinds = [kind for kind, _, _ in calls.seen]
        seen[detached] = (raised, op.status, op.cancel_reason, kinds[-1])
        # a stop request: the block delivers the item it had fetched, a detached stream does
        # not fetch again (docs/graceful-stop.md)
        assert items == ([1, 2] if stop_at is None else [0, 1] if detached else [0, 1, 2])
    expected_error = {"main": "TimeoutCancelation" if stop_at is None else "ManualCancelation"}.get(face)
    assert seen[True] == seen[False]
    raised, status, reason, last = seen[True]
    assert raised == expected_error
    assert status is OperationStatus.CANCELLED and last == "cancel"
    assert reason is (CancelationReason.TIMEOUT if stop_at is None else CancelationReason.MANUAL)


@pytest.mark.parametrize("where", ["in a fetch", "between fetches"])
async def test_suppress_cancelation_ends_a_detached_stream_quietly(where: str) -> None:
    """An operation made with suppress_cancelation=True, cancelled by its own source while
    its stream runs: the stream ends as if exhausted (a block would be left quietly); the
    operation records the cancellation and runs on_cancel; the source is closed."""
    token = CancelationToken()
    op = Cancelable.with_token(token, suppress_cancelation=True)
    calls = Calls(op)
    src = Source(1000, delay=0.01)
    items = []
    async with anyio.create_task_group() as tg:
        async for item in cancelable_stream(src.gen(), operation=op):
            items.append(item)
            if item == 2:
                if where == "in a fetch":
                    tg.start_soon(token.cancel, CancelationReason.MANUAL, "enough")
                else:
                    await token.cancel(CancelationReason.MANUAL, "enough")
    assert (items == [0, 1, 2]) if where == "between fetches" else (len(items) in (3, 4))
    assert op.status is OperationStatus.CANCELLED and op.cancel_reason is CancelationReason.MANUAL
    assert [kind for kind, _, _ in calls.seen] == ["start", "cancel"]
    assert src.closed


def _broken() -> RuntimeError:
    """A source's failure that carries its own cause (what a consumer must see intact)."""
    try:
        raise KeyError("original cause")
    except KeyError:
        try:
            raise RuntimeError("source broke")
        except RuntimeError as err:
            return err


@pytest.mark.parametrize("suppress", [False, True])
@pytest.mark.parametrize("where", ["in a fetch", "between fetches", "as the source runs out"])
async def test_a_source_failure_landing_just_before_the_seal_reaches_the_consumer(where: str, suppress: bool) -> None:
    """Forced interleaving: another thread reports a source's failure (``_fail``, thread-safe)
    after the stream has seen its ending but before the operation is sealed.  The operation
    is decided FAILED; the consumer gets that failure, detached as in a block
    (suppress_cancelation does not hide a failure)."""
    import sys
    import threading

    from cancelable_rx import _operation as engine

    async def gen(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await anyio.sleep(0.005)
            yield i

    seen = {}
    for detached in (True, False):
        token = CancelationToken()
        op = Cancelable.with_token(token, suppress_cancelation=suppress)
        failure = _broken()
        target = engine.Operation._detach_stream.__code__ if detached else engine.Operation.__aexit__.__code__
        armed = False

        def fail_from_a_thread(frame: object, event: str, arg: object) -> None:
            nonlocal armed
            if event == "call" and frame.f_code is target and armed:  # type: ignore[attr-defined]  # noqa: B023
                armed = False
                thread = threading.Thread(target=op._fail, args=(failure,))  # noqa: B023
                thread.start()
                thread.join()

        async def consume(stream: AsyncIterator[int], tg: anyio.abc.TaskGroup) -> None:
            nonlocal armed
            async for item in stream:
                if item == 2:
                    armed = True
                    if where == "in a fetch":
                        tg.start_soon(token.cancel)  # noqa: B023
                    elif where == "between fetches":
                        token.cancel_sync()  # noqa: B023

        raised: BaseException | None = None
        n = 3 if where == "as the source runs out" else 100
        sys.settrace(fail_from_a_thread)
        try:
            async with anyio.create_task_group() as tg:
                try:
                    if detached:
                        await consume(aiter(cancelable_stream(gen(n), operation=op)), tg)
                    else:
                        async with op:
                            await consume(aiter(op.stream(gen(n))), tg)
                except BaseException as exc:  # noqa: BLE001 - what the consumer observes is the result
                    raised = exc
        finally:
            sys.settrace(None)
        seen[detached] = (raised is failure, op.status)
        assert raised is failure, (detached, raised)
        if where == "as the source runs out":  # raised outside any handler: its own context, intact
            assert isinstance(failure.__context__, KeyError)
    assert seen[True] == seen[False] == (True, OperationStatus.FAILED)
