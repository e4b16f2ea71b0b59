"""The trio-safe operators (``cancelable_rx.ops``) on asyncio and trio.

Every operator is run to its end, and ended mid-way by an operation's timeout, by a token,
by the consumer's ``break`` and by a source that raises: each time every source that
started is closed, no task is left, and the operation's partial result counts exactly the
items the consumer got.  Then the semantics of each operator (demand, ``task_limit``,
order, errors, windows), the trio guard for aiostream's operators and bad arguments.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from aiostream import pipe, stream
from aiostream.core import Stream

from cancelable_rx import (
    Cancelable,
    CancelationToken,
    ManualCancelation,
    TimeoutCancelation,
    cancelable_stream,
    current_operation,
    ops,
)
from cancelable_rx.streaming._piping import unsafe_on_trio

pytestmark = pytest.mark.anyio


class Boom(Exception):
    """The error of a failing source."""


class Tracker:
    """Makes sources that count how many started and how many were closed."""

    def __init__(self) -> None:
        self.started = 0
        self.closed = 0
        self.reads = 0

    async def _gen(self, items: list[Any], then: str) -> AsyncIterator[Any]:
        self.started += 1
        try:
            for item in items:
                await anyio.lowlevel.checkpoint()
                self.reads += 1
                yield item
            if then == "block":
                await anyio.sleep_forever()
            if then == "raise":
                raise Boom("source failed")
        finally:
            self.closed += 1

    def src(self, items: Iterable[Any], then: str = "end") -> AsyncIterator[Any]:
        """A source of ``items`` that then ends, blocks forever or raises ``Boom``."""
        return self._gen(list(items), then)

    def other(self, items: Iterable[Any], then: str = "end") -> AsyncIterator[Any]:
        """A second source: it blocks like the first, but never raises (only one fails)."""
        return self._gen(list(items), "end" if then == "raise" else then)

    def reiterable(self, items: Iterable[Any], then: str = "end") -> Any:
        tracker, values = self, list(items)

        class Again:
            def __aiter__(self) -> AsyncIterator[Any]:
                return tracker._gen(values, then)

        return Again()

    @property
    def all_closed(self) -> bool:
        return self.started == self.closed


async def times10(x: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x * 10


async def add(x: int, y: int) -> int:
    await anyio.lowlevel.checkpoint()
    return x + y


@dataclass
class Case:
    """An operator under test: ``build(tracker, then)`` makes the stream; ``full`` is what
    it gives when its sources end, ``stalled`` when they block at their end instead."""

    name: str
    build: Callable[[Tracker, str], Any]
    full: list[Any]
    kind: str = "exact"  # exact | bag (any interleaving) | latest (ziplatest) | switch
    stalled: list[Any] | None = None
    key: Callable[[Any], Any] | None = None  # bag: the items of one key keep their order
    infinite: bool = False
    cut: bool = False  # with blocking sources it never stalls: a timeout cuts it anywhere
    fails: bool = True  # a source of it can raise
    endless: Callable[[int], list[Any]] | None = None  # its first n items, for endless ones

    def ref(self, n: int) -> list[Any]:
        return self.endless(n) if self.endless is not None else self.full


def _slow(then: str) -> float:
    return 0.2 if then == "block" else 0.0


def _inner(t: Tracker, n: int) -> AsyncIterator[tuple[int, int]]:
    return t.other([(n, i) for i in range(n)])


# The zipping cases (zip, smap, map over two sources) give their second source one item more:
# the row after the first source's last item then waits for the first source, so its failure
# (then="raise") is never raced by the second source ending at the same step (a zip ends with
# its shortest source; which of an end and a failure at the same step is seen first is up to
# the scheduler, which trio randomises).
CASES = [
    Case("merge", lambda t, th: ops.merge(t.src([0, 1, 2], th), t.other([10, 11, 12], th)),
         [0, 1, 2, 10, 11, 12], "bag", key=lambda x: x // 10),
    Case("zip", lambda t, th: ops.zip(t.src([0, 1, 2], th), t.other([10, 11, 12, 13], th)),
         [(0, 10), (1, 11), (2, 12)]),
    Case("zip strict", lambda t, th: ops.zip(t.src([0, 1, 2], th), t.other([10, 11, 12], th), strict=True),
         [(0, 10), (1, 11), (2, 12)]),
    Case("ziplatest", lambda t, th: ops.ziplatest(t.src([0, 1, 2], th), t.other([10, 11], th)),
         [0, 1, 2, 10, 11], "latest"),
    Case("map async ordered", lambda t, th: ops.map(t.src(range(6), th), times10, task_limit=2),
         [0, 10, 20, 30, 40, 50]),
    Case("map async unordered", lambda t, th: ops.map(t.src(range(6), th), times10, ordered=False, task_limit=3),
         [0, 10, 20, 30, 40, 50], "bag"),
    Case("map async, no limit", lambda t, th: ops.map(t.src(range(6), th), times10), [0, 10, 20, 30, 40, 50]),
    Case("map sync", lambda t, th: ops.map(t.src(range(4), th), lambda x: x + 1), [1, 2, 3, 4]),
    Case("map two sources", lambda t, th: ops.map(t.src([1, 2, 3], th), add, t.other([10, 20, 30, 40], th), task_limit=2),
         [11, 22, 33]),
    Case("amap", lambda t, th: ops.amap(t.src(range(4), th), times10, task_limit=1), [0, 10, 20, 30]),
    Case("smap", lambda t, th: ops.smap(t.src([1, 2, 3], th), lambda x, y: x * y, t.other([4, 5, 6, 7], th)),
         [4, 10, 18]),
    Case("starmap", lambda t, th: ops.starmap(t.src([(1, 2), (3, 4), (5, 6)], th), add, task_limit=2), [3, 7, 11]),
    Case("flatmap", lambda t, th: ops.flatmap(t.src([1, 2, 3], th), lambda n: _inner(t, n)),
         [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)], "bag", key=lambda x: x[0]),
    Case("concatmap", lambda t, th: ops.concatmap(t.src([1, 2, 3], th), lambda n: _inner(t, n), task_limit=2),
         [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]),
    Case("switchmap", lambda t, th: ops.switchmap(t.src([1, 2, 3], th), lambda n: _inner(t, n)),
         [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)], "switch"),
    Case("flatten", lambda t, th: ops.flatten(t.src([_inner(t, 2), _inner(t, 3)], th), task_limit=1),
         [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)], "bag", key=lambda x: x[0]),
    Case("concat", lambda t, th: ops.concat(t.src([_inner(t, 2), _inner(t, 3)], th)),
         [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]),
    Case("switch", lambda t, th: ops.switch(t.src([_inner(t, 2), _inner(t, 3)], th)),
         [(2, 0), (2, 1), (3, 0), (3, 1), (3, 2)], "switch"),
    Case("timeout", lambda t, th: ops.timeout(t.src(range(4), th), 30), [0, 1, 2, 3]),
    Case("spaceout", lambda t, th: ops.spaceout(t.src(range(4), th), 0.001), [0, 1, 2, 3]),
    Case("delay", lambda t, th: ops.delay(t.src(range(4), th), 0.001), [0, 1, 2, 3]),
    Case("chunks", lambda t, th: ops.chunks(t.src(range(5), th), 2), [[0, 1], [2, 3], [4]],
         stalled=[[0, 1], [2, 3]]),
    Case("chunks with a window", lambda t, th: ops.chunks(t.src(range(5), th), 2, interval=0.02),
         [[0, 1], [2, 3], [4]]),
    Case("cycle", lambda t, th: ops.cycle(t.reiterable([0, 1, 2], th)), [0, 1, 2] * 30, infinite=True,
         stalled=[0, 1, 2]),
    Case("iterate async", lambda t, th: ops.iterate(t.src(range(4), th)), [0, 1, 2, 3]),
    # creation operators have no source to block: "block" makes them slow (a timeout cuts them)
    Case("iterate list", lambda t, th: ops.spaceout(ops.iterate([0, 1, 2, 3]), _slow(th)), [0, 1, 2, 3],
         cut=True, fails=False),
    Case("range", lambda t, th: ops.range(2, 8, interval=_slow(th)), [2, 3, 4, 5, 6, 7], cut=True, fails=False),
    Case("count", lambda t, th: ops.count(5, 2), [], infinite=True, cut=True, fails=False,
         endless=lambda n: list(range(5, 5 + 2 * n, 2))),
    Case("repeat", lambda t, th: ops.repeat("x"), [], infinite=True, cut=True, fails=False,
         endless=lambda n: ["x"] * n),
    Case("repeat times", lambda t, th: ops.repeat("x", 3, interval=_slow(th) or 0.001), ["x"] * 3, cut=True,
         fails=False),
]  # fmt: skip
IDS = [c.name for c in CASES]


def _is_latest_sequence(got: list[tuple[Any, ...]], sources: list[list[Any]]) -> bool:
    """Each tuple of ziplatest moves exactly one source to its next item (the items of a
    source are distinct here)."""
    state: list[Any] = [None] * len(sources)
    taken = [0] * len(sources)
    for row in got:
        changed = [i for i, (new, old) in enumerate(zip(row, state, strict=True)) if new != old]
        if len(changed) != 1:
            return False
        i = changed[0]
        if taken[i] >= len(sources[i]) or row[i] != sources[i][taken[i]]:
            return False
        state[i], taken[i] = row[i], taken[i] + 1
    return True


def _is_switch_sequence(got: list[Any], whole: bool) -> bool:
    """Inner streams ``(n, 0..n-1)``: each appears as a prefix, in order, the last one whole."""
    groups: list[list[Any]] = []
    for item in got:
        if groups and groups[-1][0][0] == item[0]:
            groups[-1].append(item)
        else:
            groups.append([item])
    if [g[0][0] for g in groups] != sorted({g[0][0] for g in groups}):
        return False
    if any(g != [(g[0][0], i) for i in range(len(g))] for g in groups):
        return False
    return not whole or bool(groups) and len(groups[-1]) == groups[-1][0][0]


def consistent(case: Case, got: list[Any], ref: list[Any], whole: bool) -> bool:
    """``got`` is what the operator may give of ``ref`` (all of it when ``whole``)."""
    if case.kind == "exact":
        return got == ref if whole else got == ref[: len(got)]
    if case.kind == "bag":
        if whole and Counter(map(repr, got)) != Counter(map(repr, ref)):
            return False
        if Counter(map(repr, got)) - Counter(map(repr, ref)):
            return False
        key = case.key
        if key is not None:
            for k in {key(x) for x in got}:
                mine = [x for x in got if key(x) == k]
                if mine != [x for x in ref if key(x) == k][: len(mine)]:
                    return False
        return True
    if case.kind == "latest":
        sources = [[x for x in ref if x < 10], [x for x in ref if x >= 10]]
        return _is_latest_sequence(got, sources) and (not whole or len(got) == len(ref))
    return _is_switch_sequence(got, whole)


def _task_count() -> int:
    return len(anyio.get_running_tasks())


# -- every operator, every ending -------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_completes_with_every_source_closed(case: Case) -> None:
    t = Tracker()
    tasks = _task_count()
    async with Cancelable() as op:
        xs = case.build(t, "end")
        if case.infinite:
            xs = xs | pipe.take(7)
        got = [x async for x in op.stream(xs)]
    expected = case.ref(7)[:7] if case.infinite else case.full
    assert consistent(case, got, expected, whole=True), got
    partial = op.partial_result
    assert partial is not None and partial.count == len(got) and partial.completed
    assert t.all_closed and _task_count() == tasks


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_timeout_mid_way(case: Case) -> None:
    """The sources block at their end: the operation's deadline ends the stream."""
    t = Tracker()
    tasks = _task_count()
    got: list[Any] = []
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.3) as op:
            async for x in op.stream(case.build(t, "block")):
                got.append(x)
    expected = case.stalled if case.stalled is not None else case.ref(len(got))
    assert consistent(case, got, expected, whole=case.stalled is not None or not case.cut), got
    partial = op.partial_result
    assert partial is not None and partial.count == len(got) and not partial.completed
    assert t.all_closed and _task_count() == tasks


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_token_mid_way(case: Case) -> None:
    t = Tracker()
    tasks = _task_count()
    token = CancelationToken()
    got: list[Any] = []
    with pytest.raises(ManualCancelation):
        async with Cancelable.with_token(token) as op:
            async for x in op.stream(case.build(t, "end")):
                got.append(x)
                if len(got) == 2:
                    await token.cancel(message="enough")
    assert len(got) == 2 and consistent(case, got, case.ref(2), whole=False), got
    partial = op.partial_result
    assert partial is not None and partial.count == 2 and not partial.completed
    assert t.all_closed and _task_count() == tasks


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_consumer_break(case: Case) -> None:
    t = Tracker()
    tasks = _task_count()
    got: list[Any] = []
    async with Cancelable() as op:
        async with contextlib.aclosing(op.stream(case.build(t, "end"))) as xs:
            async for x in xs:
                got.append(x)
                if len(got) == 2:
                    break
        assert t.all_closed  # at once, not when the operation ends
    assert len(got) == 2 and consistent(case, got, case.ref(2), whole=False), got
    partial = op.partial_result
    assert partial is not None and partial.count == 2 and not partial.completed
    assert _task_count() == tasks


@pytest.mark.parametrize("case", CASES, ids=IDS)
async def test_consumer_break_aiostream_style(case: Case) -> None:
    t = Tracker()
    tasks = _task_count()
    async with case.build(t, "end").stream() as streamer:
        async for _ in streamer:
            break
    assert t.all_closed and _task_count() == tasks


@pytest.mark.parametrize("case", [c for c in CASES if c.fails], ids=[c.name for c in CASES if c.fails])
async def test_source_raises(case: Case) -> None:
    t = Tracker()
    tasks = _task_count()
    got: list[Any] = []
    with pytest.raises(Boom):
        async with Cancelable() as op:
            async for x in op.stream(case.build(t, "raise")):
                got.append(x)
    assert consistent(case, got, case.full, whole=False), got
    partial = op.partial_result
    assert partial is not None and partial.count == len(got) and not partial.completed
    assert t.all_closed and _task_count() == tasks


async def test_enclosing_scope_cancels_mid_way() -> None:
    t = Tracker()
    tasks = _task_count()
    got: list[int] = []
    with anyio.move_on_after(0.2) as scope:
        async with ops.merge(t.src([1, 2], "block"), t.other([3], "block")).stream() as xs:
            async for x in xs:
                got.append(x)
    assert scope.cancelled_caught and sorted(got) == [1, 2, 3]
    assert t.all_closed and _task_count() == tasks


async def test_cancelable_stream_around_and_inside() -> None:
    """A detached stream around an operator, and one inside (read by a producer task)."""
    t = Tracker()
    tasks = _task_count()
    outer = cancelable_stream(ops.merge(t.src([1], "block"), t.other([2], "block")), timeout=0.2)
    got = []
    with pytest.raises(TimeoutCancelation):
        async for x in outer:
            got.append(x)
    assert sorted(got) == [1, 2] and outer.operation.partial_result.count == 2
    inner = cancelable_stream(t.src(range(100), "block"), timeout=0.2)
    got = []
    with pytest.raises(TimeoutCancelation):
        async with ops.map(inner, times10, task_limit=3).stream() as xs:
            async for x in xs:
                got.append(x)
    assert got == [x * 10 for x in range(100)]
    assert inner.operation.partial_result.count == 100
    assert t.all_closed and _task_count() == tasks


async def test_op_stream_piped_into_an_operator() -> None:
    """``op.stream(src) | ops.map...``: the fused stage counts what the map read."""
    t = Tracker()
    async with Cancelable() as op:
        xs = op.stream(t.src(range(10))) | ops.map.pipe(times10, task_limit=4)
        async with xs.stream() as streamer:
            got = [x async for x in streamer]
    assert got == [x * 10 for x in range(10)]
    assert op.partial_result.count == 10 and op.partial_result.completed
    with pytest.raises(TimeoutCancelation):
        async with Cancelable.with_timeout(0.2) as op2:
            ys = op2.stream(t.src(range(3), "block")) | ops.map.pipe(times10, task_limit=4)
            got = []
            async with ys.stream() as streamer:
                async for x in streamer:
                    got.append(x)
    assert got == [0, 10, 20] and op2.partial_result.count == 3
    assert t.all_closed


async def test_op_stream_as_the_source_of_a_concurrent_operator_counts_what_it_read() -> None:
    t = Tracker()
    tasks = _task_count()
    got = []
    async with Cancelable() as op:
        async with (op.stream(t.src(range(100))) | ops.map.pipe(times10, task_limit=4)).stream() as xs:
            async for x in xs:
                got.append(x)
                if len(got) == 2:
                    break
        assert t.all_closed
    assert got == [0, 10] and 2 <= op.partial_result.count <= 2 + 4 and not op.partial_result.completed
    assert _task_count() == tasks


# -- the consumer's own scopes and tasks are its own ----------------------------------------------


async def test_a_failing_producer_never_cancels_the_consumer() -> None:
    """No task group surrounds the consumer: a producer that fails while the consumer
    awaits something of its own does not interrupt it; the error comes at the next item."""
    t = Tracker()
    release = anyio.Event()
    done = []

    async def failing() -> AsyncIterator[int]:
        yield 1
        await release.wait()
        raise Boom("late")

    with pytest.raises(Boom):
        async with ops.merge(failing(), t.src([], "block")).stream() as xs:
            async for _ in xs:
                release.set()
                with anyio.fail_after(5):
                    await anyio.sleep(0.05)  # the producer fails meanwhile
                done.append(True)
    assert done == [True] and t.all_closed


async def test_the_consumer_may_hold_scopes_and_task_groups_across_items() -> None:
    got = []
    async with ops.zip(ops.range(3), ops.range(3)).stream() as xs:
        async with anyio.create_task_group() as tg:
            with anyio.CancelScope() as scope:
                async for pair in xs:
                    tg.start_soon(anyio.sleep, 0)
                    got.append(pair)
    assert got == [(0, 0), (1, 1), (2, 2)] and not scope.cancel_called


async def test_closed_from_another_task() -> None:
    t = Tracker()
    xs = aiter(ops.merge(t.src(range(10)), t.other(range(10))))
    assert await anext(xs) in range(10)
    async with anyio.create_task_group() as tg:
        tg.start_soon(xs.aclose)  # type: ignore[attr-defined]
    assert t.all_closed


async def test_context_variables_reach_the_producers() -> None:
    seen = []

    async def record(x: int) -> int:
        seen.append(current_operation())
        return x

    async with Cancelable() as op:
        async for _ in op.stream(ops.map(ops.range(3), record, task_limit=2)):
            pass
    assert seen == [op, op, op]


# -- semantics ------------------------------------------------------------------------------------


async def test_merge_reads_one_item_ahead_per_source() -> None:
    a, b = Tracker(), Tracker()
    async with ops.merge(a.src(range(100)), b.src(range(100))).stream() as xs:
        n = 0
        async for _ in xs:
            n += 1
            if n == 10:
                assert a.reads + b.reads <= 10 + 2
                break


async def test_map_task_limit_and_read_ahead() -> None:
    t = Tracker()
    running, peak = 0, 0
    gate, fourth_called = anyio.Event(), anyio.Event()

    async def slow(x: int) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        if x == 3:
            fourth_called.set()
        if x == 0:
            await gate.wait()  # the first call holds its slot until released
        else:
            await anyio.lowlevel.checkpoint()
        running -= 1
        return x

    got: list[int] = []

    async def consume() -> None:
        async with ops.map(t.src(range(20)), slow, task_limit=4).stream() as xs:
            got.extend([x async for x in xs])

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await fourth_called.wait()
            for _ in range(50):
                await anyio.lowlevel.checkpoint()
            assert t.reads == 4  # ordered: results 1-3 wait for 0, holding their slots
            gate.set()
    assert got == list(range(20)) and peak <= 4 and t.all_closed


async def test_map_unordered_gives_results_as_they_complete() -> None:
    gate = anyio.Event()

    async def f(x: int) -> int:
        if x == 0:
            await gate.wait()
        return x

    got = []
    async with ops.map(ops.range(4), f, ordered=False, task_limit=4).stream() as xs:
        async for x in xs:
            got.append(x)
            if len(got) == 3:
                gate.set()
    assert got == [1, 2, 3, 0]


async def test_ordered_map_raises_an_error_at_its_place() -> None:
    async def f(x: int) -> int:
        if x == 3:
            raise Boom("three")
        await anyio.sleep(0.01 if x < 3 else 0)
        return x

    got = []
    with pytest.raises(Boom, match="three"):
        async with ops.map(ops.range(10), f, task_limit=5).stream() as xs:
            async for x in xs:
                got.append(x)
    assert got == [0, 1, 2]


async def test_zip_strict_lengths_differ() -> None:
    with pytest.raises(ValueError, match="different lengths"):
        await ops.zip(ops.range(2), ops.range(3), strict=True)


async def test_ziplatest_not_partial() -> None:
    got = await (ops.ziplatest(ops.iterate([1]), ops.iterate([2]), partial=False) | pipe.list())
    assert got == [(1, 2)]


async def test_switch_closes_a_superseded_inner_stream() -> None:
    t = Tracker()
    go = anyio.Event()

    async def outer() -> AsyncIterator[AsyncIterator[int]]:
        yield t.src(range(100), "block")
        await go.wait()
        yield t.src([7, 8])

    got = []
    async with ops.switch(outer()).stream() as xs:
        async for x in xs:
            got.append(x)
            if x == 3:
                go.set()
    assert got[:4] == [0, 1, 2, 3] and got[-2:] == [7, 8] and t.all_closed


async def test_timeout_counts_only_the_fetch() -> None:
    xs = ops.timeout(ops.range(3, interval=0.01), 0.5)
    got = []
    async with xs.stream() as streamer:
        async for x in streamer:
            await anyio.sleep(0.1)  # the consumer's time does not count
            got.append(x)
    assert got == [0, 1, 2]
    t = Tracker()
    with pytest.raises(TimeoutError):
        async with ops.timeout(t.src([1], "block"), 0.05).stream() as streamer:
            async for _ in streamer:
                pass
    assert t.all_closed


async def test_spaceout_and_delay() -> None:
    start = anyio.current_time()
    stamps = []
    async for _ in ops.spaceout(ops.delay(ops.range(3), 0.05), 0.05):
        stamps.append(anyio.current_time() - start)
    assert stamps[0] >= 0.05 and stamps[1] - stamps[0] >= 0.045 and stamps[2] - stamps[1] >= 0.045


async def test_chunks_window_closes_on_time() -> None:
    go = anyio.Event()

    async def slow() -> AsyncIterator[int]:
        yield 1
        yield 2
        await go.wait()
        yield 3

    got = []
    async with ops.chunks(slow(), 10, interval=0.05).stream() as xs:
        async for chunk in xs:
            got.append(chunk)
            go.set()
    assert got == [[1, 2], [3]]


async def test_iterate_a_plain_iterable_and_repeat() -> None:
    assert await (ops.iterate("ab") | pipe.list()) == ["a", "b"]
    assert await (ops.repeat(0, 0) | pipe.list()) == []
    assert await (ops.count(interval=0.001) | pipe.take(3) | pipe.list()) == [0, 1, 2]
    with anyio.move_on_after(0.05) as scope:
        await (ops.never() | pipe.list())
    assert scope.cancelled_caught


async def test_pipe_stream_iterates_directly_again_and_again() -> None:
    xs = ops.iterate([1, 2]) | ops.map.pipe(times10)
    assert [x async for x in xs] == [10, 20]
    assert [x async for x in xs] == [10, 20]  # a stream can be iterated again
    assert await xs == 20
    assert isinstance(xs, Stream) and repr(ops.merge) == "cancelable_rx.ops.merge"


# -- aiostream's operators on trio -----------------------------------------------------------------


async def _async_f(x: int) -> int:
    return x


def _unsafe_pipes() -> list[tuple[str, Any]]:
    return [
        ("merge", pipe.merge(stream.just(1))),
        ("map", pipe.map(_async_f)),
        ("zip", pipe.zip(stream.just(1))),
        ("timeout", pipe.timeout(1)),
        ("switchmap", pipe.switchmap(lambda x: stream.just(x))),
    ]


async def test_an_aiostream_operator_that_cannot_run_on_trio_is_named(anyio_backend: str) -> None:
    for name, func in _unsafe_pipes():
        async with Cancelable() as op:
            src = op.stream(ops.range(3))
            if anyio_backend == "trio":
                with pytest.raises(RuntimeError, match=f"aiostream's `{name}` cannot run on trio.*ops.{name}"):
                    src | func
            else:
                async with (src | func | pipe.take(1)).stream() as xs:
                    assert [x async for x in xs]
    if anyio_backend == "trio":
        with pytest.raises(RuntimeError, match="aiostream's `merge`.*ops.merge"):
            ops.range(3) | pipe.filter(bool) | pipe.merge(stream.just(1))


def test_the_guard_checks_at_iteration_when_built_without_a_loop() -> None:
    xs = cancelable_stream(ops.range(3)) | pipe.map(_async_f)

    async def run() -> None:
        async with xs.stream() as streamer:
            async for _ in streamer:
                pass  # pragma: no cover

    with pytest.raises(RuntimeError, match="aiostream's `map` cannot run on trio.*ops.map"):
        anyio.run(run, backend="trio")


def _aiostream_configs() -> list[tuple[str, Any]]:
    async def inner(x: int) -> Any:
        return stream.just(x)

    return [
        ("map sync", pipe.map(lambda x: x)),
        ("map async", pipe.map(_async_f)),
        ("map async 1", pipe.map(_async_f, task_limit=1)),
        ("map 2 sources", pipe.map(lambda x, y: x, stream.just(1))),
        ("amap 1", pipe.amap(_async_f, task_limit=1)),
        ("smap", pipe.smap(lambda x: x)),
        ("smap 2", pipe.smap(lambda x, y: x, stream.just(1))),
        ("starmap sync", stream.starmap.pipe(lambda x: x)),
        ("starmap async 1", stream.starmap.pipe(_async_f, True, 1)),
        ("starmap async", stream.starmap.pipe(_async_f)),
        ("zip one", pipe.zip()),
        ("zip two", pipe.zip(stream.just(1))),
        ("concatmap 1", pipe.concatmap(lambda x: stream.just(x), task_limit=1)),
        ("flatmap", pipe.flatmap(inner)),
        ("chunks", pipe.chunks(2)),
        ("filter", pipe.filter(bool)),
        ("take", pipe.take(1)),
        ("enumerate", pipe.enumerate()),
        ("chain", pipe.chain(stream.just(1))),
        ("cycle", pipe.cycle()),
        ("delay", pipe.delay(0)),
        ("spaceout", pipe.spaceout(0)),
    ]


@pytest.mark.parametrize("label,func", _aiostream_configs(), ids=[c[0] for c in _aiostream_configs()])
def test_the_guard_refuses_exactly_what_fails_on_trio(label: str, func: Any) -> None:
    """Stock aiostream on trio: the guard names an operator if and only if it fails."""
    starred = label.startswith("starmap")

    async def run() -> None:
        src = stream.just((1,) if starred else 1)
        async with (func(src) | pipe.take(2)).stream() as xs:
            async for _ in xs:
                pass

    try:
        anyio.run(run, backend="trio")
    except BaseException as exc:  # noqa: BLE001 - whatever aiostream raises on trio
        failed: BaseException | None = exc
    else:
        failed = None
    assert (unsafe_on_trio(func) is not None) == (failed is not None), (label, failed)


# -- bad arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call,exc,pattern",
    [
        (lambda: ops.merge(ops.range(1), 3), TypeError, r"`sources\[1\]` must be an async iterable, got 3"),
        (lambda: ops.zip([1, 2]), TypeError, r"`sources\[0\]`.*ops.iterate"),
        (lambda: ops.map(ops.range(1), 5), TypeError, "`func` must be callable"),
        (lambda: ops.map(ops.range(1), times10, task_limit=0), ValueError, "`task_limit` must be None or an int > 0"),
        (lambda: ops.map(ops.range(1), str, ordered=False), ValueError, "`ordered` must be True"),
        (lambda: ops.map(ops.range(1), str, task_limit=2), ValueError, "`task_limit` must be None"),
        (lambda: ops.amap(ops.range(1), times10, task_limit="2"), TypeError, "`task_limit`"),
        (lambda: ops.flatmap(ops.range(1), None), TypeError, "`func` must be callable"),
        (lambda: ops.timeout(ops.range(1), -1), ValueError, "`timeout` must be a number of seconds >= 0"),
        (lambda: ops.spaceout(ops.range(1), "1"), TypeError, "`interval`"),
        (lambda: ops.delay(ops.range(1), float("nan")), ValueError, "`delay`"),
        (lambda: ops.chunks(ops.range(1), 0), ValueError, "`n` must be an int > 0"),
        (lambda: ops.chunks(ops.range(1), 2, interval=0), ValueError, "`interval` must be a number of seconds > 0"),
        (lambda: ops.iterate(5), TypeError, "`it` must be an iterable or an async iterable"),
        (lambda: ops.repeat(1, -1), ValueError, "`times` must be an int >= 0"),
        (lambda: ops.range(1, interval=-1), ValueError, "`interval`"),
        (lambda: ops.cycle(5), TypeError, "`source` must be an async iterable"),
    ],
)
async def test_bad_arguments_fail_at_the_call(call: Callable[[], Any], exc: type[Exception], pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        call()


def test_signatures_are_aiostream_s() -> None:
    aio: Any = stream
    for name in ops.__all__:
        if name == "PipeStream":
            continue
        ours = [p.name for p in inspect.signature(getattr(ops, name).original).parameters.values()]
        theirs = [p.name for p in inspect.signature(getattr(aio, name).original).parameters.values()]
        extra = {"chunks": ["interval"]}.get(name, [])
        assert ours == theirs + extra, name


def test_context_copy_is_per_stream() -> None:
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var", default=0)

    async def read(x: int) -> int:
        return var.get()

    async def main() -> list[int]:
        var.set(42)
        return await (ops.map(ops.range(2), read, task_limit=2) | pipe.list())

    assert anyio.run(main) == [42, 42]
