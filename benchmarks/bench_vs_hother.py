"""cancelable_rx vs hother-cancelable vs raw anyio, measured in the same process.

hother-cancelable needs Python 3.13; it is never our dependency.  Set up once:

    python3.13 -m venv .bench-venv313
    .bench-venv313/bin/pip install -e . hother-cancelable trio
    .bench-venv313/bin/python benchmarks/bench_vs_hother.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio

import cancelable_rx as rx

try:
    import hother.cancelable as ho
except ImportError:  # pragma: no cover - only where it can be installed
    sys.exit("hother-cancelable is not installed here (it needs Python 3.13); see the module docstring")


def enter_exit(make: Callable[[], Any]) -> Callable[[int], Awaitable[float]]:
    async def run(n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            async with make():
                pass
        return time.perf_counter() - t

    return run


def raw_scope() -> Callable[[int], Awaitable[float]]:
    async def run(n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            with anyio.CancelScope():
                pass
        return time.perf_counter() - t

    return run


async def _items(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


def per_item(lib: Any) -> Callable[[int], Awaitable[float]]:
    async def run(n: int) -> float:
        async with lib.Cancelable() as op:
            t = time.perf_counter()
            async for _ in op.stream(_items(n)):
                pass
            return time.perf_counter() - t

    return run


async def plain_items(n: int) -> float:
    t = time.perf_counter()
    async for _ in _items(n):
        pass
    return time.perf_counter() - t


async def median_per_op(fn: Callable[[int], Awaitable[float]], n: int, rounds: int) -> float:
    await fn(max(1, n // 10))
    return statistics.median([await fn(n) / n for _ in range(rounds)])


async def run_backend(rounds: int) -> list[tuple[str, float, float, float]]:
    rx_token, ho_token = rx.CancelationToken(), ho.CancelationToken()
    cases: list[tuple[str, Callable[[int], Awaitable[float]], Callable[[int], Awaitable[float]], int]] = [
        ("bare enter/exit", enter_exit(rx.Cancelable), enter_exit(ho.Cancelable), 1000),
        ("with_timeout(30)", enter_exit(lambda: rx.Cancelable.with_timeout(30)), enter_exit(lambda: ho.Cancelable.with_timeout(30)), 1000),
        (
            "timeout + token combine",
            enter_exit(lambda: rx.Cancelable.with_timeout(30).combine(rx.Cancelable.with_token(rx_token))),
            enter_exit(lambda: ho.Cancelable.with_timeout(30).combine(ho.Cancelable.with_token(ho_token))),
            500,
        ),
        ("stream, per item", per_item(rx), per_item(ho), 20_000),
    ]
    rows = []
    base_scope = await median_per_op(raw_scope(), 1000, rounds)
    base_items = await median_per_op(plain_items, 20_000, rounds)
    for label, ours, theirs, n in cases:
        a = await median_per_op(ours, n, rounds)
        b = await median_per_op(theirs, n, rounds)
        base = base_items if "stream" in label else base_scope
        rows.append((label, a, b, base))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    rounds = 3 if ap.parse_args().quick else 7
    print(f"python {sys.version.split()[0]}")
    for backend in ("asyncio", "trio"):
        try:
            rows = anyio.run(run_backend, rounds, backend=backend)
        except Exception as err:  # the reference package may not support a backend
            print(f"\n## {backend}: hother-cancelable failed: {type(err).__name__}: {err}")
            continue
        print(f"\n## {backend}\n")
        print("| case | cancelable_rx | hother-cancelable | hother / ours | ours / raw anyio |\n|---|---:|---:|---:|---:|")
        for label, a, b, base in rows:
            unit, k = ("ns", 1e9) if "item" in label else ("µs", 1e6)
            print(f"| {label} | {a * k:.2f} {unit} | {b * k:.2f} {unit} | {b / a:.1f}x | {a / base:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
