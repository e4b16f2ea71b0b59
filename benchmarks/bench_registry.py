"""Registry costs, on both backends: registration overhead, list_operations with 10,000
live operations, and memory per registered live operation.

Run:  .venv/bin/python benchmarks/bench_registry.py [--quick] [--json PATH]
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import tracemalloc

import anyio
from _harness import Row, arguments, finish

from cancelable_rx import Cancelable, OperationRegistry

LIVE = 10_000


async def enter_exit(n: int, register: bool) -> float:
    t = time.perf_counter()
    for _ in range(n):
        async with Cancelable(register_globally=register):
            pass
    return (time.perf_counter() - t) / n


async def live_operations(register: bool, measure: bool) -> tuple[float, float, float]:
    """Hold LIVE operations open; return (bytes per op, first list ms, cached list ms)."""
    registry = OperationRegistry.get_instance()
    release = anyio.Event()
    started = 0
    all_in = anyio.Event()

    async def hold() -> None:
        nonlocal started
        async with Cancelable(register_globally=register):
            started += 1
            if started == LIVE:
                all_in.set()
            await release.wait()

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    first = cached = float("nan")
    async with anyio.create_task_group() as tg:
        for _ in range(LIVE):
            tg.start_soon(hold)
        await all_in.wait()
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        if measure:
            t = time.perf_counter()
            listed = await registry.list_operations()
            first = (time.perf_counter() - t) * 1e3
            assert len(listed) == LIVE
            t = time.perf_counter()
            await registry.list_operations()
            cached = (time.perf_counter() - t) * 1e3
        release.set()
    await registry.clear_all()
    return used / LIVE, first, cached


async def thread_cancel_median(n: int, how: str) -> float:
    """Median seconds from registry.cancel_*_sync() in a plain thread to the op's exit."""
    import threading

    registry = OperationRegistry.get_instance()
    samples = []
    for _ in range(n):
        op = Cancelable(register_globally=True, suppress_cancelation=True)
        go = threading.Event()
        t0 = [0.0]

        def canceller(op: Cancelable = op, go: threading.Event = go, t0: list[float] = t0) -> None:
            go.wait(5)
            time.sleep(0.001)
            t0[0] = time.perf_counter()
            if how == "one":
                registry.cancel_operation_sync(op.id)
            else:
                registry.cancel_all_sync()

        th = threading.Thread(target=canceller)
        th.start()
        async with op:
            go.set()
            await anyio.sleep_forever()
        samples.append(time.perf_counter() - t0[0])
        th.join()
    await registry.clear_all()
    return statistics.median(samples)


async def run_backend(rounds: int) -> dict[str, float]:
    registry = OperationRegistry.get_instance()
    await registry.clear_all()
    await enter_exit(2000, True)
    await enter_exit(2000, False)
    on, off = [], []
    for _ in range(rounds):
        on.append(await enter_exit(5000, True))
        off.append(await enter_exit(5000, False))
    await registry.clear_all()
    plain_bytes, _, _ = await live_operations(False, False)
    reg_bytes, first_ms, cached_ms = await live_operations(True, True)
    one_ms = await thread_cancel_median(50, "one") * 1e3
    all_ms = await thread_cancel_median(50, "all") * 1e3
    return {
        "one_ms": one_ms,
        "all_ms": all_ms,
        "added_us": (statistics.median(on) - statistics.median(off)) * 1e6,
        "plain_us": statistics.median(off) * 1e6,
        "first_ms": first_ms,
        "cached_ms": cached_ms,
        "extra_bytes": reg_bytes - plain_bytes,
    }


def main() -> int:
    args = arguments("registry costs")
    rounds = 3 if args.quick else 9
    rows: list[Row] = []
    for backend in ("asyncio", "trio"):
        r = anyio.run(run_backend, rounds, backend=backend)
        us, ms = 1e-6, 1e-3
        checks = [
            Row("registry", backend, "registering: added to enter/exit", (r["plain_us"] + r["added_us"]) * us,
                r["plain_us"] * us, 1.5 * us, kind="delta", baseline_label="unregistered"),
            Row("registry", backend, f"list_operations(), {LIVE:,} live, first call", r["first_ms"] * ms, None, 5 * ms, kind="absolute"),
            Row("registry", backend, f"list_operations(), {LIVE:,} live, later calls", r["cached_ms"] * ms, None, 5 * ms, kind="absolute"),
            Row("registry", backend, "memory per registered live operation (extra)", r["extra_bytes"], None, 1024,
                kind="absolute", unit="B"),
            Row("registry", backend, "cancel_operation_sync() from a thread to exit, median", r["one_ms"] * ms, None, 1 * ms, kind="absolute"),
            Row("registry", backend, "cancel_all_sync() from a thread to exit, median", r["all_ms"] * ms, None, 1 * ms, kind="absolute"),
        ]
        print(f"\n## {backend}\n\n| case | measured | target |\n|---|---:|---:|")
        for row in checks:
            if row.kind == "delta":
                value = f"+{row.value * 1e6:.2f} µs (of {row.baseline * 1e6:.2f} µs)"  # type: ignore[operator]
            elif row.unit == "B":
                value = f"{row.ours:.0f} B"
            else:
                value = f"{row.ours * 1e3:.3f} ms"
            print(f"| {row.case} | {value} | {row.target:g} {'ok' if row.ok else 'MISSED'} |")
        rows += checks
    return finish(rows, args.json, "registry")


if __name__ == "__main__":
    sys.exit(main())
