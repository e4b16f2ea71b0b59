"""Callbacks and progress (``_hooks.py``): lifecycle callbacks, progress callbacks,
``report_progress``, the progress observable, and the isolation of failing callbacks; on
asyncio and trio."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import pytest

from cancelable_rx import (
    Cancelable,
    LifecycleKind,
    OperationRegistry,
    OperationStatus,
    ProgressEvent,
    TimeoutCancelation,
)

pytestmark = pytest.mark.anyio


class Source:
    """A real async generator source that records whether it was closed."""

    def __init__(self, n: int, delay: float = 0.0) -> None:
        self.n, self.delay, self.closed, self.produced = n, delay, False, 0

    async def gen(self) -> AsyncIterator[int]:
        try:
            for i in range(self.n):
                if self.delay:
                    await anyio.sleep(self.delay)
                self.produced += 1
                yield i
        finally:
            self.closed = True


# -- lifecycle callbacks -----------------------------------------------------------------------


async def test_lifecycle_callbacks_sync_and_async() -> None:
    events: list[str] = []

    async def on_complete(ctx: object) -> None:
        events.append("complete")

    op = Cancelable(name="cb").on_start(lambda ctx: events.append(f"start:{ctx.status.value}"))
    op.on_complete(on_complete).on_cancel(lambda ctx: events.append("cancel"))
    async with op:
        pass
    assert events == ["start:running", "complete"]

    events.clear()
    errored = Cancelable().on_error(lambda ctx, err: events.append(f"error:{err}"))
    with pytest.raises(KeyError):
        async with errored:
            raise KeyError("k")
    assert events == ["error:'k'"]

    events.clear()
    cancelled = Cancelable.with_timeout(0.01).on_cancel(lambda ctx: events.append(ctx.cancel_reason.value))
    with pytest.raises(TimeoutCancelation):
        async with cancelled:
            await anyio.sleep(1)
    assert events == ["timeout"]


async def test_failing_callback_never_breaks_operation(caplog: pytest.LogCaptureFixture) -> None:
    def bad(ctx: object) -> None:
        raise RuntimeError("cb exploded")

    async with Cancelable().on_start(bad).on_complete(bad) as op:
        pass
    assert op.is_completed
    assert "cb exploded" in caplog.text


@pytest.mark.parametrize("bad", [None, "x", 3])
def test_on_complete_and_on_cancel_must_be_callable(bad: object) -> None:
    # on_start, on_error and on_progress are rows of test_checks.py.
    op = Cancelable()
    for register in (op.on_complete, op.on_cancel):
        with pytest.raises(TypeError, match="must be callable"):
            register(bad)  # type: ignore[arg-type]


# -- progress: report_progress, callbacks, the observable --------------------------------------


async def test_progress_callbacks_and_observable() -> None:
    got: list[tuple[str, object, object]] = []
    events: list[object] = []

    async def async_cb(op_id: str, message: object, meta: object) -> None:
        got.append((op_id, message, meta))

    async with Cancelable(operation_id="p1").on_progress(async_cb) as op:
        sub = op.progress.subscribe(events.append)
        await op.report_progress("half", {"pct": 50})
        sub.dispose()
        await op.report_progress("done")
    assert got == [("p1", "half", {"pct": 50}), ("p1", "done", None)]
    assert len(events) == 1 and events[0].message == "half"  # type: ignore[attr-defined]


async def test_failing_progress_subscriber_is_isolated(caplog: pytest.LogCaptureFixture) -> None:
    def bad(event: object) -> None:
        raise RuntimeError("subscriber blew up")

    with caplog.at_level(logging.ERROR, logger="cancelable_rx"):
        async with Cancelable().on_progress(lambda *a: 1 / 0) as op:
            op.progress.subscribe(bad)
            got = [x async for x in op.stream(Source(20).gen(), report_interval=5)]
    assert got == list(range(20))
    assert "subscriber blew up" in caplog.text and "ZeroDivisionError" in caplog.text


async def test_progress_async_iterator_view() -> None:
    async with Cancelable() as op:
        view = op.progress.aiter(maxsize=2)
        async for _ in op.stream(Source(50).gen(), report_interval=10):
            pass
        await view.aclose()
        got = [e async for e in view]
    assert got == []  # closed view ends
    async with Cancelable() as op2:
        view2 = op2.progress.aiter(maxsize=2)
        async for _ in op2.stream(Source(50).gen(), report_interval=10):
            pass
        first = await view2.__anext__()
        second = await view2.__anext__()
        await view2.aclose()
    assert (first.count, second.count) == (40, 50) and view2.dropped == 3


async def test_progress_completes_when_the_operation_ends_with_the_exact_count() -> None:
    async def source(n: int):  # noqa: ANN202 - a test source
        for i in range(n):
            yield i

    op = Cancelable.with_timeout(5)
    seen: list[tuple[int | None, bool]] = []
    async with op:
        stream_events = op.progress.aiter()  # an async consumer, as a rendering task would be
        async for _ in op.stream(source(2040), report_interval=25):
            pass

    async def consume() -> None:
        async for event in stream_events:  # ends when the observable completes
            seen.append((event.count, event.final))

    with anyio.fail_after(5):
        await consume()
    assert seen[-1] == (2040, True)  # 2040 processed, 2040 shown: not the last multiple of 25
    late: list[object] = []
    done: list[bool] = []
    op.progress.subscribe(late.append, on_completed=lambda: done.append(True))
    assert late == [] and done == [True]  # a late subscriber is completed at once


async def test_the_final_event_carries_the_outcome() -> None:


    finals: list[ProgressEvent] = []
    op = Cancelable.with_timeout(0.01)
    op.progress.subscribe(lambda e: finals.append(e) if e.final else None)
    with pytest.raises(TimeoutCancelation):
        async with op:
            await anyio.sleep(1)
    assert len(finals) == 1 and finals[0].outcome is OperationStatus.CANCELLED
    assert finals[0].message.startswith("cancelled (timeout)") and finals[0].count is None


async def test_a_start_callback_that_awaits_in_a_cancelled_operation_runs_to_its_end() -> None:
    from cancelable_rx import CancelationToken, ManualCancelation, current_operation

    token = CancelationToken()
    token.cancel_sync(message="before")
    ran: list[str] = []

    async def on_start(ctx: object) -> None:
        await anyio.sleep(0.01)  # a checkpoint in an already cancelled operation
        ran.append("start done")

    op = Cancelable.with_token(token).on_start(on_start)
    with pytest.raises(ManualCancelation):
        async with op:
            await anyio.sleep(5)
    assert ran == ["start done"] and op.status is OperationStatus.CANCELLED
    assert token.listener_count == 0 and current_operation() is None
    await anyio.sleep(0)  # nothing of the operation is left entered in this task


async def test_a_base_exception_in_a_start_callback_leaves_the_operation_properly() -> None:
    from cancelable_rx import CancelationToken, current_operation

    token = CancelationToken()

    def on_start(ctx: object) -> None:
        raise KeyboardInterrupt

    op = Cancelable.with_token(token).on_start(on_start)
    with pytest.raises(KeyboardInterrupt):
        async with op:
            pytest.fail("the body must not run")  # pragma: no cover
    assert op.status is OperationStatus.FAILED and token.listener_count == 0 and current_operation() is None
    await anyio.sleep(0)


# --- report_progress's fast paths (nobody listens / one sync callback) never hide a listener ---


async def test_every_way_of_listening_to_progress_is_reached_whenever_it_starts() -> None:
    calls: list[tuple[str, object]] = []
    registry = OperationRegistry()
    registry.events.subscribe(lambda e: calls.append(("registry", e.message)) if e.kind is LifecycleKind.PROGRESS else None)

    explicit = Cancelable()
    await registry.register(explicit)  # registered before it runs, without register_globally
    async with explicit:
        await explicit.report_progress("registered before")

    async with Cancelable() as op:
        await op.report_progress("nobody listens")
        op.on_progress(lambda _id, message, _md: calls.append(("first", message)))
        await op.report_progress("one callback")
        op.on_progress(lambda _id, message, _md: calls.append(("second", message)))
        await op.report_progress("two callbacks")
        op.progress.subscribe(lambda event: calls.append(("observable", event.message)))
        await op.report_progress("and an observable")
        await registry.register(op)  # registered while it runs
        await op.report_progress("and the registry")
    assert calls == [
        ("registry", "registered before"),
        ("first", "one callback"),
        ("first", "two callbacks"), ("second", "two callbacks"),
        ("observable", "and an observable"), ("first", "and an observable"), ("second", "and an observable"),
        ("registry", "and the registry"), ("observable", "and the registry"),
        ("first", "and the registry"), ("second", "and the registry"),
        ("observable", "completed"),  # the observable's final event, at the end
    ]
    with pytest.raises(RuntimeError, match="only a running operation reports progress"):
        await op.report_progress("after the end")  # the fast path is off once it ended


async def test_a_start_callback_that_adds_a_progress_listener_is_heard() -> None:
    heard: list[object] = []

    async def on_start(ctx: object) -> None:
        op.on_progress(lambda _id, message, _md: heard.append(message))

    op = Cancelable().on_start(on_start)
    async with op:
        await op.report_progress("after start")
    assert heard == ["after start"]
