"""cancelable_rx vs hother-cancelable vs raw anyio, measured in the same process.

hother-cancelable needs Python 3.13; it is never our dependency.  Set up once:

    python3.13 -m venv .bench-venv313
    .bench-venv313/bin/pip install -e . hother-cancelable==0.11.3 trio
    .bench-venv313/bin/python benchmarks/bench_vs_hother.py [--quick] [--json PATH]

Every case is timed for cancelable_rx, hother-cancelable and raw anyio in the same run.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import metadata
from typing import Any

import anyio
from _harness import Loop, Row, arguments, finish

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


def reporting(lib: Any) -> Callable[[int], Awaitable[float]]:
    """``report_progress`` with one sync callback."""

    def callback(op_id: str, message: Any, metadata: Any) -> None:
        pass

    async def run(n: int) -> float:
        async with lib.Cancelable() as op:
            op.on_progress(callback)
            t = time.perf_counter()
            for i in range(n):
                await op.report_progress(i)
            return time.perf_counter() - t

    return run


async def trivial_reports(n: int) -> float:
    def callback(op_id: str, message: Any, metadata: Any) -> None:
        pass

    async def report(message: Any, metadata: Any = None) -> None:
        callback("id", message, metadata)

    t = time.perf_counter()
    for i in range(n):
        await report(i)
    return time.perf_counter() - t


async def _worker(lib: Any | None, token: Any, holder: list[anyio.CancelScope], ready: anyio.Event,
                  done: anyio.Event, stamp: list[float]) -> None:
    try:
        if lib is None:
            with anyio.CancelScope() as scope:
                holder.append(scope)
                ready.set()
                await anyio.sleep_forever()
        else:
            async with lib.Cancelable.with_token(token):
                ready.set()
                await anyio.sleep_forever()
    except BaseException:  # noqa: BLE001 - our typed error, or hother's backend cancel
        pass
    stamp[0] = time.perf_counter()
    done.set()


def cancel_to_exit(lib: Any | None) -> Callable[[int], Awaitable[float]]:
    """Seconds from ``token.cancel()`` (``scope.cancel()`` for raw anyio) until the
    operation's task has left it; the library's own way of leaving is caught."""

    async def run(n: int) -> float:
        total = 0.0
        for _ in range(n):
            ready, done = anyio.Event(), anyio.Event()
            token = lib.CancelationToken() if lib is not None else None
            holder: list[anyio.CancelScope] = []
            stamp = [0.0]
            async with anyio.create_task_group() as tg:
                tg.start_soon(_worker, lib, token, holder, ready, done, stamp)
                await ready.wait()
                t0 = time.perf_counter()
                if lib is None:
                    holder[0].cancel()
                else:
                    await token.cancel()
                await done.wait()
            total += stamp[0] - t0
        return total

    return run


def _never() -> bool:
    return False


async def interleaved(fns: tuple[Loop, ...], n: int, rounds: int) -> list[float]:
    """Median seconds per operation of each of ``fns``, timed in interleaved rounds."""
    for fn in fns:
        await fn(max(1, n // 10))
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, samples in zip(fns, times, strict=True):
            samples.append(await fn(n) / n)
    return [statistics.median(samples) for samples in times]


async def run_backend(backend: str, rounds: int) -> list[Row]:
    rx_token, ho_token = rx.CancelationToken(), ho.CancelationToken()
    scope, fail_after = raw_scope(), raw_fail_after()
    cases: list[tuple[str, Loop, Loop, Loop, str, int]] = [
        ("bare enter/exit", enter_exit(rx.Cancelable), enter_exit(ho.Cancelable), scope, "CancelScope()", 1000),
        ("with_timeout(30)", enter_exit(lambda: rx.Cancelable.with_timeout(30)),
         enter_exit(lambda: ho.Cancelable.with_timeout(30)), fail_after, "fail_after(30)", 1000),
        ("with_token(t)", enter_exit(lambda: rx.Cancelable.with_token(rx_token)),
         enter_exit(lambda: ho.Cancelable.with_token(ho_token)), scope, "CancelScope()", 1000),
        ("with_condition(f, 0.01)", enter_exit(lambda: rx.Cancelable.with_condition(_never, 0.01)),
         enter_exit(lambda: ho.Cancelable.with_condition(_never, 0.01)), scope, "CancelScope()", 500),
        (
            "timeout + token combine",
            enter_exit(lambda: rx.Cancelable.with_timeout(30).combine(rx.Cancelable.with_token(rx_token))),
            enter_exit(lambda: ho.Cancelable.with_timeout(30).combine(ho.Cancelable.with_token(ho_token))),
            fail_after, "fail_after(30)", 500,
        ),
        ("token.cancel() until exited", cancel_to_exit(rx), cancel_to_exit(ho), cancel_to_exit(None),
         "scope.cancel() until exited", 100),
        ("report_progress(), 1 sync callback", reporting(rx), reporting(ho), trivial_reports,
         "async def calling the callback", 10_000),
        ("stream, per item", per_item(rx), per_item(ho), plain_items, "plain async for", 20_000),
    ]
    rows = []
    for label, ours, theirs, raw, raw_label, n in cases:
        a, b, base = await interleaved((ours, theirs, raw), n, rounds)
        rows.append(Row("vs_hother", backend, label, a, base, math.inf, baseline_label=raw_label, extra={"hother": b}))
    return rows


def raw_fail_after() -> Callable[[int], Awaitable[float]]:
    async def run(n: int) -> float:
        t = time.perf_counter()
        for _ in range(n):
            with anyio.fail_after(30):
                pass
        return time.perf_counter() - t

    return run


def main() -> int:
    args = arguments("cancelable_rx vs hother-cancelable vs raw anyio")
    rounds = 3 if args.quick else 7
    print(f"python {sys.version.split()[0]}, hother-cancelable {metadata.version('hother-cancelable')}")
    rows: list[Row] = []
    for backend in ("asyncio", "trio"):
        try:
            backend_rows = anyio.run(run_backend, backend, rounds, backend=backend)
        except Exception as err:  # the reference package may not support a backend
            print(f"\n## {backend}: hother-cancelable failed: {type(err).__name__}: {err}")
            continue
        print(f"\n## {backend}\n")
        print("| case | cancelable_rx | hother-cancelable | hother / ours | ours / raw anyio | hother / raw anyio |")
        print("|---|---:|---:|---:|---:|---:|")
        for r in backend_rows:
            h = r.extra["hother"]
            print(f"| {r.case} | {r.ours * 1e6:.2f} µs | {h * 1e6:.2f} µs | {h / r.ours:.1f}x | {r.value:.2f}x | {h / r.baseline:.2f}x |")  # type: ignore[operator]
        rows += backend_rows
    finish(rows, args.json, "vs_hother")
    return 0


if __name__ == "__main__":
    sys.exit(main())
