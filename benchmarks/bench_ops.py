"""Operators benchmark: ``cancelable_rx.ops`` against aiostream, per item.

Run:  .venv/bin/python benchmarks/bench_ops.py [--quick]

Two cases, each over sources that never await (so the operator's own cost is measured):
``merge`` of two sources, and ``map`` of an ``async def`` with ``task_limit=4``.  On
asyncio, ours and aiostream's are timed in interleaved rounds (ours, aiostream's, ...) of
the same run and compared by their medians: the target is <= 1.0x.  aiostream's cannot
run on trio; ours on trio is compared with aiostream's asyncio median: the target is
<= 1.2x.  (The trio/asyncio ratio of ours is printed for information.)
"""

from __future__ import annotations

import argparse
import importlib.metadata
import statistics
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from aiostream import stream

from cancelable_rx import ops

N_ITEMS = 10_000


async def source(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


async def identity(x: int) -> int:
    return x


async def merge_per_item(module: Any, n: int) -> float:
    xs = module.merge(source(n), source(n))
    t = time.perf_counter()
    async with xs.stream() as streamer:
        async for _ in streamer:
            pass
    return (time.perf_counter() - t) / (2 * n)


async def map_per_item(module: Any, n: int) -> float:
    xs = module.map(source(n), identity, task_limit=4)
    t = time.perf_counter()
    async with xs.stream() as streamer:
        async for _ in streamer:
            pass
    return (time.perf_counter() - t) / n


CASES = [
    # label, per-item loop, target vs aiostream on asyncio (asyncio, trio)
    ("merge of 2 sources", merge_per_item, 1.0, 1.2),
    ("map(async f, task_limit=4)", map_per_item, 1.0, 1.2),
]


async def run_asyncio(rounds: int) -> list[tuple[float, float]]:
    rows = []
    for _, loop, _, _ in CASES:
        await loop(ops, N_ITEMS // 10)
        await loop(stream, N_ITEMS // 10)  # warm up
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(await loop(ops, N_ITEMS))
            theirs.append(await loop(stream, N_ITEMS))
        rows.append((statistics.median(ours), statistics.median(theirs)))
    return rows


async def run_trio(rounds: int) -> list[float]:
    rows = []
    for _, loop, _, _ in CASES:
        await loop(ops, N_ITEMS // 10)
        rows.append(statistics.median([await loop(ops, N_ITEMS) for _ in range(rounds)]))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer rounds")
    args = ap.parse_args()
    rounds = 3 if args.quick else 7
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("anyio", "trio", "aiostream"))
    print(f"python {sys.version.split()[0]}, {versions}, {N_ITEMS} items per round")
    on_asyncio = anyio.run(run_asyncio, rounds, backend="asyncio")
    on_trio = anyio.run(run_trio, rounds, backend="trio")
    ok = True
    print("\n| case | ops on asyncio | aiostream on asyncio | ratio | target | ops on trio | ratio to aiostream | target | trio/asyncio (ours) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (label, _, target_asyncio, target_trio), (ours, theirs), trio in zip(CASES, on_asyncio, on_trio, strict=True):
        ratio, trio_ratio = ours / theirs, trio / theirs
        good_asyncio, good_trio = ratio <= target_asyncio, trio_ratio <= target_trio
        ok &= good_asyncio and good_trio
        print(
            f"| {label} | {ours * 1e6:.2f} µs | {theirs * 1e6:.2f} µs | {ratio:.2f}x "
            f"| <= {target_asyncio}x {'ok' if good_asyncio else 'MISSED'} | {trio * 1e6:.2f} µs | {trio_ratio:.2f}x "
            f"| <= {target_trio}x {'ok' if good_trio else 'MISSED'} | {trio / ours:.2f}x |"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
