"""The reactive primitives and bridges (``_rx.py``): Hub, FireOnce, HubObservable,
observe / ObservableIterator and to_observable; on asyncio and trio."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator

import anyio
import pytest
import reactivex
from reactivex import operators as ops
from reactivex.subject import Subject

from cancelable_rx import Cancelable, observe, to_observable
from cancelable_rx._rx import FireOnce, Hub, HubObservable

pytestmark = pytest.mark.anyio


class Source:
    """A real async generator source that records whether it was closed (and sets
    ``done``, if given, when it is)."""

    def __init__(self, n: int, delay: float = 0.0) -> None:
        self.n, self.delay, self.closed, self.produced = n, delay, False, 0
        self.done: anyio.Event | None = None

    async def gen(self) -> AsyncIterator[int]:
        try:
            for i in range(self.n):
                if self.delay:
                    await anyio.sleep(self.delay)
                self.produced += 1
                yield i
        finally:
            self.closed = True
            if self.done is not None:
                self.done.set()


# -- Hub ------------------------------------------------------------------------------------


def test_hub_add_discard_and_emit_with_isolated_listeners(caplog: pytest.LogCaptureFixture) -> None:
    hub = Hub()
    assert not hub and len(hub) == 0
    hub.emit("nobody")  # no listener: nothing happens
    seen: list[tuple[str, object]] = []

    def a(value: object) -> None:
        seen.append(("a", value))

    def bad(value: object) -> None:
        raise RuntimeError("listener boom")

    def b(value: object) -> None:
        seen.append(("b", value))

    hub.add(a)
    hub.add(a)  # idempotent
    hub.add(bad)
    hub.add(b)
    assert hub and len(hub) == 3
    with caplog.at_level(logging.ERROR, logger="cancelable_rx"):
        hub.emit(1)
    assert seen == [("a", 1), ("b", 1)]  # the failing listener stopped neither the emitter nor b
    assert "listener boom" in caplog.text
    hub.discard(a)
    hub.discard(a)  # idempotent
    hub.discard(bad)
    hub.emit(2)
    assert seen == [("a", 1), ("b", 1), ("b", 2)] and len(hub) == 1


def test_hub_calls_listeners_in_the_emitting_thread() -> None:
    hub = Hub()
    called_in: list[int] = []
    hub.add(lambda _: called_in.append(threading.get_ident()))
    emitters = [threading.Thread(target=hub.emit, args=(i,)) for i in range(4)]
    for t in emitters:
        t.start()
    for t in emitters:
        t.join(5)
    assert sorted(called_in) == sorted(t.ident for t in emitters)


# -- FireOnce ---------------------------------------------------------------------------------


def test_fire_once_emits_once_completes_and_replays() -> None:
    once: FireOnce[str] = FireOnce()
    seen: list[str] = []
    done: list[bool] = []
    once.subscribe(seen.append, on_completed=lambda: done.append(True))
    disposed: list[str] = []
    once.subscribe(disposed.append).dispose()
    assert not once.triggered
    assert once._fire_value("first") is True
    assert once._fire_value("second") is False
    assert once.triggered and seen == ["first"] and done == [True]
    assert disposed == []  # a disposed subscription hears nothing
    late: list[str] = []
    late_done: list[bool] = []
    once.subscribe(late.append, on_completed=lambda: late_done.append(True))
    assert late == ["first"] and late_done == [True]  # replayed at once to a late subscriber


def test_fire_once_racing_threads_fire_exactly_once() -> None:
    once: FireOnce[int] = FireOnce()
    seen: list[int] = []
    once.subscribe(seen.append)
    barrier = threading.Barrier(8)
    won: list[int] = []

    def racer(i: int) -> None:
        barrier.wait(5)
        if once._fire_value(i):
            won.append(i)

    threads = [threading.Thread(target=racer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(won) == 1 and seen == won


# -- HubObservable ------------------------------------------------------------------------------


def test_hub_observable_emit_latest_and_has_subscribers() -> None:
    obs: HubObservable[int] = HubObservable()
    assert obs.latest is None and not obs.has_subscribers
    obs.emit(1)  # nobody listens: it only becomes the latest value
    assert obs.latest == 1
    seen: list[int] = []
    tens: list[int] = []
    sub = obs.subscribe(seen.append)
    piped = obs.pipe(ops.map(lambda x: x * 10)).subscribe(tens.append)  # stock operators work
    assert obs.has_subscribers
    obs.emit(2)
    obs.emit(3)
    assert seen == [2, 3] and tens == [20, 30] and obs.latest == 3
    sub.dispose()
    piped.dispose()
    assert not obs.has_subscribers
    obs.emit(4)
    assert seen == [2, 3] and obs.latest == 4


async def test_hub_observable_aiter_buffers_and_drops_the_oldest() -> None:
    obs: HubObservable[int] = HubObservable()
    view = obs.aiter(maxsize=2)
    assert obs.has_subscribers  # subscribed at construction: nothing emitted after is missed
    for i in range(5):
        obs.emit(i)
    assert await view.__anext__() == 3
    assert await view.__anext__() == 4
    assert view.dropped == 3
    await view.aclose()
    assert not obs.has_subscribers
    assert [x async for x in view] == []


async def test_hub_observable_aiter_wakes_when_a_thread_emits() -> None:
    obs: HubObservable[str] = HubObservable()
    got: list[str] = []
    waiting = anyio.Event()

    async def consume() -> None:
        async with obs.aiter() as view:
            waiting.set()
            got.append(await view.__anext__())
        assert not obs.has_subscribers  # leaving `async with` unsubscribes

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await waiting.wait()
            await anyio.to_thread.run_sync(obs.emit, "from a thread")
    assert got == ["from a thread"]


# -- observe / ObservableIterator -------------------------------------------------------------


async def test_observe_bridge_from_thread_and_errors() -> None:
    subject: Subject[int] = Subject()
    it = observe(subject, maxsize=10)

    def produce() -> None:
        for i in range(3):
            subject.on_next(i)
        subject.on_completed()

    threading.Thread(target=produce).start()
    with anyio.fail_after(5):
        assert [x async for x in it] == [0, 1, 2]
    failing = observe(reactivex.throw(ValueError("bad feed")))
    with pytest.raises(ValueError, match="bad feed"):
        await failing.__anext__()


async def test_observe_unsubscribes_when_iteration_ends() -> None:
    subject: Subject[int] = Subject()
    async with observe(subject) as it:
        assert len(subject.observers) == 1
        subject.on_next(7)
        assert await it.__anext__() == 7
    assert subject.observers == []


# -- to_observable ------------------------------------------------------------------------------


async def test_to_observable_bridge() -> None:
    got: list[int] = []
    completed = anyio.Event()
    async with Cancelable() as op:
        obs = to_observable(op.stream(Source(4).gen()))
        obs.subscribe(got.append, on_completed=completed.set)
        with anyio.fail_after(5):
            await completed.wait()
    assert got == [0, 1, 2, 3]


async def test_to_observable_dispose_stops_iteration() -> None:
    src = Source(10_000, delay=0.001)
    src.done = anyio.Event()
    got: list[int] = []
    flowing = anyio.Event()

    def on_next(x: int) -> None:
        got.append(x)
        flowing.set()

    sub = to_observable(src.gen()).subscribe(on_next)
    with anyio.fail_after(5):
        await flowing.wait()
        sub.dispose()
        await src.done.wait()  # the iteration was cancelled and the generator closed
    n = len(got)
    await anyio.sleep(0.05)  # the window in which a pump still running would emit more
    assert len(got) == n < 10_000


async def test_to_observable_subscribe_off_the_loop_thread_is_a_clear_error() -> None:
    obs = to_observable(Source(1).gen())
    with pytest.raises(RuntimeError, match=r"must be called from the event loop thread"):
        await anyio.to_thread.run_sync(obs.subscribe, print)
