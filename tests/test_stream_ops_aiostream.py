"""Property tests: for random finite inputs each operator of ``cancelable_rx.ops`` gives the
same items as aiostream's operator of the same name, on asyncio (where aiostream runs).

Operators whose output order depends on scheduling (``merge``, ``flatmap``, unordered
``map``, ``ziplatest``, ``switch``) are compared on what does not: the same items, each
source's order, the last tuple, the last inner stream whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from aiostream import pipe, stream
from hypothesis import given, settings
from hypothesis import strategies as st

from cancelable_rx import ops

EXAMPLES = settings(max_examples=60, deadline=None)

ints = st.lists(st.integers(-50, 50), max_size=8)
sources = st.lists(ints, min_size=0, max_size=3)
limits = st.sampled_from([None, 1, 2, 3, 5])
pauses = st.booleans()  # whether a source awaits between items


def _src(items: list[Any], pause: bool = False) -> AsyncIterator[Any]:
    async def gen() -> AsyncIterator[Any]:
        for item in items:
            if pause:
                await anyio.lowlevel.checkpoint()
            yield item

    return gen()


def _both(build: Callable[[Any], Any]) -> tuple[Any, Any]:
    """Run ``build(module) | list`` with ``ops`` and with aiostream's ``stream``: each
    result is the list of items or the type of the exception raised."""

    async def run(module: Any) -> Any:
        try:
            return await (build(module) | pipe.list())
        except Exception as exc:
            return type(exc)

    async def main() -> tuple[Any, Any]:
        return await run(ops), await run(stream)

    return anyio.run(main, backend="asyncio")


def _same_bag(ours: Any, theirs: Any) -> None:
    assert isinstance(ours, list) and isinstance(theirs, list), (ours, theirs)
    assert Counter(map(repr, ours)) == Counter(map(repr, theirs))


async def _twice(x: int, *more: int) -> int:
    await anyio.lowlevel.checkpoint()
    return 2 * x + sum(more)


def _inner(x: int) -> AsyncIterator[tuple[int, int]]:
    return _src([(x, i) for i in range(abs(x) % 4)], pause=bool(x % 2))


# -- combination --------------------------------------------------------------------------------


@EXAMPLES
@given(sources, pauses)
def test_merge(lists: list[list[int]], pause: bool) -> None:
    tagged = [[(i, x) for x in xs] for i, xs in enumerate(lists)]
    ours, theirs = _both(lambda m: m.merge(*(_src(xs, pause) for xs in tagged)))
    _same_bag(ours, theirs)
    for i, xs in enumerate(tagged):
        assert [x for x in ours if x[0] == i] == xs


@EXAMPLES
@given(sources, pauses, st.booleans())
def test_zip(lists: list[list[int]], pause: bool, strict: bool) -> None:
    ours, theirs = _both(lambda m: m.zip(*(_src(xs, pause) for xs in lists), strict=strict))
    assert ours == theirs


@EXAMPLES
@given(sources, st.booleans())
def test_ziplatest(lists: list[list[int]], partial: bool) -> None:
    tagged = [[(i, x) for x in xs] for i, xs in enumerate(lists)]
    ours, theirs = _both(lambda m: m.ziplatest(*(_src(xs, True) for xs in tagged), partial=partial, default="-"))
    assert isinstance(ours, list) and isinstance(theirs, list)
    if partial:
        assert len(ours) == len(theirs) == sum(map(len, lists))
    if ours or theirs:
        assert ours[-1] == theirs[-1]
        assert all(len(row) == len(lists) for row in ours)


@EXAMPLES
@given(sources)
def test_smap_and_sync_map(lists: list[list[int]]) -> None:
    srcs = lists or [[]]
    ours, theirs = _both(lambda m: m.smap(*[_src(xs) for xs in srcs[:1]], lambda *a: sum(a), *map(_src, srcs[1:])))
    assert ours == theirs
    ours, theirs = _both(lambda m: m.map(_src(srcs[0]), lambda x: x - 1))
    assert ours == theirs


@EXAMPLES
@given(sources, limits, pauses)
def test_map_ordered(lists: list[list[int]], limit: int | None, pause: bool) -> None:
    srcs = lists or [[]]
    ours, theirs = _both(
        lambda m: m.map(_src(srcs[0], pause), _twice, *(_src(xs) for xs in srcs[1:]), task_limit=limit)
    )
    assert ours == theirs


@EXAMPLES
@given(ints, limits, pauses)
def test_map_unordered_and_amap(items: list[int], limit: int | None, pause: bool) -> None:
    ours, theirs = _both(lambda m: m.map(_src(items, pause), _twice, ordered=False, task_limit=limit))
    _same_bag(ours, theirs)
    ours, theirs = _both(lambda m: m.amap(_src(items, pause), _twice, task_limit=limit))
    assert ours == theirs


@EXAMPLES
@given(st.lists(st.tuples(st.integers(), st.integers()), max_size=8), limits)
def test_starmap(pairs: list[tuple[int, int]], limit: int | None) -> None:
    ours, theirs = _both(lambda m: m.starmap(_src(pairs), _twice, task_limit=limit))
    assert ours == theirs
    ours, theirs = _both(lambda m: m.starmap(_src(pairs), lambda a, b: a - b))
    assert ours == theirs


# -- streams of streams --------------------------------------------------------------------------


@EXAMPLES
@given(ints, limits)
def test_flatmap_and_flatten(items: list[int], limit: int | None) -> None:
    def numbered(pair: tuple[int, int]) -> AsyncIterator[tuple[int, int]]:
        return _src([(pair[0], i) for i in range(abs(pair[1]) % 4)], pause=bool(pair[1] % 2))

    ours, theirs = _both(lambda m: m.flatmap(_src(list(enumerate(items))), numbered, task_limit=limit))
    _same_bag(ours, theirs)
    for n, x in enumerate(items):
        assert [i for i in ours if i[0] == n] == [(n, i) for i in range(abs(x) % 4)]
    ours, theirs = _both(lambda m: m.flatten(_src([_inner(x) for x in items]), task_limit=limit))
    _same_bag(ours, theirs)


@EXAMPLES
@given(ints, limits)
def test_concatmap_and_concat(items: list[int], limit: int | None) -> None:
    ours, theirs = _both(lambda m: m.concatmap(_src(items), _inner, task_limit=limit))
    assert ours == theirs

    async def inner_async(x: int) -> AsyncIterator[tuple[int, int]]:
        return _inner(x)

    ours, theirs = _both(lambda m: m.concatmap(_src(items, True), inner_async, task_limit=limit))
    assert ours == theirs
    ours, theirs = _both(lambda m: m.concat(_src([_inner(x) for x in items]), task_limit=limit))
    assert ours == theirs


@EXAMPLES
@given(ints)
def test_switchmap_and_switch(items: list[int]) -> None:
    for build in (
        lambda m: m.switchmap(_src(items, True), _inner),
        lambda m: m.switch(_src([_inner(x) for x in items], True)),
    ):
        ours, theirs = _both(build)
        assert isinstance(ours, list) and isinstance(theirs, list)
        # the last inner stream always runs to its end
        last = [(items[-1], i) for i in range(abs(items[-1]) % 4)] if items else []
        assert ours[len(ours) - len(last):] == last == theirs[len(theirs) - len(last):]
        assert Counter(map(repr, ours)) - Counter(map(repr, [(x, i) for x in items for i in range(abs(x) % 4)])) == Counter()


# -- sequential -----------------------------------------------------------------------------------


@EXAMPLES
@given(ints, st.integers(1, 4))
def test_chunks(items: list[int], n: int) -> None:
    ours, theirs = _both(lambda m: m.chunks(_src(items), n))
    assert ours == theirs
    ours, _ = _both(lambda m: m.chunks(_src(items), n, interval=30) if m is ops else m.chunks(_src(items), n))
    assert ours == theirs


@EXAMPLES
@given(ints)
def test_time_operators(items: list[int]) -> None:
    for build in (
        lambda m: m.timeout(_src(items, True), 30),
        lambda m: m.spaceout(_src(items), 0.0001),
        lambda m: m.delay(_src(items), 0.0001),
    ):
        ours, theirs = _both(build)
        assert ours == theirs


@EXAMPLES
@given(ints, st.integers(0, 12), st.integers(-3, 3).filter(bool), st.integers(0, 4))
def test_creation(items: list[int], k: int, step: int, times: int) -> None:
    for build in (
        lambda m: m.iterate(items),
        lambda m: m.iterate(_src(items)),
        lambda m: m.range(-k, k, step),
        lambda m: m.count(k, step) | pipe.take(k),
        lambda m: m.repeat(k, times),
        lambda m: m.repeat(k) | pipe.take(times),
        lambda m: m.iterate(items) | m.cycle.pipe() | pipe.take(k if items else 0),
    ):
        ours, theirs = _both(build)
        assert ours == theirs


@pytest.mark.parametrize("name", ["merge", "map", "flatmap", "concatmap", "zip", "chunks", "timeout"])
def test_errors_are_the_same(name: str) -> None:
    async def failing() -> AsyncIterator[int]:
        yield 1
        raise KeyError("source")

    builds: dict[str, Callable[[Any], Any]] = {
        "merge": lambda m: m.merge(failing(), _src([2])),
        "map": lambda m: m.map(failing(), _twice, task_limit=2),
        "flatmap": lambda m: m.flatmap(failing(), _inner),
        "concatmap": lambda m: m.concatmap(failing(), _inner),
        "zip": lambda m: m.zip(failing(), _src([2, 3])),
        "chunks": lambda m: m.chunks(failing(), 2),
        "timeout": lambda m: m.timeout(failing(), 1),
    }
    ours, theirs = _both(builds[name])
    assert ours is theirs is KeyError
