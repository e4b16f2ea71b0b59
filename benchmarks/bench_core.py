"""Core overhead benchmark: cancelable_rx against raw anyio, in one run, on both backends.

Run:  .venv/bin/python benchmarks/bench_core.py [--quick]

Each case is timed in interleaved rounds (ours, baseline, ours, ...) and reported as the
median per-operation time of each and their ratio, so machine noise hits both sides.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable

import anyio

from cancelable_rx import Cancelable, CancelationError, CancelationToken

Loop = Callable[[int], Awaitable[float]]


# -- enter/exit loops: each returns seconds for n operations -----------------------------

async def raw_scope(n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        with anyio.CancelScope():
            pass
    return time.perf_counter() - t


async def raw_fail_after(n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        with anyio.fail_after(30):
            pass
    return time.perf_counter() - t


async def rx_bare(n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        async with Cancelable():
            pass
    return time.perf_counter() - t


async def rx_timeout(n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        async with Cancelable.with_timeout(30):
            pass
    return time.perf_counter() - t


_TOKEN = CancelationToken()


async def rx_token(n: int) -> float:
    token = _TOKEN
    t = time.perf_counter()
    for _ in range(n):
        async with Cancelable.with_token(token):
            pass
    return time.perf_counter() - t


async def rx_timeout_token(n: int) -> float:
    token = _TOKEN
    t = time.perf_counter()
    for _ in range(n):
        async with Cancelable.with_timeout(30).combine(Cancelable.with_token(token)):
            pass
    return time.perf_counter() - t


# -- cancel until exit -----------------------------------------------------------------

async def _raw_worker(holder: list[anyio.CancelScope], ready: anyio.Event, done: anyio.Event, stamp: list[float]) -> None:
    with anyio.CancelScope() as scope:
        holder.append(scope)
        ready.set()
        await anyio.sleep_forever()
    stamp[0] = time.perf_counter()
    done.set()


async def raw_cancel_to_exit(n: int) -> float:
    total = 0.0
    for _ in range(n):
        ready, done = anyio.Event(), anyio.Event()
        holder: list[anyio.CancelScope] = []
        stamp = [0.0]
        async with anyio.create_task_group() as tg:
            tg.start_soon(_raw_worker, holder, ready, done, stamp)
            await ready.wait()
            t0 = time.perf_counter()
            holder[0].cancel()
            await done.wait()
        total += stamp[0] - t0
    return total


async def _rx_worker(token: CancelationToken, ready: anyio.Event, done: anyio.Event, stamp: list[float]) -> None:
    try:
        async with Cancelable.with_token(token):
            ready.set()
            await anyio.sleep_forever()
    except CancelationError:
        stamp[0] = time.perf_counter()
    done.set()


async def rx_cancel_to_exit(n: int) -> float:
    total = 0.0
    for _ in range(n):
        ready, done = anyio.Event(), anyio.Event()
        token = CancelationToken()
        stamp = [0.0]
        async with anyio.create_task_group() as tg:
            tg.start_soon(_rx_worker, token, ready, done, stamp)
            await ready.wait()
            t0 = time.perf_counter()
            await token.cancel()
            await done.wait()
        total += stamp[0] - t0
    return total


def _cancel_later(op: Cancelable, go: threading.Event, t0: list[float]) -> None:
    go.wait(5)
    time.sleep(0.001)
    t0[0] = time.perf_counter()
    op.cancel_sync(message="bench")


async def thread_cancel_samples(n: int) -> list[float]:
    """Seconds from ``cancel_sync()`` in a plain thread to the operation's exit."""
    samples = []
    for _ in range(n):
        op = Cancelable()
        go = threading.Event()
        t0 = [0.0]
        th = threading.Thread(target=_cancel_later, args=(op, go, t0))
        th.start()
        try:
            async with op:
                go.set()
                await anyio.sleep_forever()
        except CancelationError:
            samples.append(time.perf_counter() - t0[0])
        th.join()
    return samples


CASES: list[tuple[str, Loop, Loop, float, int]] = [
    # label, ours, baseline, target ratio, ops per round
    ("bare Cancelable() vs CancelScope()", rx_bare, raw_scope, 1.3, 2000),
    ("with_timeout(30) vs fail_after(30)", rx_timeout, raw_fail_after, 1.1, 2000),
    ("with_token(t) vs CancelScope()", rx_token, raw_scope, 1.6, 2000),
    ("timeout+token combine vs fail_after(30)", rx_timeout_token, raw_fail_after, 1.5, 2000),
    ("token.cancel() to exit vs scope.cancel() to exit", rx_cancel_to_exit, raw_cancel_to_exit, 1.5, 200),
]


async def run_backend(rounds: int) -> list[tuple[str, float, float, float, float]]:
    rows = []
    for label, ours, base, target, n in CASES:
        await ours(n // 4)
        await base(n // 4)  # warm up
        a, b = [], []
        for _ in range(rounds):
            a.append(await ours(n) / n)
            b.append(await base(n) / n)
        ma, mb = statistics.median(a), statistics.median(b)
        rows.append((label, ma, mb, ma / mb, target))
    samples = await thread_cancel_samples(30 if rounds < 7 else 100)
    rows.append(("cancel_sync() from a thread to exit (median)", statistics.median(samples), float("nan"), float("nan"), 1e-3))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    args = ap.parse_args()
    rounds = 3 if args.quick else 9
    ok = True
    print(f"python {sys.version.split()[0]}, anyio {anyio.__version__ if hasattr(anyio, '__version__') else ''}")
    for backend in ("asyncio", "trio"):
        rows = anyio.run(run_backend, rounds, backend=backend)
        print(f"\n## {backend}\n")
        print("| case | cancelable_rx | baseline | ratio | target |\n|---|---:|---:|---:|---:|")
        for label, ma, mb, ratio, target in rows:
            if mb != mb:  # absolute figure
                good = ma <= target
                print(f"| {label} | {ma * 1e6:.0f} µs | – | – | < {target * 1e6:.0f} µs {'ok' if good else 'MISSED'} |")
            else:
                good = ratio <= target
                print(f"| {label} | {ma * 1e6:.2f} µs | {mb * 1e6:.2f} µs | {ratio:.2f}x | <= {target}x {'ok' if good else 'MISSED'} |")
            ok &= good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
