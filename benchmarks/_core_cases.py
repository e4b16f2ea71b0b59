"""The cases of ``bench_core.py`` beyond plain enter/exit: polled conditions, progress
reports, many concurrent operations, timer lateness and the CPU of polling.

Each function takes ``n`` and returns seconds for ``n`` operations (or samples), except
the CPU cases, which return CPU seconds per wall-clock second.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio

from cancelable_rx import Cancelable, CancelationToken, TimeoutCancelation

_TOKEN = CancelationToken()


def _never() -> bool:
    return False


# -- conditions ----------------------------------------------------------------------


async def rx_condition(n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        async with Cancelable.with_condition(_never, 0.01):
            pass
    return time.perf_counter() - t


async def rx_timeout_token_condition(n: int) -> float:
    token = _TOKEN
    t = time.perf_counter()
    for _ in range(n):
        async with Cancelable.with_timeout(30).combine(Cancelable.with_token(token), Cancelable.with_condition(_never, 0.01)):
            pass
    return time.perf_counter() - t


# -- progress ------------------------------------------------------------------------

_seen: list[Any] = []


def _callback(op_id: str, message: Any, metadata: Any) -> None:
    _seen.append(message)


async def rx_report(n: int) -> float:
    _seen.clear()
    async with Cancelable() as op:
        op.on_progress(_callback)
        report = op.report_progress
        t = time.perf_counter()
        for i in range(n):
            await report(i)
        elapsed = time.perf_counter() - t
    assert len(_seen) == n
    return elapsed


async def _trivial(op_id: str, message: Any, metadata: dict[str, Any] | None = None) -> None:
    _callback(op_id, message, metadata)


async def raw_report(n: int) -> float:
    _seen.clear()
    report = _trivial
    t = time.perf_counter()
    for i in range(n):
        await report("id", i)
    elapsed = time.perf_counter() - t
    assert len(_seen) == n
    return elapsed


async def rx_report_silent(n: int) -> float:
    async with Cancelable() as op:
        report = op.report_progress
        t = time.perf_counter()
        for i in range(n):
            await report(i)
        return time.perf_counter() - t


async def _empty(message: Any, metadata: dict[str, Any] | None = None) -> None:
    pass


async def raw_report_silent(n: int) -> float:
    report = _empty
    t = time.perf_counter()
    for i in range(n):
        await report(i)
    return time.perf_counter() - t


# -- many concurrent operations ------------------------------------------------------


async def _start_many(n: int, enter: Any) -> float:
    """Seconds to start ``n`` tasks that each enter an operation (or scope), wait until
    all are inside, and let them all leave."""
    release = anyio.Event()
    all_in = anyio.Event()
    inside = 0

    async def one() -> None:
        nonlocal inside
        async with enter():
            inside += 1
            if inside == n:
                all_in.set()
            await release.wait()

    t = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(one)
        await all_in.wait()
        release.set()
    return time.perf_counter() - t


class _Scope:
    """``anyio.CancelScope`` entered with ``async with`` (as the operations are)."""

    __slots__ = ("scope",)

    async def __aenter__(self) -> None:
        self.scope = anyio.CancelScope()
        self.scope.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        self.scope.__exit__(*exc)


async def rx_start_many(n: int) -> float:
    return await _start_many(n, Cancelable)


async def raw_start_many(n: int) -> float:
    return await _start_many(n, _Scope)


# -- timer lateness ------------------------------------------------------------------

_DELAY = 0.02


async def rx_lateness(n: int) -> float:
    """``n`` times the median lateness of ``n`` timeouts (a median: one loop stall on a
    shared machine must not decide the figure)."""
    late = []
    for _ in range(n):
        start = time.perf_counter()
        try:
            async with Cancelable.with_timeout(_DELAY):
                await anyio.sleep_forever()
        except TimeoutCancelation:
            pass
        late.append(time.perf_counter() - start - _DELAY)
    return statistics.median(late) * n


async def raw_lateness(n: int) -> float:
    late = []
    for _ in range(n):
        start = time.perf_counter()
        with anyio.move_on_after(_DELAY):
            await anyio.sleep_forever()
        late.append(time.perf_counter() - start - _DELAY)
    return statistics.median(late) * n


# -- CPU of polling ------------------------------------------------------------------

CONDITIONS = 1000
_WINDOW = 0.5
_flags = [False] * CONDITIONS


def _conditions() -> list[Any]:
    return [lambda i=i: _flags[i] for i in range(CONDITIONS)]


async def _cpu_window() -> float:
    await anyio.sleep(0.05)  # settle: every poller has ticked
    cpu, wall = time.process_time(), time.perf_counter()
    await anyio.sleep(_WINDOW)
    return (time.process_time() - cpu) / (time.perf_counter() - wall)


async def rx_cpu_poll(n: int) -> float:
    release = anyio.Event()

    async def one(condition: Any) -> None:
        async with Cancelable.with_condition(condition, 0.01):
            await release.wait()

    async with anyio.create_task_group() as tg:
        for condition in _conditions():
            tg.start_soon(one, condition)
        used = await _cpu_window()
        release.set()
    return used


async def raw_cpu_poll(n: int) -> float:
    conditions = _conditions()

    async def poll() -> None:
        while True:
            for condition in conditions:
                if condition():
                    return
            await anyio.sleep(0.01)

    async with anyio.create_task_group() as tg:
        tg.start_soon(poll)
        used = await _cpu_window()
        tg.cancel_scope.cancel()
    return used
