"""Stream overhead benchmark: op.stream(src) against a plain ``async for``, one run, both backends.

Run:  .venv/bin/python benchmarks/bench_streams.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import AsyncIterator

import anyio

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


async def run_backend(rounds: int) -> list[tuple[str, float, float, float, float]]:
    rows = []
    for label, ours, target in (
        ("op.stream(src), defaults", rx_default, 2.0),
        ("op.stream(src, report_interval=1000), 1 subscriber", rx_report_subscriber, 2.5),
    ):
        await ours(N_ITEMS // 10)
        await plain(N_ITEMS // 10)
        a, b = [], []
        for _ in range(rounds):
            a.append(await ours(N_ITEMS) / N_ITEMS)
            b.append(await plain(N_ITEMS) / N_ITEMS)
        ma, mb = statistics.median(a), statistics.median(b)
        rows.append((label, ma, mb, ma / mb, target))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    rounds = 3 if ap.parse_args().quick else 9
    ok = True
    for backend in ("asyncio", "trio"):
        rows = anyio.run(run_backend, rounds, backend=backend)
        print(f"\n## {backend} ({N_ITEMS:,} items per round, median of {rounds} rounds)\n")
        print("| case | cancelable_rx per item | plain async for | ratio | target |\n|---|---:|---:|---:|---:|")
        for label, ma, mb, ratio, target in rows:
            good = ratio <= target
            ok &= good
            print(f"| {label} | {ma * 1e9:.0f} ns | {mb * 1e9:.0f} ns | {ratio:.2f}x | <= {target}x {'ok' if good else 'MISSED'} |")
    samples = [emit_no_subscriber_ns() for _ in range(5)]
    emit_ns = statistics.median(s[0] for s in samples)
    guard_ns = statistics.median(s[1] for s in samples)
    # The guard is asked once per report (every report_interval items), through the engine's
    # stream port: its cost per item is this figure divided by the interval.
    for label, ns, target in (
        ("op.progress.emit(event), no subscriber", emit_ns, 50),
        ("stream's per-report guard (op._progress_listening()), an observable with no subscriber", guard_ns, 200),
    ):
        good = ns < target
        ok &= good
        print(f"\n{label}: {ns:.1f} ns (target < {target} ns) {'ok' if good else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
