"""Stream overhead benchmark: op.stream(src) against a plain ``async for`` and against the
floor of any wrapper written in pure Python (an empty pass-through async generator), one
run, both backends.

Run:  .venv/bin/python benchmarks/bench_streams.py [--quick] [--json PATH]
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import AsyncIterator

import anyio
from _harness import Row, arguments, compare, finish, print_table

from cancelable_rx import Cancelable

N_ITEMS = 100_000


async def source(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def plain(n: int) -> float:
    t = time.perf_counter()
    async for _ in source(n):
        pass
    return time.perf_counter() - t


async def _passthrough(it: AsyncIterator[int]) -> AsyncIterator[int]:
    async for item in it:
        yield item


async def floor(n: int) -> float:
    """The floor: one empty pass-through async generator stage."""
    t = time.perf_counter()
    async for _ in _passthrough(source(n)):
        pass
    return time.perf_counter() - t


async def rx_default(n: int) -> float:
    async with Cancelable() as op:
        t = time.perf_counter()
        async for _ in op.stream(source(n)):
            pass
        return time.perf_counter() - t


async def rx_report_subscriber(n: int) -> float:
    seen = []
    async with Cancelable() as op:
        op.progress.subscribe(seen.append)
        t = time.perf_counter()
        async for _ in op.stream(source(n), report_interval=1000):
            pass
        return time.perf_counter() - t


def emit_no_subscriber_ns(reps: int = 1_000_000) -> tuple[float, float]:
    """(a) ``op.progress.emit(event)`` with no subscriber; (b) the stream's per-report
    guard when nobody listens (what a stream pays every ``report_interval`` items)."""
    from cancelable_rx import ProgressEvent

    op = Cancelable()
    progress = op.progress  # an observable exists, with no subscriber
    event = ProgressEvent("id", "msg", None, 1)
    emit = progress.emit
    loop = range(reps)
    t0 = time.perf_counter()
    for _ in loop:
        pass
    empty = time.perf_counter() - t0
    t = time.perf_counter()
    for _ in loop:
        emit(event)
    emit_ns = (time.perf_counter() - t - empty) / reps * 1e9
    t = time.perf_counter()
    listening = op._progress_listening  # the stream port's guard, asked once per report
    for _ in loop:
        if listening():
            emit(event)  # pragma: no cover - never taken
    guard_ns = (time.perf_counter() - t - empty) / reps * 1e9
    return emit_ns, guard_ns


async def run_backend(backend: str, rounds: int) -> list[Row]:
    rows = []
    for label, ours, base, base_label, target in (
        ("floor: an empty pass-through async generator", floor, plain, "plain async for", math.inf),
        ("op.stream(src), defaults", rx_default, floor, "the floor", 1.15),
        ("op.stream(src), defaults", rx_default, plain, "plain async for", 2.0),
        ("op.stream(src, report_interval=1000), 1 subscriber", rx_report_subscriber, plain, "plain async for", 2.5),
    ):
        ma, mb = await compare(ours, base, N_ITEMS, rounds)
        rows.append(Row("streams", backend, f"{label} / {base_label}", ma, mb, target, baseline_label=base_label))
    return rows


def main() -> int:
    args = arguments("stream overheads")
    rounds = 3 if args.quick else 9
    rows: list[Row] = []
    for backend in ("asyncio", "trio"):
        backend_rows = anyio.run(run_backend, backend, rounds, backend=backend)
        print_table(backend, backend_rows, f" ({N_ITEMS:,} items per round, median of {rounds} rounds)")
        rows += backend_rows
    samples = [emit_no_subscriber_ns() for _ in range(5)]
    emit_ns = statistics.median(s[0] for s in samples)
    guard_ns = statistics.median(s[1] for s in samples)
    # The guard is asked once per report (every report_interval items), through the engine's
    # stream port: its cost per item is this figure divided by the interval.
    for label, ns, target in (
        ("op.progress.emit(event), no subscriber", emit_ns, 50),
        ("stream's per-report guard, an observable with no subscriber", guard_ns, 200),
    ):
        rows.append(Row("streams", "any", label, ns * 1e-9, None, target * 1e-9, kind="absolute"))
        print(f"\n{label}: {ns:.1f} ns (target < {target} ns) {'ok' if ns < target else 'MISSED'}")
    return finish(rows, args.json, "streams")


if __name__ == "__main__":
    sys.exit(main())
